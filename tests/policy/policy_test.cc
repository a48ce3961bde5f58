// Tests for policy/policy.c: evaluation of every section in every mode against every violation,
// the result list and its one-line reason, and the role map.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "policy.h"

namespace {

const std::string kAllowed(96, 'a');
const std::string kOther = "5a1c" + std::string(92, '0');

std::string ModeName(policy_mode m) {
    switch (m) {
    case POLICY_MODE_STRICT:
        return "strict";
    case POLICY_MODE_WARN:
        return "warn";
    case POLICY_MODE_DISABLED:
        return "disabled";
    }
    return "?";
}

// PolicyText builds a policy whose floors a good input meets, with the given section modes.
std::string PolicyText(policy_mode measurement, policy_mode tcb, policy_mode guest,
                       const std::string &roles = "") {
    return "[policy]\nversion = test-1\n"
           "[measurement]\nmode = " + ModeName(measurement) + "\nallow = " + kAllowed + "\n" +
           "[tcb]\nmode = " + ModeName(tcb) +
           "\nmin_bootloader = 3\nmin_tee = 1\nmin_snp = 8\nmin_microcode = 115\nmin_fmc = 2\n"
           "[guest]\nmode = " + ModeName(guest) +
           "\ndebug_allowed = false\nsmt_allowed = false\nmigrate_ma_allowed = false\n"
           "min_guest_svn = 5\nmin_abi_major = 1\nmin_abi_minor = 51\nmax_vmpl = 0\n" + roles;
}

std::unique_ptr<struct policy> MakePolicy(policy_mode measurement, policy_mode tcb,
                                          policy_mode guest, const std::string &roles = "") {
    auto p = std::make_unique<struct policy>();
    char err[256];
    std::string text = PolicyText(measurement, tcb, guest, roles);
    EXPECT_EQ(policy_rules_load_string(p.get(), err, sizeof(err), text.c_str(), "t.ini", "/"), 0)
        << err;
    return p;
}

struct policy_input GoodInput() {
    struct policy_input in;
    memset(&in, 0, sizeof(in));
    memset(in.measurement, 0xaa, sizeof(in.measurement));
    in.guest_svn = 5;
    in.guest_policy = 0x20000 | (1u << 8) | 51; // reserved bit 17, ABI 1.51
    in.vmpl = 0;
    in.reported_tcb = {3, 1, 8, 115, 2};
    in.is_turin = true;
    in.platform_info = 0x24; // ECC, alias check; SMT_EN clear
    return in;
}

// A violation: how to break a good input, the code expected, and the section it belongs to.
struct Violation {
    const char *label;
    void (*apply)(struct policy_input *);
    policy_check_code code;
    policy_section section;
    const char *detail;
};

const Violation kViolations[] = {
    {"Measurement",
     [](struct policy_input *in) {
         uint8_t m[48] = {0x5a, 0x1c};
         memcpy(in->measurement, m, sizeof(m));
     },
     POLICY_CHECK_MEASUREMENT_NOT_ALLOWED, POLICY_SECTION_MEASUREMENT,
     "measurement 5a1c00000000\u2026 not in policy"},
    {"MeasurementOneBitOff", [](struct policy_input *in) { in->measurement[47] ^= 1; },
     POLICY_CHECK_MEASUREMENT_NOT_ALLOWED, POLICY_SECTION_MEASUREMENT,
     "measurement aaaaaaaaaaaa\u2026 not in policy"},
    {"Bootloader", [](struct policy_input *in) { in->reported_tcb.bootloader = 2; },
     POLICY_CHECK_TCB_BELOW_MIN_BOOTLOADER, POLICY_SECTION_TCB,
     "reported TCB bootloader 2 < min 3"},
    {"Tee", [](struct policy_input *in) { in->reported_tcb.tee = 0; },
     POLICY_CHECK_TCB_BELOW_MIN_TEE, POLICY_SECTION_TCB, "reported TCB tee 0 < min 1"},
    {"Snp", [](struct policy_input *in) { in->reported_tcb.snp = 7; },
     POLICY_CHECK_TCB_BELOW_MIN_SNP, POLICY_SECTION_TCB, "reported TCB snp 7 < min 8"},
    {"Microcode", [](struct policy_input *in) { in->reported_tcb.microcode = 114; },
     POLICY_CHECK_TCB_BELOW_MIN_MICROCODE, POLICY_SECTION_TCB,
     "reported TCB microcode 114 < min 115"},
    {"FmcOnTurin", [](struct policy_input *in) { in->reported_tcb.fmc = 1; },
     POLICY_CHECK_TCB_BELOW_MIN_FMC, POLICY_SECTION_TCB, "reported TCB fmc 1 < min 2"},
    {"Debug", [](struct policy_input *in) { in->guest_policy |= 1u << 19; },
     POLICY_CHECK_DEBUG_ENABLED, POLICY_SECTION_GUEST, "guest policy allows debugging (DEBUG=1)"},
    {"Smt", [](struct policy_input *in) { in->platform_info |= 1; }, POLICY_CHECK_SMT_ENABLED,
     POLICY_SECTION_GUEST, "SMT is enabled on the host (platform_info)"},
    {"MigrateMa", [](struct policy_input *in) { in->guest_policy |= 1u << 18; },
     POLICY_CHECK_MIGRATE_MA_ENABLED, POLICY_SECTION_GUEST,
     "guest policy allows a migration agent (MIGRATE_MA=1)"},
    {"GuestSvn", [](struct policy_input *in) { in->guest_svn = 4; },
     POLICY_CHECK_GUEST_SVN_BELOW_MIN, POLICY_SECTION_GUEST, "guest SVN 4 < min 5"},
    {"AbiMajor", [](struct policy_input *in) { in->guest_policy = 0x20000 | 99; },
     POLICY_CHECK_ABI_BELOW_MIN, POLICY_SECTION_GUEST, "guest ABI 0.99 < min 1.51"},
    {"AbiMinor", [](struct policy_input *in) { in->guest_policy = 0x20000 | (1u << 8) | 50; },
     POLICY_CHECK_ABI_BELOW_MIN, POLICY_SECTION_GUEST, "guest ABI 1.50 < min 1.51"},
    {"Vmpl", [](struct policy_input *in) { in->vmpl = 1; }, POLICY_CHECK_VMPL_NOT_ALLOWED,
     POLICY_SECTION_GUEST, "report from VMPL 1 > max 0"},
};

struct Case {
    Violation v;
    policy_mode mode;
};

class PolicyEvaluate : public ::testing::TestWithParam<Case> {};

std::unique_ptr<struct policy> PolicyWithSectionMode(policy_section s, policy_mode m) {
    return MakePolicy(s == POLICY_SECTION_MEASUREMENT ? m : POLICY_MODE_STRICT,
                      s == POLICY_SECTION_TCB ? m : POLICY_MODE_STRICT,
                      s == POLICY_SECTION_GUEST ? m : POLICY_MODE_STRICT);
}

TEST_P(PolicyEvaluate, ViolationFollowsTheSectionMode) {
    const Case &c = GetParam();
    auto p = PolicyWithSectionMode(c.v.section, c.mode);
    struct policy_input in = GoodInput();
    c.v.apply(&in);
    struct policy_result r;
    policy_verdict v = policy_evaluate(p.get(), &r, &in);
    EXPECT_EQ(v, r.verdict);
    char line[256];
    policy_result_format(line, sizeof(line), &r);
    switch (c.mode) {
    case POLICY_MODE_STRICT:
        EXPECT_EQ(r.verdict, POLICY_VERDICT_DENY);
        ASSERT_EQ(r.check_count, 1u);
        EXPECT_EQ(r.checks[0].code, c.v.code);
        EXPECT_FALSE(r.checks[0].is_warning);
        EXPECT_STREQ(r.checks[0].detail, c.v.detail);
        EXPECT_STREQ(line, c.v.detail);
        EXPECT_EQ(r.disabled_sections, 0u);
        break;
    case POLICY_MODE_WARN:
        EXPECT_EQ(r.verdict, POLICY_VERDICT_ALLOW);
        ASSERT_EQ(r.check_count, 1u);
        EXPECT_EQ(r.checks[0].code, c.v.code);
        EXPECT_TRUE(r.checks[0].is_warning);
        EXPECT_EQ(std::string(line), std::string("allowed with 1 warning: ") + c.v.detail);
        break;
    case POLICY_MODE_DISABLED:
        EXPECT_EQ(r.verdict, POLICY_VERDICT_ALLOW);
        EXPECT_EQ(r.check_count, 0u);
        EXPECT_EQ(r.disabled_sections, 1u << c.v.section);
        EXPECT_STREQ(line, "allowed");
        break;
    }
}

std::vector<Case> AllCases() {
    std::vector<Case> out;
    for (const Violation &v : kViolations) {
        for (policy_mode m : {POLICY_MODE_STRICT, POLICY_MODE_WARN, POLICY_MODE_DISABLED}) {
            out.push_back({v, m});
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(SectionsModes, PolicyEvaluate, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case> &info) {
                             return std::string(info.param.v.label) + "_" +
                                    ModeName(info.param.mode);
                         });

TEST(PolicyEvaluateBasics, GoodInputIsAllowedWithNoChecks) {
    auto p = MakePolicy(POLICY_MODE_STRICT, POLICY_MODE_STRICT, POLICY_MODE_STRICT);
    struct policy_input in = GoodInput();
    struct policy_result r;
    EXPECT_EQ(policy_evaluate(p.get(), &r, &in), POLICY_VERDICT_ALLOW);
    EXPECT_EQ(r.check_count, 0u);
    EXPECT_EQ(r.disabled_sections, 0u);
    char line[64];
    EXPECT_EQ(policy_result_format(line, sizeof(line), &r), strlen("allowed"));
    EXPECT_STREQ(line, "allowed");
}

TEST(PolicyEvaluateBasics, FmcIsIgnoredBeforeTurin) {
    auto p = MakePolicy(POLICY_MODE_STRICT, POLICY_MODE_STRICT, POLICY_MODE_STRICT);
    struct policy_input in = GoodInput();
    in.is_turin = false;
    in.reported_tcb.fmc = 0; // no such component on Milan/Genoa
    struct policy_result r;
    EXPECT_EQ(policy_evaluate(p.get(), &r, &in), POLICY_VERDICT_ALLOW);
    EXPECT_EQ(r.check_count, 0u);
}

TEST(PolicyEvaluateBasics, HigherAbiMajorWithLowerMinorPasses) {
    auto p = MakePolicy(POLICY_MODE_STRICT, POLICY_MODE_STRICT, POLICY_MODE_STRICT);
    struct policy_input in = GoodInput();
    in.guest_policy = 0x20000 | (2u << 8) | 0;
    struct policy_result r;
    EXPECT_EQ(policy_evaluate(p.get(), &r, &in), POLICY_VERDICT_ALLOW);
}

TEST(PolicyEvaluateBasics, AllowedFlagsPermitDebugSmtAndMigration) {
    std::string text = PolicyText(POLICY_MODE_STRICT, POLICY_MODE_STRICT, POLICY_MODE_STRICT);
    for (const char *key : {"debug_allowed", "smt_allowed", "migrate_ma_allowed"}) {
        std::string k = std::string(key) + " = false";
        text.replace(text.find(k), k.size(), std::string(key) + " = true");
    }
    auto p = std::make_unique<struct policy>();
    char err[256];
    ASSERT_EQ(policy_rules_load_string(p.get(), err, sizeof(err), text.c_str(), "t", "/"), 0);
    struct policy_input in = GoodInput();
    in.guest_policy |= (1u << 19) | (1u << 18);
    in.platform_info |= 1;
    struct policy_result r;
    EXPECT_EQ(policy_evaluate(p.get(), &r, &in), POLICY_VERDICT_ALLOW);
    EXPECT_EQ(r.check_count, 0u);
}

TEST(PolicyEvaluateBasics, EveryFailureIsListedAndTheReasonNamesTheFirst) {
    auto p = MakePolicy(POLICY_MODE_STRICT, POLICY_MODE_WARN, POLICY_MODE_STRICT);
    struct policy_input in = GoodInput();
    in.measurement[0] = 0x5a;
    in.reported_tcb.snp = 7;      // warn
    in.guest_policy |= 1u << 19; // debug
    in.guest_svn = 0;
    struct policy_result r;
    EXPECT_EQ(policy_evaluate(p.get(), &r, &in), POLICY_VERDICT_DENY);
    ASSERT_EQ(r.check_count, 4u);
    EXPECT_EQ(r.checks[0].code, POLICY_CHECK_MEASUREMENT_NOT_ALLOWED);
    EXPECT_EQ(r.checks[1].code, POLICY_CHECK_TCB_BELOW_MIN_SNP);
    EXPECT_TRUE(r.checks[1].is_warning);
    EXPECT_EQ(r.checks[2].code, POLICY_CHECK_DEBUG_ENABLED);
    EXPECT_EQ(r.checks[3].code, POLICY_CHECK_GUEST_SVN_BELOW_MIN);
    char line[256];
    policy_result_format(line, sizeof(line), &r);
    EXPECT_STREQ(line, "measurement 5aaaaaaaaaaa\u2026 not in policy (+2 more)");
    char tiny[8];
    EXPECT_EQ(policy_result_format(tiny, sizeof(tiny), &r), 7u);
    EXPECT_STREQ(tiny, "measure");
}

TEST(PolicyEvaluateBasics, AllSectionsDisabledAreListed) {
    auto p = MakePolicy(POLICY_MODE_DISABLED, POLICY_MODE_DISABLED, POLICY_MODE_DISABLED);
    struct policy_input in = GoodInput();
    memset(in.measurement, 0, sizeof(in.measurement));
    in.guest_policy |= 1u << 19;
    struct policy_result r;
    EXPECT_EQ(policy_evaluate(p.get(), &r, &in), POLICY_VERDICT_ALLOW);
    EXPECT_EQ(r.disabled_sections, 0x7u);
    EXPECT_STREQ(policy_section_name(POLICY_SECTION_TCB), "tcb");
}

TEST(PolicyResult, ZeroedResultDenies) {
    struct policy_result r;
    memset(&r, 0, sizeof(r));
    EXPECT_EQ(r.verdict, POLICY_VERDICT_DENY);
    char line[64];
    policy_result_format(line, sizeof(line), &r);
    EXPECT_STREQ(line, "denied by policy");
}

TEST(PolicyResult, AddRecordsNonceFailuresAndAFullListStillDenies) {
    struct policy_result r;
    memset(&r, 0, sizeof(r));
    r.verdict = POLICY_VERDICT_ALLOW;
    policy_result_add(&r, POLICY_CHECK_NONCE_REPLAYED, false, "nonce already used");
    EXPECT_EQ(r.verdict, POLICY_VERDICT_DENY);
    EXPECT_STREQ(policy_check_code_name(r.checks[0].code), "NONCE_REPLAYED");

    memset(&r, 0, sizeof(r));
    r.verdict = POLICY_VERDICT_ALLOW;
    for (int i = 0; i < policy_checks_max; i++) {
        policy_result_add(&r, POLICY_CHECK_TCB_BELOW_MIN_SNP, true, "w");
    }
    EXPECT_EQ(r.verdict, POLICY_VERDICT_ALLOW);
    policy_result_add(&r, POLICY_CHECK_ROLE_NOT_ALLOWED, false, "dropped but denies");
    EXPECT_EQ(r.check_count, static_cast<uint32_t>(policy_checks_max));
    EXPECT_EQ(r.verdict, POLICY_VERDICT_DENY);
}

TEST(PolicyResult, CodeNamesAreStableAndDistinct) {
    std::set<std::string> names;
    for (int c = 0; c < POLICY_CHECK_CODE_COUNT; c++) {
        const char *n = policy_check_code_name(static_cast<policy_check_code>(c));
        ASSERT_NE(n, nullptr);
        EXPECT_STRNE(n, "UNKNOWN");
        names.insert(n);
    }
    EXPECT_EQ(names.size(), static_cast<size_t>(POLICY_CHECK_CODE_COUNT));
    EXPECT_STREQ(policy_check_code_name(POLICY_CHECK_TCB_BELOW_MIN_SNP), "TCB_BELOW_MIN:snp");
    EXPECT_STREQ(policy_check_code_name(POLICY_CHECK_MEASUREMENT_NOT_ALLOWED),
                 "MEASUREMENT_NOT_ALLOWED");
    EXPECT_STREQ(policy_check_code_name(static_cast<policy_check_code>(999)), "UNKNOWN");
}

TEST(PolicyRole, EmptyRolesAllowAnyUser) {
    auto p = MakePolicy(POLICY_MODE_STRICT, POLICY_MODE_STRICT, POLICY_MODE_STRICT);
    uint8_t m[48];
    memset(m, 0x11, sizeof(m));
    EXPECT_TRUE(policy_role_is_allowed(p.get(), m, "anyone"));
}

TEST(PolicyRole, ListedMeasurementMayUseOnlyItsUsers) {
    auto p = MakePolicy(POLICY_MODE_STRICT, POLICY_MODE_STRICT, POLICY_MODE_STRICT,
                        "[roles]\n" + kAllowed + " = app_rw, reporting\n" + kOther +
                            " = admin\n");
    uint8_t a[48];
    memset(a, 0xaa, sizeof(a));
    uint8_t other[48] = {0x5a, 0x1c};
    uint8_t unlisted[48];
    memset(unlisted, 0x11, sizeof(unlisted));
    EXPECT_TRUE(policy_role_is_allowed(p.get(), a, "app_rw"));
    EXPECT_TRUE(policy_role_is_allowed(p.get(), a, "reporting"));
    EXPECT_FALSE(policy_role_is_allowed(p.get(), a, "admin"));
    EXPECT_FALSE(policy_role_is_allowed(p.get(), a, "app_r"));   // no prefix match
    EXPECT_FALSE(policy_role_is_allowed(p.get(), a, "APP_RW"));  // exact, case-sensitive
    EXPECT_FALSE(policy_role_is_allowed(p.get(), a, ""));
    EXPECT_FALSE(policy_role_is_allowed(p.get(), a, nullptr));
    EXPECT_TRUE(policy_role_is_allowed(p.get(), other, "admin"));
    EXPECT_FALSE(policy_role_is_allowed(p.get(), other, "app_rw"));
    EXPECT_FALSE(policy_role_is_allowed(p.get(), unlisted, "app_rw"));
    EXPECT_FALSE(policy_role_is_allowed(p.get(), nullptr, "app_rw"));
}

} // namespace
