// policy.c: evaluates verified attestation claims against a loaded policy (DESIGN.md §7), builds
// the list of failed checks with stable codes, formats the reason, and answers the role map.
#include <stdio.h>
#include <string.h>

#include "core_base.h"
#include "policy.h"

enum {
    short_hex_digits = 12, // measurement prefix shown to people ("5a1c2b3d4e5f…")
};

static const char *const check_names[POLICY_CHECK_CODE_COUNT] = {
    [POLICY_CHECK_MEASUREMENT_NOT_ALLOWED] = "MEASUREMENT_NOT_ALLOWED",
    [POLICY_CHECK_TCB_BELOW_MIN_BOOTLOADER] = "TCB_BELOW_MIN:bootloader",
    [POLICY_CHECK_TCB_BELOW_MIN_TEE] = "TCB_BELOW_MIN:tee",
    [POLICY_CHECK_TCB_BELOW_MIN_SNP] = "TCB_BELOW_MIN:snp",
    [POLICY_CHECK_TCB_BELOW_MIN_MICROCODE] = "TCB_BELOW_MIN:microcode",
    [POLICY_CHECK_TCB_BELOW_MIN_FMC] = "TCB_BELOW_MIN:fmc",
    [POLICY_CHECK_DEBUG_ENABLED] = "DEBUG_ENABLED",
    [POLICY_CHECK_SMT_ENABLED] = "SMT_ENABLED",
    [POLICY_CHECK_MIGRATE_MA_ENABLED] = "MIGRATE_MA_ENABLED",
    [POLICY_CHECK_GUEST_SVN_BELOW_MIN] = "GUEST_SVN_BELOW_MIN",
    [POLICY_CHECK_ABI_BELOW_MIN] = "ABI_BELOW_MIN",
    [POLICY_CHECK_VMPL_NOT_ALLOWED] = "VMPL_NOT_ALLOWED",
    [POLICY_CHECK_ROLE_NOT_ALLOWED] = "ROLE_NOT_ALLOWED",
    [POLICY_CHECK_NONCE_UNKNOWN] = "NONCE_UNKNOWN",
    [POLICY_CHECK_NONCE_EXPIRED] = "NONCE_EXPIRED",
    [POLICY_CHECK_NONCE_REPLAYED] = "NONCE_REPLAYED",
};

const char *policy_check_code_name(enum policy_check_code code) {
    if ((unsigned)code >= POLICY_CHECK_CODE_COUNT || check_names[code] == NULL) {
        return "UNKNOWN";
    }
    return check_names[code];
}

const char *policy_section_name(enum policy_section section) {
    switch (section) {
    case POLICY_SECTION_MEASUREMENT:
        return "measurement";
    case POLICY_SECTION_TCB:
        return "tcb";
    case POLICY_SECTION_GUEST:
        return "guest";
    case POLICY_SECTION_COUNT:
        break;
    }
    return "unknown";
}

void policy_result_add(struct policy_result *result, enum policy_check_code code, bool is_warning,
                       const char *detail) {
    ASSERT(result != NULL);
    ASSERT((unsigned)code < POLICY_CHECK_CODE_COUNT);
    ASSERT(result->check_count <= policy_checks_max);
    if (!is_warning) {
        result->verdict = POLICY_VERDICT_DENY;
    }
    if (result->check_count == policy_checks_max) {
        return;
    }
    struct policy_check *c = &result->checks[result->check_count++];
    c->code = code;
    c->is_warning = is_warning;
    snprintf(c->detail, sizeof(c->detail), "%s", detail != NULL ? detail : "");
}

__attribute__((format(printf, 4, 5))) static void add_fmt(struct policy_result *result,
                                                          enum policy_mode mode,
                                                          enum policy_check_code code,
                                                          const char *fmt, ...) {
    ASSERT(mode != POLICY_MODE_DISABLED);
    char detail[policy_detail_max_bytes];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    policy_result_add(result, code, mode == POLICY_MODE_WARN, detail);
}

// Constant-time over every allowed entry: how far a guess matched must not show in timing.
static bool measurement_is_listed(const struct policy *policy, const uint8_t *m) {
    uint8_t found = 0;
    for (uint32_t i = 0; i < policy->measurement.allow_count; i++) {
        uint8_t diff = 0;
        for (size_t b = 0; b < policy_measurement_bytes; b++) {
            diff |= (uint8_t)(policy->measurement.allow[i][b] ^ m[b]);
        }
        found |= (uint8_t)(diff == 0);
    }
    return found != 0;
}

static void short_hex(char *out, const uint8_t *m) {
    char full[2 * policy_measurement_bytes + 1];
    core_base_hex_encode(full, m, policy_measurement_bytes);
    memcpy(out, full, short_hex_digits);
    out[short_hex_digits] = '\0';
}

static void check_measurement(const struct policy *policy, struct policy_result *r,
                              const struct policy_input *in) {
    if (!measurement_is_listed(policy, in->measurement)) {
        char hex[short_hex_digits + 1];
        short_hex(hex, in->measurement);
        add_fmt(r, policy->measurement.mode, POLICY_CHECK_MEASUREMENT_NOT_ALLOWED,
                "measurement %s\u2026 not in policy", hex);
    }
}

static void check_tcb(const struct policy *policy, struct policy_result *r,
                      const struct policy_input *in) {
    const struct policy_tcb *min = &policy->tcb.min;
    const struct policy_tcb *got = &in->reported_tcb;
    const struct {
        enum policy_check_code code;
        const char *name;
        uint8_t got;
        uint8_t min;
        bool applies;
    } components[] = {
        {POLICY_CHECK_TCB_BELOW_MIN_BOOTLOADER, "bootloader", got->bootloader, min->bootloader,
         true},
        {POLICY_CHECK_TCB_BELOW_MIN_TEE, "tee", got->tee, min->tee, true},
        {POLICY_CHECK_TCB_BELOW_MIN_SNP, "snp", got->snp, min->snp, true},
        {POLICY_CHECK_TCB_BELOW_MIN_MICROCODE, "microcode", got->microcode, min->microcode, true},
        // FMC exists only in the Turin TCB layout; earlier products have no such component.
        {POLICY_CHECK_TCB_BELOW_MIN_FMC, "fmc", got->fmc, min->fmc, in->is_turin},
    };
    for (size_t i = 0; i < ARRAY_LEN(components); i++) {
        if (components[i].applies && components[i].got < components[i].min) {
            add_fmt(r, policy->tcb.mode, components[i].code, "reported TCB %s %u < min %u",
                    components[i].name, components[i].got, components[i].min);
        }
    }
}

static void check_guest(const struct policy *policy, struct policy_result *r,
                        const struct policy_input *in) {
    enum policy_mode mode = policy->guest.mode;
    uint64_t gp = in->guest_policy;
    if (!policy->guest.debug_allowed && ((gp >> policy_guest_debug_bit) & 1)) {
        add_fmt(r, mode, POLICY_CHECK_DEBUG_ENABLED, "guest policy allows debugging (DEBUG=1)");
    }
    if (!policy->guest.smt_allowed && ((in->platform_info >> policy_platform_smt_en_bit) & 1)) {
        add_fmt(r, mode, POLICY_CHECK_SMT_ENABLED, "SMT is enabled on the host (platform_info)");
    }
    if (!policy->guest.migrate_ma_allowed && ((gp >> policy_guest_migrate_ma_bit) & 1)) {
        add_fmt(r, mode, POLICY_CHECK_MIGRATE_MA_ENABLED,
                "guest policy allows a migration agent (MIGRATE_MA=1)");
    }
    if (in->guest_svn < policy->guest.min_guest_svn) {
        add_fmt(r, mode, POLICY_CHECK_GUEST_SVN_BELOW_MIN, "guest SVN %u < min %u", in->guest_svn,
                policy->guest.min_guest_svn);
    }
    unsigned major = (unsigned)((gp >> policy_guest_abi_major_shift) & 0xff);
    unsigned minor = (unsigned)((gp >> policy_guest_abi_minor_shift) & 0xff);
    unsigned min_major = policy->guest.min_abi_major;
    unsigned min_minor = policy->guest.min_abi_minor;
    if (major < min_major || (major == min_major && minor < min_minor)) {
        add_fmt(r, mode, POLICY_CHECK_ABI_BELOW_MIN, "guest ABI %u.%u < min %u.%u", major, minor,
                min_major, min_minor);
    }
    if (in->vmpl > policy->guest.max_vmpl) {
        add_fmt(r, mode, POLICY_CHECK_VMPL_NOT_ALLOWED, "report from VMPL %u > max %u", in->vmpl,
                policy->guest.max_vmpl);
    }
}

enum policy_verdict policy_evaluate(const struct policy *policy, struct policy_result *out_result,
                                    const struct policy_input *input) {
    ASSERT(policy != NULL);
    ASSERT(out_result != NULL);
    ASSERT(input != NULL);
    memset(out_result, 0, sizeof(*out_result));
    out_result->verdict = POLICY_VERDICT_ALLOW;
    static const struct {
        enum policy_section section;
        void (*check)(const struct policy *, struct policy_result *, const struct policy_input *);
    } sections[] = {
        {POLICY_SECTION_MEASUREMENT, check_measurement},
        {POLICY_SECTION_TCB, check_tcb},
        {POLICY_SECTION_GUEST, check_guest},
    };
    STATIC_ASSERT(ARRAY_LEN(sections) == POLICY_SECTION_COUNT, "every section is evaluated");
    const enum policy_mode modes[POLICY_SECTION_COUNT] = {
        [POLICY_SECTION_MEASUREMENT] = policy->measurement.mode,
        [POLICY_SECTION_TCB] = policy->tcb.mode,
        [POLICY_SECTION_GUEST] = policy->guest.mode,
    };
    for (size_t i = 0; i < ARRAY_LEN(sections); i++) {
        enum policy_mode mode = modes[sections[i].section];
        ASSERT(mode == POLICY_MODE_STRICT || mode == POLICY_MODE_WARN ||
               mode == POLICY_MODE_DISABLED);
        if (mode == POLICY_MODE_DISABLED) {
            out_result->disabled_sections |= 1u << sections[i].section;
            continue;
        }
        sections[i].check(policy, out_result, input);
    }
    // Postcondition: ALLOW only if every recorded check is a warning.
    for (uint32_t i = 0; i < out_result->check_count; i++) {
        ASSERT(out_result->verdict == POLICY_VERDICT_DENY || out_result->checks[i].is_warning);
    }
    return out_result->verdict;
}

// append writes `s` at out+*len, truncating, keeping a NUL.
static void append(char *out, size_t out_bytes, size_t *len, const char *s) {
    if (*len + 1 >= out_bytes) {
        return;
    }
    int n = snprintf(out + *len, out_bytes - *len, "%s", s);
    if (n < 0) {
        return;
    }
    size_t room = out_bytes - *len - 1;
    *len += (size_t)n < room ? (size_t)n : room;
}

size_t policy_result_format(char *out, size_t out_bytes, const struct policy_result *result) {
    ASSERT(result != NULL);
    ASSERT(out != NULL || out_bytes == 0);
    if (out_bytes == 0) {
        return 0;
    }
    out[0] = '\0';
    size_t len = 0;
    bool deny = result->verdict != POLICY_VERDICT_ALLOW;
    const struct policy_check *first = NULL;
    uint32_t matching = 0;
    for (uint32_t i = 0; i < result->check_count; i++) {
        if (result->checks[i].is_warning == !deny) {
            if (first == NULL) {
                first = &result->checks[i];
            }
            matching++;
        }
    }
    char more[48];
    if (deny) {
        // A DENY with no stored check (a full list, or a zeroed result) still says it denied.
        append(out, out_bytes, &len, first != NULL ? first->detail : "denied by policy");
        if (matching > 1) {
            snprintf(more, sizeof(more), " (+%u more)", matching - 1);
            append(out, out_bytes, &len, more);
        }
        return len;
    }
    if (matching == 0) {
        append(out, out_bytes, &len, "allowed");
        return len;
    }
    snprintf(more, sizeof(more), "allowed with %u warning%s: ", matching, matching > 1 ? "s" : "");
    append(out, out_bytes, &len, more);
    append(out, out_bytes, &len, first->detail);
    return len;
}

bool policy_role_is_allowed(const struct policy *policy, const uint8_t *measurement,
                            const char *user) {
    ASSERT(policy != NULL);
    ASSERT(policy->roles.count <= policy_roles_max);
    if (policy->roles.count == 0) {
        return true;
    }
    if (measurement == NULL || user == NULL) {
        return false; // fail closed
    }
    for (uint32_t i = 0; i < policy->roles.count; i++) {
        const struct policy_role *row = &policy->roles.rows[i];
        if (memcmp(row->measurement, measurement, policy_measurement_bytes) != 0) {
            continue;
        }
        for (uint32_t u = 0; u < row->user_count; u++) {
            if (strcmp(row->users[u], user) == 0) {
                return true;
            }
        }
        return false; // measurements are unique in [roles]
    }
    return false;
}
