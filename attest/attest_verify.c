// attest_verify.c: the SEV-SNP verifier: trust anchors (builtin AMD roots or a PEM file), the
// VCEK/VLEK -> ASK/ASVK -> ARK chain with RSA-PSS, the AMD certificate extensions, the TCB, chip
// and product bindings, the P-384 report signature, and a fixed-capacity chain cache.
// One verifier per thread: nothing here locks.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

#define ANCHORS_MAX 16u
#define INTERMEDIATES_MAX 32u

// struct trusted: an ARK (anchor) or an ASK/ASVK that verified against one at load time.
struct trusted {
    X509 *cert;
    EVP_PKEY *pub;
    enum attest_product product;
    bool vlek; // ASVK (issues VLEKs)
    int64_t not_before, not_after;
};

#define vcek_ext attest_vcek_info

struct cache_entry;

// struct p384_slot: a fixed-base table for one VCEK key (attest_p384.c), lent to a cache entry.
struct p384_slot {
    struct attest_p384_table *table; // owned; allocated with the verifier
    struct cache_entry *owner;       // borrowed; NULL when free
};

// struct cache_entry: one VCEK whose chain verified; valid for times in [not_before, not_after].
struct cache_entry {
    bool used;
    uint32_t sig_ok;        // report signatures verified with pub (saturating)
    struct p384_slot *slot; // borrowed; NULL: verify with BoringSSL
    uint8_t key[32]; // SHA-256 of the VCEK DER
    uint64_t last_use;
    EC_KEY *pub;
    enum attest_product product;
    enum attest_signer kind;
    int64_t not_before, not_after; // intersection over VCEK, ASK and ARK
    struct vcek_ext ext;
};

struct attest_verifier {
    struct attest_verifier_config cfg;
    struct trusted anchors[ANCHORS_MAX];
    size_t n_anchors;
    struct trusted inter[INTERMEDIATES_MAX];
    size_t n_inter;
    struct cache_entry *cache;
    uint32_t cache_cap;
    uint64_t tick;
    uint64_t hits, misses;
    struct p384_slot slots[ATTEST_P384_TABLES_MAX];
    uint64_t table_verifies, table_builds;
    uint64_t slow_since_build; // BoringSSL verifications since the last table build
    uint8_t trust_sha256[32];  // what attest_verifier_trust_sha256 returns
};

// ---- small helpers ----------------------------------------------------------------------------

// cert_validity: `x`'s notBefore and notAfter in unix seconds; false when either cannot be read.
// BoringSSL parses a certificate whose UTCTime says month 13; such a certificate is refused, not
// read as valid from the beginning of time.
static bool cert_validity(const X509 *x, int64_t *not_before, int64_t *not_after) {
    return attest_cert_time_unix(not_before, X509_get0_notBefore(x)) &&
           attest_cert_time_unix(not_after, X509_get0_notAfter(x));
}

static void cert_cn(const X509 *x, bool subject, char *out, size_t out_size) {
    X509_NAME *name = subject ? X509_get_subject_name(x) : X509_get_issuer_name(x);
    out[0] = '\0';
    if (name == NULL || X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)out_size) < 0) {
        out[0] = '\0';
    }
    ERR_clear_error();
}

static enum attest_product product_from_suffix(const char *s) {
    if (strcmp(s, "Milan") == 0) {
        return ATTEST_PRODUCT_MILAN;
    }
    if (strcmp(s, "Genoa") == 0) {
        return ATTEST_PRODUCT_GENOA;
    }
    if (strcmp(s, "Turin") == 0) {
        return ATTEST_PRODUCT_TURIN;
    }
    return ATTEST_PRODUCT_UNKNOWN;
}

static void trusted_cleanup(struct trusted *t) {
    X509_free(t->cert);
    t->cert = NULL;
    EVP_PKEY_free(t->pub);
    t->pub = NULL;
}

static X509 *parse_der_exact(const uint8_t *der, size_t len) {
    if (len == 0 || len > ATTEST_CERT_DER_MAX_BYTES) {
        return NULL;
    }
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x != NULL && p != der + len) {
        X509_free(x);
        x = NULL;
    }
    ERR_clear_error();
    return x;
}

// ---- AMD's signature scheme --------------------------------------------------------------------

// DER content octets of id-sha384 (2.16.840.1.101.3.4.2.2) and id-mgf1 (1.2.840.113549.1.1.8).
static const uint8_t oid_sha384[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02};
static const uint8_t oid_mgf1[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};
#define AMD_PSS_SALT_BYTES 48u
#define AMD_PSS_SCHEME "RSASSA-PSS with SHA-384, MGF1-SHA-384 and salt 48"

// is_sha384_algid: AlgorithmIdentifier { id-sha384, NULL or absent } (RFC 4055 §2.1 allows
// both; AMD writes NULL).
static bool is_sha384_algid(CBS *alg) {
    CBS oid, null;
    if (!CBS_get_asn1(alg, &oid, CBS_ASN1_OBJECT) ||
        !CBS_mem_equal(&oid, oid_sha384, sizeof(oid_sha384))) {
        return false;
    }
    if (CBS_len(alg) == 0) {
        return true;
    }
    return CBS_get_asn1(alg, &null, CBS_ASN1_NULL) && CBS_len(&null) == 0 && CBS_len(alg) == 0;
}

// is_amd_pss_params parses RSASSA-PSS-params (RFC 4055 §3.1) and requires AMD's values: hash
// SHA-384, MGF1 with SHA-384, salt 48, trailer 1 (written out in the ARK/ASK, omitted in the
// VCEK). The DEFAULT hash (SHA-1) and salt (20) are never AMD's, so [0] [1] [2] are required.
static bool is_amd_pss_params(CBS *params) {
    CBS seq, hash_tag, hash, mgf_tag, mgf, mgf_oid, mgf_hash, salt_tag, trailer_tag;
    uint64_t salt = 0, trailer = 1;
    if (!CBS_get_asn1(params, &seq, CBS_ASN1_SEQUENCE) || CBS_len(params) != 0) {
        return false;
    }
    bool ok = CBS_get_asn1(&seq, &hash_tag, CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 0) &&
              CBS_get_asn1(&hash_tag, &hash, CBS_ASN1_SEQUENCE) && CBS_len(&hash_tag) == 0 &&
              is_sha384_algid(&hash);
    ok = ok && CBS_get_asn1(&seq, &mgf_tag, CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 1) &&
         CBS_get_asn1(&mgf_tag, &mgf, CBS_ASN1_SEQUENCE) && CBS_len(&mgf_tag) == 0 &&
         CBS_get_asn1(&mgf, &mgf_oid, CBS_ASN1_OBJECT) &&
         CBS_mem_equal(&mgf_oid, oid_mgf1, sizeof(oid_mgf1)) &&
         CBS_get_asn1(&mgf, &mgf_hash, CBS_ASN1_SEQUENCE) && CBS_len(&mgf) == 0 &&
         is_sha384_algid(&mgf_hash);
    ok = ok &&
         CBS_get_asn1(&seq, &salt_tag, CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 2) &&
         CBS_get_asn1_uint64(&salt_tag, &salt) && CBS_len(&salt_tag) == 0 &&
         salt == AMD_PSS_SALT_BYTES;
    if (ok && CBS_peek_asn1_tag(&seq, CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 3)) {
        ok = CBS_get_asn1(&seq, &trailer_tag,
                          CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 3) &&
             CBS_get_asn1_uint64(&trailer_tag, &trailer) && CBS_len(&trailer_tag) == 0;
    }
    return ok && trailer == 1 && CBS_len(&seq) == 0;
}

// is_amd_pss_alg: the AlgorithmIdentifier `alg` is rsassaPss with AMD's parameters.
static bool is_amd_pss_alg(const X509_ALGOR *alg, uint8_t **out_der, int *out_len) {
    *out_der = NULL;
    // WARNING: this BoringSSL's i2d_X509_ALGOR takes a non-const pointer; it only reads.
    *out_len = i2d_X509_ALGOR((X509_ALGOR *)alg, out_der);
    if (*out_len <= 0) {
        return false;
    }
    CBS in, seq, oid;
    CBS_init(&in, *out_der, (size_t)*out_len);
    if (!CBS_get_asn1(&in, &seq, CBS_ASN1_SEQUENCE) || CBS_len(&in) != 0 ||
        !CBS_get_asn1(&seq, &oid, CBS_ASN1_OBJECT) || OBJ_cbs2nid(&oid) != NID_rsassaPss) {
        return false;
    }
    return is_amd_pss_params(&seq);
}

// is_signed_amd_pss: `x` (ARK, ASK/ASVK or VCEK/VLEK) is signed with AMD's scheme, and the
// TBSCertificate names the same algorithm as the outer signature. Checked before X509_verify,
// which would also accept PKCS#1 v1.5 and RSA-PSS with SHA-256 or SHA-512 (fail closed).
static bool is_signed_amd_pss(const X509 *x) {
    const X509_ALGOR *outer = NULL;
    X509_get0_signature(NULL, &outer, x);
    const X509_ALGOR *inner = X509_get0_tbs_sigalg(x);
    uint8_t *outer_der = NULL, *inner_der = NULL;
    int outer_len = 0, inner_len = 0;
    bool ok = outer != NULL && inner != NULL && is_amd_pss_alg(outer, &outer_der, &outer_len) &&
              is_amd_pss_alg(inner, &inner_der, &inner_len) && outer_len == inner_len &&
              memcmp(outer_der, inner_der, (size_t)outer_len) == 0;
    OPENSSL_free(outer_der);
    OPENSSL_free(inner_der);
    ERR_clear_error();
    return ok;
}

// ---- anchors ----------------------------------------------------------------------------------

static enum attest_status add_trusted(struct attest_verifier *v, struct attest_error *err, X509 *x,
                                      const char *origin) {
    char cn[64];
    cert_cn(x, true, cn, sizeof(cn));
    bool self_issued = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
    struct trusted t = {.cert = x, .pub = X509_get_pubkey(x)};
    if (!cert_validity(x, &t.not_before, &t.not_after)) {
        trusted_cleanup(&t);
        return attest_error_set(err, ATTEST_CONFIG_INVALID,
                                "%s: certificate '%s' has a validity time that cannot be read",
                                origin, cn);
    }
    if (t.pub == NULL || EVP_PKEY_id(t.pub) != EVP_PKEY_RSA) {
        trusted_cleanup(&t);
        return attest_error_set(err, ATTEST_CONFIG_INVALID,
                                "%s: certificate %s has no RSA key; AMD roots are RSA-4096",
                                origin, cn);
    }
    if (!is_signed_amd_pss(x)) {
        trusted_cleanup(&t);
        return attest_error_set(err, ATTEST_CONFIG_INVALID,
                                "%s: certificate '%s' is not signed with " AMD_PSS_SCHEME
                                " (AMD's scheme for every ARK, ASK and VCEK)",
                                origin, cn);
    }
    if (self_issued) {
        if (X509_verify(x, t.pub) != 1 || strncmp(cn, "ARK-", 4) != 0 ||
            (t.product = product_from_suffix(cn + 4)) == ATTEST_PRODUCT_UNKNOWN ||
            v->n_anchors == ANCHORS_MAX) {
            trusted_cleanup(&t);
            ERR_clear_error();
            return attest_error_set(err, ATTEST_CONFIG_INVALID,
                                    "%s: root '%s' is not a self-signed ARK-<Milan|Genoa|Turin>",
                                    origin, cn);
        }
        v->anchors[v->n_anchors++] = t;
        return ATTEST_OK;
    }
    const char *suffix = NULL;
    if (strncmp(cn, "SEV-VLEK-", 9) == 0) {
        t.vlek = true;
        suffix = cn + 9;
    } else if (strncmp(cn, "SEV-", 4) == 0) {
        suffix = cn + 4;
    }
    t.product = suffix == NULL ? ATTEST_PRODUCT_UNKNOWN : product_from_suffix(suffix);
    bool ok = false;
    for (size_t i = 0; i < v->n_anchors && t.product != ATTEST_PRODUCT_UNKNOWN; i++) {
        struct trusted *a = &v->anchors[i];
        if (a->product == t.product &&
            X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(a->cert)) == 0 &&
            X509_verify(x, a->pub) == 1 && X509_check_ca(x) == 1) {
            ok = true;
            t.not_before = t.not_before > a->not_before ? t.not_before : a->not_before;
            t.not_after = t.not_after < a->not_after ? t.not_after : a->not_after;
            break;
        }
    }
    ERR_clear_error();
    if (!ok || v->n_inter == INTERMEDIATES_MAX) {
        trusted_cleanup(&t);
        return attest_error_set(err, ATTEST_CONFIG_INVALID,
                                "%s: intermediate '%s' is not a CA SEV-<P>/SEV-VLEK-<P> signed "
                                "by a root of the same file",
                                origin, cn);
    }
    v->inter[v->n_inter++] = t;
    return ATTEST_OK;
}

static enum attest_status load_builtin(struct attest_verifier *v, struct attest_error *err) {
    size_t n = 0;
    const struct attest_root_pem *roots = attest_roots_builtin(&n);
    // ARKs first (entries are ordered ARK, ASK, ASVK per product, but do not rely on it).
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            bool is_ark = strncmp(roots[i].name, "ARK-", 4) == 0;
            if (is_ark != (pass == 0)) {
                continue;
            }
            BIO *bio = BIO_new_mem_buf(roots[i].pem, -1);
            X509 *x = bio == NULL ? NULL : PEM_read_bio_X509(bio, NULL, NULL, NULL);
            BIO_free(bio);
            uint8_t *der = NULL;
            int der_len = x == NULL ? -1 : i2d_X509(x, &der);
            uint8_t h[32];
            bool pinned = der_len > 0 && (SHA256(der, (size_t)der_len, h), true) &&
                          CRYPTO_memcmp(h, roots[i].sha256, 32) == 0;
            OPENSSL_free(der);
            ERR_clear_error();
            if (!pinned) {
                X509_free(x);
                return attest_error_set(err, ATTEST_INTERNAL,
                                        "builtin AMD certificate %s does not match its SHA-256 "
                                        "pin; the binary is corrupt",
                                        roots[i].name);
            }
            enum attest_status st = add_trusted(v, err, x, "builtin");
            if (st != ATTEST_OK) {
                return st;
            }
        }
    }
    return ATTEST_OK;
}

static enum attest_status load_pem_file(struct attest_verifier *v, struct attest_error *err,
                                        const char *path) {
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        ERR_clear_error();
        return attest_error_set(err, ATTEST_CONFIG_INVALID,
                                "cannot open roots file %s: %s (set [chain] roots to 'builtin' "
                                "or a readable PEM file)",
                                path, strerror(errno));
    }
    X509 *certs[ANCHORS_MAX + INTERMEDIATES_MAX];
    size_t n = 0;
    X509 *x;
    while (n < ARRAY_LEN(certs) && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        certs[n++] = x;
    }
    BIO_free(bio);
    ERR_clear_error();
    enum attest_status st = ATTEST_OK;
    if (n == 0) {
        st = attest_error_set(err, ATTEST_CONFIG_INVALID,
                              "roots file %s holds no PEM certificate", path);
    }
    // Self-signed roots first, then intermediates (which must chain to them).
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (certs[i] == NULL) {
                continue;
            }
            bool self = X509_NAME_cmp(X509_get_subject_name(certs[i]),
                                      X509_get_issuer_name(certs[i])) == 0;
            if (self != (pass == 0)) {
                continue;
            }
            if (st == ATTEST_OK) {
                st = add_trusted(v, err, certs[i], path); // takes ownership, even on failure
            } else {
                X509_free(certs[i]);
            }
            certs[i] = NULL;
        }
    }
    if (st == ATTEST_OK && v->n_anchors == 0) {
        st = attest_error_set(err, ATTEST_CONFIG_INVALID,
                              "roots file %s holds no self-signed ARK; peer or intermediate "
                              "certificates are never anchors",
                              path);
    }
    return st;
}

// trust_digest sets v->trust_sha256: SHA-256 over the DER of every anchor, then every
// intermediate, in load order, each preceded by its length (be32). False when out of memory.
static bool trust_digest(struct attest_verifier *v) {
    SHA256_CTX h;
    SHA256_Init(&h);
    for (int pass = 0; pass < 2; pass++) {
        const struct trusted *t = pass == 0 ? v->anchors : v->inter;
        size_t n = pass == 0 ? v->n_anchors : v->n_inter;
        for (size_t i = 0; i < n; i++) {
            uint8_t *der = NULL;
            int len = i2d_X509(t[i].cert, &der);
            if (len <= 0) {
                ERR_clear_error();
                return false;
            }
            uint8_t be[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                             (uint8_t)len};
            SHA256_Update(&h, be, sizeof(be));
            SHA256_Update(&h, der, (size_t)len);
            OPENSSL_free(der);
        }
    }
    SHA256_Final(v->trust_sha256, &h);
    return true;
}

struct attest_verifier *attest_verifier_new(const struct attest_verifier_config *cfg,
                                            struct attest_error *err) {
    ASSERT(cfg != NULL);
    struct attest_verifier *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        attest_error_set(err, ATTEST_INTERNAL, "out of memory creating the verifier");
        return NULL;
    }
    v->cfg = *cfg;
    v->cfg.roots[sizeof(v->cfg.roots) - 1] = '\0';
    v->cfg.vcek_dir[sizeof(v->cfg.vcek_dir) - 1] = '\0';
    v->cache_cap = cfg->chain_cache_max == 0 ? ATTEST_CHAIN_CACHE_DEFAULT : cfg->chain_cache_max;
    if (v->cache_cap > ATTEST_CHAIN_CACHE_MAX) {
        attest_error_set(err, ATTEST_CONFIG_INVALID, "chain_cache_max %u is above %u",
                         cfg->chain_cache_max, ATTEST_CHAIN_CACHE_MAX);
        attest_verifier_free(v);
        return NULL;
    }
    v->cache = calloc(v->cache_cap, sizeof(*v->cache));
    bool tables_ok = true;
    for (size_t i = 0; i < ATTEST_P384_TABLES_MAX; i++) {
        v->slots[i].table = attest_p384_table_new(); // untouched pages until a table is built
        tables_ok &= v->slots[i].table != NULL;
    }
    enum attest_status st;
    if (v->cache == NULL || !tables_ok) {
        st = attest_error_set(err, ATTEST_INTERNAL, "out of memory for the chain cache");
    } else if (v->cfg.roots[0] == '\0' || strcmp(v->cfg.roots, "builtin") == 0) {
        st = load_builtin(v, err);
    } else {
        st = load_pem_file(v, err, v->cfg.roots);
    }
    if (st == ATTEST_OK && !trust_digest(v)) {
        st = attest_error_set(err, ATTEST_INTERNAL, "out of memory hashing the trust anchors");
    }
    if (st != ATTEST_OK) {
        attest_verifier_free(v);
        return NULL;
    }
    ASSERT(v->n_anchors > 0);
    return v;
}

void attest_verifier_trust_sha256(const struct attest_verifier *v, uint8_t out[32]) {
    ASSERT(v != NULL);
    memcpy(out, v->trust_sha256, sizeof(v->trust_sha256));
}

static void cache_entry_clear(struct cache_entry *e) {
    if (e->slot != NULL) {
        e->slot->owner = NULL;
    }
    EC_KEY_free(e->pub);
    memset(e, 0, sizeof(*e));
}

void attest_verifier_free(struct attest_verifier *v) {
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->n_anchors; i++) {
        trusted_cleanup(&v->anchors[i]);
    }
    for (size_t i = 0; i < v->n_inter; i++) {
        trusted_cleanup(&v->inter[i]);
    }
    for (uint32_t i = 0; v->cache != NULL && i < v->cache_cap; i++) {
        cache_entry_clear(&v->cache[i]);
    }
    free(v->cache);
    for (size_t i = 0; i < ATTEST_P384_TABLES_MAX; i++) {
        attest_p384_table_free(v->slots[i].table);
    }
    free(v);
}

void attest_verifier_cache_stats(const struct attest_verifier *v, uint64_t *out_hits,
                                 uint64_t *out_misses, uint32_t *out_entries) {
    ASSERT(v != NULL);
    uint32_t n = 0;
    for (uint32_t i = 0; i < v->cache_cap; i++) {
        n += v->cache[i].used ? 1u : 0u;
    }
    *out_hits = v->hits;
    *out_misses = v->misses;
    *out_entries = n;
}

void attest_verifier_table_stats(const struct attest_verifier *v, uint64_t *out_table_verifies,
                                 uint64_t *out_table_builds) {
    ASSERT(v != NULL);
    *out_table_verifies = v->table_verifies;
    *out_table_builds = v->table_builds;
}

// ---- VCEK extensions --------------------------------------------------------------------------

// AMD arc 1.3.6.1.4.1.3704.1 in DER content octets.
static const uint8_t amd_arc[] = {0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01};

enum ext_id {
    EXT_STRUCT_VERSION,
    EXT_PRODUCT_NAME,
    EXT_BL,
    EXT_TEE,
    EXT_SNP,
    EXT_SPL4,
    EXT_SPL5,
    EXT_SPL6,
    EXT_SPL7,
    EXT_UCODE,
    EXT_FMC,
    EXT_HWID,
    EXT_CSP_ID,
    EXT_UNKNOWN,
};

static enum ext_id classify_ext(const uint8_t *oid, size_t len) {
    if (len < sizeof(amd_arc) + 1 || memcmp(oid, amd_arc, sizeof(amd_arc)) != 0) {
        return EXT_UNKNOWN;
    }
    const uint8_t *s = oid + sizeof(amd_arc);
    size_t n = len - sizeof(amd_arc);
    if (n == 1) {
        switch (s[0]) {
        case 1:
            return EXT_STRUCT_VERSION;
        case 2:
            return EXT_PRODUCT_NAME;
        case 4:
            return EXT_HWID;
        case 5:
            return EXT_CSP_ID;
        default:
            return EXT_UNKNOWN;
        }
    }
    if (n == 2 && s[0] == 3 && s[1] >= 1 && s[1] <= 9) {
        static const enum ext_id spl[] = {EXT_BL,   EXT_TEE,  EXT_SNP,   EXT_SPL4, EXT_SPL5,
                                          EXT_SPL6, EXT_SPL7, EXT_UCODE, EXT_FMC};
        return spl[s[1] - 1];
    }
    return EXT_UNKNOWN;
}

static bool parse_der_uint(const uint8_t *p, size_t len, uint64_t *out) {
    CBS cbs;
    CBS_init(&cbs, p, len);
    return CBS_get_asn1_uint64(&cbs, out) && CBS_len(&cbs) == 0;
}

static bool parse_ia5(const uint8_t *p, size_t len, char *out, size_t out_size) {
    CBS cbs, inner;
    CBS_init(&cbs, p, len);
    if (!CBS_get_asn1(&cbs, &inner, CBS_ASN1_IA5STRING) || CBS_len(&cbs) != 0 ||
        CBS_len(&inner) >= out_size) {
        return false;
    }
    memcpy(out, CBS_data(&inner), CBS_len(&inner));
    out[CBS_len(&inner)] = '\0';
    return true;
}

static bool parse_hwid(const uint8_t *p, size_t len, struct vcek_ext *e) {
    if (len == 64 || len == 8) { // raw bytes, as in every real certificate
        memcpy(e->hwid, p, len);
        e->hwid_len = len;
        return true;
    }
    CBS cbs, inner;
    CBS_init(&cbs, p, len);
    if (!CBS_get_asn1(&cbs, &inner, CBS_ASN1_OCTETSTRING) || CBS_len(&cbs) != 0 ||
        (CBS_len(&inner) != 64 && CBS_len(&inner) != 8)) {
        return false;
    }
    memcpy(e->hwid, CBS_data(&inner), CBS_len(&inner));
    e->hwid_len = CBS_len(&inner);
    return true;
}

static enum attest_status parse_vcek_ext(struct vcek_ext *out, struct attest_error *err, X509 *x,
                                         bool vlek) {
    memset(out, 0, sizeof(*out));
    uint32_t seen = 0;
    int n = X509_get_ext_count(x);
    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ext = X509_get_ext(x, i);
        ASN1_OBJECT *obj = X509_EXTENSION_get_object(ext);
        enum ext_id id = classify_ext(OBJ_get0_data(obj), OBJ_length(obj));
        if (id == EXT_UNKNOWN || X509_EXTENSION_get_critical(ext)) {
            return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                    "VCEK/VLEK carries an unknown or critical extension; not an "
                                    "AMD KDS certificate");
        }
        if (seen & (1u << id)) {
            return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                    "VCEK/VLEK repeats an AMD extension");
        }
        seen |= 1u << id;
        const ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(ext);
        const uint8_t *p = ASN1_STRING_get0_data(data);
        size_t len = (size_t)ASN1_STRING_length(data);
        bool ok = true;
        switch (id) {
        case EXT_STRUCT_VERSION:
            ok = parse_der_uint(p, len, &out->struct_version);
            break;
        case EXT_PRODUCT_NAME:
            ok = parse_ia5(p, len, out->product_name, sizeof(out->product_name));
            break;
        case EXT_CSP_ID:
            ok = parse_ia5(p, len, out->csp_id, sizeof(out->csp_id)) && out->csp_id[0] != '\0';
            break;
        case EXT_HWID:
            ok = parse_hwid(p, len, out);
            break;
        default: {
            uint64_t val = 0;
            ok = parse_der_uint(p, len, &val) && val <= (id == EXT_UCODE ? 255u : 127u);
            uint64_t *dst[] = {[EXT_BL] = &out->bl, [EXT_TEE] = &out->tee, [EXT_SNP] = &out->snp,
                               [EXT_UCODE] = &out->ucode, [EXT_FMC] = &out->fmc};
            if (ok && id < ARRAY_LEN(dst) && dst[id] != NULL) {
                *dst[id] = val;
            } else if (ok && val != 0) {
                ok = false; // spl_4..spl_7 are reserved: 0
            }
            out->has_fmc |= id == EXT_FMC;
            break;
        }
        }
        if (!ok) {
            return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                    "VCEK/VLEK AMD extension %d has a bad encoding or value",
                                    (int)id);
        }
    }
    out->signer = vlek ? ATTEST_SIGNER_VLEK : ATTEST_SIGNER_VCEK;
    cert_cn(x, false, out->issuer_cn, sizeof(out->issuer_cn));
    if (!cert_validity(x, &out->not_before, &out->not_after)) {
        return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                "VCEK/VLEK has a validity time that cannot be read");
    }
    uint32_t required = 1u << EXT_STRUCT_VERSION | 1u << EXT_PRODUCT_NAME | 1u << EXT_BL |
                        1u << EXT_TEE | 1u << EXT_SNP | 1u << EXT_UCODE;
    if ((seen & required) != required) {
        return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                "VCEK/VLEK lacks structVersion, productName or an SPL extension");
    }
    if (!vlek && (out->hwid_len == 0 || out->csp_id[0] != '\0')) {
        return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                "VCEK must carry hwID and no csp_id");
    }
    if (vlek && (out->hwid_len != 0 || out->csp_id[0] == '\0')) {
        return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                "VLEK must carry csp_id and no hwID");
    }
    return ATTEST_OK;
}

enum attest_status attest_vcek_parse(struct attest_vcek_info *out, struct attest_error *err,
                                     const uint8_t *der, size_t len) {
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    X509 *x = der == NULL ? NULL : parse_der_exact(der, len);
    if (x == NULL) {
        return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                "not a DER X.509 certificate of at most %u bytes",
                                ATTEST_CERT_DER_MAX_BYTES);
    }
    char cn[64];
    cert_cn(x, true, cn, sizeof(cn));
    enum attest_status st;
    if (strcmp(cn, "SEV-VCEK") != 0 && strcmp(cn, "SEV-VLEK") != 0) {
        st = attest_error_set(err, ATTEST_VCEK_MALFORMED,
                              "certificate CN '%s' is neither SEV-VCEK nor SEV-VLEK", cn);
    } else {
        st = parse_vcek_ext(out, err, x, strcmp(cn, "SEV-VLEK") == 0);
    }
    X509_free(x);
    ERR_clear_error();
    return st;
}

// ---- chain ------------------------------------------------------------------------------------

static bool is_p384_key(EVP_PKEY *pk) {
    if (pk == NULL || EVP_PKEY_id(pk) != EVP_PKEY_EC) {
        return false;
    }
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pk);
    return ec != NULL && EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) == NID_secp384r1;
}

// find_issuer: the trusted intermediate (or the verified peer ASK in `peer`) that signed `x`.
static const struct trusted *find_issuer(const struct attest_verifier *v, X509 *x,
                                         const struct trusted *peer) {
    for (size_t i = 0; i <= v->n_inter; i++) {
        const struct trusted *t = i < v->n_inter ? &v->inter[i] : peer;
        if (t == NULL || t->cert == NULL) {
            continue;
        }
        if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(t->cert)) == 0 &&
            X509_verify(x, t->pub) == 1) {
            ERR_clear_error();
            return t;
        }
        ERR_clear_error();
    }
    return NULL;
}

// verify_peer_ask: a peer-supplied ASK/ASVK is used only if a trusted ARK signed it.
static void verify_peer_ask(const struct attest_verifier *v, struct trusted *out,
                            const uint8_t *der, size_t len) {
    memset(out, 0, sizeof(*out));
    X509 *x = parse_der_exact(der, len);
    if (x == NULL) {
        return;
    }
    // Reuse add_trusted's checks on a scratch copy of the verifier's anchors.
    struct attest_verifier scratch;
    memset(&scratch, 0, sizeof(scratch));
    memcpy(scratch.anchors, v->anchors, sizeof(v->anchors));
    scratch.n_anchors = v->n_anchors;
    if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0) {
        X509_free(x); // a peer root is never an anchor
        return;
    }
    if (add_trusted(&scratch, NULL, x, "peer") == ATTEST_OK) {
        *out = scratch.inter[0];
    }
}

static enum attest_status chain_verify(struct attest_verifier *v, struct cache_entry *out,
                                       struct attest_error *err, const uint8_t *vcek_der,
                                       size_t vcek_len, const uint8_t *ask_der, size_t ask_len) {
    X509 *x = parse_der_exact(vcek_der, vcek_len);
    if (x == NULL) {
        return attest_error_set(err, ATTEST_CHAIN_INVALID,
                                "VCEK is not a DER X.509 certificate of at most %u bytes",
                                ATTEST_CERT_DER_MAX_BYTES);
    }
    enum attest_status st = ATTEST_OK;
    struct trusted peer = {0};
    EVP_PKEY *pk = X509_get_pubkey(x);
    char cn[64];
    cert_cn(x, true, cn, sizeof(cn));
    bool vlek = strcmp(cn, "SEV-VLEK") == 0;
    if (X509_get_version(x) != X509_VERSION_3 || !is_p384_key(pk) ||
        (!vlek && strcmp(cn, "SEV-VCEK") != 0)) {
        st = attest_error_set(err, ATTEST_CHAIN_INVALID,
                              "endorsement certificate '%s' is not an AMD VCEK/VLEK (X.509 v3, "
                              "P-384 key, CN SEV-VCEK or SEV-VLEK)",
                              cn);
        goto out_free;
    }
    if (!is_signed_amd_pss(x)) {
        st = attest_error_set(err, ATTEST_CHAIN_INVALID,
                              "endorsement certificate '%s' is not signed with " AMD_PSS_SCHEME
                              " as every AMD VCEK/VLEK is",
                              cn);
        goto out_free;
    }
    if (ask_der != NULL && ask_len > 0) {
        verify_peer_ask(v, &peer, ask_der, ask_len);
    }
    const struct trusted *issuer = find_issuer(v, x, &peer);
    if (issuer == NULL) {
        char icn[64];
        cert_cn(x, false, icn, sizeof(icn));
        st = attest_error_set(err, ATTEST_CHAIN_INVALID,
                              "%s issued by '%s' does not chain to a trusted AMD root (roots=%s)",
                              cn, icn, v->cfg.roots[0] != '\0' ? v->cfg.roots : "builtin");
        goto out_free;
    }
    if (issuer->vlek != vlek) {
        st = attest_error_set(err, ATTEST_CHAIN_INVALID,
                              "%s was issued by the wrong intermediate kind (VCEK needs an ASK, "
                              "VLEK an ASVK)",
                              cn);
        goto out_free;
    }
    st = parse_vcek_ext(&out->ext, err, x, vlek);
    if (st != ATTEST_OK) {
        goto out_free;
    }
    memset(out->key, 0, sizeof(out->key));
    out->pub = EVP_PKEY_get1_EC_KEY(pk);
    out->product = issuer->product;
    out->kind = vlek ? ATTEST_SIGNER_VLEK : ATTEST_SIGNER_VCEK;
    int64_t nb = out->ext.not_before; // parse_vcek_ext refuses a validity it cannot read
    int64_t na = out->ext.not_after;
    out->not_before = nb > issuer->not_before ? nb : issuer->not_before;
    out->not_after = na < issuer->not_after ? na : issuer->not_after;
    if (out->pub == NULL) {
        st = attest_error_set(err, ATTEST_INTERNAL, "cannot extract the VCEK public key");
    }
out_free:
    trusted_cleanup(&peer);
    EVP_PKEY_free(pk);
    X509_free(x);
    ERR_clear_error();
    return st;
}

static struct cache_entry *cache_lookup(struct attest_verifier *v, const uint8_t key[32]) {
    for (uint32_t i = 0; i < v->cache_cap; i++) {
        if (v->cache[i].used && memcmp(v->cache[i].key, key, 32) == 0) {
            return &v->cache[i];
        }
    }
    return NULL;
}

static struct cache_entry *cache_victim(struct attest_verifier *v) {
    struct cache_entry *victim = &v->cache[0];
    for (uint32_t i = 0; i < v->cache_cap; i++) {
        if (!v->cache[i].used) {
            return &v->cache[i];
        }
        if (v->cache[i].last_use < victim->last_use) {
            victim = &v->cache[i];
        }
    }
    return victim;
}

// ---- report-specific bindings -----------------------------------------------------------------

static enum attest_status check_bindings(struct attest_claims *c, struct attest_error *err,
                                         const struct cache_entry *e, const uint8_t *report) {
    if (c->signer != e->kind) {
        return attest_error_set(err, ATTEST_SIGNER_MISMATCH,
                                "report SIGNING_KEY names a %s but the certificate is a %s",
                                c->signer == ATTEST_SIGNER_VLEK ? "VLEK" : "VCEK",
                                e->kind == ATTEST_SIGNER_VLEK ? "VLEK" : "VCEK");
    }
    if (c->version >= 3 && c->product != e->product) {
        return attest_error_set(err, ATTEST_PRODUCT_MISMATCH,
                                "report CPUID says %s but the VCEK chains to the %s root",
                                attest_product_name(c->product), attest_product_name(e->product));
    }
    if (c->version < 3 && e->product == ATTEST_PRODUCT_TURIN) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "Turin reports must be version 3 or later (got %u)", c->version);
    }
    attest_claims_set_product(c, e->product);
    uint8_t tb[8];
    attest_put_le64(tb, c->reported_tcb.raw);
    bool reserved_zero = e->product == ATTEST_PRODUCT_TURIN
                             ? (tb[4] | tb[5] | tb[6]) == 0
                             : (tb[2] | tb[3] | tb[4] | tb[5]) == 0;
    if (!reserved_zero) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "REPORTED_TCB 0x%016llx has reserved bytes set for %s",
                                (unsigned long long)c->reported_tcb.raw,
                                attest_product_name(e->product));
    }
    bool turin = e->product == ATTEST_PRODUCT_TURIN;
    if (e->ext.struct_version != (turin ? 1u : 0u) || e->ext.has_fmc != turin) {
        return attest_error_set(err, ATTEST_VCEK_MALFORMED,
                                "VCEK structVersion %llu / fmcSPL presence does not fit %s",
                                (unsigned long long)e->ext.struct_version,
                                attest_product_name(e->product));
    }
    const struct attest_tcb *t = &c->reported_tcb;
    if (e->ext.bl != t->bl || e->ext.tee != t->tee || e->ext.snp != t->snp ||
        e->ext.ucode != t->ucode || (turin && e->ext.fmc != t->fmc)) {
        return attest_error_set(err, ATTEST_VCEK_TCB_MISMATCH,
                                "VCEK is for TCB fmc=%llu bl=%llu tee=%llu snp=%llu ucode=%llu but "
                                "REPORTED_TCB is fmc=%u bl=%u tee=%u snp=%u ucode=%u; fetch the "
                                "VCEK for the reported TCB",
                                (unsigned long long)e->ext.fmc, (unsigned long long)e->ext.bl,
                                (unsigned long long)e->ext.tee, (unsigned long long)e->ext.snp,
                                (unsigned long long)e->ext.ucode, t->fmc, t->bl, t->tee, t->snp,
                                t->ucode);
    }
    if (e->kind == ATTEST_SIGNER_VCEK) {
        uint8_t acc = 0;
        for (size_t i = 0; i < ATTEST_CHIP_ID_BYTES; i++) {
            acc |= c->chip_id[i];
        }
        size_t want = turin ? 8 : ATTEST_CHIP_ID_BYTES;
        bool tail_zero = true;
        for (size_t i = want; i < ATTEST_CHIP_ID_BYTES; i++) {
            tail_zero &= c->chip_id[i] == 0;
        }
        if (acc == 0) {
            return attest_error_set(
                err, ATTEST_CHIP_ID_MISMATCH,
                "report CHIP_ID is all zero (masked by the host), so it cannot "
                "be bound to the VCEK; a VCEK-signed report must name its chip");
        }
        if (!tail_zero) {
            return attest_error_set(err, ATTEST_CHIP_ID_MISMATCH,
                                    "report CHIP_ID bytes %zu..63 are not zero; a %s chip id is "
                                    "%zu bytes",
                                    want, attest_product_name(e->product), want);
        }
        if (e->ext.hwid_len != want ||
            memcmp(e->ext.hwid, report + ATTEST_OFF_CHIP_ID, want) != 0) {
            char hex[17];
            core_base_hex_encode(hex, c->chip_id, 8);
            return attest_error_set(err, ATTEST_CHIP_ID_MISMATCH,
                                    "report CHIP_ID %s... is not the chip the VCEK was issued for",
                                    hex);
        }
    }
    return ATTEST_OK;
}

// attach_table gives e a fixed-base table of its key: a free slot, else the least recently used
// entry's. Called once a key has verified twice, so one-off VCEKs never pay for a build (~5 ms).
static void attach_table(struct attest_verifier *v, struct cache_entry *e) {
    struct p384_slot *slot = NULL;
    for (size_t i = 0; i < ATTEST_P384_TABLES_MAX && slot == NULL; i++) {
        if (v->slots[i].owner == NULL) {
            slot = &v->slots[i];
        }
    }
    if (slot == NULL) {
        // All slots taken: take the least recently used one, but only after enough BoringSSL
        // verifications since the last build, so that more hot keys than slots cost at most one
        // build per ATTEST_P384_STEAL_AFTER slow verifications instead of one each.
        if (v->slow_since_build < ATTEST_P384_STEAL_AFTER) {
            return;
        }
        slot = &v->slots[0];
        for (size_t i = 1; i < ATTEST_P384_TABLES_MAX; i++) {
            if (v->slots[i].owner->last_use < slot->owner->last_use) {
                slot = &v->slots[i];
            }
        }
    }
    if (slot->owner != NULL) {
        slot->owner->slot = NULL;
        slot->owner = NULL;
    }
    uint8_t pt[1 + 2 * ATTEST_P384_BYTES];
    const EC_GROUP *g = EC_KEY_get0_group(e->pub);
    const EC_POINT *q = EC_KEY_get0_public_key(e->pub);
    bool ok = g != NULL && q != NULL &&
              EC_POINT_point2oct(g, q, POINT_CONVERSION_UNCOMPRESSED, pt, sizeof(pt), NULL) ==
                  sizeof(pt) &&
              attest_p384_table_fill(slot->table, pt + 1, pt + 1 + ATTEST_P384_BYTES);
    ERR_clear_error();
    if (ok) { // otherwise the key keeps BoringSSL's path
        slot->owner = e;
        e->slot = slot;
        v->table_builds++;
        v->slow_since_build = 0;
    }
}

// check_signature verifies the report's ECDSA P-384 signature with the entry's VCEK/VLEK key:
// through the key's fixed-base table when it has one (attest_p384.c, checked against BoringSSL
// by tests/attest/attest_p384_test.cc), else with BoringSSL.
static enum attest_status check_signature(struct attest_verifier *v, struct attest_error *err,
                                          struct cache_entry *e, const uint8_t *report) {
    uint8_t digest[SHA384_DIGEST_LENGTH];
    SHA384(report, ATTEST_REPORT_SIGNED_BYTES, digest);
    bool ok = false;
    if (e->slot != NULL) {
        // r and s are 72-byte little-endian fields; a value above 48 bytes is >= n: invalid.
        uint8_t r[ATTEST_P384_BYTES], s[ATTEST_P384_BYTES], high = 0;
        for (size_t i = 0; i < ATTEST_P384_BYTES; i++) {
            r[i] = report[ATTEST_OFF_SIG_R + ATTEST_P384_BYTES - 1 - i];
            s[i] = report[ATTEST_OFF_SIG_S + ATTEST_P384_BYTES - 1 - i];
        }
        for (size_t i = ATTEST_P384_BYTES; i < ATTEST_SIG_COMPONENT_BYTES; i++) {
            high |= report[ATTEST_OFF_SIG_R + i] | report[ATTEST_OFF_SIG_S + i];
        }
        ok = high == 0 && attest_p384_verify(e->slot->table, digest, r, s);
        v->table_verifies++;
    } else {
        ECDSA_SIG *sig = ECDSA_SIG_new();
        BIGNUM *r = BN_le2bn(report + ATTEST_OFF_SIG_R, ATTEST_SIG_COMPONENT_BYTES, NULL);
        BIGNUM *s = BN_le2bn(report + ATTEST_OFF_SIG_S, ATTEST_SIG_COMPONENT_BYTES, NULL);
        if (sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s)) {
            r = NULL;
            s = NULL;
            ok = ECDSA_do_verify(digest, sizeof(digest), sig, e->pub) == 1;
        }
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        ERR_clear_error();
        v->slow_since_build++;
        if (ok && e->sig_ok < UINT32_MAX && ++e->sig_ok >= 2) {
            attach_table(v, e);
        }
    }
    if (!ok) {
        return attest_error_set(err, ATTEST_SIGNATURE_INVALID,
                                "report signature does not verify with the VCEK/VLEK key: the "
                                "report was altered or belongs to another chip");
    }
    return ATTEST_OK;
}

static enum attest_status load_vcek_dir(struct attest_verifier *v, struct attest_error *err,
                                        const struct attest_claims *c, uint8_t *buf,
                                        size_t *out_len) {
    char name[160];
    char path[ATTEST_PATH_MAX_BYTES + 160];
    if (v->cfg.vcek_dir[0] == '\0' || c->signer == ATTEST_SIGNER_VLEK ||
        attest_report_vcek_file_name(name, sizeof(name), c) != 0) {
        return attest_error_set(err, ATTEST_VCEK_MISSING,
                                "the evidence carries no VCEK/VLEK and no vcek_dir is configured; "
                                "embed the VCEK in the evidence");
    }
    snprintf(path, sizeof(path), "%s/%s", v->cfg.vcek_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, ATTEST_CERT_DER_MAX_BYTES);
    if (fd >= 0) {
        close(fd);
    }
    if (n <= 0) {
        return attest_error_set(err, ATTEST_VCEK_MISSING,
                                "the evidence carries no VCEK and %s is missing; fetch it from "
                                "AMD KDS into vcek_dir",
                                path);
    }
    *out_len = (size_t)n;
    return ATTEST_OK;
}

enum attest_status attest_verifier_verify_report(struct attest_verifier *v,
                                                 struct attest_claims *out_claims,
                                                 struct attest_error *err, const uint8_t *report,
                                                 size_t report_len, const uint8_t *vcek_der,
                                                 size_t vcek_len, const uint8_t *ask_der,
                                                 size_t ask_len, int64_t at_unix) {
    ASSERT(v != NULL && out_claims != NULL);
    enum attest_status st = attest_report_parse(out_claims, err, report, report_len);
    if (st != ATTEST_OK) {
        return st;
    }
    uint8_t dir_buf[ATTEST_CERT_DER_MAX_BYTES];
    if (vcek_der == NULL || vcek_len == 0) {
        st = load_vcek_dir(v, err, out_claims, dir_buf, &vcek_len);
        if (st != ATTEST_OK) {
            return st;
        }
        vcek_der = dir_buf;
    }
    uint8_t key[32];
    SHA256(vcek_der, vcek_len, key);
    struct cache_entry *e = cache_lookup(v, key);
    if (e != NULL) {
        v->hits++;
    } else {
        v->misses++;
        struct cache_entry fresh = {0};
        st = chain_verify(v, &fresh, err, vcek_der, vcek_len, ask_der, ask_len);
        if (st != ATTEST_OK) {
            cache_entry_clear(&fresh);
            return st;
        }
        e = cache_victim(v);
        cache_entry_clear(e);
        *e = fresh;
        memcpy(e->key, key, sizeof(key));
        e->used = true;
    }
    e->last_use = ++v->tick;
    if (at_unix < e->not_before || at_unix > e->not_after) {
        return attest_error_set(err, ATTEST_CERT_EXPIRED,
                                "a certificate of the VCEK chain is not valid at %lld (valid "
                                "%lld..%lld); fetch a current VCEK/VLEK",
                                (long long)at_unix, (long long)e->not_before,
                                (long long)e->not_after);
    }
    st = check_bindings(out_claims, err, e, report);
    if (st != ATTEST_OK) {
        return st;
    }
    st = check_signature(v, err, e, report);
    if (st != ATTEST_OK) {
        return st;
    }
    memcpy(out_claims->vcek_sha256, key, sizeof(key));
    out_claims->chain_not_after = e->not_after;
    out_claims->verified = true;
    return ATTEST_OK;
}

enum attest_status attest_verifier_verify_evidence(struct attest_verifier *v,
                                                   struct attest_claims *out_claims,
                                                   struct attest_error *err,
                                                   const struct attest_evidence *ev,
                                                   int64_t at_unix) {
    ASSERT(v != NULL && ev != NULL && out_claims != NULL);
    memset(out_claims, 0, sizeof(*out_claims));
    enum attest_status st = attest_evidence_check_binding(ev, err);
    if (st != ATTEST_OK) {
        return st;
    }
    return attest_verifier_verify_report(v, out_claims, err, ev->report, sizeof(ev->report),
                                         ev->vcek_len ? ev->vcek_der : NULL, ev->vcek_len,
                                         ev->chain_len ? ev->chain_der : NULL, ev->chain_len,
                                         at_unix);
}
