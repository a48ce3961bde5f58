// atlsctl_attest_test.cc: runs the built atlsctl binary (client-cert, report show/verify,
// nonce against a fake loopback server) and checks exit codes and output, incl. bad inputs.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "attest_test_util.h"

using namespace attest_test;

namespace {

struct Out {
    int code;
    std::string out;
};

Out run(const std::string &args) {
    std::string cmd = std::string(ATLS_BINARY_DIR) + "/core/atlsctl " + args + " 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    Out r{-1, ""};
    if (p == nullptr) {
        return r;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
        r.out.append(buf, n);
    }
    int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

Out sh(const std::string &cmd) {
    FILE *p = popen((cmd + " 2>&1").c_str(), "r");
    Out r{-1, ""};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
        r.out.append(buf, n);
    }
    int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::string tmpdir() {
    std::string d = std::string(ATLS_BINARY_DIR) + "/tests/attest/atlsctl-" +
                    std::to_string(getpid());
    mkdir((std::string(ATLS_BINARY_DIR) + "/tests").c_str(), 0755);
    mkdir((std::string(ATLS_BINARY_DIR) + "/tests/attest").c_str(), 0755);
    mkdir(d.c_str(), 0700);
    return d;
}

// field returns the value printed after `name` on its own line of `report show` output, or
// "<absent>" when no line has that label.
std::string field(const std::string &out, const std::string &name) {
    size_t pos = 0;
    while (pos < out.size()) {
        size_t end = out.find('\n', pos);
        size_t len = end == std::string::npos ? std::string::npos : end - pos;
        std::string line = out.substr(pos, len);
        if (line.compare(0, name.size(), name) == 0 && line.size() > name.size() &&
            line[name.size()] == ' ') {
            size_t v = line.find_first_not_of(' ', name.size());
            return v == std::string::npos ? "" : line.substr(v);
        }
        if (end == std::string::npos) {
            break;
        }
        pos = end + 1;
    }
    return "<absent>";
}

// be_hex is the big-endian hex of the 48-byte little-endian integer at `le`.
std::string be_hex(const uint8_t *le) {
    uint8_t be[48];
    for (size_t i = 0; i < 48; i++) {
        be[i] = le[47 - i];
    }
    return hex(be, 48);
}

const std::string kNonce = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

std::string client_cert(const std::string &dir, const std::string &extra = "") {
    return "client-cert --nonce " + kNonce + " --provider simulated --sim-dir " + sim_dir() +
           " --out-cert " + dir + "/c.crt --out-key " + dir + "/c.key " + extra;
}

} // namespace

TEST(AtlsctlAttest, ClientCertIsReadableByOpensslAndVerifies) {
    std::string d = tmpdir();
    std::string m(96, 'c');
    Out r = run(client_cert(d, "--measurement " + m + " --debug --smt --tcb 3,0,8,115 --svn 9"));
    ASSERT_EQ(r.code, 0) << r.out;
    struct stat st {};
    ASSERT_EQ(stat((d + "/c.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    Out x = sh("openssl x509 -noout -text -in " + d + "/c.crt");
    EXPECT_EQ(x.code, 0) << x.out;
    EXPECT_NE(x.out.find("CN = atls-client"), std::string::npos);
    EXPECT_NE(x.out.find("2.25.187514555026634923236501021753934806073"), std::string::npos);
    EXPECT_NE(x.out.find("ED25519"), std::string::npos);
    Out k = sh("openssl pkey -noout -in " + d + "/c.key");
    EXPECT_EQ(k.code, 0) << k.out;
    // The key matches the certificate.
    Out a = sh("openssl pkey -pubout -in " + d + "/c.key");
    Out b = sh("openssl x509 -pubkey -noout -in " + d + "/c.crt");
    EXPECT_EQ(a.out, b.out);

    Out v = run("report verify " + d + "/c.crt --roots " + sim_ark() + " --nonce " + kNonce);
    EXPECT_EQ(v.code, 0) << v.out;
    EXPECT_NE(v.out.find("VERIFIED"), std::string::npos);
    EXPECT_NE(v.out.find("measurement " + m), std::string::npos);
    Out s = run("report show " + d + "/c.crt");
    EXPECT_EQ(s.code, 0) << s.out;
    EXPECT_NE(s.out.find("guest_svn            9"), std::string::npos) << s.out;
    EXPECT_NE(s.out.find("DEBUG"), std::string::npos);
    EXPECT_NE(s.out.find("evidence.binding     ok"), std::string::npos);
}

TEST(AtlsctlAttest, P256KeyType) {
    std::string d = tmpdir();
    ASSERT_EQ(run(client_cert(d, "--key-type p256")).code, 0);
    Out x = sh("openssl x509 -noout -text -in " + d + "/c.crt");
    EXPECT_NE(x.out.find("prime256v1"), std::string::npos) << x.out;
    EXPECT_EQ(run("report verify " + d + "/c.crt --roots " + sim_ark()).code, 0);
}

TEST(AtlsctlAttest, SimCertFailsWithBuiltinRootsAndWrongNonce) {
    std::string d = tmpdir();
    ASSERT_EQ(run(client_cert(d)).code, 0);
    Out v = run("report verify " + d + "/c.crt");
    EXPECT_EQ(v.code, 1) << v.out;
    EXPECT_NE(v.out.find("CHAIN_INVALID"), std::string::npos) << v.out;
    Out n = run("report verify " + d + "/c.crt --roots " + sim_ark() + " --nonce " +
                std::string(64, 'f'));
    EXPECT_EQ(n.code, 1);
    EXPECT_NE(n.out.find("BINDING_MISMATCH"), std::string::npos) << n.out;
}

// --bind-other-key (for tests) writes evidence whose report names another key: verification
// refuses it with BINDING_MISMATCH; the usage documents the flag.
TEST(AtlsctlAttest, BindOtherKeyMakesABindingMismatch) {
    std::string d = tmpdir();
    ASSERT_EQ(run(client_cert(d, "--bind-other-key")).code, 0);
    Out v = run("report verify " + d + "/c.crt --roots " + sim_ark());
    EXPECT_EQ(v.code, 1) << v.out;
    EXPECT_NE(v.out.find("NOT VERIFIED: BINDING_MISMATCH"), std::string::npos) << v.out;
    std::string g = tmpdir();
    ASSERT_EQ(run(client_cert(g)).code, 0);
    Out ok = run("report verify " + g + "/c.crt --roots " + sim_ark());
    EXPECT_EQ(ok.code, 0) << ok.out;
    Out help = run("client-cert --help");
    EXPECT_EQ(help.code, 0) << help.out;
    EXPECT_NE(help.out.find("--bind-other-key"), std::string::npos) << help.out;
}

TEST(AtlsctlAttest, ReportVerifyRealVectors) {
    Out ok = run("report verify " + vector_path("mstee_genoa_v3_report.bin") + " --vcek " +
                 vector_path("mstee_genoa_v3_vcek.der") + " --at 1780000000");
    EXPECT_EQ(ok.code, 0) << ok.out;
    Out vlek_now = run("report verify " + vector_path("trustee_milan_v3_vlek_report.bin") +
                       " --vcek " + vector_path("trustee_milan_v3_vlek.der"));
    EXPECT_EQ(vlek_now.code, 1);
    EXPECT_NE(vlek_now.out.find("CERT_EXPIRED"), std::string::npos) << vlek_now.out;
    Out vlek_then = run("report verify " + vector_path("trustee_milan_v3_vlek_report.bin") +
                        " --vcek " + vector_path("trustee_milan_v3_vlek.der") +
                        " --at 1750000000");
    EXPECT_EQ(vlek_then.code, 0) << vlek_then.out;
    Out wrong = run("report verify " + vector_path("virtee_milan_v2_report.bin") + " --vcek " +
                    vector_path("trustee_milan_v2_idblock_vcek.der") + " --at 1780000000");
    EXPECT_EQ(wrong.code, 1);
    EXPECT_NE(wrong.out.find("CHIP_ID_MISMATCH"), std::string::npos) << wrong.out;
    Out none = run("report verify " + vector_path("virtee_milan_v2_report.bin"));
    EXPECT_EQ(none.code, 1);
    EXPECT_NE(none.out.find("VCEK_MISSING"), std::string::npos) << none.out;
}

TEST(AtlsctlAttest, ReportShowRawVector) {
    Out s = run("report show " + vector_path("gosev_milan_v2_report.bin"));
    ASSERT_EQ(s.code, 0) << s.out;
    auto report = vec("gosev_milan_v2_report.bin");
    // Expected values from vectors/README.md §2.2, or read from the report bytes here.
    EXPECT_EQ(field(s.out, "version"), "2");
    EXPECT_EQ(field(s.out, "guest_svn"), "0");
    EXPECT_EQ(field(s.out, "policy"), "0xb0000 (abi 0.0, smt, DEBUG)") << s.out;
    EXPECT_EQ(field(s.out, "debug"), "yes");
    EXPECT_EQ(field(s.out, "vmpl"), "0");
    EXPECT_EQ(field(s.out, "signature_algo"), "1");
    EXPECT_EQ(field(s.out, "platform_info"), "0x1");
    EXPECT_EQ(field(s.out, "signer_info"), "0x0 (VCEK)");
    EXPECT_EQ(field(s.out, "report_data"), "0102030405" + std::string(118, '0'));
    EXPECT_EQ(field(s.out, "measurement"),
              "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608e"
              "b0cf2e4872b01");
    for (const char *tcb : {"current_tcb", "reported_tcb", "committed_tcb", "launch_tcb"}) {
        EXPECT_EQ(field(s.out, tcb), "0x4405000000000002 (bl=2 tee=0 snp=5 ucode=68)") << tcb;
    }
    EXPECT_EQ(field(s.out, "cpuid"), "<absent>") << "v2 reports carry no CPUID";
    EXPECT_EQ(field(s.out, "chip_id"), hex(&report[0x1A0], 64));
    EXPECT_EQ(field(s.out, "chip_id").substr(0, 16), "3ac3fe21e13fb099");
    EXPECT_EQ(field(s.out, "launch_mit_vector"), "<absent>") << "v5 field on a v2 report";
    // The file name [chain] vcek_dir is searched for: the whole chip id on Milan.
    EXPECT_EQ(field(s.out, "vcek_file"), hex(&report[0x1A0], 64) + "-4405000000000002.der");
    // r and s: 48-byte big-endian integers, read from the little-endian report fields.
    EXPECT_EQ(field(s.out, "signature_r"), be_hex(&report[0x2A0]));
    EXPECT_EQ(field(s.out, "signature_s"), be_hex(&report[0x2E8]));
    EXPECT_EQ(field(s.out, "signature_r").size(), 96u);
}

TEST(AtlsctlAttest, ReportShowTurinV5Vector) {
    Out s = run("report show " + vector_path("mstee_turin_v5_report.bin"));
    ASSERT_EQ(s.code, 0) << s.out;
    auto report = vec("mstee_turin_v5_report.bin");
    // vectors/README.md §2.8.
    EXPECT_EQ(field(s.out, "version"), "5");
    EXPECT_EQ(field(s.out, "guest_svn"), "2");
    EXPECT_EQ(field(s.out, "policy"), "0x3001f (abi 0.31, smt)");
    EXPECT_EQ(field(s.out, "debug"), "no");
    EXPECT_EQ(field(s.out, "platform_info"), "0x65");
    EXPECT_EQ(field(s.out, "reported_tcb"), "0x5100000004010101 (fmc=1 bl=1 tee=1 snp=4 ucode=81)");
    EXPECT_EQ(field(s.out, "cpuid"), "fam 0x1a mod 0x02 step 0x01");
    EXPECT_EQ(field(s.out, "product"), "Turin");
    EXPECT_EQ(field(s.out, "chip_id"), "59790fb1c39f35c1" + std::string(112, '0'));
    EXPECT_EQ(field(s.out, "vcek_file"), "59790fb1c39f35c1-5100000004010101.der"); // 8 bytes
    EXPECT_EQ(field(s.out, "measurement"),
              "6d6c354511d6f7c6d7504668903dc5bdc066a048b651840d8d03fb85299ebfa142fccf1d1b0baca4968"
              "41bdf243619d4");
    EXPECT_EQ(field(s.out, "launch_mit_vector"), "0x3f");
    EXPECT_EQ(field(s.out, "current_mit_vector"), "0x3f");
    EXPECT_EQ(field(s.out, "report_id_ma"), std::string(64, 'f'));
    EXPECT_EQ(field(s.out, "signature_r"), be_hex(&report[0x2A0]));
    EXPECT_EQ(field(s.out, "signature_s"), be_hex(&report[0x2E8]));
    EXPECT_NE(field(s.out, "signature_r"), field(s.out, "signature_s"));
}

TEST(AtlsctlAttest, EveryCommandAnswersHelp) {
    for (const char *cmd : {"nonce --help", "report show --help", "report verify -h",
                            "report verify x.bin --help", "client-cert --help", "--help"}) {
        Out h = run(cmd);
        EXPECT_EQ(h.code, 0) << cmd << "\n" << h.out;
        EXPECT_EQ(h.out.rfind("usage: atlsctl", 0), 0u) << cmd << "\n" << h.out;
    }
    EXPECT_NE(run("--help").out.find("--roots"), std::string::npos);
}

TEST(AtlsctlAttest, BadInputsGiveClearErrors) {
    Out missing = run("report show /nonexistent/r.bin");
    EXPECT_EQ(missing.code, 1);
    EXPECT_NE(missing.out.find("cannot open /nonexistent/r.bin"), std::string::npos);
    Out junk = run("report show " + vector_path("README.md"));
    EXPECT_EQ(junk.code, 1);
    EXPECT_NE(junk.out.find("neither"), std::string::npos) << junk.out;
    Out badhex = run("client-cert --nonce xyz --provider simulated --out-cert a --out-key b");
    EXPECT_EQ(badhex.code, 2);
    EXPECT_NE(badhex.out.find("--nonce must be"), std::string::npos) << badhex.out;
    Out badm = run(client_cert(tmpdir(), "--measurement abcd"));
    EXPECT_EQ(badm.code, 2);
    EXPECT_NE(badm.out.find("--measurement must be 96 hex"), std::string::npos);
    Out badtcb = run(client_cert(tmpdir(), "--tcb 1,2,3"));
    EXPECT_EQ(badtcb.code, 2);
    Out prov = run("client-cert --nonce " + kNonce + " --provider nope --out-cert a --out-key b");
    EXPECT_EQ(prov.code, 2);
    EXPECT_NE(prov.out.find("unknown provider"), std::string::npos);
    Out at = run("report verify " + vector_path("virtee_milan_v2_report.bin") + " --at soon");
    EXPECT_EQ(at.code, 2);
    Out roots = run("report verify " + vector_path("virtee_milan_v2_report.bin") +
                    " --roots /nonexistent.pem");
    EXPECT_EQ(roots.code, 2);
    EXPECT_NE(roots.out.find("/nonexistent.pem"), std::string::npos);
    Out sub = run("report frobnicate");
    EXPECT_EQ(sub.code, 2);
}

TEST(AtlsctlAttest, HardwareProviderAbsentIsClear) {
    struct stat st {};
    if (stat("/dev/sev-guest", &st) == 0) {
        GTEST_SKIP() << "SEV-SNP guest device present";
    }
    std::string d = tmpdir();
    Out r = run("client-cert --nonce " + kNonce + " --provider sev-guest --out-cert " + d +
                "/x.crt --out-key " + d + "/x.key");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("no SEV-SNP guest device: /dev/sev-guest not found"), std::string::npos)
        << r.out;
}

// A fake nonce endpoint on loopback (the real HTTP API is not built yet).
TEST(AtlsctlAttest, NonceFromFakeServer) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(ls, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(ls, (sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    getsockname(ls, (sockaddr *)&a, &al);
    listen(ls, 4);
    int port = ntohs(a.sin_port);
    std::string nonce_hex(64, 'a');
    std::string req_seen;
    std::thread srv([&] {
        for (int i = 0; i < 2; i++) {
            int c = accept(ls, nullptr, nullptr);
            if (c < 0) {
                return;
            }
            char buf[2048];
            ssize_t n = recv(c, buf, sizeof(buf), 0);
            if (n > 0 && i == 0) {
                req_seen.assign(buf, (size_t)n);
            }
            std::string body = "{\"nonce\":\"" + nonce_hex + "\",\"expires_in\":300,"
                               "\"timestamp\":\"2026-11-22T10:00:00Z\"}";
            std::string resp = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body;
            send(c, resp.data(), resp.size(), 0);
            close(c);
        }
    });
    std::string url = "http://127.0.0.1:" + std::to_string(port);
    Out r = run("nonce --url " + url);
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out, nonce_hex + "\n");
    EXPECT_NE(req_seen.find("GET /api/v1/nonce HTTP/1.0"), std::string::npos) << req_seen;
    std::string d = tmpdir();
    Out cc = run("client-cert --nonce-url " + url + " --provider simulated --sim-dir " +
                 sim_dir() + " --out-cert " + d + "/n.crt --out-key " + d + "/n.key");
    EXPECT_EQ(cc.code, 0) << cc.out;
    srv.join();
    close(ls);
    Out v = run("report verify " + d + "/n.crt --roots " + sim_ark() + " --nonce " + nonce_hex);
    EXPECT_EQ(v.code, 0) << v.out;
}

TEST(AtlsctlAttest, NonceServerDownIsClear) {
    Out r = run("nonce --url http://127.0.0.1:1");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("cannot connect"), std::string::npos) << r.out;
}
