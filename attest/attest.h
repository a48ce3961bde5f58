// attest.h: SEV-SNP report parsing and verification, the evidence certificate extension and
// the report providers. Pure C over BoringSSL; the verify path does no I/O except the optional
// vcek_dir lookup when the evidence carries no VCEK.
#ifndef ATLS_ATTEST_H
#define ATLS_ATTEST_H

#include <openssl/base.h> // ASN1_TIME

#include "attest_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* attest.c */

// attest_status_code returns the stable code string of `status` ("SIGNATURE_INVALID", ...).
// Never NULL; unknown values give "INTERNAL".
const char *attest_status_code(enum attest_status status);

// attest_error_set fills `err` (may be NULL) with `status` and a printf-style sentence and
// returns `status`, so callers can write `return attest_error_set(err, X, "...")`.
enum attest_status attest_error_set(struct attest_error *err, enum attest_status status,
                                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// attest_product_name returns "Milan", "Genoa", "Turin" or "unknown".
const char *attest_product_name(enum attest_product product);

// attest_provider_find returns the provider ops named `name` ("simulated", "tsm",
// "sev-guest"), or NULL. The returned table is static.
const struct attest_provider_ops *attest_provider_find(const char *name);

// attest_provider_config_init sets defaults: device paths, sim policy 0x30000, TCB 3,0,8,115.
void attest_provider_config_init(struct attest_provider_config *cfg);

/* attest_report.c */

// attest_report_parse checks the format of a raw report (size, version 2..5, SIGNATURE_ALGO,
// signer, every MBZ field incl. the unsigned padding and the top bytes of r/s, CPUID product
// for v3+) and decodes it into `out_claims` (verified = false). Returns ATTEST_OK or
// ATTEST_REPORT_MALFORMED with the reason in `err` (may be NULL). No crypto, no allocation.
enum attest_status attest_report_parse(struct attest_claims *out_claims, struct attest_error *err,
                                       const uint8_t *report, size_t report_len);

// attest_report_product_from_cpuid maps CPUID family/model (§2.5) to a product line, or
// ATTEST_PRODUCT_UNKNOWN.
enum attest_product attest_report_product_from_cpuid(uint8_t fam, uint8_t mod);

// attest_report_decode_tcb decodes the raw TCB u64 for `product`'s layout (Turin: FMC first).
struct attest_tcb attest_report_decode_tcb(uint64_t raw, enum attest_product product);

// attest_report_vcek_file_name writes the vcek_dir file name for a parsed report:
// "<hwid hex>-<reported_tcb as 16 hex digits>.der", where hwid is CHIP_ID[0..63] (128 hex) on
// Milan/Genoa/v2 and CHIP_ID[0..7] (16 hex) on Turin. Returns 0 or -ENOSPC.
int attest_report_vcek_file_name(char *out, size_t out_size, const struct attest_claims *claims);

/* attest_verify.c */

struct attest_verifier;

// attest_verifier_new loads the trust anchors named by `cfg` (builtin AMD roots, pinned by
// SHA-256, or a PEM file) and allocates a fixed-capacity chain cache. Every root and
// intermediate must be signed with AMD's scheme, RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48 (a
// PKCS#1 v1.5 or other PSS signature is refused). Returns NULL with `err` filled
// (ATTEST_CONFIG_INVALID) on failure. NOT thread-safe: create one verifier per worker
// thread; all later calls on it must come from that thread.
struct attest_verifier *attest_verifier_new(const struct attest_verifier_config *cfg,
                                            struct attest_error *err);

// attest_verifier_free releases `v`; NULL is a no-op.
void attest_verifier_free(struct attest_verifier *v);

// attest_verifier_trust_sha256 writes into `out` a digest of the trust anchors and
// intermediates `v` loaded (their DER, in load order): two verifiers trust the same
// certificates exactly when their digests are equal. A roots file rewritten in place changes
// it, whereas the path stays the same.
void attest_verifier_trust_sha256(const struct attest_verifier *v, uint8_t out[32]);

// attest_verifier_verify_report runs the full check (docs/snp-verification.md §5 steps 1-8):
// format, VCEK source (`vcek_der` if non-NULL, else vcek_dir), chain to a trusted ARK at time
// `at_unix` (optional peer intermediate `ask_der`, never a peer anchor; every certificate signed
// with RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48), VCEK extensions, TCB, chip and product binding,
// and the P-384 report signature. Chain results are cached per SHA-256 of the VCEK DER, so
// repeated VCEKs cost one P-384 verify. On ATTEST_OK `out_claims`
// holds the decoded, verified claims. Policy (debug, measurement, floors) is NOT checked here.
enum attest_status attest_verifier_verify_report(struct attest_verifier *v,
                                                 struct attest_claims *out_claims,
                                                 struct attest_error *err, const uint8_t *report,
                                                 size_t report_len, const uint8_t *vcek_der,
                                                 size_t vcek_len, const uint8_t *ask_der,
                                                 size_t ask_len, int64_t at_unix);

// attest_verifier_verify_evidence is the EXPENSIVE step for the gateway, to run after the TLS
// handshake completed: binding check (if the evidence came from a certificate) then
// attest_verifier_verify_report with the evidence's VCEK and chain. Same threading as above.
enum attest_status attest_verifier_verify_evidence(struct attest_verifier *v,
                                                   struct attest_claims *out_claims,
                                                   struct attest_error *err,
                                                   const struct attest_evidence *ev,
                                                   int64_t at_unix);

// attest_vcek_parse decodes the AMD extensions of the VCEK/VLEK DER `der` into `out` and
// checks the KDS rules (hwID xor csp_id, SPL ranges, no unknown or duplicate extensions). No
// chain check: use it to inspect certificates. ATTEST_OK or ATTEST_VCEK_MALFORMED.
enum attest_status attest_vcek_parse(struct attest_vcek_info *out, struct attest_error *err,
                                     const uint8_t *der, size_t len);

// attest_verifier_cache_stats reports the chain cache counters (for tests and metrics).
void attest_verifier_cache_stats(const struct attest_verifier *v, uint64_t *out_hits,
                                 uint64_t *out_misses, uint32_t *out_entries);

// attest_verifier_table_stats reports how many report signatures were verified through a key's
// fixed-base P-384 table (the others went through BoringSSL) and how many tables were built.
void attest_verifier_table_stats(const struct attest_verifier *v, uint64_t *out_table_verifies,
                                 uint64_t *out_table_builds);

/* attest_evidence.c */

// attest_evidence_encode writes the DER AttestationEvidence for `ev` (nonce, report, and the
// optional VCEK and chain) into `out` (capacity `out_cap`). Returns 0, -EINVAL (nonce size out
// of 16..64) or -ENOSPC.
int attest_evidence_encode(uint8_t *out, size_t out_cap, size_t *out_len,
                           const struct attest_evidence *ev);

// attest_evidence_decode strictly parses the DER AttestationEvidence `der` into `out` (wrong
// tags, bad lengths, trailing bytes, version != 1, platform != sevSnp, nonce outside 16..64,
// report != 1184 bytes are ATTEST_EVIDENCE_MALFORMED). out->has_spki is false.
enum attest_status attest_evidence_decode(struct attest_evidence *out, struct attest_error *err,
                                          const uint8_t *der, size_t der_len);

// attest_evidence_from_cert is the CHEAP step for the TLS verify callback: it walks the leaf
// certificate DER (as from SSL_get0_peer_certificates), finds exactly one evidence extension,
// decodes it and records SHA-256 of the certificate's SubjectPublicKeyInfo. No signature check.
// Then call attest_evidence_check_binding and peek the nonce table with out->nonce.
enum attest_status attest_evidence_from_cert(struct attest_evidence *out, struct attest_error *err,
                                             const uint8_t *cert_der, size_t cert_len);

// attest_evidence_binding computes REPORT_DATA = SHA-512("atls-proxy/snp/v1" || 0x00 || nonce ||
// `spki_sha256`) into `out`.
void attest_evidence_binding(uint8_t out[ATTEST_REPORT_DATA_BYTES], const uint8_t *nonce,
                             size_t nonce_len, const uint8_t spki_sha256[32]);

// attest_evidence_check_binding compares REPORT_DATA of `ev`'s report with the binding of its
// nonce and SPKI hash in constant time. ATTEST_OK or ATTEST_BINDING_MISMATCH (also when the
// evidence did not come from a certificate: nothing to bind to).
enum attest_status attest_evidence_check_binding(const struct attest_evidence *ev,
                                                 struct attest_error *err);

/* attest_cert.c */

enum attest_cert_key_type {
    ATTEST_CERT_KEY_ED25519 = 0,
    ATTEST_CERT_KEY_P256 = 1,
};

// struct attest_client_cert: PEM outputs of attest_cert_make, owned (free with
// attest_cert_cleanup).
struct attest_client_cert {
    char *cert_pem;
    size_t cert_pem_len;
    char *key_pem; // PKCS#8
    size_t key_pem_len;
    uint8_t report[ATTEST_REPORT_BYTES];
};

// attest_cert_make generates a fresh key of `key_type`, binds it and `nonce` into REPORT_DATA,
// asks `ops` (opened with `cfg`) for a report, and writes a self-signed X.509 v3 certificate
// (CN=atls-client, valid `validity_s` from now) carrying the evidence extension with the
// report, VCEK and intermediate. `out` must be zero-initialised; on failure it stays empty.
enum attest_status attest_cert_make(struct attest_client_cert *out, struct attest_error *err,
                                    const struct attest_provider_ops *ops,
                                    const struct attest_provider_config *cfg,
                                    enum attest_cert_key_type key_type, const uint8_t *nonce,
                                    size_t nonce_len, int64_t validity_s);

// attest_cert_make_misbound is attest_cert_make except that REPORT_DATA binds a second fresh key
// (then discarded), not the certificate's: evidence lifted into another certificate, for tests
// that a verifier refuses it with ATTEST_BINDING_MISMATCH. Same outputs and errors.
enum attest_status attest_cert_make_misbound(struct attest_client_cert *out,
                                             struct attest_error *err,
                                             const struct attest_provider_ops *ops,
                                             const struct attest_provider_config *cfg,
                                             enum attest_cert_key_type key_type,
                                             const uint8_t *nonce, size_t nonce_len,
                                             int64_t validity_s);

// attest_cert_pem_to_der converts the first PEM CERTIFICATE in `pem` (`len` bytes) to DER in
// `out` (capacity `cap`). Returns 0, -EINVAL (no certificate) or -ENOSPC.
int attest_cert_pem_to_der(uint8_t *out, size_t cap, size_t *out_len, const char *pem, size_t len);

// attest_cert_time_unix converts a certificate time to unix seconds through ASN1_TIME_diff from
// the epoch, the arithmetic X509_cmp_time uses (this BoringSSL has no ASN1_TIME_to_posix).
// False when `t` is NULL or malformed.
bool attest_cert_time_unix(int64_t *out, const ASN1_TIME *t);

// attest_cert_cleanup frees the PEM buffers of `c` and zeroes it; idempotent.
void attest_cert_cleanup(struct attest_client_cert *c);

/* attest_sim.c */

// attest_sim_ensure creates the simulated AMD hierarchy in `dir` if absent (ark.pem - the root a
// policy names -, ask.pem, vcek.der, vcek.id and the PKCS#8 keys ark.key, ask.key, vcek.key,
// mode 0600; RSA-4096 ARK/ASK, so the first call takes seconds) and re-uses it when present.
// Creation is atomic (built in a private directory, then renamed). The persisted VCEK is issued
// for `params`' chip id and TCB; the provider issues a fresh in-memory VCEK from ask.key when a
// request asks for another chip or TCB.
enum attest_status attest_sim_ensure(struct attest_error *err, const char *dir,
                                     const struct attest_sim_params *params);

#ifdef __cplusplus
}
#endif

#endif // ATLS_ATTEST_H
