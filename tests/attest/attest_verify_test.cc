// attest_verify_test.cc: attest/attest_verify.c against the real AMD vectors
// (vectors/README.md §2 and §4): each verifies or fails exactly as documented.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <iterator>
#include <set>
#include <string>

#include "attest_test_util.h"
#ifdef ATLS_HAVE_POLICY
#include <memory>

#include "policy.h"
#endif

using namespace attest_test;

namespace {

struct Verifier {
    attest_verifier *v = nullptr;
    explicit Verifier(const std::string &roots = "builtin", const std::string &vcek_dir = "",
                      uint32_t cache = 0) {
        attest_verifier_config cfg{};
        snprintf(cfg.roots, sizeof(cfg.roots), "%s", roots.c_str());
        snprintf(cfg.vcek_dir, sizeof(cfg.vcek_dir), "%s", vcek_dir.c_str());
        cfg.chain_cache_max = cache;
        attest_error err{};
        v = attest_verifier_new(&cfg, &err);
        EXPECT_NE(v, nullptr) << err.msg;
    }
    ~Verifier() { attest_verifier_free(v); }
};

struct Result {
    attest_status st;
    attest_error err;
    attest_claims claims;
};

Result verify(Verifier &ver, const std::vector<uint8_t> &report, const std::vector<uint8_t> &vcek,
              int64_t at = kFixedTime, const std::vector<uint8_t> &ask = {}) {
    Result r{};
    r.st = attest_verifier_verify_report(ver.v, &r.claims, &r.err, report.data(), report.size(),
                                         vcek.empty() ? nullptr : vcek.data(), vcek.size(),
                                         ask.empty() ? nullptr : ask.data(), ask.size(), at);
    return r;
}

struct Pair {
    const char *report;
    const char *vcek;
    attest_product product;
    uint32_t version;
};

const Pair kPairs[] = {
    {"virtee_milan_v2_report.bin", "virtee_milan_v2_vcek.der", ATTEST_PRODUCT_MILAN, 2},
    {"gosev_milan_v2_report.bin", "gosev_milan_v2_vcek.der", ATTEST_PRODUCT_MILAN, 2},
    {"trustee_milan_v2_idblock_report.bin", "trustee_milan_v2_idblock_vcek.der",
     ATTEST_PRODUCT_MILAN, 2},
    {"trustee_milan_v3_vlek_report.bin", "trustee_milan_v3_vlek.der", ATTEST_PRODUCT_MILAN, 3},
    {"mstee_milan_v3_report.bin", "mstee_milan_v3_vcek.der", ATTEST_PRODUCT_MILAN, 3},
    {"mstee_genoa_v3_report.bin", "mstee_genoa_v3_vcek.der", ATTEST_PRODUCT_GENOA, 3},
    {"trustee_genoa_siena_v3_report.bin", "trustee_genoa_siena_v3_vcek.der", ATTEST_PRODUCT_GENOA,
     3},
    {"mstee_turin_v5_report.bin", "mstee_turin_v5_vcek.der", ATTEST_PRODUCT_TURIN, 5},
};

// pem_file_to_der reads the first certificate of a vector PEM file as DER (empty on failure).
std::vector<uint8_t> pem_file_to_der(const std::string &name) {
    auto pem = vec(name);
    std::vector<uint8_t> der(ATTEST_CERT_DER_MAX_BYTES);
    size_t len = 0;
    if (attest_cert_pem_to_der(der.data(), der.size(), &len, (const char *)pem.data(),
                               pem.size()) != 0) {
        return {};
    }
    der.resize(len);
    return der;
}

int64_t time_for(const Pair &p) {
    return strstr(p.vcek, "vlek") != nullptr ? kVlekTime : kFixedTime;
}

} // namespace

TEST(AttestVerify, EveryVectorPairVerifiesAtFixedTime) {
    Verifier ver;
    for (const Pair &p : kPairs) {
        Result r = verify(ver, vec(p.report), vec(p.vcek), time_for(p));
        EXPECT_EQ(r.st, ATTEST_OK) << p.report << ": " << attest_status_code(r.st) << " "
                                   << r.err.msg;
        EXPECT_TRUE(r.claims.verified) << p.report;
        EXPECT_EQ(r.claims.product, p.product) << p.report;
        EXPECT_EQ(r.claims.version, p.version) << p.report;
    }
}

TEST(AttestVerify, VcekPairsVerifyAtRealTime) {
    Verifier ver;
    for (const Pair &p : kPairs) {
        if (strstr(p.vcek, "vlek") != nullptr) {
            continue;
        }
        Result r = verify(ver, vec(p.report), vec(p.vcek), (int64_t)time(nullptr));
        EXPECT_EQ(r.st, ATTEST_OK) << p.report << ": " << r.err.msg;
    }
}

TEST(AttestVerify, GosevDebugReportVerifiesAndExposesDebugForPolicy) {
    Verifier ver;
    Result r = verify(ver, vec("gosev_milan_v2_report.bin"), vec("gosev_milan_v2_vcek.der"));
    ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
    EXPECT_TRUE(r.claims.debug);
    EXPECT_EQ(r.claims.policy, 0xB0000u);
    EXPECT_EQ(r.claims.reported_tcb.bl, 2);
    EXPECT_EQ(r.claims.reported_tcb.snp, 5);
    EXPECT_EQ(r.claims.reported_tcb.ucode, 68);
    EXPECT_EQ(hex(r.claims.measurement, 48),
              "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0"
              "cf2e4872b01");
}

#ifdef ATLS_HAVE_POLICY
// The gosev vector's signature is valid but its guest POLICY has DEBUG set (vectors/README.md
// §2.2, §4): a production policy must deny it. The policy below admits everything else about
// this report, so DEBUG_ENABLED is the one reason; allowing debug turns the verdict to ALLOW.
TEST(AttestVerify, GosevDebugVectorIsDeniedByPolicyEvaluate) {
    Verifier ver;
    Result r = verify(ver, vec("gosev_milan_v2_report.bin"), vec("gosev_milan_v2_vcek.der"));
    ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
    // What core_attest.c copies from the verified claims.
    policy_input in{};
    memcpy(in.measurement, r.claims.measurement, sizeof(in.measurement));
    in.guest_svn = r.claims.guest_svn;
    in.guest_policy = r.claims.policy;
    in.vmpl = r.claims.vmpl;
    in.reported_tcb.bootloader = r.claims.reported_tcb.bl;
    in.reported_tcb.tee = r.claims.reported_tcb.tee;
    in.reported_tcb.snp = r.claims.reported_tcb.snp;
    in.reported_tcb.microcode = r.claims.reported_tcb.ucode;
    in.reported_tcb.fmc = r.claims.reported_tcb.fmc;
    in.is_turin = r.claims.product == ATTEST_PRODUCT_TURIN;
    in.platform_info = r.claims.platform_info;
    auto policy_text = [&](bool debug_allowed) {
        return "[policy]\nversion = gosev-debug\n"
               "[measurement]\nmode = strict\nallow = " +
               hex(r.claims.measurement, 48) +
               "\n[tcb]\nmode = strict\nmin_bootloader = 2\nmin_tee = 0\nmin_snp = 5\n"
               "min_microcode = 68\n"
               "[guest]\nmode = strict\ndebug_allowed = " +
               std::string(debug_allowed ? "true" : "false") +
               "\nsmt_allowed = true\nmigrate_ma_allowed = false\nmin_guest_svn = 0\n"
               "max_vmpl = 0\n";
    };
    for (bool debug_allowed : {false, true}) {
        auto pol = std::make_unique<policy>();
        char perr[256] = {0};
        std::string text = policy_text(debug_allowed);
        ASSERT_EQ(policy_rules_load_string(pol.get(), perr, sizeof(perr), text.c_str(), "g.ini",
                                           "/"),
                  0)
            << perr;
        policy_result res{};
        policy_verdict v = policy_evaluate(pol.get(), &res, &in);
        if (debug_allowed) {
            EXPECT_EQ(v, POLICY_VERDICT_ALLOW) << "debug allowed: nothing else may fail";
            EXPECT_EQ(res.check_count, 0u);
            continue;
        }
        EXPECT_EQ(v, POLICY_VERDICT_DENY);
        EXPECT_EQ(res.verdict, POLICY_VERDICT_DENY);
        ASSERT_EQ(res.check_count, 1u);
        EXPECT_EQ(res.checks[0].code, POLICY_CHECK_DEBUG_ENABLED);
        EXPECT_STREQ(policy_check_code_name(res.checks[0].code), "DEBUG_ENABLED");
    }
}
#endif

TEST(AttestVerify, VlekVerifiesAtFixedTimeAndIsExpiredNow) {
    Verifier ver;
    auto report = vec("trustee_milan_v3_vlek_report.bin");
    auto vlek = vec("trustee_milan_v3_vlek.der");
    Result ok = verify(ver, report, vlek, 1750000000);
    ASSERT_EQ(ok.st, ATTEST_OK) << ok.err.msg;
    EXPECT_EQ(ok.claims.signer, ATTEST_SIGNER_VLEK);
    EXPECT_EQ(ok.claims.reported_tcb.ucode, 217);
    Result now = verify(ver, report, vlek, (int64_t)time(nullptr));
    EXPECT_EQ(now.st, ATTEST_CERT_EXPIRED) << now.err.msg;
    EXPECT_STREQ(attest_status_code(now.st), "CERT_EXPIRED");
}

TEST(AttestVerify, TrusteeIdBlockMatchesReportedNotCurrentTcb) {
    Verifier ver;
    Result r = verify(ver, vec("trustee_milan_v2_idblock_report.bin"),
                      vec("trustee_milan_v2_idblock_vcek.der"));
    ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
    EXPECT_EQ(r.claims.current_tcb.ucode, 206);
    EXPECT_EQ(r.claims.reported_tcb.ucode, 115);
    EXPECT_EQ(r.claims.guest_svn, 4u);
}

TEST(AttestVerify, TurinLayoutDecodesFmcFirst) {
    Verifier ver;
    Result r = verify(ver, vec("mstee_turin_v5_report.bin"), vec("mstee_turin_v5_vcek.der"));
    ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
    EXPECT_EQ(r.claims.reported_tcb.fmc, 1);
    EXPECT_EQ(r.claims.reported_tcb.bl, 1);
    EXPECT_EQ(r.claims.reported_tcb.tee, 1);
    EXPECT_EQ(r.claims.reported_tcb.snp, 4);
    EXPECT_EQ(r.claims.reported_tcb.ucode, 81);
    EXPECT_EQ(r.claims.platform_info, 0x65u);
    EXPECT_EQ(r.claims.launch_mit_vector, 0x3Fu);
    EXPECT_EQ(hex(r.claims.chip_id, 8), "59790fb1c39f35c1");
}

TEST(AttestVerify, SienaModelA0UsesGenoaChain) {
    Verifier ver;
    Result r = verify(ver, vec("trustee_genoa_siena_v3_report.bin"),
                      vec("trustee_genoa_siena_v3_vcek.der"));
    ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
    EXPECT_EQ(r.claims.cpuid_mod, 0xA0);
    EXPECT_EQ(r.claims.product, ATTEST_PRODUCT_GENOA);
}

TEST(AttestVerify, ClaimsCarryVcekHash) {
    Verifier ver;
    auto vcek = vec("virtee_milan_v2_vcek.der");
    Result r = verify(ver, vec("virtee_milan_v2_report.bin"), vcek);
    ASSERT_EQ(r.st, ATTEST_OK);
    // 3bbfb6ee... is the SHA-256 of the file (vectors/README.md §3).
    EXPECT_EQ(hex(r.claims.vcek_sha256, 32),
              "3bbfb6ee259f75a95d13168cfdf2e034181bb93c7c016825731cbe8ea16c95e1");
}

// ---- negatives --------------------------------------------------------------------------------

TEST(AttestVerify, FlippedBitInSignedRegionFailsSignature) {
    Verifier ver;
    auto report = vec("mstee_turin_v5_report.bin");
    report[0x90] ^= 1; // measurement
    Result r = verify(ver, report, vec("mstee_turin_v5_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_SIGNATURE_INVALID) << r.err.msg;
}

TEST(AttestVerify, FlippedBitInReportDataFailsSignature) {
    Verifier ver;
    auto report = vec("virtee_milan_v2_report.bin");
    report[0x50 + 63] ^= 0x80;
    EXPECT_EQ(verify(ver, report, vec("virtee_milan_v2_vcek.der")).st, ATTEST_SIGNATURE_INVALID);
}

TEST(AttestVerify, NonZeroPaddingAt0x330IsMalformed) {
    Verifier ver;
    auto report = vec("mstee_turin_v5_report.bin");
    report[0x330] = 1; // unsigned: the ECDSA check alone would pass
    Result r = verify(ver, report, vec("mstee_turin_v5_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_REPORT_MALFORMED);
    EXPECT_NE(strstr(r.err.msg, "padding"), nullptr) << r.err.msg;
}

TEST(AttestVerify, NonZeroPaddingAt0x49FIsMalformed) {
    Verifier ver;
    auto report = vec("mstee_turin_v5_report.bin");
    report[0x49F] = 0xFF;
    EXPECT_EQ(verify(ver, report, vec("mstee_turin_v5_vcek.der")).st, ATTEST_REPORT_MALFORMED);
}

TEST(AttestVerify, NonZeroTopBytesOfRIsMalformed) {
    Verifier ver;
    auto report = vec("mstee_turin_v5_report.bin");
    report[0x2A0 + 48] = 1;
    Result r = verify(ver, report, vec("mstee_turin_v5_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_REPORT_MALFORMED);
    EXPECT_NE(strstr(r.err.msg, "R"), nullptr) << r.err.msg;
}

TEST(AttestVerify, NonZeroTopBytesOfSIsMalformed) {
    Verifier ver;
    auto report = vec("mstee_turin_v5_report.bin");
    report[0x32F] = 1;
    EXPECT_EQ(verify(ver, report, vec("mstee_turin_v5_vcek.der")).st, ATTEST_REPORT_MALFORMED);
}

TEST(AttestVerify, VcekFromAnotherChipFails) {
    Verifier ver;
    // Same product and TCB shape, different chip: chip binding catches it before the signature.
    Result r = verify(ver, vec("virtee_milan_v2_report.bin"), vec("gosev_milan_v2_vcek.der"));
    EXPECT_NE(r.st, ATTEST_OK);
    EXPECT_TRUE(r.st == ATTEST_CHIP_ID_MISMATCH || r.st == ATTEST_VCEK_TCB_MISMATCH) << r.err.msg;
    // Identical TCB, so it is the chip that differs: tcb 3/0/8/115 vs idblock 3/0/8/115.
    Result r2 = verify(ver, vec("virtee_milan_v2_report.bin"),
                       vec("trustee_milan_v2_idblock_vcek.der"));
    EXPECT_EQ(r2.st, ATTEST_CHIP_ID_MISMATCH) << r2.err.msg;
}

TEST(AttestVerify, MaskedChipIdWithVcekFails) {
    // CHIP_ID zeroed (as with MaskChipId) in a VCEK-signed report: the chip binding refuses it
    // before the signature is looked at (the sim test has a validly signed variant).
    Verifier ver;
    auto report = vec("virtee_milan_v2_report.bin");
    memset(&report[ATTEST_OFF_CHIP_ID], 0, ATTEST_CHIP_ID_BYTES);
    Result r = verify(ver, report, vec("virtee_milan_v2_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_CHIP_ID_MISMATCH) << r.err.msg;
    EXPECT_NE(strstr(r.err.msg, "all zero (masked"), nullptr) << r.err.msg;
    // The VLEK vector has a masked CHIP_ID by design and verifies: no hwID to bind.
    Result vlek = verify(ver, vec("trustee_milan_v3_vlek_report.bin"),
                         vec("trustee_milan_v3_vlek.der"), kVlekTime);
    EXPECT_EQ(vlek.st, ATTEST_OK) << vlek.err.msg;
}

TEST(AttestVerify, TurinChipIdTailMustBeZero) {
    // Turin hwID is 8 bytes: CHIP_ID[0..7] must match it and CHIP_ID[8..63] must be zero. The
    // first 8 bytes still match, so only the tail rule can refuse this (before the signature).
    Verifier ver;
    for (size_t off : {(size_t)8, (size_t)35, (size_t)63}) {
        auto report = vec("mstee_turin_v5_report.bin");
        ASSERT_EQ(report[ATTEST_OFF_CHIP_ID + off], 0);
        report[ATTEST_OFF_CHIP_ID + off] = 0x01;
        Result r = verify(ver, report, vec("mstee_turin_v5_vcek.der"));
        EXPECT_EQ(r.st, ATTEST_CHIP_ID_MISMATCH) << off << ": " << r.err.msg;
        EXPECT_NE(strstr(r.err.msg, "bytes 8..63 are not zero"), nullptr) << r.err.msg;
    }
    // A different first byte is a plain mismatch.
    auto report = vec("mstee_turin_v5_report.bin");
    report[ATTEST_OFF_CHIP_ID] ^= 0x01;
    Result other = verify(ver, report, vec("mstee_turin_v5_vcek.der"));
    EXPECT_EQ(other.st, ATTEST_CHIP_ID_MISMATCH);
    EXPECT_NE(strstr(other.err.msg, "not the chip the VCEK was issued for"), nullptr)
        << other.err.msg;
}

TEST(AttestVerify, MilanVcekAgainstGenoaChainFails) {
    Verifier ver(vector_path("genoa_cert_chain.pem"));
    Result r = verify(ver, vec("virtee_milan_v2_report.bin"), vec("virtee_milan_v2_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_CHAIN_INVALID) << r.err.msg;
}

TEST(AttestVerify, PeerSuppliedGenoaAskDoesNotRescueMilanVcek) {
    // Roots are the Genoa chain. The peer sends the genuine Milan ASK (DER) that did sign this
    // VCEK: it is still refused, because no trusted ARK signed that ASK.
    Verifier ver(vector_path("genoa_cert_chain.pem"));
    auto ask = pem_file_to_der("milan_ask.pem");
    ASSERT_FALSE(ask.empty());
    Result r = verify(ver, vec("virtee_milan_v2_report.bin"), vec("virtee_milan_v2_vcek.der"),
                      kFixedTime, ask);
    EXPECT_EQ(r.st, ATTEST_CHAIN_INVALID) << r.err.msg;
    // Nor does a peer-supplied ARK: a self-signed certificate from the peer is never an anchor.
    auto ark = pem_file_to_der("milan_ark.pem");
    Result r2 = verify(ver, vec("virtee_milan_v2_report.bin"), vec("virtee_milan_v2_vcek.der"),
                       kFixedTime, ark);
    EXPECT_EQ(r2.st, ATTEST_CHAIN_INVALID) << r2.err.msg;
}

TEST(AttestVerify, PeerSuppliedAskCompletesChainToConfiguredArk) {
    // Roots hold only ARK-Milan: without an ASK the VCEK has no issuer...
    Verifier ver(vector_path("milan_ark.pem"));
    auto report = vec("virtee_milan_v2_report.bin");
    auto vcek = vec("virtee_milan_v2_vcek.der");
    Result none = verify(ver, report, vcek);
    EXPECT_EQ(none.st, ATTEST_CHAIN_INVALID) << none.err.msg;
    // ...with the peer-supplied Milan ASK (DER) the chain is complete.
    auto ask = pem_file_to_der("milan_ask.pem");
    ASSERT_FALSE(ask.empty());
    Result ok = verify(ver, report, vcek, kFixedTime, ask);
    EXPECT_EQ(ok.st, ATTEST_OK) << ok.err.msg;
    EXPECT_EQ(ok.claims.product, ATTEST_PRODUCT_MILAN);
    // The Genoa ASK, signed by an ARK that is not configured, does not do it (a fresh verifier:
    // the one above has the VCEK's chain cached now).
    auto genoa_ask = pem_file_to_der("genoa_ask.pem");
    ASSERT_FALSE(genoa_ask.empty());
    Verifier other(vector_path("milan_ark.pem"));
    EXPECT_EQ(verify(other, report, vcek, kFixedTime, genoa_ask).st, ATTEST_CHAIN_INVALID);
}

// vectors/README.md §1: the Turin PEMs keep KDS's CRLF line endings and a parser must accept
// them. The KDS cert_chain file (ASK then ARK) is the roots file; the mstee Turin pair (§2.8)
// chains through both of its certificates.
TEST(AttestVerify, TurinCrlfCertChainPemIsRootsFile) {
    auto pem = vec("turin_cert_chain.pem");
    std::string text(pem.begin(), pem.end());
    ASSERT_NE(text.find("-----\r\n"), std::string::npos) << "the vector lost its CRLF endings";
    ASSERT_EQ(text.find_first_of('\n'), text.find("\r\n") + 1) << "not CRLF throughout";
    Verifier ver(vector_path("turin_cert_chain.pem"));
    ASSERT_NE(ver.v, nullptr);
    Result r = verify(ver, vec("mstee_turin_v5_report.bin"), vec("mstee_turin_v5_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_OK) << r.err.msg;
    EXPECT_EQ(r.claims.product, ATTEST_PRODUCT_TURIN);
    // Both certificates were read: with the ARK alone (the same CRLF form) there is no ASK.
    Verifier ark_only(vector_path("turin_ark.pem"));
    ASSERT_NE(ark_only.v, nullptr);
    EXPECT_EQ(verify(ark_only, vec("mstee_turin_v5_report.bin"), vec("mstee_turin_v5_vcek.der")).st,
              ATTEST_CHAIN_INVALID);
    // attest_cert_pem_to_der (atlsctl's PEM input) reads CRLF PEM to the same DER as LF PEM.
    std::string lf;
    for (char ch : text) {
        if (ch != '\r') {
            lf += ch;
        }
    }
    uint8_t a[ATTEST_CERT_DER_MAX_BYTES], b[ATTEST_CERT_DER_MAX_BYTES];
    size_t alen = 0, blen = 0;
    ASSERT_EQ(attest_cert_pem_to_der(a, sizeof(a), &alen, text.data(), text.size()), 0);
    ASSERT_EQ(attest_cert_pem_to_der(b, sizeof(b), &blen, lf.data(), lf.size()), 0);
    ASSERT_EQ(alen, blen);
    EXPECT_EQ(memcmp(a, b, alen), 0);
}

TEST(AttestVerify, RootsFileWithOnlyAskIsRejected) {
    attest_verifier_config cfg{};
    snprintf(cfg.roots, sizeof(cfg.roots), "%s", vector_path("milan_ask.pem").c_str());
    attest_error err{};
    attest_verifier *v = attest_verifier_new(&cfg, &err);
    EXPECT_EQ(v, nullptr);
    EXPECT_EQ(err.status, ATTEST_CONFIG_INVALID);
    attest_verifier_free(v);
}

TEST(AttestVerify, MissingRootsFileIsConfigError) {
    attest_verifier_config cfg{};
    snprintf(cfg.roots, sizeof(cfg.roots), "/nonexistent/ark.pem");
    attest_error err{};
    EXPECT_EQ(attest_verifier_new(&cfg, &err), nullptr);
    EXPECT_EQ(err.status, ATTEST_CONFIG_INVALID);
    EXPECT_NE(strstr(err.msg, "/nonexistent/ark.pem"), nullptr);
}

TEST(AttestVerify, VcekTcbDifferentFromReportedTcbFails) {
    Verifier ver;
    // mstee Milan VCEK (4/0/24/219) vs virtee Milan report (3/0/8/115).
    Result r = verify(ver, vec("virtee_milan_v2_report.bin"), vec("mstee_milan_v3_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_VCEK_TCB_MISMATCH) << r.err.msg;
}

TEST(AttestVerify, ProductMismatchBetweenCpuidAndChain) {
    Verifier ver;
    // Genoa report (CPUID Genoa) with a Milan VCEK that chains to the Milan root.
    Result r = verify(ver, vec("mstee_genoa_v3_report.bin"), vec("mstee_milan_v3_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_PRODUCT_MISMATCH) << r.err.msg;
}

TEST(AttestVerify, VlekReportWithVcekIsSignerMismatch) {
    Verifier ver;
    Result r = verify(ver, vec("trustee_milan_v3_vlek_report.bin"), vec("mstee_milan_v3_vcek.der"));
    EXPECT_EQ(r.st, ATTEST_SIGNER_MISMATCH) << r.err.msg;
}

TEST(AttestVerify, TruncatedReportIsMalformed) {
    Verifier ver;
    auto report = vec("virtee_milan_v2_report.bin");
    report.pop_back();
    EXPECT_EQ(verify(ver, report, vec("virtee_milan_v2_vcek.der")).st, ATTEST_REPORT_MALFORMED);
}

TEST(AttestVerify, OversizedReportIsMalformed) {
    Verifier ver;
    auto report = vec("virtee_milan_v2_report.bin");
    report.push_back(0);
    EXPECT_EQ(verify(ver, report, vec("virtee_milan_v2_vcek.der")).st, ATTEST_REPORT_MALFORMED);
}

TEST(AttestVerify, GarbageVcekIsChainInvalid) {
    Verifier ver;
    std::vector<uint8_t> junk(300, 0x30);
    EXPECT_EQ(verify(ver, vec("virtee_milan_v2_report.bin"), junk).st, ATTEST_CHAIN_INVALID);
}

TEST(AttestVerify, TurinVcekWithV2ReportIsRejected) {
    Verifier ver;
    // The chain (Turin) verifies, but Turin reports must be v3+.
    Result r = verify(ver, vec("virtee_milan_v2_report.bin"), vec("virtee_turin_vcek_noreport.der"));
    EXPECT_EQ(r.st, ATTEST_REPORT_MALFORMED) << r.err.msg;
}

TEST(AttestVerify, TurinNoReportVcekChainsButTcbDiffers) {
    Verifier ver;
    // virtee's Turin VCEK chains to ARK-Turin; its SPLs (fmc 0, ucode 9) are not the report's.
    Result r = verify(ver, vec("mstee_turin_v5_report.bin"), vec("virtee_turin_vcek_noreport.der"));
    EXPECT_EQ(r.st, ATTEST_VCEK_TCB_MISMATCH) << r.err.msg;
}

TEST(AttestVerify, TurinNoReportVcekParses) {
    auto der = vec("virtee_turin_vcek_noreport.der");
    attest_vcek_info info{};
    attest_error err{};
    ASSERT_EQ(attest_vcek_parse(&info, &err, der.data(), der.size()), ATTEST_OK) << err.msg;
    EXPECT_EQ(info.struct_version, 1u);
    EXPECT_STREQ(info.product_name, "Turin");
    EXPECT_TRUE(info.has_fmc);
    EXPECT_EQ(info.fmc, 0u);
    EXPECT_EQ(info.ucode, 9u);
    EXPECT_EQ(info.hwid_len, 8u);
    EXPECT_EQ(hex(info.hwid, 8), "1e550a8ee5cf9f4d");
    EXPECT_EQ(info.signer, ATTEST_SIGNER_VCEK);
}

TEST(AttestVerify, VlekInfoHasCspIdAndTwoByteUcode) {
    auto der = vec("trustee_milan_v3_vlek.der");
    attest_vcek_info info{};
    ASSERT_EQ(attest_vcek_parse(&info, nullptr, der.data(), der.size()), ATTEST_OK);
    EXPECT_EQ(info.signer, ATTEST_SIGNER_VLEK);
    EXPECT_EQ(info.ucode, 217u);
    EXPECT_EQ(info.hwid_len, 0u);
    EXPECT_STREQ(info.csp_id, "CN=cc-us-east-2.amazonaws.com");
}

TEST(AttestVerify, NoVcekAndNoDirIsVcekMissing) {
    Verifier ver;
    Result r = verify(ver, vec("virtee_milan_v2_report.bin"), {});
    EXPECT_EQ(r.st, ATTEST_VCEK_MISSING) << r.err.msg;
}

TEST(AttestVerify, VcekDirSuppliesVcekByReportName) {
    std::string dir = std::string(ATLS_BINARY_DIR) + "/tests/attest/vcek-dir-" +
                      std::to_string(getpid());
    mkdir(dir.c_str(), 0700);
    auto report = vec("mstee_turin_v5_report.bin");
    attest_claims c{};
    ASSERT_EQ(attest_report_parse(&c, nullptr, report.data(), report.size()), ATTEST_OK);
    char name[200];
    ASSERT_EQ(attest_report_vcek_file_name(name, sizeof(name), &c), 0);
    EXPECT_STREQ(name, "59790fb1c39f35c1-5100000004010101.der");
    std::string path = dir + "/" + name;
    auto vcek = vec("mstee_turin_v5_vcek.der");
    FILE *f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    fwrite(vcek.data(), 1, vcek.size(), f);
    fclose(f);
    Verifier ver("builtin", dir);
    Result r = verify(ver, report, {});
    EXPECT_EQ(r.st, ATTEST_OK) << r.err.msg;
    // A report for another chip finds no file.
    Result miss = verify(ver, vec("virtee_milan_v2_report.bin"), {});
    EXPECT_EQ(miss.st, ATTEST_VCEK_MISSING);
    unlink(path.c_str());
    rmdir(dir.c_str());
}

TEST(AttestVerify, ChainCacheHitsOnRepeatedVcekAndStaysBounded) {
    Verifier ver("builtin", "", 2);
    auto report = vec("virtee_milan_v2_report.bin");
    auto vcek = vec("virtee_milan_v2_vcek.der");
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(verify(ver, report, vcek).st, ATTEST_OK);
    }
    uint64_t hits = 0, misses = 0;
    uint32_t entries = 0;
    attest_verifier_cache_stats(ver.v, &hits, &misses, &entries);
    EXPECT_EQ(misses, 1u);
    EXPECT_EQ(hits, 4u);
    for (const Pair &p : kPairs) {
        ASSERT_EQ(verify(ver, vec(p.report), vec(p.vcek), time_for(p)).st, ATTEST_OK) << p.report;
    }
    attest_verifier_cache_stats(ver.v, &hits, &misses, &entries);
    EXPECT_EQ(entries, 2u);
    // A cached chain still enforces time: the VLEK entry is fresh, at real time it is expired.
    Result r = verify(ver, vec("trustee_milan_v3_vlek_report.bin"),
                      vec("trustee_milan_v3_vlek.der"), (int64_t)time(nullptr));
    EXPECT_EQ(r.st, ATTEST_CERT_EXPIRED);
}

TEST(AttestVerify, CachedVcekStillChecksEachReportSignature) {
    Verifier ver;
    auto report = vec("mstee_genoa_v3_report.bin");
    auto vcek = vec("mstee_genoa_v3_vcek.der");
    ASSERT_EQ(verify(ver, report, vcek).st, ATTEST_OK);
    report[0x1A0 + 70] ^= 0; // no-op; now tamper the measurement
    report[0x91] ^= 0x10;
    EXPECT_EQ(verify(ver, report, vcek).st, ATTEST_SIGNATURE_INVALID);
}

TEST(AttestVerify, StatusCodesAreStable) {
    // Audit records store these strings (DESIGN.md §7): every code, spelled exactly. A new code
    // must be added here, or this fails to compile.
    static_assert(ATTEST_STATUS_COUNT == 17, "a status code was added or removed: list it below");
    const std::pair<attest_status, const char *> kCodes[] = {
        {ATTEST_OK, "OK"},
        {ATTEST_REPORT_MALFORMED, "REPORT_MALFORMED"},
        {ATTEST_EVIDENCE_MALFORMED, "EVIDENCE_MALFORMED"},
        {ATTEST_SIGNATURE_INVALID, "SIGNATURE_INVALID"},
        {ATTEST_CHAIN_INVALID, "CHAIN_INVALID"},
        {ATTEST_CERT_EXPIRED, "CERT_EXPIRED"},
        {ATTEST_VCEK_MISSING, "VCEK_MISSING"},
        {ATTEST_VCEK_MALFORMED, "VCEK_MALFORMED"},
        {ATTEST_VCEK_TCB_MISMATCH, "VCEK_TCB_MISMATCH"},
        {ATTEST_CHIP_ID_MISMATCH, "CHIP_ID_MISMATCH"},
        {ATTEST_PRODUCT_MISMATCH, "PRODUCT_MISMATCH"},
        {ATTEST_SIGNER_MISMATCH, "SIGNER_MISMATCH"},
        {ATTEST_BINDING_MISMATCH, "BINDING_MISMATCH"},
        {ATTEST_CONFIG_INVALID, "CONFIG_INVALID"},
        {ATTEST_PROVIDER_UNAVAILABLE, "PROVIDER_UNAVAILABLE"},
        {ATTEST_PROVIDER_FAILED, "PROVIDER_FAILED"},
        {ATTEST_INTERNAL, "INTERNAL"},
    };
    ASSERT_EQ(std::size(kCodes), (size_t)ATTEST_STATUS_COUNT);
    std::set<std::string> seen;
    for (size_t i = 0; i < std::size(kCodes); i++) {
        EXPECT_EQ((size_t)kCodes[i].first, i) << "enum values are stable too: " << kCodes[i].second;
        EXPECT_STREQ(attest_status_code(kCodes[i].first), kCodes[i].second);
        EXPECT_TRUE(seen.insert(attest_status_code(kCodes[i].first)).second)
            << "duplicate code " << kCodes[i].second;
    }
    EXPECT_STREQ(attest_status_code(ATTEST_STATUS_COUNT), "INTERNAL");
    EXPECT_STREQ(attest_status_code((attest_status)999), "INTERNAL");
    EXPECT_STREQ(attest_status_code((attest_status)-1), "INTERNAL");
}

// ---- the fixed-base P-384 tables (attest_p384.c) -----------------------------------------------

TEST(AttestVerifyTable, EveryVectorVerifiesThroughItsKeysTable) {
    Verifier ver;
    uint64_t fast = 0, builds = 0;
    for (const Pair &p : kPairs) {
        // First two verifications with BoringSSL; the second builds the key's table, if a slot
        // is free; the third goes through the table.
        for (int i = 0; i < 3; i++) {
            Result r = verify(ver, vec(p.report), vec(p.vcek), time_for(p));
            ASSERT_EQ(r.st, ATTEST_OK) << p.report << " round " << i << ": " << r.err.msg;
        }
    }
    attest_verifier_table_stats(ver.v, &fast, &builds);
    EXPECT_EQ(builds, (uint64_t)ATTEST_P384_TABLES_MAX);
    EXPECT_EQ(fast, (uint64_t)ATTEST_P384_TABLES_MAX);
    // The later keys found every slot taken: they keep BoringSSL until enough slow
    // verifications have passed, then one takes the least recently used table.
    const Pair &last = kPairs[sizeof(kPairs) / sizeof(kPairs[0]) - 1];
    for (uint32_t i = 0; i < ATTEST_P384_STEAL_AFTER + 8; i++) {
        ASSERT_EQ(verify(ver, vec(last.report), vec(last.vcek), time_for(last)).st, ATTEST_OK);
    }
    uint64_t fast2 = 0, builds2 = 0;
    attest_verifier_table_stats(ver.v, &fast2, &builds2);
    EXPECT_EQ(builds2, builds + 1); // one steal, not one per verification
    EXPECT_GT(fast2, fast);
    // The key that lost its table (the least recently used: the first) verifies again.
    EXPECT_EQ(verify(ver, vec(kPairs[0].report), vec(kPairs[0].vcek), time_for(kPairs[0])).st,
              ATTEST_OK);
}

TEST(AttestVerifyTable, AlteredReportOrSignatureFailsThroughTheTable) {
    Verifier ver;
    auto report = vec("mstee_genoa_v3_report.bin");
    auto vcek = vec("mstee_genoa_v3_vcek.der");
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(verify(ver, report, vcek).st, ATTEST_OK);
    }
    uint64_t fast = 0, builds = 0;
    attest_verifier_table_stats(ver.v, &fast, &builds);
    ASSERT_EQ(builds, 1u);
    ASSERT_EQ(fast, 1u);
    struct Change {
        size_t off;
        uint8_t mask;
    };
    const Change changes[] = {
        {0x091, 0x10},      // MEASUREMENT
        {0x050, 0x01},      // REPORT_DATA
        {0x2A0, 0x01},      // r, lowest byte
        {0x2A0 + 47, 0x80}, // r, highest byte of 48
        {0x2E8, 0x01},      // s, lowest byte
        {0x2E8 + 47, 0x01}, // s, highest byte of 48
    };
    for (const Change &c : changes) {
        auto bad = report;
        bad[c.off] ^= c.mask;
        Result r = verify(ver, bad, vcek);
        EXPECT_EQ(r.st, ATTEST_SIGNATURE_INVALID) << "offset 0x" << std::hex << c.off;
    }
    uint64_t fast2 = 0;
    attest_verifier_table_stats(ver.v, &fast2, &builds);
    EXPECT_EQ(fast2, fast + sizeof(changes) / sizeof(changes[0])); // all through the table
    // r or s above 384 bits is refused by the report parser before any signature check.
    for (size_t off : {0x2A0u + 48u, 0x2E8u + 71u}) {
        auto bad = report;
        bad[off] ^= 0x01;
        EXPECT_EQ(verify(ver, bad, vcek).st, ATTEST_REPORT_MALFORMED) << off;
    }
    EXPECT_EQ(verify(ver, report, vcek).st, ATTEST_OK);
}
