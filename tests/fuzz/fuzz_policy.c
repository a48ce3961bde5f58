// fuzz_policy.c: libFuzzer target for the policy INI parser (policy/policy_rules.c,
// policy_rules_load_string): what loads must be internally consistent and must load again
// from the same text to the same policy; what fails must leave the output untouched and name a
// problem.
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core_base.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct policy out, again, sentinel;

// KNOWN BUG (open; remove this filter once fixed, the inputs regress-*-unknown-section* in
// corpus/fuzz_policy/ then replay it): policy_rules.c check_section_header() skips only ' ' and
// '\t' before '[', but inih strips every isspace() byte (and a UTF-8 BOM on the first line), so
// "\f[nosuch]\nk = v" or "<BOM>[nosuch]\nk = v" reaches handler() with an unknown section and
// trips ASSERT(sec >= 0): the process aborts (at startup, --check-config, or a SIGHUP reload
// that should have kept the running policy). Until then, inputs that take that path are skipped
// so the fuzzer keeps looking for other bugs.
static bool hits_known_section_bug(const char *text) {
    if ((unsigned char)text[0] == 0xef && (unsigned char)text[1] == 0xbb &&
        (unsigned char)text[2] == 0xbf) {
        return true;
    }
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\v' || *p == '\f' || *p == '\r') {
            return true;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) {
        return 0;
    }
    char *text = malloc(size + 1);
    ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    if (hits_known_section_bug(text)) {
        free(text);
        return 0;
    }
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
