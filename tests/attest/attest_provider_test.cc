// attest_provider_test.cc: the hardware providers without hardware: sev-guest request/response
// encoding (SNP_GET_EXT_REPORT request and ioctl header checked against the kernel's uapi
// structs), the GHCB certificate table, the provider registry, and clear errors when absent.
// The tsm provider has its own fake configfs in attest_tsm_test.cc.
#include <gtest/gtest.h>

#include <linux/sev-guest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "attest_test_util.h"

using namespace attest_test;

namespace {




} // namespace

TEST(AttestProvider, RegistryKnowsThreeBackends) {
    EXPECT_NE(attest_provider_find("simulated"), nullptr);
    EXPECT_NE(attest_provider_find("tsm"), nullptr);
    EXPECT_NE(attest_provider_find("sev-guest"), nullptr);
    EXPECT_EQ(attest_provider_find("sgx"), nullptr);
    EXPECT_STREQ(attest_provider_find("sev-guest")->name, "sev-guest");
}

TEST(AttestProvider, SevGuestRequestEncoding) {
    uint8_t rd[64];
    for (int i = 0; i < 64; i++) {
        rd[i] = (uint8_t)i;
    }
    uint8_t req[ATTEST_SEV_GUEST_REQ_BYTES];
    memset(req, 0xEE, sizeof(req));
    attest_sev_guest_encode_req(req, rd, 2);
    EXPECT_EQ(memcmp(req, rd, 64), 0);
    EXPECT_EQ(req[64], 2);
    EXPECT_EQ(req[65] | req[66] | req[67], 0);
    for (size_t i = 68; i < ATTEST_SEV_GUEST_REQ_BYTES; i++) {
        EXPECT_EQ(req[i], 0) << "rsvd byte " << i << " must be zero";
    }
}

// The extended request and the ioctl header, read back through the kernel's own uapi structs.
TEST(AttestProvider, SevGuestExtRequestEncoding) {
    uint8_t rd[64];
    for (int i = 0; i < 64; i++) {
        rd[i] = (uint8_t)(0x80 + i);
    }
    uint8_t bytes[ATTEST_SEV_GUEST_EXT_REQ_BYTES];
    memset(bytes, 0xEE, sizeof(bytes));
    const uint64_t certs_address = 0x00007f1122334000ull;
    attest_sev_guest_encode_ext_req(bytes, rd, 3, certs_address, ATTEST_SEV_GUEST_CERTS_BYTES);
    snp_ext_report_req req;
    static_assert(sizeof(req) == sizeof(bytes), "struct snp_ext_report_req is 112 bytes");
    memcpy(&req, bytes, sizeof(req));
    EXPECT_EQ(memcmp(req.data.user_data, rd, 64), 0);
    EXPECT_EQ(req.data.vmpl, 3u);
    for (size_t i = 0; i < sizeof(req.data.rsvd); i++) {
        EXPECT_EQ(req.data.rsvd[i], 0) << "rsvd byte " << i << " (KEY_SEL at 0) must be zero";
    }
    EXPECT_EQ(req.certs_address, certs_address);
    EXPECT_EQ(req.certs_len, 16384u);
    EXPECT_EQ(req.certs_len % 4096u, 0u);
    for (size_t i = ATTEST_SEV_GUEST_EXT_CERTS_LEN_OFF + 4; i < sizeof(bytes); i++) {
        EXPECT_EQ(bytes[i], 0) << "padding byte " << i;
    }
    // The report request inside is the plain SNP_GET_REPORT one.
    uint8_t plain[ATTEST_SEV_GUEST_REQ_BYTES];
    attest_sev_guest_encode_req(plain, rd, 3);
    EXPECT_EQ(memcmp(bytes, plain, sizeof(plain)), 0);
}

TEST(AttestProvider, SevGuestIoctlHeaderEncoding) {
    uint8_t bytes[ATTEST_SEV_GUEST_IOCTL_BYTES];
    memset(bytes, 0xEE, sizeof(bytes));
    attest_sev_guest_encode_ioctl(bytes, 0x1111222233334444ull, 0x5555666677778888ull);
    snp_guest_request_ioctl io;
    static_assert(sizeof(io) == sizeof(bytes), "struct snp_guest_request_ioctl is 32 bytes");
    memcpy(&io, bytes, sizeof(io));
    EXPECT_EQ(io.msg_version, 1u) << "the driver rejects msg_version 0";
    for (size_t i = 1; i < 8; i++) {
        EXPECT_EQ(bytes[i], 0) << "padding byte " << i;
    }
    EXPECT_EQ(io.req_data, 0x1111222233334444ull);
    EXPECT_EQ(io.resp_data, 0x5555666677778888ull);
    EXPECT_EQ(io.exitinfo2, 0u);
    // The provider issues SNP_GET_EXT_REPORT (spec §4.1).
    EXPECT_EQ((unsigned long)SNP_GET_EXT_REPORT, 0xC0205302ul);
}

TEST(AttestProvider, SevGuestResponseParsing) {
    auto report = vec("mstee_genoa_v3_report.bin");
    std::vector<uint8_t> resp(ATTEST_SEV_GUEST_RESP_BYTES, 0);
    put_le32(&resp[0], 0);
    put_le32(&resp[4], ATTEST_REPORT_BYTES);
    memcpy(&resp[0x20], report.data(), report.size());
    uint8_t out[ATTEST_REPORT_BYTES];
    attest_error err{};
    ASSERT_EQ(attest_sev_guest_parse_resp(out, &err, resp.data(), resp.size()), ATTEST_OK)
        << err.msg;
    EXPECT_EQ(memcmp(out, report.data(), ATTEST_REPORT_BYTES), 0);
}

TEST(AttestProvider, SevGuestResponseErrors) {
    std::vector<uint8_t> resp(ATTEST_SEV_GUEST_RESP_BYTES, 0);
    uint8_t out[ATTEST_REPORT_BYTES];
    attest_error err{};
    put_le32(&resp[0], 0x16);
    put_le32(&resp[4], ATTEST_REPORT_BYTES);
    EXPECT_EQ(attest_sev_guest_parse_resp(out, &err, resp.data(), resp.size()),
              ATTEST_PROVIDER_FAILED);
    EXPECT_NE(strstr(err.msg, "INVALID_PARAM"), nullptr) << err.msg;
    put_le32(&resp[0], 0);
    put_le32(&resp[4], 1000);
    EXPECT_EQ(attest_sev_guest_parse_resp(out, &err, resp.data(), resp.size()),
              ATTEST_PROVIDER_FAILED);
    EXPECT_EQ(attest_sev_guest_parse_resp(out, &err, resp.data(), 100), ATTEST_PROVIDER_FAILED);
}

TEST(AttestProvider, CertTableYieldsVcekAndAskButNeverArk) {
    auto vcek = vec("mstee_genoa_v3_vcek.der");
    std::vector<uint8_t> ask(100, 0xAA), ark(50, 0xBB);
    auto t = cert_table({{kGuidArk, ark}, {kGuidAsk, ask}, {kGuidVcek, vcek}});
    attest_report_out out{};
    attest_error err{};
    ASSERT_EQ(attest_certtable_parse(&out, &err, t.data(), t.size()), ATTEST_OK) << err.msg;
    ASSERT_EQ(out.vcek_len, vcek.size());
    EXPECT_EQ(memcmp(out.vcek_der, vcek.data(), vcek.size()), 0);
    EXPECT_EQ(out.ask_len, ask.size());
}

TEST(AttestProvider, CertTableRejectsOutOfBoundsAndUnterminated) {
    std::vector<uint8_t> cert(100, 1);
    auto t = cert_table({{kGuidVcek, cert}});
    put_le32(&t[20], 5000); // length beyond the buffer
    attest_report_out out{};
    EXPECT_EQ(attest_certtable_parse(&out, nullptr, t.data(), t.size()), ATTEST_PROVIDER_FAILED);
    auto u = cert_table({{kGuidVcek, cert}});
    u.resize(30); // terminator cut off
    EXPECT_EQ(attest_certtable_parse(&out, nullptr, u.data(), u.size()), ATTEST_PROVIDER_FAILED);
    auto w = cert_table({{kGuidVcek, cert}});
    put_le32(&w[16], 4); // points into the table header
    EXPECT_EQ(attest_certtable_parse(&out, nullptr, w.data(), w.size()), ATTEST_PROVIDER_FAILED);
}

TEST(AttestProvider, EmptyCertTableIsFine) {
    std::vector<uint8_t> t(24, 0);
    attest_report_out out{};
    EXPECT_EQ(attest_certtable_parse(&out, nullptr, t.data(), t.size()), ATTEST_OK);
    EXPECT_EQ(out.vcek_len, 0u);
}

TEST(AttestProvider, SevGuestAbsentIsClearError) {
    attest_provider_config cfg;
    attest_provider_config_init(&cfg);
    struct stat st {};
    if (stat(cfg.sev_guest_dev, &st) == 0) {
        GTEST_SKIP() << "this machine has " << cfg.sev_guest_dev;
    }
    void *s = nullptr;
    attest_error err{};
    EXPECT_EQ(attest_provider_find("sev-guest")->open(&s, &err, &cfg),
              ATTEST_PROVIDER_UNAVAILABLE);
    EXPECT_NE(strstr(err.msg, "no SEV-SNP guest device: /dev/sev-guest not found"), nullptr)
        << err.msg;
}

TEST(AttestProvider, TsmAbsentIsClearError) {
    attest_provider_config cfg;
    attest_provider_config_init(&cfg);
    snprintf(cfg.tsm_dir, sizeof(cfg.tsm_dir), "/nonexistent/tsm/report");
    void *s = nullptr;
    attest_error err{};
    EXPECT_EQ(attest_provider_find("tsm")->open(&s, &err, &cfg), ATTEST_PROVIDER_UNAVAILABLE);
    EXPECT_NE(strstr(err.msg, "configfs-tsm"), nullptr) << err.msg;
}
