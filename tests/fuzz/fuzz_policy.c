// fuzz_policy.c: libFuzzer target for the policy INI parser (policy/policy_rules.c,
// policy_rules_load_string): what loads must be internally consistent and must load again
// from the same text to the same policy; what fails must leave the output untouched and name a
// problem. The inputs corpus/fuzz_policy/regress-* replay the ASSERT abort it found (an unknown
// section header after a form feed or a UTF-8 BOM, fixed in 38a3483).
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core_base.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct policy out, again, sentinel;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) {
        return 0;
    }
    char *text = malloc(size + 1);
    ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[256];
    memset(&out, 0x5a, sizeof(out));
    memset(&sentinel, 0x5a, sizeof(sentinel));
    int rc = policy_rules_load_string(&out, err, sizeof(err), text, "fuzz.ini", "/nonexistent");
    if (rc == 0) {
        ASSERT(out.measurement.allow_count <= policy_measurements_max);
        ASSERT(out.roles.count <= policy_roles_max);
        ASSERT(memchr(out.version, 0, sizeof(out.version)) != NULL);
        ASSERT(out.guest.max_vmpl <= 3);
        for (uint32_t i = 0; i < out.roles.count; i++) {
            ASSERT(out.roles.rows[i].user_count <= policy_role_users_max);
        }
        // Deterministic: the same text loads to the same policy.
        memset(&again, 0, sizeof(again));
        ASSERT(policy_rules_load_string(&again, err, sizeof(err), text, "fuzz.ini",
                                        "/nonexistent") == 0);
        ASSERT(memcmp(&out, &again, sizeof(out)) == 0);
    } else {
        ASSERT(rc == -EINVAL || rc == -ENOMEM);
        ASSERT(strlen(err) > 0 && strncmp(err, "fuzz.ini", 8) == 0);
        ASSERT(memcmp(&out, &sentinel, sizeof(out)) == 0); // untouched on failure
    }
    free(text);
    return 0;
}
