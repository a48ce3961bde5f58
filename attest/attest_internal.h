// attest_internal.h: shared among attest/*.c and tests/attest only. Report offsets, little-endian
// helpers, the embedded AMD roots and the simulated hierarchy's internals.
#ifndef ATLS_ATTEST_INTERNAL_H
#define ATLS_ATTEST_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "attest.h"

#ifdef __cplusplus
extern "C" {
#endif

// Report offsets (docs/snp-verification.md §1).
#define ATTEST_OFF_VERSION 0x000u
#define ATTEST_OFF_GUEST_SVN 0x004u
#define ATTEST_OFF_POLICY 0x008u
#define ATTEST_OFF_FAMILY_ID 0x010u
#define ATTEST_OFF_IMAGE_ID 0x020u
#define ATTEST_OFF_VMPL 0x030u
#define ATTEST_OFF_SIG_ALGO 0x034u
#define ATTEST_OFF_CURRENT_TCB 0x038u
#define ATTEST_OFF_PLATFORM_INFO 0x040u
#define ATTEST_OFF_SIGNER_INFO 0x048u
#define ATTEST_OFF_REPORT_DATA 0x050u
#define ATTEST_OFF_MEASUREMENT 0x090u
#define ATTEST_OFF_HOST_DATA 0x0C0u
#define ATTEST_OFF_ID_KEY_DIGEST 0x0E0u
#define ATTEST_OFF_AUTHOR_KEY_DIGEST 0x110u
#define ATTEST_OFF_REPORT_ID 0x140u
#define ATTEST_OFF_REPORT_ID_MA 0x160u
#define ATTEST_OFF_REPORTED_TCB 0x180u
#define ATTEST_OFF_CPUID_FAM 0x188u
#define ATTEST_OFF_CPUID_MOD 0x189u
#define ATTEST_OFF_CPUID_STEP 0x18Au
#define ATTEST_OFF_CHIP_ID 0x1A0u
#define ATTEST_OFF_COMMITTED_TCB 0x1E0u
#define ATTEST_OFF_CURRENT_BUILD 0x1E8u
#define ATTEST_OFF_COMMITTED_BUILD 0x1ECu
#define ATTEST_OFF_LAUNCH_TCB 0x1F0u
#define ATTEST_OFF_LAUNCH_MIT 0x1F8u
#define ATTEST_OFF_CURRENT_MIT 0x200u
#define ATTEST_OFF_SIG_R 0x2A0u
#define ATTEST_OFF_SIG_S 0x2E8u
#define ATTEST_OFF_SIG_PAD 0x330u
#define ATTEST_SIG_COMPONENT_BYTES 72u
#define ATTEST_P384_BYTES 48u

static inline uint32_t attest_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t attest_le64(const uint8_t *p) {
    return (uint64_t)attest_le32(p) | (uint64_t)attest_le32(p + 4) << 32;
}

static inline void attest_put_le32(uint8_t *p, uint32_t v) {
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void attest_put_le64(uint8_t *p, uint64_t v) {
    for (unsigned i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* attest_evidence.c */

#define ATTEST_EVIDENCE_OID_BYTES 20u
// attest_evidence_oid: DER content octets of ATTEST_EVIDENCE_OID.
extern const uint8_t attest_evidence_oid[ATTEST_EVIDENCE_OID_BYTES];

/* attest_report.c */

// attest_claims_set_product records `product` and re-decodes the four TCBs for its layout.
void attest_claims_set_product(struct attest_claims *c, enum attest_product product);

/* attest_roots.c */

// struct attest_root_pem: one embedded AMD certificate with its SHA-256 pin (of the DER).
struct attest_root_pem {
    const char *name; // "ARK-Milan", "SEV-Milan", "SEV-VLEK-Milan", ...
    enum attest_product product;
    const char *pem;
    uint8_t sha256[32];
};

// attest_roots_builtin returns the embedded ARK/ASK/ASVK table and its length in `out_n`.
const struct attest_root_pem *attest_roots_builtin(size_t *out_n);

/* attest_sim.c */

// attest_sim_sign_report signs `report` (0x000..0x29F) in place with the P-384 PKCS#8 PEM key
// at `key_path` (e.g. <sim dir>/vcek.key), writing r/s little-endian and zeroing the padding.
// Used by the simulated provider and by tests that need validly signed but broken reports.
enum attest_status attest_sim_sign_report(uint8_t report[ATTEST_REPORT_BYTES],
                                          struct attest_error *err, const char *key_path);

// attest_sim_build_report fills a report (unsigned) from `params` and `report_data`.
void attest_sim_build_report(uint8_t report[ATTEST_REPORT_BYTES],
                             const struct attest_sim_params *params,
                             const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]);

// enum attest_sim_sig: how a simulated certificate is signed. Only ATTEST_SIM_SIG_AMD is AMD's
// scheme; the others are schemes BoringSSL's X509_verify also accepts, for tests that show the
// verifier refuses them.
enum attest_sim_sig {
    ATTEST_SIM_SIG_AMD = 0,      // RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48
    ATTEST_SIM_SIG_PKCS1_SHA384, // RSASSA-PKCS1-v1_5 with SHA-384
    ATTEST_SIM_SIG_PSS_SHA256,   // RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32
    ATTEST_SIM_SIG_PSS_SHA512,   // RSASSA-PSS, SHA-512, MGF1-SHA-512, salt 64
};

enum attest_sim_cert {
    ATTEST_SIM_CERT_ARK = 0, // self-signed with ark.key
    ATTEST_SIM_CERT_ASK,     // ask.key's certificate, signed with ark.key
    ATTEST_SIM_CERT_VCEK,    // vcek.key's certificate for `params`, signed with ask.key
};

// attest_sim_reissue (tests only) issues a fresh certificate `which` of the simulated hierarchy
// in `dir` from its existing keys, signed in scheme `sig`, and writes the DER to `out` (capacity
// `cap`, length in `out_len`). Reports signed with <dir>/vcek.key verify with the VCEK it
// issues. ATTEST_OK, or ATTEST_PROVIDER_FAILED when a key is unreadable or signing fails.
enum attest_status attest_sim_reissue(uint8_t *out, size_t cap, size_t *out_len,
                                      struct attest_error *err, const char *dir,
                                      enum attest_sim_cert which, enum attest_sim_sig sig,
                                      const struct attest_sim_params *params);

/* attest_sev_guest.c: request/response encoding, exposed for tests */

#define ATTEST_SEV_GUEST_REQ_BYTES 96u
#define ATTEST_SEV_GUEST_IOCTL_BYTES 32u
#define ATTEST_SEV_GUEST_RESP_BYTES 4000u
#define ATTEST_SEV_GUEST_REPORT_OFF 0x20u
#define ATTEST_SEV_GUEST_EXT_REQ_BYTES 112u        // struct snp_ext_report_req
#define ATTEST_SEV_GUEST_EXT_CERTS_ADDR_OFF 96u    // certs_address u64
#define ATTEST_SEV_GUEST_EXT_CERTS_LEN_OFF 104u    // certs_len u32
#define ATTEST_SEV_GUEST_CERTS_BYTES (16u * 1024u) // SEV_FW_BLOB_MAX_SIZE, a multiple of 4096
#define ATTEST_SEV_GUEST_MSG_VERSION 1u

// attest_sev_guest_encode_req writes the 96-byte struct snp_report_req (user_data, vmpl, zero
// reserved) into `out`.
void attest_sev_guest_encode_req(uint8_t out[ATTEST_SEV_GUEST_REQ_BYTES],
                                 const uint8_t report_data[ATTEST_REPORT_DATA_BYTES],
                                 uint32_t vmpl);

// attest_sev_guest_encode_ext_req writes the 112-byte struct snp_ext_report_req for
// SNP_GET_EXT_REPORT: the report request, certs_address (u64 at 96, the user pointer of the
// certificate buffer) and certs_len (u32 at 104; a multiple of 4096, at most 16 KiB), padding 0.
void attest_sev_guest_encode_ext_req(uint8_t out[ATTEST_SEV_GUEST_EXT_REQ_BYTES],
                                     const uint8_t report_data[ATTEST_REPORT_DATA_BYTES],
                                     uint32_t vmpl, uint64_t certs_address, uint32_t certs_len);

// attest_sev_guest_encode_ioctl writes the 32-byte struct snp_guest_request_ioctl: msg_version 1
// (the driver rejects 0), req_data and resp_data user pointers, exitinfo2 zero.
void attest_sev_guest_encode_ioctl(uint8_t out[ATTEST_SEV_GUEST_IOCTL_BYTES], uint64_t req_data,
                                   uint64_t resp_data);

// attest_sev_guest_parse_resp checks MSG_REPORT_RSP (status 0, report_size 0x4A0) in a response
// buffer of `len` bytes and copies the report at offset 0x20 to `out_report`.
enum attest_status attest_sev_guest_parse_resp(uint8_t out_report[ATTEST_REPORT_BYTES],
                                               struct attest_error *err, const uint8_t *resp,
                                               size_t len);

/* attest_tsm.c: configfs-tsm request over a filesystem ops table, exposed for tests */

// struct attest_tsm_fs: the configfs operations the tsm provider needs. Each returns 0 or
// -errno. `read` fills at most `cap` bytes and fails with -EFBIG when the attribute is longer.
// `write` hands the whole value over at once (configfs commits a binary attribute on close).
struct attest_tsm_fs {
    int (*mkdir)(void *ctx, const char *path);
    int (*rmdir)(void *ctx, const char *path);
    int (*read)(void *ctx, const char *path, uint8_t *buf, size_t cap, size_t *out_len);
    int (*write)(void *ctx, const char *path, const void *data, size_t len);
};

// attest_tsm_fs_real is the kernel's configfs (mkdir(2), rmdir(2), open/read/write).
extern const struct attest_tsm_fs attest_tsm_fs_real;

// attest_tsm_request makes one report request through `fs` (context `fs_ctx`): creates the entry
// `dir`/`name`, requires provider "sev_guest", writes privlevel `vmpl`, reads generation, writes
// the 64-byte inblob `report_data`, reads outblob (exactly 1184 bytes) and auxblob (GHCB
// certificate table, may be empty or absent) into `out`, and requires generation to have
// advanced by exactly one (else a concurrent writer: ATTEST_PROVIDER_FAILED). The entry is
// removed in every case; on failure `out` is zeroed and `err` names the step.
enum attest_status attest_tsm_request(struct attest_report_out *out, struct attest_error *err,
                                      const struct attest_tsm_fs *fs, void *fs_ctx, const char *dir,
                                      const char *name, uint32_t vmpl,
                                      const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]);

/* attest_certtable.c */

// attest_certtable_parse walks a GHCB certificate table (extended report / configfs auxblob,
// spec §3.3) and copies the VCEK (or VLEK) and ASK (ASVK) DER to `out`. The ARK entry is
// ignored: host-supplied ARKs are never anchors.
enum attest_status attest_certtable_parse(struct attest_report_out *out, struct attest_error *err,
                                          const uint8_t *table, size_t len);

// ---- attest_p384.c: ECDSA P-384 verification with a per-key fixed-base table ----------------

#define ATTEST_P384_BYTES 48u
#define ATTEST_P384_WIN_BITS 7u   // table window; memory per table 96 B * ceil(385/w) * 2^(w-1)
#define ATTEST_P384_TABLES_MAX 4u    // tables a verifier keeps (VCEKs seen often)
#define ATTEST_P384_STEAL_AFTER 64u  // slow verifications before a used table is rebuilt

struct attest_p384_table;

// attest_p384_table_new allocates an empty table (338 KiB for w = 7); NULL when out of memory.
struct attest_p384_table *attest_p384_table_new(void);

// attest_p384_table_free frees t; NULL is fine.
void attest_p384_table_free(struct attest_p384_table *t);

// attest_p384_table_fill precomputes t for the public key (x, y), big-endian coordinates.
// false if the point is not on P-384 (t is then unusable) or the curve constants could not be
// read from BoringSSL. ~15 ms for w = 7 on the bench machine.
bool attest_p384_table_fill(struct attest_p384_table *t, const uint8_t x_be[ATTEST_P384_BYTES],
                            const uint8_t y_be[ATTEST_P384_BYTES]);

// attest_p384_verify reports whether (r, s) is a valid ECDSA signature of the SHA-384 digest
// under the key t was filled for. r and s are big-endian; out-of-range values are false.
bool attest_p384_verify(const struct attest_p384_table *t, const uint8_t digest[ATTEST_P384_BYTES],
                        const uint8_t r_be[ATTEST_P384_BYTES],
                        const uint8_t s_be[ATTEST_P384_BYTES]);

// attest_p384_field_mul sets out = a * b mod p, P-384's prime, or a^2 when b is NULL (the
// squaring code). Big-endian; false if a or b is not below p. Lets tests check the field
// arithmetic the verifier runs on values the random signatures rarely reach.
bool attest_p384_field_mul(uint8_t out_be[ATTEST_P384_BYTES], const uint8_t a_be[ATTEST_P384_BYTES],
                           const uint8_t *b_be);

// attest_p384_field_reduce sets out = t mod p for a 768-bit big-endian t: the reduction every
// field multiplication ends with, on values a product would rarely give.
void attest_p384_field_reduce(uint8_t out_be[ATTEST_P384_BYTES],
                              const uint8_t t_be[2 * ATTEST_P384_BYTES]);

// attest_p384_scalar_inv sets out = a^-1 mod n, P-384's group order: the inversion of the
// signature's s. Big-endian; false unless 0 < a < n.
bool attest_p384_scalar_inv(uint8_t out_be[ATTEST_P384_BYTES],
                            const uint8_t a_be[ATTEST_P384_BYTES]);

// attest_p384_use_adx selects the field multiplication every later call runs: the BMI2/ADX
// assembly (on = true; the default where the CPU has both) or the portable C (false). false if
// on is asked for and this CPU or build has no such code. For tests, which check both; not
// meant to be called while other threads verify.
bool attest_p384_use_adx(bool on);

// attest_p384_use_default_code selects the default again: the assembly where the CPU has BMI2
// and ADX, else the portable C. Run once before first use; tests and bench_attest call it after
// switching.
void attest_p384_use_default_code(void);

#ifdef __cplusplus
}
#endif

#endif // ATLS_ATTEST_INTERNAL_H
