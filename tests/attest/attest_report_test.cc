// attest_report_test.cc: attest/attest_report.c format checks and decoding (no crypto).
#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <map>
#include <sstream>
#include <string>

#include <openssl/sha.h>

#include "attest_test_util.h"

using namespace attest_test;

static attest_status parse(const std::vector<uint8_t> &r, attest_claims *c = nullptr,
                           attest_error *e = nullptr) {
    attest_claims tmp{};
    return attest_report_parse(c ? c : &tmp, e, r.data(), r.size());
}

TEST(AttestReport, AllVectorsParse) {
    for (const char *n : {"virtee_milan_v2_report.bin", "gosev_milan_v2_report.bin",
                          "trustee_milan_v2_idblock_report.bin", "trustee_milan_v3_vlek_report.bin",
                          "mstee_milan_v3_report.bin", "mstee_genoa_v3_report.bin",
                          "trustee_genoa_siena_v3_report.bin", "mstee_turin_v5_report.bin"}) {
        attest_error e{};
        EXPECT_EQ(parse(vec(n), nullptr, &e), ATTEST_OK) << n << ": " << e.msg;
    }
}

TEST(AttestReport, DecodesMilanV3Fields) {
    attest_claims c{};
    ASSERT_EQ(parse(vec("mstee_milan_v3_report.bin"), &c), ATTEST_OK);
    EXPECT_EQ(c.version, 3u);
    EXPECT_EQ(c.guest_svn, 2u);
    EXPECT_EQ(c.policy, 0x3001Fu);
    EXPECT_EQ(c.abi_minor, 0x1F);
    EXPECT_TRUE(c.smt_allowed);
    EXPECT_FALSE(c.debug);
    EXPECT_EQ(c.platform_info, 0x25u);
    EXPECT_EQ(c.cpuid_fam, 0x19);
    EXPECT_EQ(c.cpuid_mod, 0x01);
    EXPECT_EQ(c.cpuid_step, 0x01);
    EXPECT_EQ(c.product, ATTEST_PRODUCT_MILAN);
    EXPECT_EQ(c.reported_tcb.raw, 0xDB18000000000004ull);
    EXPECT_EQ(c.reported_tcb.bl, 4);
    EXPECT_EQ(c.reported_tcb.snp, 24);
    EXPECT_EQ(c.reported_tcb.ucode, 219);
    EXPECT_EQ(hex(c.host_data, 32),
              "4f4448c67f3c8dfc8de8a5e37125d807dadcc41f06cf23f615dbd52eec777d10");
    EXPECT_EQ(hex(c.chip_id, 8), "4ffb5cb4fd594f3f");
    EXPECT_FALSE(c.verified);
}

TEST(AttestReport, V2HasNoProductUntilChain) {
    attest_claims c{};
    ASSERT_EQ(parse(vec("virtee_milan_v2_report.bin"), &c), ATTEST_OK);
    EXPECT_EQ(c.product, ATTEST_PRODUCT_UNKNOWN);
    EXPECT_EQ(c.current_major, 1);
    EXPECT_EQ(c.current_minor, 52);
    EXPECT_EQ(c.current_build, 4);
}

TEST(AttestReport, VlekSignerAndIdBlockDecoded) {
    attest_claims c{};
    ASSERT_EQ(parse(vec("trustee_milan_v3_vlek_report.bin"), &c), ATTEST_OK);
    EXPECT_EQ(c.signer, ATTEST_SIGNER_VLEK);
    EXPECT_EQ(c.vmpl, 1u);
    ASSERT_EQ(parse(vec("trustee_milan_v2_idblock_report.bin"), &c), ATTEST_OK);
    EXPECT_EQ(c.family_id[0], 1);
    EXPECT_EQ(c.image_id[0], 2);
    EXPECT_EQ(hex(c.id_key_digest, 4), "03562158");
}

TEST(AttestReport, WrongSizesRejected) {
    auto r = vec("virtee_milan_v2_report.bin");
    EXPECT_EQ(parse(std::vector<uint8_t>(r.begin(), r.end() - 1)), ATTEST_REPORT_MALFORMED);
    auto big = r;
    big.push_back(0);
    EXPECT_EQ(parse(big), ATTEST_REPORT_MALFORMED);
    EXPECT_EQ(parse({}), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, UnknownSignatureAlgoRejected) {
    auto r = vec("virtee_milan_v2_report.bin");
    r[0x34] = 2;
    attest_error e{};
    EXPECT_EQ(parse(r, nullptr, &e), ATTEST_REPORT_MALFORMED);
    EXPECT_NE(strstr(e.msg, "SIGNATURE_ALGO"), nullptr);
}

TEST(AttestReport, UnsupportedVersionsRejected) {
    auto r = vec("virtee_milan_v2_report.bin");
    r[0] = 1;
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
    r[0] = 6;
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, MbzFieldsRejected) {
    const size_t offsets[] = {0x04C, 0x18B, 0x19F, 0x1EB, 0x1EF, 0x208, 0x29F,
                              0x2D0, 0x2E7, 0x318, 0x32F, 0x330, 0x400, 0x49F};
    for (size_t off : offsets) {
        auto r = vec("mstee_genoa_v3_report.bin");
        r[off] = 0x01;
        EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED) << std::hex << off;
    }
}

TEST(AttestReport, V2CpuidBytesMustBeZero) {
    auto r = vec("virtee_milan_v2_report.bin");
    r[0x188] = 0x19;
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, MitigationVectorsOnlyFromV5) {
    auto r = vec("mstee_genoa_v3_report.bin");
    r[0x1F8] = 0x3F;
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
    attest_claims c{};
    ASSERT_EQ(parse(vec("mstee_turin_v5_report.bin"), &c), ATTEST_OK);
    EXPECT_EQ(c.current_mit_vector, 0x3Fu);
}

TEST(AttestReport, MaskedChipKeyAndReservedSignerRejected) {
    auto r = vec("virtee_milan_v2_report.bin");
    r[0x48] = 0x02; // MASK_CHIP_KEY
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
    r[0x48] = 0x1C; // SIGNING_KEY = 7 (none)
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
    r[0x48] = 0x20; // reserved bit
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, PolicyBit17MustBeSetAndHighBitsClear) {
    auto r = vec("virtee_milan_v2_report.bin");
    r[0x0A] &= (uint8_t)~0x02; // bit 17
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
    r = vec("virtee_milan_v2_report.bin");
    r[0x0F] = 0x80; // bit 63
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, VmplAbove3Rejected) {
    auto r = vec("virtee_milan_v2_report.bin");
    r[0x30] = 4;
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, UnknownCpuidRejected) {
    auto r = vec("mstee_genoa_v3_report.bin");
    r[0x188] = 0x17; // Zen 2: no SEV-SNP product line
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, ReservedTcbBytesRejected) {
    auto r = vec("mstee_genoa_v3_report.bin");
    r[0x180 + 3] = 1; // Genoa layout: bytes 2..5 reserved
    EXPECT_EQ(parse(r), ATTEST_REPORT_MALFORMED);
}

TEST(AttestReport, CpuidMapping) {
    EXPECT_EQ(attest_report_product_from_cpuid(0x19, 0x01), ATTEST_PRODUCT_MILAN);
    EXPECT_EQ(attest_report_product_from_cpuid(0x19, 0x11), ATTEST_PRODUCT_GENOA);
    EXPECT_EQ(attest_report_product_from_cpuid(0x19, 0xA0), ATTEST_PRODUCT_GENOA);
    EXPECT_EQ(attest_report_product_from_cpuid(0x1A, 0x02), ATTEST_PRODUCT_TURIN);
    EXPECT_EQ(attest_report_product_from_cpuid(0x1A, 0x12), ATTEST_PRODUCT_UNKNOWN);
    EXPECT_EQ(attest_report_product_from_cpuid(0x19, 0x30), ATTEST_PRODUCT_UNKNOWN);
}

// readme_pins reads the "| file | CN | serial | not after | SHA-256 |" rows of vectors/README.md
// §1 into file -> SHA-256 hex.
static std::map<std::string, std::string> readme_pins() {
    auto bytes = vec("README.md");
    std::istringstream in(std::string(bytes.begin(), bytes.end()));
    std::map<std::string, std::string> pins;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("| ", 0) != 0 || line.find(".pem |") == std::string::npos) {
            continue;
        }
        std::string file = line.substr(2, line.find(' ', 2) - 2);
        size_t last = line.rfind(" |");
        size_t prev = line.rfind("| ", last - 1);
        std::string hash = line.substr(prev + 2, last - prev - 2);
        if (hash.size() == 64) {
            pins[file] = hash;
        }
    }
    return pins;
}

TEST(AttestReport, BuiltinRootPinsMatchVectorReadme) {
    // Every embedded AMD certificate: its name, product, pin (as in the README table, spelled
    // out here too so a README edit cannot move both), its PEM's DER hash, and the vector file's.
    struct Want {
        const char *name;
        attest_product product;
        const char *file;
        const char *sha256;
    };
    const Want kWant[] = {
        {"ARK-Milan", ATTEST_PRODUCT_MILAN, "milan_ark.pem",
         "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"},
        {"SEV-Milan", ATTEST_PRODUCT_MILAN, "milan_ask.pem",
         "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b"},
        {"SEV-VLEK-Milan", ATTEST_PRODUCT_MILAN, "milan_asvk.pem",
         "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5"},
        {"ARK-Genoa", ATTEST_PRODUCT_GENOA, "genoa_ark.pem",
         "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1"},
        {"SEV-Genoa", ATTEST_PRODUCT_GENOA, "genoa_ask.pem",
         "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521"},
        {"SEV-VLEK-Genoa", ATTEST_PRODUCT_GENOA, "genoa_asvk.pem",
         "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372"},
        {"ARK-Turin", ATTEST_PRODUCT_TURIN, "turin_ark.pem",
         "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a"},
        {"SEV-Turin", ATTEST_PRODUCT_TURIN, "turin_ask.pem",
         "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185"},
        {"SEV-VLEK-Turin", ATTEST_PRODUCT_TURIN, "turin_asvk.pem",
         "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c"},
    };
    auto readme = readme_pins();
    EXPECT_EQ(readme.size(), 9u);
    size_t n = 0;
    const attest_root_pem *roots = attest_roots_builtin(&n);
    ASSERT_EQ(n, std::size(kWant));
    for (size_t i = 0; i < n; i++) {
        const Want &w = kWant[i];
        SCOPED_TRACE(w.name);
        EXPECT_STREQ(roots[i].name, w.name);
        EXPECT_EQ(roots[i].product, w.product);
        EXPECT_EQ(hex(roots[i].sha256, 32), w.sha256);
        EXPECT_EQ(readme[w.file], w.sha256) << "README §1 row of " << w.file;
        // The embedded PEM is the certificate the pin names...
        uint8_t der[ATTEST_CERT_DER_MAX_BYTES], h[32];
        size_t len = 0;
        ASSERT_EQ(attest_cert_pem_to_der(der, sizeof(der), &len, roots[i].pem,
                                         strlen(roots[i].pem)),
                  0);
        SHA256(der, len, h);
        EXPECT_EQ(hex(h, 32), w.sha256);
        // ...and so is the vector file.
        auto pem = vec(w.file);
        ASSERT_EQ(attest_cert_pem_to_der(der, sizeof(der), &len, (const char *)pem.data(),
                                         pem.size()),
                  0);
        SHA256(der, len, h);
        EXPECT_EQ(hex(h, 32), w.sha256);
    }
}
