// attest_sim_test.cc: attest/attest_sim.c and attest/attest_cert.c: the simulated AMD hierarchy
// signs reports that the unmodified verifier accepts under roots = sim ark.pem (and rejects under
// builtin roots); client certificates round-trip through the gateway's cheap and full checks.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest_test_util.h"

using namespace attest_test;

const attest_provider_ops &attest_sim_ops_ref();

namespace {

const auto *env = ::testing::AddGlobalTestEnvironment(new SimEnv);

std::vector<uint8_t> pem_cert_to_der(const char *pem) {
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    std::vector<uint8_t> out;
    if (x == nullptr) {
        return out;
    }
    uint8_t *der = nullptr;
    int len = i2d_X509(x, &der);
    out.assign(der, der + len);
    OPENSSL_free(der);
    X509_free(x);
    return out;
}

attest_provider_config sim_cfg() {
    attest_provider_config cfg;
    attest_provider_config_init(&cfg);
    snprintf(cfg.sim_dir, sizeof(cfg.sim_dir), "%s", sim_dir().c_str());
    return cfg;
}

struct Made {
    attest_status st;
    attest_error err;
    attest_client_cert cert;
    std::vector<uint8_t> der;
};

Made make(const attest_provider_config &cfg, const std::vector<uint8_t> &nonce,
          attest_cert_key_type kt = ATTEST_CERT_KEY_ED25519) {
    Made m{};
    m.st = attest_cert_make(&m.cert, &m.err, &attest_sim_ops_ref(), &cfg, kt, nonce.data(),
                            nonce.size(), 86400);
    if (m.st == ATTEST_OK) {
        m.der = pem_cert_to_der(m.cert.cert_pem);
    }
    return m;
}

struct Verifier {
    attest_verifier *v = nullptr;
    explicit Verifier(const std::string &roots) {
        attest_verifier_config cfg{};
        snprintf(cfg.roots, sizeof(cfg.roots), "%s", roots.c_str());
        attest_error err{};
        v = attest_verifier_new(&cfg, &err);
        EXPECT_NE(v, nullptr) << err.msg;
    }
    ~Verifier() { attest_verifier_free(v); }
};

std::vector<uint8_t> nonce32(uint8_t fill) {
    return std::vector<uint8_t>(32, fill);
}

} // namespace

const attest_provider_ops &attest_sim_ops_ref() {
    return *attest_provider_find("simulated");
}

TEST(AttestSim, HierarchyFilesExistAndKeysArePrivate) {
    for (const char *f : {"ark.pem", "ask.pem", "vcek.der", "ark.key", "ask.key", "vcek.key"}) {
        struct stat st {};
        ASSERT_EQ(stat((sim_dir() + "/" + f).c_str(), &st), 0) << f;
        if (strstr(f, ".key") != nullptr) {
            EXPECT_EQ(st.st_mode & 077, 0u) << f;
        }
    }
}

TEST(AttestSim, EnsureReusesExistingHierarchy) {
    auto before = read_bytes(sim_ark());
    attest_provider_config cfg = sim_cfg();
    ASSERT_EQ(attest_sim_ensure(nullptr, sim_dir().c_str(), &cfg.sim), ATTEST_OK);
    EXPECT_EQ(read_bytes(sim_ark()), before);
}

TEST(AttestSim, RoundTripVerifiesWithSimRootAndClaimsMatch) {
    attest_provider_config cfg = sim_cfg();
    for (size_t i = 0; i < 48; i++) {
        cfg.sim.measurement[i] = (uint8_t)(0x40 + i);
    }
    cfg.sim.policy |= ATTEST_POLICY_DEBUG;
    cfg.sim.guest_svn = 7;
    cfg.sim.tcb_bl = 4;
    cfg.sim.tcb_tee = 1;
    cfg.sim.tcb_snp = 22;
    cfg.sim.tcb_ucode = 213;
    cfg.sim.chip_id[0] = 0x5a;
    auto nonce = nonce32(0x77);
    Made m = make(cfg, nonce);
    ASSERT_EQ(m.st, ATTEST_OK) << m.err.msg;
    ASSERT_FALSE(m.der.empty());
    EXPECT_NE(strstr(m.cert.key_pem, "BEGIN PRIVATE KEY"), nullptr);

    // Cheap part (TLS verify callback).
    attest_evidence ev{};
    attest_error err{};
    ASSERT_EQ(attest_evidence_from_cert(&ev, &err, m.der.data(), m.der.size()), ATTEST_OK)
        << err.msg;
    ASSERT_EQ(attest_evidence_check_binding(&ev, &err), ATTEST_OK) << err.msg;
    EXPECT_EQ(ev.nonce_len, 32u);
    EXPECT_EQ(memcmp(ev.nonce, nonce.data(), 32), 0);
    EXPECT_GT(ev.vcek_len, 0u);
    EXPECT_GT(ev.chain_len, 0u);

    // Expensive part (after the handshake).
    Verifier ver(sim_ark());
    attest_claims c{};
    ASSERT_EQ(attest_verifier_verify_evidence(ver.v, &c, &err, &ev, (int64_t)time(nullptr)),
              ATTEST_OK)
        << attest_status_code(err.status) << ": " << err.msg;
    EXPECT_TRUE(c.verified);
    EXPECT_EQ(memcmp(c.measurement, cfg.sim.measurement, 48), 0);
    EXPECT_TRUE(c.debug);
    EXPECT_TRUE(c.smt_allowed);
    EXPECT_EQ(c.guest_svn, 7u);
    EXPECT_EQ(c.reported_tcb.bl, 4);
    EXPECT_EQ(c.reported_tcb.tee, 1);
    EXPECT_EQ(c.reported_tcb.snp, 22);
    EXPECT_EQ(c.reported_tcb.ucode, 213);
    EXPECT_EQ(c.chip_id[0], 0x5a);
    EXPECT_EQ(c.product, ATTEST_PRODUCT_GENOA);
    EXPECT_EQ(c.signer, ATTEST_SIGNER_VCEK);
    attest_cert_cleanup(&m.cert);
    attest_cert_cleanup(&m.cert); // idempotent
}

TEST(AttestSim, P256ClientKeyAlsoWorks) {
    Made m = make(sim_cfg(), nonce32(0x01), ATTEST_CERT_KEY_P256);
    ASSERT_EQ(m.st, ATTEST_OK) << m.err.msg;
    attest_evidence ev{};
    ASSERT_EQ(attest_evidence_from_cert(&ev, nullptr, m.der.data(), m.der.size()), ATTEST_OK);
    Verifier ver(sim_ark());
    attest_claims c{};
    attest_error err{};
    EXPECT_EQ(attest_verifier_verify_evidence(ver.v, &c, &err, &ev, (int64_t)time(nullptr)),
              ATTEST_OK)
        << err.msg;
    attest_cert_cleanup(&m.cert);
}

TEST(AttestSim, SimEvidenceRejectedWithBuiltinRoots) {
    Made m = make(sim_cfg(), nonce32(0x02));
    ASSERT_EQ(m.st, ATTEST_OK);
    attest_evidence ev{};
    ASSERT_EQ(attest_evidence_from_cert(&ev, nullptr, m.der.data(), m.der.size()), ATTEST_OK);
    Verifier ver("builtin");
    attest_claims c{};
    attest_error err{};
    EXPECT_EQ(attest_verifier_verify_evidence(ver.v, &c, &err, &ev, (int64_t)time(nullptr)),
              ATTEST_CHAIN_INVALID)
        << err.msg;
    EXPECT_FALSE(c.verified);
    attest_cert_cleanup(&m.cert);
}

TEST(AttestSim, PeerSuppliedArkIsNeverAnAnchor) {
    Made m = make(sim_cfg(), nonce32(0x03));
    ASSERT_EQ(m.st, ATTEST_OK);
    attest_evidence ev{};
    ASSERT_EQ(attest_evidence_from_cert(&ev, nullptr, m.der.data(), m.der.size()), ATTEST_OK);
    // Put the self-made ARK itself in the chain field: still no anchor under builtin roots.
    auto ark_bytes = read_bytes(sim_ark());
    std::string ark_pem(ark_bytes.begin(), ark_bytes.end());
    auto ark_der = pem_cert_to_der(ark_pem.c_str());
    ASSERT_FALSE(ark_der.empty());
    memcpy(ev.chain_der, ark_der.data(), ark_der.size());
    ev.chain_len = ark_der.size();
    Verifier ver("builtin");
    attest_claims c{};
    EXPECT_EQ(attest_verifier_verify_evidence(ver.v, &c, nullptr, &ev, (int64_t)time(nullptr)),
              ATTEST_CHAIN_INVALID);
    attest_cert_cleanup(&m.cert);
}

TEST(AttestSim, EvidenceBoundToAnotherKeyFails) {
    Made a = make(sim_cfg(), nonce32(0x04));
    Made b = make(sim_cfg(), nonce32(0x04));
    ASSERT_EQ(a.st, ATTEST_OK);
    ASSERT_EQ(b.st, ATTEST_OK);
    attest_evidence ea{}, eb{};
    ASSERT_EQ(attest_evidence_from_cert(&ea, nullptr, a.der.data(), a.der.size()), ATTEST_OK);
    ASSERT_EQ(attest_evidence_from_cert(&eb, nullptr, b.der.data(), b.der.size()), ATTEST_OK);
    // A's report lifted into B's certificate: same nonce, different key.
    memcpy(eb.report, ea.report, ATTEST_REPORT_BYTES);
    Verifier ver(sim_ark());
    attest_claims c{};
    attest_error err{};
    EXPECT_EQ(attest_verifier_verify_evidence(ver.v, &c, &err, &eb, (int64_t)time(nullptr)),
              ATTEST_BINDING_MISMATCH);
    attest_cert_cleanup(&a.cert);
    attest_cert_cleanup(&b.cert);
}

// The test helper behind `atlsctl client-cert --bind-other-key`: a certificate whose report binds
// another key fails the binding check (only), its well-bound twin passes.
TEST(AttestSim, MisboundCertFailsOnlyTheBinding) {
    attest_provider_config cfg = sim_cfg();
    std::vector<uint8_t> nonce = nonce32(0x0b);
    Made m{};
    m.st = attest_cert_make_misbound(&m.cert, &m.err, &attest_sim_ops_ref(), &cfg,
                                     ATTEST_CERT_KEY_ED25519, nonce.data(), nonce.size(), 86400);
    ASSERT_EQ(m.st, ATTEST_OK) << m.err.msg;
    m.der = pem_cert_to_der(m.cert.cert_pem);
    attest_evidence ev{};
    ASSERT_EQ(attest_evidence_from_cert(&ev, nullptr, m.der.data(), m.der.size()), ATTEST_OK);
    EXPECT_EQ(attest_evidence_check_binding(&ev, nullptr), ATTEST_BINDING_MISMATCH);
    // Everything but the binding is genuine: the report verifies on its own.
    Verifier ver(sim_ark());
    attest_claims c{};
    attest_error err{};
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, &err, ev.report, ATTEST_REPORT_BYTES,
                                            ev.vcek_len ? ev.vcek_der : nullptr, ev.vcek_len,
                                            ev.chain_len ? ev.chain_der : nullptr, ev.chain_len,
                                            (int64_t)time(nullptr)),
              ATTEST_OK)
        << err.msg;
    Made good = make(cfg, nonce);
    ASSERT_EQ(good.st, ATTEST_OK);
    attest_evidence gev{};
    ASSERT_EQ(attest_evidence_from_cert(&gev, nullptr, good.der.data(), good.der.size()),
              ATTEST_OK);
    EXPECT_EQ(attest_evidence_check_binding(&gev, nullptr), ATTEST_OK);
    attest_cert_cleanup(&m.cert);
    attest_cert_cleanup(&good.cert);
}

TEST(AttestSim, EvidenceWithAnotherNonceFails) {
    Made a = make(sim_cfg(), nonce32(0x05));
    ASSERT_EQ(a.st, ATTEST_OK);
    attest_evidence ev{};
    ASSERT_EQ(attest_evidence_from_cert(&ev, nullptr, a.der.data(), a.der.size()), ATTEST_OK);
    ev.nonce[5] ^= 0xFF; // the gateway's nonce differs from the one the report binds
    EXPECT_EQ(attest_evidence_check_binding(&ev, nullptr), ATTEST_BINDING_MISMATCH);
    attest_cert_cleanup(&a.cert);
}

TEST(AttestSim, VcekTcbNotReportedTcbFails) {
    // Default params: the persisted vcek.key is the VCEK for TCB 3/0/8/115.
    attest_provider_config cfg = sim_cfg();
    uint8_t rd[64] = {0};
    uint8_t report[ATTEST_REPORT_BYTES];
    attest_sim_build_report(report, &cfg.sim, rd);
    report[0x180 + 7] = 116; // REPORTED_TCB.ucode != VCEK ucodeSPL; signature still valid
    ASSERT_EQ(attest_sim_sign_report(report, nullptr, (sim_dir() + "/vcek.key").c_str()),
              ATTEST_OK);
    auto vcek = read_bytes(sim_dir() + "/vcek.der");
    auto ask_bytes = read_bytes(sim_dir() + "/ask.pem");
    auto ask = pem_cert_to_der(std::string(ask_bytes.begin(), ask_bytes.end()).c_str());
    Verifier ver(sim_ark());
    attest_claims c{};
    attest_error err{};
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, &err, report, sizeof(report), vcek.data(),
                                            vcek.size(), ask.data(), ask.size(),
                                            (int64_t)time(nullptr)),
              ATTEST_VCEK_TCB_MISMATCH)
        << err.msg;
    // Control: the untouched report verifies.
    attest_sim_build_report(report, &cfg.sim, rd);
    ASSERT_EQ(attest_sim_sign_report(report, nullptr, (sim_dir() + "/vcek.key").c_str()),
              ATTEST_OK);
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, &err, report, sizeof(report), vcek.data(),
                                            vcek.size(), ask.data(), ask.size(),
                                            (int64_t)time(nullptr)),
              ATTEST_OK)
        << err.msg;
}

TEST(AttestSim, SignedButNonZeroReservedByteIsMalformed) {
    attest_provider_config cfg = sim_cfg();
    uint8_t rd[64] = {0};
    uint8_t report[ATTEST_REPORT_BYTES];
    attest_sim_build_report(report, &cfg.sim, rd);
    report[0x1EB] = 1; // reserved, inside the signed region: the signature would be fine
    ASSERT_EQ(attest_sim_sign_report(report, nullptr, (sim_dir() + "/vcek.key").c_str()),
              ATTEST_OK);
    auto vcek = read_bytes(sim_dir() + "/vcek.der");
    Verifier ver(sim_ark());
    attest_claims c{};
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, nullptr, report, sizeof(report),
                                            vcek.data(), vcek.size(), nullptr, 0,
                                            (int64_t)time(nullptr)),
              ATTEST_REPORT_MALFORMED);
}

TEST(AttestSim, VcekFromAnotherChipFails) {
    attest_provider_config cfg_a = sim_cfg();
    attest_provider_config cfg_b = sim_cfg();
    cfg_b.sim.chip_id[10] ^= 0x55;
    void *sa = nullptr, *sb = nullptr;
    ASSERT_EQ(attest_sim_ops_ref().open(&sa, nullptr, &cfg_a), ATTEST_OK);
    ASSERT_EQ(attest_sim_ops_ref().open(&sb, nullptr, &cfg_b), ATTEST_OK);
    uint8_t rd[64] = {0};
    attest_report_out ra{}, rb{};
    ASSERT_EQ(attest_sim_ops_ref().get_report(sa, &ra, nullptr, rd), ATTEST_OK);
    ASSERT_EQ(attest_sim_ops_ref().get_report(sb, &rb, nullptr, rd), ATTEST_OK);
    Verifier ver(sim_ark());
    attest_claims c{};
    attest_error err{};
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, &err, ra.report, sizeof(ra.report),
                                            rb.vcek_der, rb.vcek_len, rb.ask_der, rb.ask_len,
                                            (int64_t)time(nullptr)),
              ATTEST_CHIP_ID_MISMATCH)
        << err.msg;
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, &err, rb.report, sizeof(rb.report),
                                            rb.vcek_der, rb.vcek_len, rb.ask_der, rb.ask_len,
                                            (int64_t)time(nullptr)),
              ATTEST_OK)
        << err.msg;
    attest_sim_ops_ref().close(sa);
    attest_sim_ops_ref().close(sb);
}

TEST(AttestSim, MaskedChipIdWithVcekFails) {
    // The host masked CHIP_ID (all zero) and the VCEK's hwID is all zero too: they "match", the
    // report is validly signed by that VCEK, and only the masked-chip rule rejects it (a VCEK
    // report must name its chip; docs/snp-verification.md §5 step 7).
    attest_provider_config masked = sim_cfg();
    memset(masked.sim.chip_id, 0, sizeof(masked.sim.chip_id));
    void *st = nullptr;
    attest_error err{};
    ASSERT_EQ(attest_sim_ops_ref().open(&st, &err, &masked), ATTEST_OK) << err.msg;
    uint8_t rd[64] = {0};
    attest_report_out r{};
    ASSERT_EQ(attest_sim_ops_ref().get_report(st, &r, &err, rd), ATTEST_OK) << err.msg;
    attest_sim_ops_ref().close(st);
    attest_vcek_info info{};
    ASSERT_EQ(attest_vcek_parse(&info, &err, r.vcek_der, r.vcek_len), ATTEST_OK) << err.msg;
    ASSERT_EQ(info.hwid_len, 64u);
    ASSERT_EQ(memcmp(info.hwid, r.report + ATTEST_OFF_CHIP_ID, 64), 0);
    Verifier ver(sim_ark());
    attest_claims c{};
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, &err, r.report, sizeof(r.report),
                                            r.vcek_der, r.vcek_len, r.ask_der, r.ask_len,
                                            (int64_t)time(nullptr)),
              ATTEST_CHIP_ID_MISMATCH)
        << err.msg;
    EXPECT_NE(strstr(err.msg, "all zero (masked"), nullptr) << err.msg;
    EXPECT_FALSE(c.verified);
    // Control: one non-zero chip byte, VCEK issued for it, same path: verifies.
    attest_provider_config one = masked;
    one.sim.chip_id[63] = 1;
    ASSERT_EQ(attest_sim_ops_ref().open(&st, &err, &one), ATTEST_OK) << err.msg;
    ASSERT_EQ(attest_sim_ops_ref().get_report(st, &r, &err, rd), ATTEST_OK) << err.msg;
    attest_sim_ops_ref().close(st);
    EXPECT_EQ(attest_verifier_verify_report(ver.v, &c, &err, r.report, sizeof(r.report),
                                            r.vcek_der, r.vcek_len, r.ask_der, r.ask_len,
                                            (int64_t)time(nullptr)),
              ATTEST_OK)
        << err.msg;
}

// ---- signature scheme of every chain certificate ---------------------------------------------
// AMD signs the ARK (itself), the ASK and the VCEK with RSASSA-PSS SHA-384 / MGF1-SHA-384 /
// salt 48. BoringSSL's X509_verify also accepts PKCS#1 v1.5 and PSS with SHA-256 or SHA-512, so
// each wrong scheme below has a signature that verifies; only the scheme check refuses it.

namespace {

struct Scheme {
    attest_sim_sig sig;
    const char *name;
};
const Scheme kSchemes[] = {
    {ATTEST_SIM_SIG_AMD, "AMD RSASSA-PSS SHA-384 salt 48"},
    {ATTEST_SIM_SIG_PKCS1_SHA384, "PKCS#1 v1.5 SHA-384"},
    {ATTEST_SIM_SIG_PSS_SHA256, "RSASSA-PSS SHA-256 salt 32"},
    {ATTEST_SIM_SIG_PSS_SHA512, "RSASSA-PSS SHA-512 salt 64"},
};

std::vector<uint8_t> reissue(attest_sim_cert which, attest_sim_sig sig) {
    attest_provider_config cfg = sim_cfg();
    std::vector<uint8_t> der(ATTEST_CERT_DER_MAX_BYTES);
    size_t len = 0;
    attest_error err{};
    EXPECT_EQ(attest_sim_reissue(der.data(), der.size(), &len, &err, sim_dir().c_str(), which,
                                 sig, &cfg.sim),
              ATTEST_OK)
        << err.msg;
    der.resize(len);
    return der;
}

X509 *parse(const std::vector<uint8_t> &der) {
    const uint8_t *p = der.data();
    return d2i_X509(nullptr, &p, (long)der.size());
}

std::vector<uint8_t> file_cert_der(const std::string &path) {
    auto bytes = read_bytes(path);
    return pem_cert_to_der(std::string(bytes.begin(), bytes.end()).c_str());
}

// signature_verifies: BoringSSL alone accepts `der`'s signature under `issuer_der`'s key.
bool signature_verifies(const std::vector<uint8_t> &der, const std::vector<uint8_t> &issuer_der) {
    X509 *x = parse(der), *issuer = parse(issuer_der);
    EVP_PKEY *pk = issuer == nullptr ? nullptr : X509_get_pubkey(issuer);
    bool ok = x != nullptr && pk != nullptr && X509_verify(x, pk) == 1;
    EVP_PKEY_free(pk);
    X509_free(issuer);
    X509_free(x);
    ERR_clear_error();
    return ok;
}

// write_roots writes the DER certificates as one PEM file and returns its path.
std::string write_roots(const std::string &tag, const std::vector<std::vector<uint8_t>> &certs) {
    std::string path = std::string(ATLS_BINARY_DIR) + "/tests/attest/roots-" + tag + "-" +
                       std::to_string(getpid()) + ".pem";
    BIO *bio = BIO_new_file(path.c_str(), "w");
    EXPECT_NE(bio, nullptr);
    for (const auto &der : certs) {
        X509 *x = parse(der);
        EXPECT_NE(x, nullptr);
        EXPECT_EQ(PEM_write_bio_X509(bio, x), 1);
        X509_free(x);
    }
    BIO_free(bio);
    return path;
}

// signed_sim_report: a default-params report signed by the persisted vcek.key.
std::vector<uint8_t> signed_sim_report() {
    attest_provider_config cfg = sim_cfg();
    uint8_t rd[64] = {0x42};
    std::vector<uint8_t> report(ATTEST_REPORT_BYTES);
    attest_sim_build_report(report.data(), &cfg.sim, rd);
    EXPECT_EQ(attest_sim_sign_report(report.data(), nullptr, (sim_dir() + "/vcek.key").c_str()),
              ATTEST_OK);
    return report;
}

attest_status verify_with(const std::string &roots, const std::vector<uint8_t> &vcek,
                          const std::vector<uint8_t> &ask, attest_error *err) {
    Verifier ver(roots);
    if (ver.v == nullptr) {
        return ATTEST_CONFIG_INVALID;
    }
    auto report = signed_sim_report();
    attest_claims c{};
    return attest_verifier_verify_report(ver.v, &c, err, report.data(), report.size(),
                                         vcek.data(), vcek.size(),
                                         ask.empty() ? nullptr : ask.data(), ask.size(),
                                         (int64_t)time(nullptr));
}

} // namespace

TEST(AttestSim, VcekMustBeSignedWithAmdPssParameters) {
    auto ask = file_cert_der(sim_dir() + "/ask.pem");
    ASSERT_FALSE(ask.empty());
    for (const Scheme &sc : kSchemes) {
        SCOPED_TRACE(sc.name);
        auto vcek = reissue(ATTEST_SIM_CERT_VCEK, sc.sig);
        ASSERT_FALSE(vcek.empty());
        ASSERT_TRUE(signature_verifies(vcek, ask)) << "the test input must be validly signed";
        attest_error err{};
        attest_status st = verify_with(sim_ark(), vcek, ask, &err);
        if (sc.sig == ATTEST_SIM_SIG_AMD) {
            EXPECT_EQ(st, ATTEST_OK) << err.msg;
        } else {
            EXPECT_EQ(st, ATTEST_CHAIN_INVALID) << err.msg;
            EXPECT_NE(strstr(err.msg, "RSASSA-PSS"), nullptr) << err.msg;
        }
        // attest_vcek_parse inspects extensions only; the scheme is a chain property.
        attest_vcek_info info{};
        EXPECT_EQ(attest_vcek_parse(&info, nullptr, vcek.data(), vcek.size()), ATTEST_OK);
    }
}

TEST(AttestSim, ConfiguredArkMustBeSelfSignedWithAmdPssParameters) {
    for (const Scheme &sc : kSchemes) {
        SCOPED_TRACE(sc.name);
        auto ark = reissue(ATTEST_SIM_CERT_ARK, sc.sig);
        ASSERT_FALSE(ark.empty());
        ASSERT_TRUE(signature_verifies(ark, ark));
        std::string roots = write_roots("ark", {ark});
        attest_verifier_config cfg{};
        snprintf(cfg.roots, sizeof(cfg.roots), "%s", roots.c_str());
        attest_error err{};
        attest_verifier *v = attest_verifier_new(&cfg, &err);
        if (sc.sig == ATTEST_SIM_SIG_AMD) {
            EXPECT_NE(v, nullptr) << err.msg;
            // This ARK (same key and name) anchors the unchanged ASK and VCEK.
            EXPECT_EQ(verify_with(roots, read_bytes(sim_dir() + "/vcek.der"),
                                  file_cert_der(sim_dir() + "/ask.pem"), &err),
                      ATTEST_OK)
                << err.msg;
        } else {
            EXPECT_EQ(v, nullptr) << "a root signed with " << sc.name << " was accepted";
            EXPECT_EQ(err.status, ATTEST_CONFIG_INVALID);
            EXPECT_NE(strstr(err.msg, "RSASSA-PSS"), nullptr) << err.msg;
        }
        attest_verifier_free(v);
        unlink(roots.c_str());
    }
}

TEST(AttestSim, AskMustBeSignedWithAmdPssParameters) {
    auto ark = file_cert_der(sim_ark());
    auto vcek = read_bytes(sim_dir() + "/vcek.der");
    ASSERT_FALSE(ark.empty());
    for (const Scheme &sc : kSchemes) {
        SCOPED_TRACE(sc.name);
        auto ask = reissue(ATTEST_SIM_CERT_ASK, sc.sig);
        ASSERT_FALSE(ask.empty());
        ASSERT_TRUE(signature_verifies(ask, ark));
        // In the roots file (configuration): refused when the verifier is created.
        std::string roots = write_roots("ask", {ark, ask});
        attest_verifier_config cfg{};
        snprintf(cfg.roots, sizeof(cfg.roots), "%s", roots.c_str());
        attest_error err{};
        attest_verifier *v = attest_verifier_new(&cfg, &err);
        // From the peer (evidence chain field): not an intermediate, so no chain.
        attest_error perr{};
        attest_status peer = verify_with(sim_ark(), vcek, ask, &perr);
        if (sc.sig == ATTEST_SIM_SIG_AMD) {
            EXPECT_NE(v, nullptr) << err.msg;
            EXPECT_EQ(peer, ATTEST_OK) << perr.msg;
        } else {
            EXPECT_EQ(v, nullptr) << "an ASK signed with " << sc.name << " was accepted";
            EXPECT_EQ(err.status, ATTEST_CONFIG_INVALID);
            EXPECT_NE(strstr(err.msg, "RSASSA-PSS"), nullptr) << err.msg;
            EXPECT_EQ(peer, ATTEST_CHAIN_INVALID) << perr.msg;
        }
        attest_verifier_free(v);
        unlink(roots.c_str());
    }
}

// ---- validity times that cannot be read ------------------------------------------------------
// BoringSSL parses a certificate whose UTCTime names month 13, and such a certificate can be
// validly signed. The verifier must refuse it, not read it as valid since the beginning of time.

namespace {

// redate re-signs `der` with the simulated key `key_name` (AMD's PSS parameters) after setting
// its notBefore (or notAfter) to the raw UTCTime `when`.
std::vector<uint8_t> redate(const std::vector<uint8_t> &der, const char *key_name, bool not_before,
                            const char *when) {
    X509 *x = parse(der);
    BIO *bio = BIO_new_file((sim_dir() + "/" + key_name).c_str(), "r");
    EVP_PKEY *key = bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ASN1_UTCTIME *t = ASN1_UTCTIME_new();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = nullptr;
    bool ok = x != nullptr && key != nullptr && t != nullptr && ctx != nullptr &&
              ASN1_STRING_set(t, when, -1) &&
              (not_before ? X509_set1_notBefore(x, t) : X509_set1_notAfter(x, t)) &&
              EVP_DigestSignInit(ctx, &pctx, EVP_sha384(), nullptr, key) &&
              EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) &&
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1) &&
              EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) && X509_sign_ctx(x, ctx);
    std::vector<uint8_t> out;
    uint8_t *buf = nullptr;
    int len = ok ? i2d_X509(x, &buf) : -1;
    if (len > 0) {
        out.assign(buf, buf + len);
    }
    OPENSSL_free(buf);
    EVP_MD_CTX_free(ctx);
    ASN1_UTCTIME_free(t);
    EVP_PKEY_free(key);
    X509_free(x);
    ERR_clear_error();
    EXPECT_FALSE(out.empty()) << "cannot re-date a certificate with " << key_name;
    return out;
}

const char kMonth13[] = "991399000000Z";
const char kYear2000[] = "000101000000Z"; // a readable time long past: the control

} // namespace

TEST(AttestSim, VcekWithUnreadableValidityIsMalformed) {
    auto ask = file_cert_der(sim_dir() + "/ask.pem");
    auto vcek = read_bytes(sim_dir() + "/vcek.der");
    ASSERT_FALSE(ask.empty());
    // Control: the same re-signing with a readable notBefore verifies.
    auto good = redate(vcek, "ask.key", true, kYear2000);
    ASSERT_TRUE(signature_verifies(good, ask));
    attest_error err{};
    EXPECT_EQ(verify_with(sim_ark(), good, ask, &err), ATTEST_OK) << err.msg;
    for (bool nb : {true, false}) {
        SCOPED_TRACE(nb ? "notBefore" : "notAfter");
        auto bad = redate(vcek, "ask.key", nb, kMonth13);
        ASSERT_TRUE(signature_verifies(bad, ask)) << "the test input must be validly signed";
        attest_error e{};
        EXPECT_EQ(verify_with(sim_ark(), bad, ask, &e), ATTEST_VCEK_MALFORMED) << e.msg;
        EXPECT_NE(strstr(e.msg, "validity time that cannot be read"), nullptr) << e.msg;
        attest_vcek_info info{};
        attest_error pe{};
        EXPECT_EQ(attest_vcek_parse(&info, &pe, bad.data(), bad.size()), ATTEST_VCEK_MALFORMED);
    }
}

TEST(AttestSim, ChainCertificateWithUnreadableValidityIsRefused) {
    auto ark = file_cert_der(sim_ark());
    auto ask = file_cert_der(sim_dir() + "/ask.pem");
    auto vcek = read_bytes(sim_dir() + "/vcek.der");
    ASSERT_FALSE(ark.empty());
    ASSERT_FALSE(ask.empty());
    // A root in the roots file: the verifier is not created.
    auto bad_ark = redate(ark, "ark.key", true, kMonth13);
    ASSERT_TRUE(signature_verifies(bad_ark, bad_ark));
    std::string roots = write_roots("ark-month13", {bad_ark});
    attest_verifier_config cfg{};
    snprintf(cfg.roots, sizeof(cfg.roots), "%s", roots.c_str());
    attest_error err{};
    attest_verifier *v = attest_verifier_new(&cfg, &err);
    EXPECT_EQ(v, nullptr) << "a root with an unreadable notBefore was accepted";
    EXPECT_EQ(err.status, ATTEST_CONFIG_INVALID);
    EXPECT_NE(strstr(err.msg, "validity time that cannot be read"), nullptr) << err.msg;
    attest_verifier_free(v);
    unlink(roots.c_str());
    // An ASK sent by the peer: not used, so the VCEK does not chain (only the ARK is configured).
    auto good_ask = redate(ask, "ark.key", true, kYear2000);
    attest_error gerr{};
    EXPECT_EQ(verify_with(sim_ark(), vcek, good_ask, &gerr), ATTEST_OK) << gerr.msg;
    auto bad_ask = redate(ask, "ark.key", true, kMonth13);
    ASSERT_TRUE(signature_verifies(bad_ask, ark));
    attest_error perr{};
    EXPECT_EQ(verify_with(sim_ark(), vcek, bad_ask, &perr), ATTEST_CHAIN_INVALID) << perr.msg;
}

// The trust digest names what a verifier trusts, not where it came from: the same roots give
// the same digest from two files, other roots (the builtin AMD ones, or ARK plus ASK instead
// of the ARK alone) give another.
TEST(AttestSim, TrustDigestChangesExactlyWithTheTrustedCertificates) {
    auto digest = [](const std::string &roots) {
        Verifier v(roots);
        std::vector<uint8_t> d(32, 0);
        if (v.v != nullptr) {
            attest_verifier_trust_sha256(v.v, d.data());
        }
        return d;
    };
    auto ark = file_cert_der(sim_ark());
    auto ask = file_cert_der(sim_dir() + "/ask.pem");
    std::string copy = write_roots("trust-copy", {ark});
    std::string both = write_roots("trust-both", {ark, ask});
    std::vector<uint8_t> sim = digest(sim_ark());
    EXPECT_NE(sim, std::vector<uint8_t>(32, 0));
    EXPECT_EQ(digest(copy), sim);
    EXPECT_NE(digest(both), sim);
    EXPECT_NE(digest("builtin"), sim);
    EXPECT_EQ(digest("builtin"), digest("builtin"));
    unlink(copy.c_str());
    unlink(both.c_str());
}

TEST(AttestSim, SimProviderWithoutDirIsConfigError) {
    attest_provider_config cfg;
    attest_provider_config_init(&cfg);
    void *s = nullptr;
    attest_error err{};
    EXPECT_EQ(attest_sim_ops_ref().open(&s, &err, &cfg), ATTEST_CONFIG_INVALID);
    EXPECT_EQ(s, nullptr);
}

TEST(AttestSim, CertMakeRejectsShortNonce) {
    attest_provider_config cfg = sim_cfg();
    attest_client_cert cert{};
    attest_error err{};
    uint8_t nonce[8] = {0};
    EXPECT_EQ(attest_cert_make(&cert, &err, &attest_sim_ops_ref(), &cfg, ATTEST_CERT_KEY_ED25519,
                               nonce, sizeof(nonce), 60),
              ATTEST_CONFIG_INVALID);
    EXPECT_EQ(cert.cert_pem, nullptr);
}
