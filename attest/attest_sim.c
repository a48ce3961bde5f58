// attest_sim.c: the simulated report provider: a complete test AMD hierarchy (RSA-4096 ARK and
// ASK signing with RSA-PSS SHA-384/MGF1-SHA-384/salt 48 like AMD; a P-384 VCEK with the AMD
// extensions) kept in a directory, signing Genoa-layout v3 reports with chosen fields. Its
// evidence is verified by the unmodified verifier when roots names the directory's ark.pem.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

#define SIM_RSA_BITS 4096
#define SIM_PRODUCT "Genoa"
#define SIM_CPUID_FAM 0x19
#define SIM_CPUID_MOD 0x11
#define SIM_CPUID_STEP 0x01
#define DAY_S 86400L
#define SIM_ARK_SERIAL 0x020000u
#define SIM_ASK_SERIAL 0x020002u

struct sim_state {
    EVP_PKEY *vcek_key;
    uint8_t vcek_der[ATTEST_CERT_DER_MAX_BYTES];
    size_t vcek_len;
    uint8_t ask_der[ATTEST_CERT_DER_MAX_BYTES];
    size_t ask_len;
    struct attest_sim_params params;
};

// ---- files ------------------------------------------------------------------------------------

static int write_file(const char *dir, const char *name, const uint8_t *data, size_t len,
                      mode_t mode) {
    char path[ATTEST_PATH_MAX_BYTES + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return -errno;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        off += (size_t)n;
    }
    return close(fd) == 0 ? 0 : -errno;
}

static int read_file(const char *dir, const char *name, uint8_t *buf, size_t cap,
                     size_t *out_len) {
    char path[ATTEST_PATH_MAX_BYTES + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    size_t off = 0;
    for (;;) {
        ssize_t n = read(fd, buf + off, cap - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0) {
            break;
        }
        off += (size_t)n;
        if (off == cap) {
            close(fd);
            return -EFBIG;
        }
    }
    close(fd);
    *out_len = off;
    return 0;
}

static int write_pem_key(const char *dir, const char *name, EVP_PKEY *key) {
    BIO *bio = BIO_new(BIO_s_mem());
    const uint8_t *data = NULL;
    size_t len = 0;
    int rc = -ENOMEM;
    if (bio != NULL && PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) &&
        BIO_mem_contents(bio, &data, &len)) {
        rc = write_file(dir, name, data, len, 0600);
    }
    BIO_free(bio);
    return rc;
}

static int write_pem_cert(const char *dir, const char *name, X509 *x) {
    BIO *bio = BIO_new(BIO_s_mem());
    const uint8_t *data = NULL;
    size_t len = 0;
    int rc = -ENOMEM;
    if (bio != NULL && PEM_write_bio_X509(bio, x) && BIO_mem_contents(bio, &data, &len)) {
        rc = write_file(dir, name, data, len, 0644);
    }
    BIO_free(bio);
    return rc;
}

static EVP_PKEY *read_pem_key(const char *dir, const char *name) {
    char path[ATTEST_PATH_MAX_BYTES + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *k = bio == NULL ? NULL : PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    return k;
}

static X509 *read_pem_cert(const char *dir, const char *name) {
    char path[ATTEST_PATH_MAX_BYTES + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    BIO *bio = BIO_new_file(path, "r");
    X509 *x = bio == NULL ? NULL : PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    return x;
}

// ---- certificate building ---------------------------------------------------------------------

static bool set_amd_name(X509_NAME *n, const char *cn) {
    static const char *const keys[] = {"OU", "C", "L", "ST", "O"};
    static const char *const vals[] = {"Engineering", "US", "Santa Clara", "CA",
                                       "Advanced Micro Devices"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (!X509_NAME_add_entry_by_txt(n, keys[i], MBSTRING_ASC, (const uint8_t *)vals[i], -1,
                                        -1, 0)) {
            return false;
        }
    }
    return X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0);
}

// add_raw_ext adds an extension whose extnValue content is exactly `der` (`len` bytes).
static bool add_raw_ext(X509 *x, const ASN1_OBJECT *obj, bool critical, const uint8_t *der,
                        size_t len) {
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    bool ok = os != NULL && ASN1_OCTET_STRING_set(os, der, (int)len);
    X509_EXTENSION *ext = ok ? X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os) : NULL;
    ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    return ok;
}

static bool add_nid_ext(X509 *x, int nid, bool critical, const uint8_t *der, size_t len) {
    return add_raw_ext(x, OBJ_nid2obj(nid), critical, der, len);
}

static bool add_amd_ext(X509 *x, const char *oid, const uint8_t *der, size_t len) {
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    bool ok = obj != NULL && add_raw_ext(x, obj, false, der, len);
    ASN1_OBJECT_free(obj);
    return ok;
}

static bool add_amd_uint(X509 *x, const char *oid, uint64_t v) {
    uint8_t buf[16];
    CBB cbb;
    size_t len = 0;
    bool ok = CBB_init_fixed(&cbb, buf, sizeof(buf)) && CBB_add_asn1_uint64(&cbb, v) &&
              CBB_finish(&cbb, NULL, &len);
    return ok && add_amd_ext(x, oid, buf, len);
}

// sign_cert signs `x` with `key` in scheme `sig`: ATTEST_SIM_SIG_AMD is RSA-PSS SHA-384,
// MGF1-SHA-384, salt 48 (AMD's parameters); the others exist only for tests (attest_sim_reissue).
static bool sign_cert(X509 *x, EVP_PKEY *key, enum attest_sim_sig sig) {
    const EVP_MD *md = sig == ATTEST_SIM_SIG_PSS_SHA256   ? EVP_sha256()
                       : sig == ATTEST_SIM_SIG_PSS_SHA512 ? EVP_sha512()
                                                          : EVP_sha384();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx != NULL && EVP_DigestSignInit(ctx, &pctx, md, NULL, key);
    if (ok && sig != ATTEST_SIM_SIG_PKCS1_SHA384) {
        // Salt -1 = the digest length, the only PSS salt BoringSSL writes into X.509.
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1) && EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md);
    }
    ok = ok && X509_sign_ctx(x, ctx);
    EVP_MD_CTX_free(ctx);
    return ok;
}

// new_cert starts a v3 certificate with serial, names, validity and public key.
static X509 *new_cert(uint64_t serial, const char *subject_cn, const char *issuer_cn, EVP_PKEY *pub,
                      long valid_s) {
    X509 *x = X509_new();
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    X509_NAME *subj = X509_NAME_new();
    X509_NAME *iss = X509_NAME_new();
    time_t now = time(NULL);
    ASN1_TIME *nb = ASN1_TIME_set(NULL, now - DAY_S); // KDS backdates too
    ASN1_TIME *na = ASN1_TIME_adj(NULL, now, (int)(valid_s / DAY_S), valid_s % DAY_S);
    bool ok = x != NULL && sn != NULL && subj != NULL && iss != NULL && nb != NULL && na != NULL &&
              X509_set_version(x, X509_VERSION_3) && ASN1_INTEGER_set_uint64(sn, serial) &&
              X509_set_serialNumber(x, sn) && set_amd_name(subj, subject_cn) &&
              set_amd_name(iss, issuer_cn) && X509_set_subject_name(x, subj) &&
              X509_set_issuer_name(x, iss) && X509_set1_notBefore(x, nb) &&
              X509_set1_notAfter(x, na) && X509_set_pubkey(x, pub);
    ASN1_INTEGER_free(sn);
    X509_NAME_free(subj);
    X509_NAME_free(iss);
    ASN1_TIME_free(nb);
    ASN1_TIME_free(na);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static EVP_PKEY *gen_rsa(void) {
    RSA *rsa = RSA_new();
    BIGNUM *e = BN_new();
    EVP_PKEY *pk = EVP_PKEY_new();
    bool ok = rsa != NULL && e != NULL && pk != NULL && BN_set_word(e, RSA_F4) &&
              RSA_generate_key_ex(rsa, SIM_RSA_BITS, e, NULL) && EVP_PKEY_assign_RSA(pk, rsa);
    BN_free(e);
    if (!ok) {
        RSA_free(rsa);
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

static EVP_PKEY *gen_p384(void) {
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_secp384r1);
    EVP_PKEY *pk = EVP_PKEY_new();
    if (ec == NULL || pk == NULL || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pk, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

static X509 *make_ca(EVP_PKEY *key, EVP_PKEY *issuer_key, uint64_t serial, const char *cn,
                     const char *issuer_cn, bool root, enum attest_sim_sig sig) {
    static const uint8_t bc_root[] = {0x30, 0x03, 0x01, 0x01, 0xFF};
    static const uint8_t bc_ask[] = {0x30, 0x06, 0x01, 0x01, 0xFF, 0x02, 0x01, 0x00};
    static const uint8_t ku_root[] = {0x03, 0x02, 0x01, 0x06}; // keyCertSign, cRLSign
    static const uint8_t ku_ask[] = {0x03, 0x02, 0x02, 0x04};  // keyCertSign
    X509 *x = new_cert(serial, cn, issuer_cn, key, 25L * 365 * DAY_S);
    bool ok = x != NULL &&
              add_nid_ext(x, NID_key_usage, true, root ? ku_root : ku_ask,
                          root ? sizeof(ku_root) : sizeof(ku_ask)) &&
              add_nid_ext(x, NID_basic_constraints, true, root ? bc_root : bc_ask,
                          root ? sizeof(bc_root) : sizeof(bc_ask)) &&
              sign_cert(x, issuer_key, sig);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static X509 *make_vcek(EVP_PKEY *vcek_key, EVP_PKEY *ask_key, const struct attest_sim_params *p,
                       enum attest_sim_sig sig) {
    long valid_s = p->vcek_valid_s != 0 ? (long)p->vcek_valid_s : 7L * 365 * DAY_S;
    X509 *x = new_cert(0, "SEV-VCEK", "SEV-" SIM_PRODUCT, vcek_key, valid_s);
    static const char prefix[] = "1.3.6.1.4.1.3704.1.";
    char oid[48];
    uint8_t name_der[16];
    CBB cbb, str;
    size_t name_len = 0;
    bool ok = x != NULL && CBB_init_fixed(&cbb, name_der, sizeof(name_der)) &&
              CBB_add_asn1(&cbb, &str, CBS_ASN1_IA5STRING) &&
              CBB_add_bytes(&str, (const uint8_t *)SIM_PRODUCT, strlen(SIM_PRODUCT)) &&
              CBB_finish(&cbb, NULL, &name_len);
    ok = ok && add_amd_uint(x, "1.3.6.1.4.1.3704.1.1", 0) &&
         add_amd_ext(x, "1.3.6.1.4.1.3704.1.2", name_der, name_len);
    const uint64_t spl[8] = {p->tcb_bl, p->tcb_tee, p->tcb_snp, 0, 0, 0, 0, p->tcb_ucode};
    for (unsigned i = 0; ok && i < 8; i++) {
        snprintf(oid, sizeof(oid), "%s3.%u", prefix, i + 1);
        ok = add_amd_uint(x, oid, spl[i]);
    }
    // hwID: 64 raw bytes with no DER tag, as in every real VCEK.
    ok = ok && add_amd_ext(x, "1.3.6.1.4.1.3704.1.4", p->chip_id, ATTEST_CHIP_ID_BYTES) &&
         sign_cert(x, ask_key, sig);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static size_t cert_to_der(X509 *x, uint8_t *out, size_t cap) {
    uint8_t *der = NULL;
    int len = i2d_X509(x, &der);
    size_t n = 0;
    if (len > 0 && (size_t)len <= cap) {
        memcpy(out, der, (size_t)len);
        n = (size_t)len;
    }
    OPENSSL_free(der);
    return n;
}

// vcek_id: the text identifying which chip and TCB vcek.der was issued for.
static void vcek_id(char *out, size_t size, const struct attest_sim_params *p) {
    char hex[2 * ATTEST_CHIP_ID_BYTES + 1];
    core_base_hex_encode(hex, p->chip_id, ATTEST_CHIP_ID_BYTES);
    snprintf(out, size, "%s %u %u %u %u\n", hex, p->tcb_bl, p->tcb_tee, p->tcb_snp, p->tcb_ucode);
}

// create_hierarchy writes a complete hierarchy into `tmp` (a fresh directory).
static enum attest_status create_hierarchy(struct attest_error *err, const char *tmp,
                                           const struct attest_sim_params *p) {
    EVP_PKEY *ark_key = gen_rsa();
    EVP_PKEY *ask_key = gen_rsa();
    EVP_PKEY *vcek_key = gen_p384();
    X509 *ark = NULL, *ask = NULL, *vcek = NULL;
    enum attest_status st = ATTEST_INTERNAL;
    uint8_t der[ATTEST_CERT_DER_MAX_BYTES];
    char id[256];
    if (ark_key == NULL || ask_key == NULL || vcek_key == NULL) {
        attest_error_set(err, st, "simulated hierarchy: key generation failed");
        goto out;
    }
    ark = make_ca(ark_key, ark_key, SIM_ARK_SERIAL, "ARK-" SIM_PRODUCT, "ARK-" SIM_PRODUCT, true,
                  ATTEST_SIM_SIG_AMD);
    ask = make_ca(ask_key, ark_key, SIM_ASK_SERIAL, "SEV-" SIM_PRODUCT, "ARK-" SIM_PRODUCT, false,
                  ATTEST_SIM_SIG_AMD);
    vcek = make_vcek(vcek_key, ask_key, p, ATTEST_SIM_SIG_AMD);
    size_t der_len = vcek == NULL ? 0 : cert_to_der(vcek, der, sizeof(der));
    vcek_id(id, sizeof(id), p);
    if (ark == NULL || ask == NULL || der_len == 0) {
        attest_error_set(err, st, "simulated hierarchy: certificate signing failed");
        goto out;
    }
    int rc = write_pem_key(tmp, "ark.key", ark_key);
    rc = rc ? rc : write_pem_key(tmp, "ask.key", ask_key);
    rc = rc ? rc : write_pem_key(tmp, "vcek.key", vcek_key);
    rc = rc ? rc : write_pem_cert(tmp, "ark.pem", ark);
    rc = rc ? rc : write_pem_cert(tmp, "ask.pem", ask);
    rc = rc ? rc : write_file(tmp, "vcek.der", der, der_len, 0644);
    rc = rc ? rc : write_file(tmp, "vcek.id", (const uint8_t *)id, strlen(id), 0644);
    if (rc != 0) {
        attest_error_set(err, ATTEST_PROVIDER_FAILED, "simulated hierarchy: writing %s: %s", tmp,
                         strerror(-rc));
        goto out;
    }
    st = ATTEST_OK;
out:
    X509_free(ark);
    X509_free(ask);
    X509_free(vcek);
    EVP_PKEY_free(ark_key);
    EVP_PKEY_free(ask_key);
    EVP_PKEY_free(vcek_key);
    ERR_clear_error();
    return st;
}

enum attest_status attest_sim_ensure(struct attest_error *err, const char *dir,
                                     const struct attest_sim_params *params) {
    ASSERT(dir != NULL && params != NULL);
    char path[ATTEST_PATH_MAX_BYTES + 32];
    snprintf(path, sizeof(path), "%s/ask.key", dir);
    if (access(path, R_OK) == 0) {
        return ATTEST_OK;
    }
    // Build in a private directory and rename it into place, so concurrent first users (test
    // processes) never see a half-written hierarchy; the loser of the rename discards its copy.
    char tmp[ATTEST_PATH_MAX_BYTES + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dir, (long)getpid());
    if (strlen(dir) == 0 || strlen(dir) >= ATTEST_PATH_MAX_BYTES || mkdir(tmp, 0700) != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "cannot create simulated hierarchy directory %s: %s", tmp,
                                strerror(errno));
    }
    enum attest_status st = create_hierarchy(err, tmp, params);
    if (st == ATTEST_OK && rename(tmp, dir) != 0) {
        if (access(path, R_OK) != 0) {
            st = attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                  "cannot move simulated hierarchy into %s: %s", dir,
                                  strerror(errno));
        }
    }
    if (access(tmp, F_OK) == 0) { // not renamed: remove our copy
        static const char *const files[] = {"ark.key", "ask.key", "vcek.key", "ark.pem",
                                            "ask.pem", "vcek.der", "vcek.id"};
        char victim[sizeof(tmp) + 16];
        for (size_t i = 0; i < ARRAY_LEN(files); i++) {
            snprintf(victim, sizeof(victim), "%s/%s", tmp, files[i]);
            unlink(victim);
        }
        rmdir(tmp);
    }
    return st;
}

enum attest_status attest_sim_reissue(uint8_t *out, size_t cap, size_t *out_len,
                                      struct attest_error *err, const char *dir,
                                      enum attest_sim_cert which, enum attest_sim_sig sig,
                                      const struct attest_sim_params *params) {
    ASSERT(out != NULL && out_len != NULL && dir != NULL && params != NULL);
    *out_len = 0;
    EVP_PKEY *ark_key = read_pem_key(dir, "ark.key");
    EVP_PKEY *ask_key = read_pem_key(dir, "ask.key");
    EVP_PKEY *vcek_key = read_pem_key(dir, "vcek.key");
    X509 *x = NULL;
    if (ark_key != NULL && ask_key != NULL && vcek_key != NULL) {
        switch (which) {
        case ATTEST_SIM_CERT_ARK:
            x = make_ca(ark_key, ark_key, SIM_ARK_SERIAL, "ARK-" SIM_PRODUCT, "ARK-" SIM_PRODUCT,
                        true, sig);
            break;
        case ATTEST_SIM_CERT_ASK:
            x = make_ca(ask_key, ark_key, SIM_ASK_SERIAL, "SEV-" SIM_PRODUCT, "ARK-" SIM_PRODUCT,
                        false, sig);
            break;
        case ATTEST_SIM_CERT_VCEK:
            x = make_vcek(vcek_key, ask_key, params, sig);
            break;
        }
    }
    *out_len = x == NULL ? 0 : cert_to_der(x, out, cap);
    X509_free(x);
    EVP_PKEY_free(ark_key);
    EVP_PKEY_free(ask_key);
    EVP_PKEY_free(vcek_key);
    ERR_clear_error();
    if (*out_len == 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "simulated hierarchy in %s: cannot re-issue certificate %d", dir,
                                (int)which);
    }
    return ATTEST_OK;
}

// ---- reports ----------------------------------------------------------------------------------

void attest_sim_build_report(uint8_t report[ATTEST_REPORT_BYTES],
                             const struct attest_sim_params *p,
                             const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]) {
    memset(report, 0, ATTEST_REPORT_BYTES);
    attest_put_le32(report + ATTEST_OFF_VERSION, 3);
    attest_put_le32(report + ATTEST_OFF_GUEST_SVN, p->guest_svn);
    attest_put_le64(report + ATTEST_OFF_POLICY, p->policy);
    attest_put_le32(report + ATTEST_OFF_VMPL, p->vmpl);
    attest_put_le32(report + ATTEST_OFF_SIG_ALGO, 1);
    attest_put_le64(report + ATTEST_OFF_PLATFORM_INFO, p->platform_info);
    attest_put_le32(report + ATTEST_OFF_SIGNER_INFO, 0); // VCEK
    memcpy(report + ATTEST_OFF_REPORT_DATA, report_data, ATTEST_REPORT_DATA_BYTES);
    memcpy(report + ATTEST_OFF_MEASUREMENT, p->measurement, ATTEST_MEASUREMENT_BYTES);
    memcpy(report + ATTEST_OFF_HOST_DATA, p->host_data, ATTEST_HOST_DATA_BYTES);
    RAND_bytes(report + ATTEST_OFF_REPORT_ID, 32);
    memset(report + ATTEST_OFF_REPORT_ID_MA, 0xFF, 32);
    // Genoa TCB layout: bl, tee, 4 reserved, snp, ucode.
    uint8_t tcb[8] = {p->tcb_bl, p->tcb_tee, 0, 0, 0, 0, p->tcb_snp, p->tcb_ucode};
    memcpy(report + ATTEST_OFF_CURRENT_TCB, tcb, 8);
    memcpy(report + ATTEST_OFF_REPORTED_TCB, tcb, 8);
    memcpy(report + ATTEST_OFF_COMMITTED_TCB, tcb, 8);
    memcpy(report + ATTEST_OFF_LAUNCH_TCB, tcb, 8);
    report[ATTEST_OFF_CPUID_FAM] = SIM_CPUID_FAM;
    report[ATTEST_OFF_CPUID_MOD] = SIM_CPUID_MOD;
    report[ATTEST_OFF_CPUID_STEP] = SIM_CPUID_STEP;
    memcpy(report + ATTEST_OFF_CHIP_ID, p->chip_id, ATTEST_CHIP_ID_BYTES);
    const uint8_t fw[3] = {40, 55, 1}; // build, minor, major: 1.55.40
    memcpy(report + ATTEST_OFF_CURRENT_BUILD, fw, 3);
    memcpy(report + ATTEST_OFF_COMMITTED_BUILD, fw, 3);
}

static enum attest_status sign_with(uint8_t *report, struct attest_error *err, EVP_PKEY *key) {
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
    uint8_t digest[SHA384_DIGEST_LENGTH];
    SHA384(report, ATTEST_REPORT_SIGNED_BYTES, digest);
    ECDSA_SIG *sig = ec == NULL ? NULL : ECDSA_do_sign(digest, sizeof(digest), ec);
    memset(report + ATTEST_OFF_SIG_R, 0, ATTEST_REPORT_BYTES - ATTEST_OFF_SIG_R);
    bool ok = sig != NULL &&
              BN_bn2le_padded(report + ATTEST_OFF_SIG_R, ATTEST_SIG_COMPONENT_BYTES,
                              ECDSA_SIG_get0_r(sig)) &&
              BN_bn2le_padded(report + ATTEST_OFF_SIG_S, ATTEST_SIG_COMPONENT_BYTES,
                              ECDSA_SIG_get0_s(sig));
    ECDSA_SIG_free(sig);
    ERR_clear_error();
    if (!ok) {
        return attest_error_set(err, ATTEST_INTERNAL, "simulated VCEK signing failed");
    }
    return ATTEST_OK;
}

enum attest_status attest_sim_sign_report(uint8_t report[ATTEST_REPORT_BYTES],
                                          struct attest_error *err, const char *key_path) {
    BIO *bio = BIO_new_file(key_path, "r");
    EVP_PKEY *key = bio == NULL ? NULL : PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (key == NULL) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED, "cannot read VCEK key %s", key_path);
    }
    enum attest_status st = sign_with(report, err, key);
    EVP_PKEY_free(key);
    return st;
}

// ---- provider ops -----------------------------------------------------------------------------

static void sim_close(void *state) {
    struct sim_state *s = state;
    if (s == NULL) {
        return;
    }
    EVP_PKEY_free(s->vcek_key);
    s->vcek_key = NULL;
    free(s);
}

// load_or_issue_vcek: the persisted VCEK if it was issued for the requested chip and TCB, else a
// fresh one (kept in memory only; cheap: one P-384 key and one RSA-PSS signature).
static enum attest_status load_or_issue_vcek(struct sim_state *s, struct attest_error *err,
                                             const char *dir) {
    char want[256];
    char have[256] = {0};
    size_t have_len = 0;
    vcek_id(want, sizeof(want), &s->params);
    // A VCEK of a chosen lifetime (tests) is always a fresh one.
    if (s->params.vcek_valid_s == 0 &&
        read_file(dir, "vcek.id", (uint8_t *)have, sizeof(have) - 1, &have_len) == 0 &&
        strcmp(have, want) == 0 &&
        read_file(dir, "vcek.der", s->vcek_der, sizeof(s->vcek_der), &s->vcek_len) == 0 &&
        (s->vcek_key = read_pem_key(dir, "vcek.key")) != NULL) {
        return ATTEST_OK;
    }
    EVP_PKEY *ask_key = read_pem_key(dir, "ask.key");
    s->vcek_key = gen_p384();
    X509 *vcek = ask_key == NULL || s->vcek_key == NULL ? NULL
                                                        : make_vcek(s->vcek_key, ask_key,
                                                                    &s->params,
                                                                    ATTEST_SIM_SIG_AMD);
    s->vcek_len = vcek == NULL ? 0 : cert_to_der(vcek, s->vcek_der, sizeof(s->vcek_der));
    X509_free(vcek);
    EVP_PKEY_free(ask_key);
    ERR_clear_error();
    if (s->vcek_len == 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "simulated hierarchy in %s: cannot issue a VCEK (ask.key "
                                "unreadable?)",
                                dir);
    }
    return ATTEST_OK;
}

static enum attest_status sim_open(void **out_state, struct attest_error *err,
                                   const struct attest_provider_config *cfg) {
    ASSERT(out_state != NULL && cfg != NULL);
    *out_state = NULL;
    if (cfg->sim_dir[0] == '\0') {
        return attest_error_set(err, ATTEST_CONFIG_INVALID,
                                "the simulated provider needs a hierarchy directory (--sim-dir)");
    }
    enum attest_status st = attest_sim_ensure(err, cfg->sim_dir, &cfg->sim);
    if (st != ATTEST_OK) {
        return st;
    }
    struct sim_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return attest_error_set(err, ATTEST_INTERNAL, "out of memory");
    }
    s->params = cfg->sim;
    X509 *ask = read_pem_cert(cfg->sim_dir, "ask.pem");
    s->ask_len = ask == NULL ? 0 : cert_to_der(ask, s->ask_der, sizeof(s->ask_der));
    X509_free(ask);
    if (s->ask_len == 0) {
        sim_close(s);
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "simulated hierarchy in %s has no readable ask.pem; delete the "
                                "directory to recreate it",
                                cfg->sim_dir);
    }
    st = load_or_issue_vcek(s, err, cfg->sim_dir);
    if (st != ATTEST_OK) {
        sim_close(s);
        return st;
    }
    *out_state = s;
    return ATTEST_OK;
}

static enum attest_status sim_get_report(void *state, struct attest_report_out *out,
                                         struct attest_error *err,
                                         const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]) {
    struct sim_state *s = state;
    ASSERT(s != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    attest_sim_build_report(out->report, &s->params, report_data);
    enum attest_status st = sign_with(out->report, err, s->vcek_key);
    if (st != ATTEST_OK) {
        return st;
    }
    memcpy(out->vcek_der, s->vcek_der, s->vcek_len);
    out->vcek_len = s->vcek_len;
    memcpy(out->ask_der, s->ask_der, s->ask_len);
    out->ask_len = s->ask_len;
    return ATTEST_OK;
}

const struct attest_provider_ops attest_sim_ops = {
    .name = "simulated",
    .open = sim_open,
    .get_report = sim_get_report,
    .close = sim_close,
};
