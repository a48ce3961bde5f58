// attest_evidence.c: the AttestationEvidence extension (DESIGN.md §5, normative): strict DER
// encode/decode, extraction from a leaf certificate, and the REPORT_DATA binding.
#include <errno.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

// DER content octets of OID 2.25.187514555026634923236501021753934806073. WARNING: this
// BoringSSL's OBJ_txt2obj cannot parse arcs above 64 bits, so the bytes are spelled out.
const uint8_t attest_evidence_oid[ATTEST_EVIDENCE_OID_BYTES] = {0x69, 0x82, 0x9a, 0x91, 0xfe, 0xd6, 0xbd,
                                       0xd4, 0xa2, 0xa9, 0xb9, 0x85, 0xc6, 0x90,
                                       0xde, 0xe7, 0xc8, 0xdb, 0xf8, 0x39};

static const char binding_label[] = "atls-proxy/snp/v1"; // followed by one 0x00 byte

#define TAG_VCEK (CBS_ASN1_CONTEXT_SPECIFIC | 0)
#define TAG_CHAIN (CBS_ASN1_CONTEXT_SPECIFIC | 1)

int attest_evidence_encode(uint8_t *out, size_t out_cap, size_t *out_len,
                           const struct attest_evidence *ev) {
    ASSERT(out != NULL && out_len != NULL && ev != NULL);
    if (ev->nonce_len < ATTEST_NONCE_MIN_BYTES || ev->nonce_len > ATTEST_NONCE_MAX_BYTES ||
        ev->vcek_len > ATTEST_CERT_DER_MAX_BYTES || ev->chain_len > ATTEST_CERT_DER_MAX_BYTES) {
        return -EINVAL;
    }
    CBB cbb, seq;
    if (!CBB_init_fixed(&cbb, out, out_cap)) {
        return -ENOMEM;
    }
    bool ok = CBB_add_asn1(&cbb, &seq, CBS_ASN1_SEQUENCE) && CBB_add_asn1_uint64(&seq, 1);
    CBB en, oct;
    ok = ok && CBB_add_asn1(&seq, &en, CBS_ASN1_ENUMERATED) && CBB_add_u8(&en, 1) &&
         CBB_flush(&seq);
    ok = ok && CBB_add_asn1(&seq, &oct, CBS_ASN1_OCTETSTRING) &&
         CBB_add_bytes(&oct, ev->nonce, ev->nonce_len) && CBB_flush(&seq);
    ok = ok && CBB_add_asn1(&seq, &oct, CBS_ASN1_OCTETSTRING) &&
         CBB_add_bytes(&oct, ev->report, ATTEST_REPORT_BYTES) && CBB_flush(&seq);
    if (ok && ev->vcek_len > 0) {
        ok = CBB_add_asn1(&seq, &oct, TAG_VCEK) && CBB_add_bytes(&oct, ev->vcek_der, ev->vcek_len) &&
             CBB_flush(&seq);
    }
    if (ok && ev->chain_len > 0) {
        ok = CBB_add_asn1(&seq, &oct, TAG_CHAIN) &&
             CBB_add_bytes(&oct, ev->chain_der, ev->chain_len) && CBB_flush(&seq);
    }
    size_t len = 0;
    uint8_t *unused = NULL;
    ok = ok && CBB_finish(&cbb, &unused, &len);
    if (!ok) {
        CBB_cleanup(&cbb);
        return -ENOSPC;
    }
    *out_len = len;
    return 0;
}

static enum attest_status bad(struct attest_error *err, const char *what) {
    return attest_error_set(err, ATTEST_EVIDENCE_MALFORMED,
                            "attestation evidence is malformed: %s (DESIGN.md §5)", what);
}

enum attest_status attest_evidence_decode(struct attest_evidence *out, struct attest_error *err,
                                          const uint8_t *der, size_t der_len) {
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (der == NULL) {
        return bad(err, "no bytes");
    }
    CBS in, seq, field;
    uint64_t version = 0;
    CBS_init(&in, der, der_len);
    if (!CBS_get_asn1(&in, &seq, CBS_ASN1_SEQUENCE) || CBS_len(&in) != 0) {
        return bad(err, "not one DER SEQUENCE (or trailing bytes after it)");
    }
    if (!CBS_get_asn1_uint64(&seq, &version) || version != 1) {
        return bad(err, "version is not INTEGER 1");
    }
    if (!CBS_get_asn1(&seq, &field, CBS_ASN1_ENUMERATED) || CBS_len(&field) != 1 ||
        CBS_data(&field)[0] != 1) {
        return bad(err, "platform is not ENUMERATED sevSnp(1)");
    }
    if (!CBS_get_asn1(&seq, &field, CBS_ASN1_OCTETSTRING) ||
        CBS_len(&field) < ATTEST_NONCE_MIN_BYTES || CBS_len(&field) > ATTEST_NONCE_MAX_BYTES) {
        return bad(err, "nonce is not an OCTET STRING of 16..64 bytes");
    }
    out->nonce_len = CBS_len(&field);
    memcpy(out->nonce, CBS_data(&field), out->nonce_len);
    if (!CBS_get_asn1(&seq, &field, CBS_ASN1_OCTETSTRING) ||
        CBS_len(&field) != ATTEST_REPORT_BYTES) {
        return bad(err, "report is not an OCTET STRING of exactly 1184 bytes");
    }
    memcpy(out->report, CBS_data(&field), ATTEST_REPORT_BYTES);
    if (CBS_peek_asn1_tag(&seq, TAG_VCEK)) {
        if (!CBS_get_asn1(&seq, &field, TAG_VCEK) || CBS_len(&field) == 0 ||
            CBS_len(&field) > ATTEST_CERT_DER_MAX_BYTES) {
            return bad(err, "vcek [0] is empty or larger than 4096 bytes");
        }
        out->vcek_len = CBS_len(&field);
        memcpy(out->vcek_der, CBS_data(&field), out->vcek_len);
    }
    if (CBS_peek_asn1_tag(&seq, TAG_CHAIN)) {
        if (!CBS_get_asn1(&seq, &field, TAG_CHAIN) || CBS_len(&field) == 0 ||
            CBS_len(&field) > ATTEST_CERT_DER_MAX_BYTES) {
            return bad(err, "chain [1] is empty or larger than 4096 bytes");
        }
        out->chain_len = CBS_len(&field);
        memcpy(out->chain_der, CBS_data(&field), out->chain_len);
    }
    if (CBS_len(&seq) != 0) {
        memset(out, 0, sizeof(*out));
        return bad(err, "unexpected or out-of-order field after the report");
    }
    return ATTEST_OK;
}

// find_extension: walk Certificate -> TBSCertificate, hash the SPKI, and return the value of the
// one evidence extension in `out_value`.
static enum attest_status walk_cert(struct attest_error *err, const uint8_t *der, size_t len,
                                    uint8_t spki_sha256[32], CBS *out_value) {
    CBS in, cert, tbs, spki, exts_outer, exts, ext, oid, value;
    CBS_init(&in, der, len);
    if (!CBS_get_asn1(&in, &cert, CBS_ASN1_SEQUENCE) || CBS_len(&in) != 0 ||
        !CBS_get_asn1(&cert, &tbs, CBS_ASN1_SEQUENCE)) {
        return bad(err, "client certificate is not DER X.509");
    }
    int has_version = 0;
    if (!CBS_get_optional_asn1(&tbs, NULL, &has_version,
                               CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 0) ||
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_INTEGER) ||   // serialNumber
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||  // signature
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||  // issuer
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||  // validity
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||  // subject
        !CBS_get_asn1_element(&tbs, &spki, CBS_ASN1_SEQUENCE)) {
        return bad(err, "client certificate TBSCertificate is malformed");
    }
    SHA256(CBS_data(&spki), CBS_len(&spki), spki_sha256);
    if (!CBS_get_optional_asn1(&tbs, NULL, NULL, CBS_ASN1_CONTEXT_SPECIFIC | 1) ||
        !CBS_get_optional_asn1(&tbs, NULL, NULL, CBS_ASN1_CONTEXT_SPECIFIC | 2)) {
        return bad(err, "client certificate unique identifiers are malformed");
    }
    int has_exts = 0;
    if (!CBS_get_optional_asn1(&tbs, &exts_outer, &has_exts,
                               CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 3) ||
        CBS_len(&tbs) != 0) {
        return bad(err, "client certificate extensions are malformed");
    }
    if (!has_exts || !CBS_get_asn1(&exts_outer, &exts, CBS_ASN1_SEQUENCE) ||
        CBS_len(&exts_outer) != 0) {
        return bad(err, "client certificate has no extensions, so no attestation evidence");
    }
    bool found = false;
    while (CBS_len(&exts) > 0) {
        if (!CBS_get_asn1(&exts, &ext, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&ext, &oid, CBS_ASN1_OBJECT) ||
            !CBS_get_optional_asn1(&ext, NULL, NULL, CBS_ASN1_BOOLEAN) ||
            !CBS_get_asn1(&ext, &value, CBS_ASN1_OCTETSTRING) || CBS_len(&ext) != 0) {
            return bad(err, "client certificate has a malformed extension");
        }
        if (CBS_mem_equal(&oid, attest_evidence_oid, ATTEST_EVIDENCE_OID_BYTES)) {
            if (found) {
                return bad(err, "client certificate carries the evidence extension twice");
            }
            found = true;
            *out_value = value;
        }
    }
    if (!found) {
        return bad(err, "client certificate carries no attestation evidence extension "
                        "(OID " ATTEST_EVIDENCE_OID "); create it with `atlsctl client-cert`");
    }
    return ATTEST_OK;
}

enum attest_status attest_evidence_from_cert(struct attest_evidence *out, struct attest_error *err,
                                             const uint8_t *cert_der, size_t cert_len) {
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (cert_der == NULL) {
        return bad(err, "no client certificate");
    }
    uint8_t spki_hash[32];
    CBS value;
    enum attest_status st = walk_cert(err, cert_der, cert_len, spki_hash, &value);
    if (st != ATTEST_OK) {
        return st;
    }
    st = attest_evidence_decode(out, err, CBS_data(&value), CBS_len(&value));
    if (st != ATTEST_OK) {
        return st;
    }
    memcpy(out->spki_sha256, spki_hash, sizeof(spki_hash));
    out->has_spki = true;
    return ATTEST_OK;
}

void attest_evidence_binding(uint8_t out[ATTEST_REPORT_DATA_BYTES], const uint8_t *nonce,
                             size_t nonce_len, const uint8_t spki_sha256[32]) {
    ASSERT(out != NULL && spki_sha256 != NULL);
    STATIC_ASSERT(SHA512_DIGEST_LENGTH == ATTEST_REPORT_DATA_BYTES, "report data is SHA-512");
    SHA512_CTX ctx;
    SHA512_Init(&ctx);
    SHA512_Update(&ctx, binding_label, sizeof(binding_label)); // includes the 0x00 terminator
    SHA512_Update(&ctx, nonce, nonce_len);
    SHA512_Update(&ctx, spki_sha256, 32);
    SHA512_Final(out, &ctx);
}

enum attest_status attest_evidence_check_binding(const struct attest_evidence *ev,
                                                 struct attest_error *err) {
    ASSERT(ev != NULL);
    if (!ev->has_spki || ev->nonce_len < ATTEST_NONCE_MIN_BYTES ||
        ev->nonce_len > ATTEST_NONCE_MAX_BYTES) {
        return attest_error_set(err, ATTEST_BINDING_MISMATCH,
                                "evidence is not bound to a certificate key and nonce");
    }
    uint8_t want[ATTEST_REPORT_DATA_BYTES];
    attest_evidence_binding(want, ev->nonce, ev->nonce_len, ev->spki_sha256);
    if (CRYPTO_memcmp(want, ev->report + ATTEST_OFF_REPORT_DATA, sizeof(want)) != 0) {
        return attest_error_set(err, ATTEST_BINDING_MISMATCH,
                                "REPORT_DATA does not bind this certificate's key and nonce: the "
                                "report was made for another key or nonce; make a new client "
                                "certificate with a fresh nonce");
    }
    return ATTEST_OK;
}
