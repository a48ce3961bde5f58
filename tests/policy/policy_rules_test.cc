// Tests for policy/policy_rules.c: loading the policy INI of DESIGN.md §7, every bad input with
// its file:line, relative paths, and reload semantics (a broken file leaves the old policy).
#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"

namespace {

const std::string kM1(96, 'a');
const std::string kM2 = std::string(95, '0') + "1";
const std::string kM3 = std::string(48, 'B') + std::string(48, 'c'); // upper case is hex too

std::string FullPolicy() {
    return "; a complete policy\n"
           "[policy]\n"
           "version = 2026-11-22.1\n"
           "[measurement]\n"
           "mode = strict\n"
           "allow = " + kM1 + "\n"
           "allow = " + kM2 + "   ; second image\n"
           "[tcb]\n"
           "mode = warn\n"
           "min_bootloader = 3\n"
           "min_tee = 0\n"
           "min_snp = 8\n"
           "min_microcode = 0x73\n"
           "min_fmc = 1\n"
           "[guest]\n"
           "mode = strict\n"
           "debug_allowed = false\n"
           "smt_allowed = true\n"
           "migrate_ma_allowed = false\n"
           "min_guest_svn = 7\n"
           "min_abi_major = 1\n"
           "min_abi_minor = 51\n"
           "max_vmpl = 2\n"
           "[nonce]\n"
           "required = true\n"
           "ttl_s = 120\n"
           "reuse_window_s = 30\n"
           "[chain]\n"
           "roots = /etc/atls/ark.pem\n"
           "vcek_dir = vcek\n"
           "crl =\n"
           "[roles]\n" +
           kM1 + " = app_rw, reporting\n" + kM3 + " = admin\n";
}

std::unique_ptr<struct policy> NewPolicy() {
    auto p = std::make_unique<struct policy>();
    policy_rules_defaults(p.get());
    return p;
}

struct Loaded {
    int rc;
    std::string err;
    std::unique_ptr<struct policy> p;
};

Loaded Load(const std::string &text, const char *base = "/etc/atls-proxy") {
    Loaded l{0, "", NewPolicy()};
    char err[256];
    l.rc = policy_rules_load_string(l.p.get(), err, sizeof(err), text.c_str(), "p.ini", base);
    l.err = err;
    return l;
}

// Minimal valid prefix: every other section keeps its defaults ([tcb] must name a floor).
std::string Minimal(const std::string &extra = "") {
    return "[policy]\nversion = v1\n[measurement]\nmode = disabled\n[tcb]\nmin_snp = 0\n" + extra;
}

TEST(PolicyRules, LoadsTheFullExample) {
    Loaded l = Load(FullPolicy());
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(l.err, "");
    const struct policy &p = *l.p;
    EXPECT_STREQ(p.version, "2026-11-22.1");
    EXPECT_EQ(p.measurement.mode, POLICY_MODE_STRICT);
    ASSERT_EQ(p.measurement.allow_count, 2u);
    EXPECT_EQ(p.measurement.allow[0][0], 0xaa);
    EXPECT_EQ(p.measurement.allow[0][47], 0xaa);
    EXPECT_EQ(p.measurement.allow[1][46], 0x00);
    EXPECT_EQ(p.measurement.allow[1][47], 0x01);
    EXPECT_EQ(p.tcb.mode, POLICY_MODE_WARN);
    EXPECT_EQ(p.tcb.min.bootloader, 3);
    EXPECT_EQ(p.tcb.min.tee, 0);
    EXPECT_EQ(p.tcb.min.snp, 8);
    EXPECT_EQ(p.tcb.min.microcode, 115);
    EXPECT_EQ(p.tcb.min.fmc, 1);
    EXPECT_EQ(p.guest.mode, POLICY_MODE_STRICT);
    EXPECT_FALSE(p.guest.debug_allowed);
    EXPECT_TRUE(p.guest.smt_allowed);
    EXPECT_FALSE(p.guest.migrate_ma_allowed);
    EXPECT_EQ(p.guest.min_guest_svn, 7u);
    EXPECT_EQ(p.guest.min_abi_major, 1);
    EXPECT_EQ(p.guest.min_abi_minor, 51);
    EXPECT_EQ(p.guest.max_vmpl, 2);
    EXPECT_TRUE(p.nonce.required);
    EXPECT_EQ(p.nonce.ttl_s, 120u);
    EXPECT_EQ(p.nonce.reuse_window_s, 30u);
    EXPECT_FALSE(p.chain.roots_builtin);
    EXPECT_STREQ(p.chain.roots_path, "/etc/atls/ark.pem");
    EXPECT_STREQ(p.chain.vcek_dir, "/etc/atls-proxy/vcek");
    ASSERT_EQ(p.roles.count, 2u);
    EXPECT_EQ(p.roles.rows[0].user_count, 2u);
    EXPECT_STREQ(p.roles.rows[0].users[0], "app_rw");
    EXPECT_STREQ(p.roles.rows[0].users[1], "reporting");
    EXPECT_EQ(p.roles.rows[1].measurement[0], 0xbb);
    EXPECT_EQ(p.roles.rows[1].measurement[47], 0xcc);
    EXPECT_STREQ(p.roles.rows[1].users[0], "admin");
}

TEST(PolicyRules, OmittedKeysTakeTheDocumentedDefaults) {
    Loaded l = Load(Minimal());
    ASSERT_EQ(l.rc, 0) << l.err;
    const struct policy &p = *l.p;
    EXPECT_EQ(p.measurement.mode, POLICY_MODE_DISABLED);
    EXPECT_EQ(p.tcb.mode, POLICY_MODE_STRICT);
    EXPECT_EQ(p.guest.mode, POLICY_MODE_STRICT);
    EXPECT_FALSE(p.guest.debug_allowed);
    EXPECT_FALSE(p.guest.smt_allowed);
    EXPECT_FALSE(p.guest.migrate_ma_allowed);
    EXPECT_EQ(p.guest.max_vmpl, 0);
    EXPECT_TRUE(p.nonce.required);
    EXPECT_EQ(p.nonce.ttl_s, 300u);
    EXPECT_EQ(p.nonce.reuse_window_s, 0u);
    EXPECT_TRUE(p.chain.roots_builtin);
    EXPECT_STREQ(p.chain.roots_path, "");
    EXPECT_STREQ(p.chain.vcek_dir, "");
    EXPECT_EQ(p.roles.count, 0u);
}

TEST(PolicyRules, TcbFloorsOrDisabledModeAreEnough) {
    Loaded off = Load("[policy]\nversion = v1\n[measurement]\nmode = disabled\n[tcb]\nmode = "
                      "disabled\n");
    ASSERT_EQ(off.rc, 0) << off.err;
    EXPECT_EQ(off.p->tcb.mode, POLICY_MODE_DISABLED);
    Loaded one = Load("[policy]\nversion = v1\n[measurement]\nmode = disabled\n[tcb]\nmin_fmc = "
                      "1\n");
    ASSERT_EQ(one.rc, 0) << one.err;
    EXPECT_EQ(one.p->tcb.mode, POLICY_MODE_STRICT);
    EXPECT_EQ(one.p->tcb.min.fmc, 1);
    EXPECT_EQ(one.p->tcb.min.snp, 0);
}

TEST(PolicyRules, EmptyOptionalPathStaysUnset) {
    Loaded l = Load(Minimal("[chain]\nroots = builtin\nvcek_dir =\ncrl =\n"));
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_TRUE(l.p->chain.roots_builtin);
    EXPECT_STREQ(l.p->chain.vcek_dir, "");
}

TEST(PolicyRules, RelativePathsResolveAgainstThePolicyFilesDirectory) {
    char tmpl[] = "/tmp/policy_rules_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = std::string(tmpl) + "/conf";
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    std::string path = dir + "/policy.ini";
    {
        std::ofstream f(path);
        f << Minimal("[chain]\nroots = certs/sim-ark.pem\nvcek_dir = ../vcek\n");
    }
    char real[PATH_MAX];
    ASSERT_NE(realpath(dir.c_str(), real), nullptr);
    auto p = NewPolicy();
    char err[256];
    // Load through a relative path from another working directory: the result is absolute.
    char cwd[PATH_MAX];
    ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
    ASSERT_EQ(chdir(tmpl), 0);
    int rc = policy_rules_load_file(p.get(), err, sizeof(err), "conf/policy.ini");
    ASSERT_EQ(chdir(cwd), 0);
    ASSERT_EQ(rc, 0) << err;
    EXPECT_FALSE(p->chain.roots_builtin);
    EXPECT_EQ(std::string(p->chain.roots_path), std::string(real) + "/certs/sim-ark.pem");
    EXPECT_EQ(std::string(p->chain.vcek_dir), std::string(real) + "/../vcek");
    unlink(path.c_str());
    rmdir(dir.c_str());
    rmdir(tmpl);
}

TEST(PolicyRules, LoadStringResolvesAgainstItsBaseDir) {
    Loaded l = Load(Minimal("[chain]\nroots = ark.pem\n"), "/srv/p");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_STREQ(l.p->chain.roots_path, "/srv/p/ark.pem");
}

TEST(PolicyRules, MissingFileReportsErrnoAndPath) {
    auto p = NewPolicy();
    char err[256];
    EXPECT_EQ(policy_rules_load_file(p.get(), err, sizeof(err), "/nonexistent/policy.ini"),
              -ENOENT);
    EXPECT_NE(std::string(err).find("/nonexistent/policy.ini: cannot open"), std::string::npos)
        << err;
}

TEST(PolicyRules, BrokenReloadLeavesTheRunningPolicyUntouched) {
    char tmpl[] = "/tmp/policy_reload_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string path = std::string(tmpl) + "/policy.ini";
    {
        std::ofstream f(path);
        f << FullPolicy();
    }
    auto running = NewPolicy();
    char err[256];
    ASSERT_EQ(policy_rules_load_file(running.get(), err, sizeof(err), path.c_str()), 0) << err;
    auto before = std::make_unique<struct policy>(*running);

    // The operator breaks the file, then sends SIGHUP.
    std::string broken = FullPolicy();
    broken.replace(broken.find("min_snp = 8"), 11, "min_snp = 800");
    {
        std::ofstream f(path);
        f << broken;
    }
    EXPECT_EQ(policy_rules_load_file(running.get(), err, sizeof(err), path.c_str()), -EINVAL);
    EXPECT_EQ(std::string(err), path + ":12: [tcb] min_snp: '800' is not a number in 0..255");
    EXPECT_EQ(memcmp(running.get(), before.get(), sizeof(struct policy)), 0);
    unlink(path.c_str());
    rmdir(tmpl);
}

TEST(PolicyRules, SmallErrorBufferIsTruncatedNotOverrun) {
    auto p = NewPolicy();
    char err[12];
    memset(err, 'x', sizeof(err));
    EXPECT_EQ(policy_rules_load_string(p.get(), err, sizeof(err), "[nope]\n", "p.ini", "/"),
              -EINVAL);
    EXPECT_EQ(strlen(err), sizeof(err) - 1);
    EXPECT_EQ(policy_rules_load_string(p.get(), nullptr, 0, "[nope]\n", "p.ini", "/"), -EINVAL);
}

struct BadCase {
    const char *label;
    std::string text;
    std::string error; // exact expected message
};

class PolicyRulesBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(PolicyRulesBad, IsRefusedWithFileAndLine) {
    const BadCase &c = GetParam();
    auto p = NewPolicy();
    auto before = std::make_unique<struct policy>(*p);
    char err[256];
    int rc = policy_rules_load_string(p.get(), err, sizeof(err), c.text.c_str(), "p.ini", "/d");
    EXPECT_EQ(rc, -EINVAL);
    EXPECT_EQ(std::string(err), c.error);
    EXPECT_EQ(memcmp(p.get(), before.get(), sizeof(struct policy)), 0);
}

const std::string kHead = "[policy]\nversion = v1\n[measurement]\nmode = disabled\n"; // 4 lines

INSTANTIATE_TEST_SUITE_P(
    Errors, PolicyRulesBad,
    ::testing::Values(
        BadCase{"UnknownKey", kHead + "[tcb]\nmin_spn = 3\n",
                "p.ini:6: unknown key 'min_spn' in [tcb]"},
        BadCase{"UnknownSection", kHead + "[tbc]\nmin_snp = 3\n", "p.ini:5: unknown section [tbc]"},
        BadCase{"EmptyUnknownSection", kHead + "[extra]\n", "p.ini:5: unknown section [extra]"},
        // inih accepts a header after any isspace() byte or a UTF-8 BOM (found by fuzzing: this
        // used to abort on an assertion instead of refusing the file).
        BadCase{"UnknownSectionAfterFormFeed", "[policy]\nversion = v1\n\f[nosuch]\nk = v\n",
                "p.ini:3: unknown section [nosuch]"},
        BadCase{"UnknownSectionAfterFormFeedFirst", "\f[nosuch]\nk = v\n",
                "p.ini:1: unknown section [nosuch]"},
        BadCase{"UnknownSectionAfterBom", "\xef\xbb\xbf[nosuch]\nk = v\n",
                "p.ini:1: unknown section [nosuch]"},
        BadCase{"DuplicateSection", kHead + "[tcb]\n[guest]\n[tcb]\n",
                "p.ini:7: section [tcb] appears twice"},
        BadCase{"KeyOutsideSection", "mode = strict\n" + kHead,
                "p.ini:1: key 'mode' outside any section"},
        BadCase{"SyntaxError", kHead + "[tcb]\nmin_snp 3\n",
                "p.ini:6: syntax error (expected [section] or key = value)"},
        BadCase{"BadHex",
                "[policy]\nversion = v1\n[measurement]\nallow = " + std::string(95, 'a') + "g\n",
                "p.ini:4: [measurement] allow: 'aaaaaaaaaaaaaaaa...' is not hex"},
        BadCase{"WrongLengthShort", "[policy]\nversion = v1\n[measurement]\nallow = abcd\n",
                "p.ini:4: [measurement] allow: expected 96 hex digits (48 bytes), got 4 "
                "characters"},
        BadCase{"WrongLengthLong",
                "[policy]\nversion = v1\n[measurement]\nallow = " + std::string(98, 'a') + "\n",
                "p.ini:4: [measurement] allow: expected 96 hex digits (48 bytes), got 98 "
                "characters"},
        BadCase{"DuplicateMeasurement",
                "[policy]\nversion = v1\n[measurement]\nallow = " + kM1 +
                    "\nallow = " + std::string(96, 'A') + "\n",
                "p.ini:5: [measurement] allow: duplicate measurement AAAAAAAAAAAA..."},
        BadCase{"BadNumber", kHead + "[tcb]\nmin_snp = eight\n",
                "p.ini:6: [tcb] min_snp: 'eight' is not a number in 0..255"},
        BadCase{"NumberOutOfRange", kHead + "[tcb]\nmin_microcode = 256\n",
                "p.ini:6: [tcb] min_microcode: '256' is not a number in 0..255"},
        BadCase{"NegativeNumber", kHead + "[guest]\nmin_guest_svn = -1\n",
                "p.ini:6: [guest] min_guest_svn: '-1' is not a number in 0..4294967295"},
        BadCase{"NumberWithTrailingJunk", kHead + "[nonce]\nttl_s = 300s\n",
                "p.ini:6: [nonce] ttl_s: '300s' is not a number in 1..86400"},
        BadCase{"ZeroTtl", kHead + "[nonce]\nttl_s = 0\n",
                "p.ini:6: [nonce] ttl_s: '0' is not a number in 1..86400"},
        BadCase{"Uint32Overflow", kHead + "[guest]\nmin_guest_svn = 4294967296\n",
                "p.ini:6: [guest] min_guest_svn: '4294967296' is not a number in 0..4294967295"},
        BadCase{"VmplOutOfRange", kHead + "[guest]\nmax_vmpl = 4\n",
                "p.ini:6: [guest] max_vmpl: '4' is not a number in 0..3"},
        BadCase{"BadBool", kHead + "[guest]\ndebug_allowed = maybe\n",
                "p.ini:6: [guest] debug_allowed: 'maybe' is not true or false"},
        BadCase{"BoolAsNumber", kHead + "[nonce]\nrequired = 1\n",
                "p.ini:6: [nonce] required: '1' is not true or false"},
        BadCase{"BadMode", kHead + "[tcb]\nmode = lax\n",
                "p.ini:6: [tcb] mode: 'lax' is not strict, warn or disabled"},
        BadCase{"DuplicateKey", kHead + "[tcb]\nmin_snp = 3\nmin_snp = 4\n",
                "p.ini:7: [tcb] min_snp set twice"},
        BadCase{"EmptyRoots", kHead + "[chain]\nroots =\n",
                "p.ini:6: [chain] roots: empty (use builtin or a PEM path)"},
        // CRLs are not checked: a named CRL is refused, never accepted and ignored.
        BadCase{"CrlIsNotSupported", kHead + "[chain]\nroots = builtin\ncrl = amd.crl\n",
                "p.ini:7: [chain] crl: CRL checking is not supported; remove the key or leave it "
                "empty (a CRL named here would not revoke anything)"},
        BadCase{"RoleBadMeasurement", kHead + "[roles]\nabc = app\n",
                "p.ini:6: [roles] key: expected 96 hex digits (48 bytes), got 3 characters"},
        BadCase{"RoleEmptyUsers", kHead + "[roles]\n" + kM1 + " =\n",
                "p.ini:6: [roles]: bad user list '' (expected user1, user2)"},
        BadCase{"RoleEmptyUserInList", kHead + "[roles]\n" + kM1 + " = a,,b\n",
                "p.ini:6: [roles]: bad user list 'a,,b' (expected user1, user2)"},
        BadCase{"RoleUserWithSpace", kHead + "[roles]\n" + kM1 + " = app rw\n",
                "p.ini:6: [roles]: bad user list 'app rw' (expected user1, user2)"},
        BadCase{"RoleDuplicateUser", kHead + "[roles]\n" + kM1 + " = a, b, a\n",
                "p.ini:6: [roles]: user 'a' listed twice"},
        BadCase{"RoleDuplicateMeasurement",
                kHead + "[roles]\n" + kM1 + " = a\n" + std::string(96, 'A') + " = b\n",
                "p.ini:7: [roles]: measurement AAAAAAAAAAAA... listed twice"},
        BadCase{"RoleUserTooLong", kHead + "[roles]\n" + kM1 + " = " + std::string(64, 'u') + "\n",
                "p.ini:6: [roles]: user name '" + std::string(64, 'u') + "' longer than 63 bytes"},
        BadCase{"LineTooLong", kHead + "[roles]\n" + kM1 + " = " + std::string(120, 'u') + "\n",
                "p.ini:6: line too long (220 bytes, at most 198)"},
        BadCase{"VersionTooLong", "[policy]\nversion = " + std::string(64, 'v') + "\n",
                "p.ini:2: [policy] version: length 64 not in 1..63"},
        BadCase{"MissingVersion", "[measurement]\nmode = disabled\n",
                "p.ini: [policy] version is required (it is recorded in every audit record)"},
        BadCase{"StrictWithoutAllow", "[policy]\nversion = v1\n",
                "p.ini: [measurement] mode = strict but no allow = <measurement> (would deny "
                "every client; use mode = disabled to skip the check)"},
        // A policy that leaves [tcb] out, or gives it only a mode, would pass every TCB: found
        // by a review (2026-12-07 night), such a file loaded and admitted a report with TCB 0.
        BadCase{"TcbLeftOut", kHead,
                "p.ini: [tcb] sets no floor (min_bootloader, min_tee, min_snp, min_microcode): "
                "every TCB would pass; give the floors, or mode = disabled to skip the check"},
        BadCase{"TcbWithOnlyAMode", kHead + "[tcb]\nmode = warn\n",
                "p.ini: [tcb] sets no floor (min_bootloader, min_tee, min_snp, min_microcode): "
                "every TCB would pass; give the floors, or mode = disabled to skip the check"}),
    [](const ::testing::TestParamInfo<BadCase> &info) { return std::string(info.param.label); });

TEST(PolicyRules, TooManyMeasurementsIsAnError) {
    std::string text = "[policy]\nversion = v1\n[measurement]\n";
    char hex[97];
    for (int i = 0; i <= policy_measurements_max; i++) {
        snprintf(hex, sizeof(hex), "%096x", i);
        text += std::string("allow = ") + hex + "\n";
    }
    Loaded l = Load(text);
    EXPECT_EQ(l.rc, -EINVAL);
    EXPECT_EQ(l.err, "p.ini:" + std::to_string(4 + policy_measurements_max) +
                         ": [measurement] allow: more than 64 entries");
}

} // namespace
