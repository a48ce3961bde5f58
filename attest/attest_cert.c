// attest_cert.c: client certificates carrying evidence: a fresh key (Ed25519 or P-256), a report
// from a provider bound to that key and a nonce, and a self-signed X.509 v3 certificate with the
// evidence extension (DESIGN.md §5). Outputs PEM (certificate, PKCS#8 key).
#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

static EVP_PKEY *gen_key(enum attest_cert_key_type type) {
    EVP_PKEY *pk = NULL;
    if (type == ATTEST_CERT_KEY_ED25519) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        if (ctx == NULL || !EVP_PKEY_keygen_init(ctx) || !EVP_PKEY_keygen(ctx, &pk)) {
            pk = NULL;
        }
        EVP_PKEY_CTX_free(ctx);
        return pk;
    }
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    pk = EVP_PKEY_new();
    if (ec == NULL || pk == NULL || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pk, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

static bool spki_sha256(EVP_PKEY *pk, uint8_t out[32]) {
    CBB cbb;
    uint8_t *der = NULL;
    size_t len = 0;
    if (!CBB_init(&cbb, 128) || !EVP_marshal_public_key(&cbb, pk) ||
        !CBB_finish(&cbb, &der, &len)) {
        CBB_cleanup(&cbb);
        return false;
    }
    SHA256(der, len, out);
    OPENSSL_free(der);
    return true;
}

static bool add_ext_der(X509 *x, ASN1_OBJECT *obj, bool critical, const uint8_t *der,
                        size_t len) {
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    bool ok = obj != NULL && os != NULL && ASN1_OCTET_STRING_set(os, der, (int)len);
    X509_EXTENSION *ext = ok ? X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os) : NULL;
    ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    return ok;
}

static X509 *build_cert(EVP_PKEY *key, const uint8_t *evidence, size_t evidence_len,
                        int64_t validity_s) {
    static const uint8_t bc[] = {0x30, 0x00};                   // CA:FALSE
    static const uint8_t ku[] = {0x03, 0x02, 0x07, 0x80};       // digitalSignature
    static const uint8_t eku[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01,
                                  0x05, 0x05, 0x07, 0x03, 0x02}; // clientAuth
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    uint8_t serial[8];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7F;
    uint64_t sn_val = 0;
    for (size_t i = 0; i < sizeof(serial); i++) {
        sn_val = sn_val << 8 | serial[i];
    }
    time_t now = time(NULL);
    ASN1_TIME *nb = ASN1_TIME_set(NULL, now - 300); // tolerate clock skew with the gateway
    ASN1_TIME *na = ASN1_TIME_set(NULL, now + (time_t)validity_s);
    uint8_t oid_der[2 + ATTEST_EVIDENCE_OID_BYTES] = {0x06, ATTEST_EVIDENCE_OID_BYTES};
    memcpy(oid_der + 2, attest_evidence_oid, ATTEST_EVIDENCE_OID_BYTES);
    const uint8_t *oid_p = oid_der;
    ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &oid_p, (long)sizeof(oid_der));
    bool ok = x != NULL && name != NULL && sn != NULL && nb != NULL && na != NULL &&
              X509_set_version(x, X509_VERSION_3) && ASN1_INTEGER_set_uint64(sn, sn_val | 1) &&
              X509_set_serialNumber(x, sn) &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                         (const uint8_t *)"atls-client", -1, -1, 0) &&
              X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
              X509_set1_notBefore(x, nb) && X509_set1_notAfter(x, na) &&
              X509_set_pubkey(x, key) &&
              add_ext_der(x, OBJ_nid2obj(NID_basic_constraints), true, bc, sizeof(bc)) &&
              add_ext_der(x, OBJ_nid2obj(NID_key_usage), true, ku, sizeof(ku)) &&
              add_ext_der(x, OBJ_nid2obj(NID_ext_key_usage), false, eku, sizeof(eku)) &&
              add_ext_der(x, oid, false, evidence, evidence_len) &&
              X509_sign(x, key, EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256());
    X509_NAME_free(name);
    ASN1_INTEGER_free(sn);
    ASN1_TIME_free(nb);
    ASN1_TIME_free(na);
    ASN1_OBJECT_free(oid);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static char *bio_to_string(BIO *bio, size_t *out_len) {
    const uint8_t *data = NULL;
    size_t len = 0;
    if (!BIO_mem_contents(bio, &data, &len)) {
        return NULL;
    }
    char *s = malloc(len + 1);
    if (s != NULL) {
        memcpy(s, data, len);
        s[len] = '\0';
        *out_len = len;
    }
    return s;
}

static enum attest_status get_report(struct attest_report_out *rep, struct attest_error *err,
                                     const struct attest_provider_ops *ops,
                                     const struct attest_provider_config *cfg,
                                     const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]) {
    void *state = NULL;
    enum attest_status st = ops->open(&state, err, cfg);
    if (st != ATTEST_OK) {
        return st;
    }
    st = ops->get_report(state, rep, err, report_data);
    ops->close(state);
    return st;
}

// cert_make is attest_cert_make; with `misbound` REPORT_DATA names another, fresh key.
static enum attest_status cert_make(struct attest_client_cert *out, struct attest_error *err,
                                    const struct attest_provider_ops *ops,
                                    const struct attest_provider_config *cfg,
                                    enum attest_cert_key_type key_type, const uint8_t *nonce,
                                    size_t nonce_len, int64_t validity_s, bool misbound) {
    ASSERT(out != NULL && ops != NULL && cfg != NULL);
    ASSERT(out->cert_pem == NULL && out->key_pem == NULL);
    if (nonce == NULL || nonce_len < ATTEST_NONCE_MIN_BYTES || nonce_len > ATTEST_NONCE_MAX_BYTES) {
        return attest_error_set(err, ATTEST_CONFIG_INVALID, "nonce must be 16..64 bytes, got %zu",
                                nonce == NULL ? (size_t)0 : nonce_len);
    }
    enum attest_status st = ATTEST_INTERNAL;
    struct attest_report_out *rep = calloc(1, sizeof(*rep));
    struct attest_evidence *ev = calloc(1, sizeof(*ev));
    uint8_t *ev_der = malloc(ATTEST_EVIDENCE_DER_MAX_BYTES);
    EVP_PKEY *key = gen_key(key_type);
    EVP_PKEY *bound = misbound ? gen_key(key_type) : NULL; // the key REPORT_DATA names instead
    X509 *x = NULL;
    BIO *cbio = BIO_new(BIO_s_mem());
    BIO *kbio = BIO_new(BIO_s_mem());
    uint8_t spki_hash[32], report_data[ATTEST_REPORT_DATA_BYTES];
    size_t ev_len = 0;
    if (rep == NULL || ev == NULL || ev_der == NULL || key == NULL || cbio == NULL ||
        kbio == NULL || (misbound && bound == NULL) ||
        !spki_sha256(misbound ? bound : key, spki_hash)) {
        attest_error_set(err, st, "client key generation failed");
        goto out;
    }
    attest_evidence_binding(report_data, nonce, nonce_len, spki_hash);
    st = get_report(rep, err, ops, cfg, report_data);
    if (st != ATTEST_OK) {
        goto out;
    }
    st = ATTEST_INTERNAL;
    memcpy(ev->nonce, nonce, nonce_len);
    ev->nonce_len = nonce_len;
    memcpy(ev->report, rep->report, ATTEST_REPORT_BYTES);
    memcpy(ev->vcek_der, rep->vcek_der, rep->vcek_len);
    ev->vcek_len = rep->vcek_len;
    memcpy(ev->chain_der, rep->ask_der, rep->ask_len);
    ev->chain_len = rep->ask_len;
    if (attest_evidence_encode(ev_der, ATTEST_EVIDENCE_DER_MAX_BYTES, &ev_len, ev) != 0 ||
        (x = build_cert(key, ev_der, ev_len, validity_s)) == NULL ||
        !PEM_write_bio_X509(cbio, x) ||
        !PEM_write_bio_PKCS8PrivateKey(kbio, key, NULL, NULL, 0, NULL, NULL)) {
        attest_error_set(err, st, "building the client certificate failed");
        goto out;
    }
    out->cert_pem = bio_to_string(cbio, &out->cert_pem_len);
    out->key_pem = bio_to_string(kbio, &out->key_pem_len);
    if (out->cert_pem == NULL || out->key_pem == NULL) {
        attest_cert_cleanup(out);
        attest_error_set(err, st, "out of memory");
        goto out;
    }
    memcpy(out->report, rep->report, ATTEST_REPORT_BYTES);
    st = ATTEST_OK;
out:
    X509_free(x);
    EVP_PKEY_free(bound);
    EVP_PKEY_free(key);
    BIO_free(cbio);
    BIO_free(kbio);
    free(ev_der);
    free(ev);
    free(rep);
    ERR_clear_error();
    return st;
}

enum attest_status attest_cert_make(struct attest_client_cert *out, struct attest_error *err,
                                    const struct attest_provider_ops *ops,
                                    const struct attest_provider_config *cfg,
                                    enum attest_cert_key_type key_type, const uint8_t *nonce,
                                    size_t nonce_len, int64_t validity_s) {
    return cert_make(out, err, ops, cfg, key_type, nonce, nonce_len, validity_s, false);
}

enum attest_status attest_cert_make_misbound(struct attest_client_cert *out,
                                             struct attest_error *err,
                                             const struct attest_provider_ops *ops,
                                             const struct attest_provider_config *cfg,
                                             enum attest_cert_key_type key_type,
                                             const uint8_t *nonce, size_t nonce_len,
                                             int64_t validity_s) {
    return cert_make(out, err, ops, cfg, key_type, nonce, nonce_len, validity_s, true);
}

bool attest_cert_time_unix(int64_t *out, const ASN1_TIME *t) {
    char epoch_text[] = "700101000000Z";
    ASN1_TIME epoch = {.length = (int)sizeof(epoch_text) - 1,
                       .type = V_ASN1_UTCTIME,
                       .data = (unsigned char *)epoch_text,
                       .flags = 0};
    int days = 0;
    int secs = 0;
    bool ok = t != NULL && ASN1_TIME_diff(&days, &secs, &epoch, t);
    ERR_clear_error();
    if (ok) {
        *out = (int64_t)days * 86400 + secs;
    }
    return ok;
}

void attest_cert_cleanup(struct attest_client_cert *c) {
    if (c == NULL) {
        return;
    }
    if (c->key_pem != NULL) {
        OPENSSL_cleanse(c->key_pem, c->key_pem_len);
    }
    free(c->cert_pem);
    free(c->key_pem);
    memset(c, 0, sizeof(*c));
}

int attest_cert_pem_to_der(uint8_t *out, size_t cap, size_t *out_len, const char *pem,
                           size_t len) {
    ASSERT(out != NULL && out_len != NULL && pem != NULL);
    if (len > INT32_MAX) {
        return -EINVAL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio == NULL ? NULL : PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    uint8_t *der = NULL;
    int der_len = x == NULL ? -1 : i2d_X509(x, &der);
    X509_free(x);
    ERR_clear_error();
    int rc = 0;
    if (der_len <= 0) {
        rc = -EINVAL;
    } else if ((size_t)der_len > cap) {
        rc = -ENOSPC;
    } else {
        memcpy(out, der, (size_t)der_len);
        *out_len = (size_t)der_len;
    }
    OPENSSL_free(der);
    return rc;
}
