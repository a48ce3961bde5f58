// attest_types.h: types, limits and stable failure codes of the SEV-SNP attestation module.
// Claims decoded here are what policy/ reads; nothing in this header allocates or does I/O.
#ifndef ATLS_ATTEST_TYPES_H
#define ATLS_ATTEST_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Sizes fixed by the AMD ABI (docs/snp-verification.md §1).
#define ATTEST_REPORT_BYTES 1184u       // ATTESTATION_REPORT, always 0x4A0
#define ATTEST_REPORT_SIGNED_BYTES 672u // 0x000..0x29F are covered by the signature
#define ATTEST_REPORT_DATA_BYTES 64u
#define ATTEST_MEASUREMENT_BYTES 48u
#define ATTEST_HOST_DATA_BYTES 32u
#define ATTEST_CHIP_ID_BYTES 64u

// Limits of the evidence extension (DESIGN.md §5) and of embedded certificates.
#define ATTEST_NONCE_MIN_BYTES 16u
#define ATTEST_NONCE_MAX_BYTES 64u
#define ATTEST_CERT_DER_MAX_BYTES 4096u // a VCEK is ~1.4 KiB, an ASK ~1.6 KiB
#define ATTEST_EVIDENCE_DER_MAX_BYTES (ATTEST_REPORT_BYTES + 2u * ATTEST_CERT_DER_MAX_BYTES + 128u)
#define ATTEST_ERROR_MSG_MAX_BYTES 256u
#define ATTEST_PATH_MAX_BYTES 512u
#define ATTEST_CHAIN_CACHE_MAX 4096u     // upper bound accepted for chain_cache_max
#define ATTEST_CHAIN_CACHE_DEFAULT 128u

// ATTEST_EVIDENCE_OID is the extension carrying the evidence (DESIGN.md §5, normative).
#define ATTEST_EVIDENCE_OID "2.25.187514555026634923236501021753934806073"

// Stable failure codes. attest_status_code() gives the string recorded in audit records.
enum attest_status {
    ATTEST_OK = 0,
    ATTEST_REPORT_MALFORMED,   // size, version, MBZ fields, signature algorithm, unknown CPUID
    ATTEST_EVIDENCE_MALFORMED, // evidence DER or carrying certificate malformed / absent
    ATTEST_SIGNATURE_INVALID,  // report signature does not verify with the VCEK/VLEK key
    ATTEST_CHAIN_INVALID,      // VCEK/VLEK does not chain to a trusted ARK
    ATTEST_CERT_EXPIRED,       // a chain certificate is outside its validity at the given time
    ATTEST_VCEK_MISSING,       // no VCEK in the evidence nor in vcek_dir
    ATTEST_VCEK_MALFORMED,     // VCEK/VLEK AMD extensions violate the KDS rules
    ATTEST_VCEK_TCB_MISMATCH,  // VCEK SPLs != REPORTED_TCB
    ATTEST_CHIP_ID_MISMATCH,   // VCEK hwID != CHIP_ID (or CHIP_ID masked for a VCEK report)
    ATTEST_PRODUCT_MISMATCH,   // CPUID product line != product line of the verified chain
    ATTEST_SIGNER_MISMATCH,    // SIGNING_KEY says VCEK but the certificate is a VLEK, or reverse
    ATTEST_BINDING_MISMATCH,   // REPORT_DATA != SHA-512(label || nonce || SHA-256(SPKI))
    ATTEST_CONFIG_INVALID,     // verifier/provider configuration unusable (roots file, ...)
    ATTEST_PROVIDER_UNAVAILABLE, // report provider absent on this machine
    ATTEST_PROVIDER_FAILED,    // report provider present but the request failed
    ATTEST_INTERNAL,           // allocation or library failure
    ATTEST_STATUS_COUNT,
};

// struct attest_error: a stable code plus one sentence a person can act on.
struct attest_error {
    enum attest_status status;
    char msg[ATTEST_ERROR_MSG_MAX_BYTES];
};

enum attest_product {
    ATTEST_PRODUCT_UNKNOWN = 0, // v2 report before the chain decided
    ATTEST_PRODUCT_MILAN,
    ATTEST_PRODUCT_GENOA,
    ATTEST_PRODUCT_TURIN,
};

enum attest_signer {
    ATTEST_SIGNER_VCEK = 0,
    ATTEST_SIGNER_VLEK = 1,
};

// struct attest_tcb: one TCB_VERSION decoded for its product layout (§2.4). fmc is 0 on
// Milan/Genoa. raw is the little-endian u64 as stored in the report.
struct attest_tcb {
    uint64_t raw;
    uint8_t bl;
    uint8_t tee;
    uint8_t snp;
    uint8_t ucode;
    uint8_t fmc;
};

// POLICY bits (§2.1).
#define ATTEST_POLICY_SMT (1ull << 16)
#define ATTEST_POLICY_RESERVED_1 (1ull << 17)
#define ATTEST_POLICY_MIGRATE_MA (1ull << 18)
#define ATTEST_POLICY_DEBUG (1ull << 19)
#define ATTEST_POLICY_SINGLE_SOCKET (1ull << 20)

// struct attest_claims: every field of a report, decoded. Filled by attest_report_parse (format
// only) and completed by verification (product, signer certificate hash). Flat, pointer-free.
struct attest_claims {
    uint32_t version;
    uint32_t guest_svn;
    uint64_t policy;
    uint8_t abi_major; // policy bits 15:8
    uint8_t abi_minor; // policy bits 7:0
    bool debug;        // policy bit 19
    bool smt_allowed;  // policy bit 16
    bool migrate_ma;   // policy bit 18
    uint8_t family_id[16];
    uint8_t image_id[16];
    uint32_t vmpl;
    uint32_t signature_algo;
    uint64_t platform_info;
    uint32_t signer_info; // raw SIGNER_INFO
    enum attest_signer signer;
    bool author_key_en;
    uint8_t report_data[ATTEST_REPORT_DATA_BYTES];
    uint8_t measurement[ATTEST_MEASUREMENT_BYTES];
    uint8_t host_data[ATTEST_HOST_DATA_BYTES];
    uint8_t id_key_digest[48];
    uint8_t author_key_digest[48];
    uint8_t report_id[32];
    uint8_t report_id_ma[32];
    struct attest_tcb current_tcb;
    struct attest_tcb reported_tcb;
    struct attest_tcb committed_tcb;
    struct attest_tcb launch_tcb;
    uint8_t cpuid_fam; // v3+, 0 on v2
    uint8_t cpuid_mod;
    uint8_t cpuid_step;
    uint8_t chip_id[ATTEST_CHIP_ID_BYTES];
    uint8_t current_major, current_minor, current_build;
    uint8_t committed_major, committed_minor, committed_build;
    uint64_t launch_mit_vector;  // v5+
    uint64_t current_mit_vector; // v5+
    enum attest_product product; // from CPUID (v3+) or the verified chain
    bool verified;               // signature, chain and bindings all checked
    uint8_t vcek_sha256[32];     // SHA-256 of the VCEK/VLEK DER that verified (zero if none)
    int64_t chain_not_after;     // when verified: the chain's validity ends (Unix s, inclusive)
};

// struct attest_vcek_info: the AMD extensions of a VCEK/VLEK certificate (spec §3.1).
struct attest_vcek_info {
    enum attest_signer signer; // from the subject CN SEV-VCEK / SEV-VLEK
    uint64_t struct_version;
    char product_name[32];
    uint64_t bl, tee, snp, ucode, fmc;
    bool has_fmc;
    uint8_t hwid[ATTEST_CHIP_ID_BYTES];
    size_t hwid_len; // 0 = absent (VLEK); 64 Milan/Genoa; 8 Turin
    char csp_id[128]; // VLEK only
    char issuer_cn[64];
    int64_t not_before, not_after;
};

// struct attest_verifier_config: flat configuration of a verifier (policy [chain] section).
struct attest_verifier_config {
    // roots: "builtin" (AMD Milan/Genoa/Turin ARKs, pinned) or a path to a PEM file whose
    // self-signed certificates are the only anchors (e.g. the simulated ark.pem); further
    // non-self-signed certificates in the file are intermediates (ASK/ASVK).
    char roots[ATTEST_PATH_MAX_BYTES];
    // vcek_dir: optional directory of DER VCEKs named "<hwid hex>-<reported_tcb hex>.der"
    // (see attest_vcek_file_name). Empty = none.
    char vcek_dir[ATTEST_PATH_MAX_BYTES];
    uint32_t chain_cache_max; // entries; 0 = ATTEST_CHAIN_CACHE_DEFAULT
};

// struct attest_evidence: a decoded AttestationEvidence plus the SHA-256 of the SPKI of the
// certificate that carried it. Owns copies of every byte (no pointers into the certificate).
struct attest_evidence {
    uint8_t nonce[ATTEST_NONCE_MAX_BYTES];
    size_t nonce_len;
    uint8_t report[ATTEST_REPORT_BYTES];
    uint8_t vcek_der[ATTEST_CERT_DER_MAX_BYTES];
    size_t vcek_len; // 0 = absent
    uint8_t chain_der[ATTEST_CERT_DER_MAX_BYTES];
    size_t chain_len; // 0 = absent
    uint8_t spki_sha256[32];
    bool has_spki; // spki_sha256 is set (evidence came from a certificate)
};

// struct attest_report_out: what a provider returns for one request.
struct attest_report_out {
    uint8_t report[ATTEST_REPORT_BYTES];
    uint8_t vcek_der[ATTEST_CERT_DER_MAX_BYTES];
    size_t vcek_len;
    uint8_t ask_der[ATTEST_CERT_DER_MAX_BYTES];
    size_t ask_len;
};

// struct attest_sim_params: report fields the simulated provider lets a test choose.
struct attest_sim_params {
    uint8_t measurement[ATTEST_MEASUREMENT_BYTES];
    uint64_t policy; // default 0x30000 (SMT allowed + reserved bit 17)
    uint32_t guest_svn;
    uint32_t vmpl;
    uint8_t tcb_bl, tcb_tee, tcb_snp, tcb_ucode; // REPORTED = CURRENT = COMMITTED = LAUNCH
    uint8_t chip_id[ATTEST_CHIP_ID_BYTES];       // the sim VCEK is issued for this chip
    uint8_t host_data[ATTEST_HOST_DATA_BYTES];
    uint64_t platform_info;
    uint32_t vcek_valid_s; // lifetime of the VCEK from now; 0 = 7 years (tests choose less)
};

// struct attest_provider_config: flat configuration for every provider (each reads its part).
struct attest_provider_config {
    char sim_dir[ATTEST_PATH_MAX_BYTES];    // simulated: hierarchy directory (created if absent)
    struct attest_sim_params sim;           // simulated: chosen report fields
    char sev_guest_dev[ATTEST_PATH_MAX_BYTES]; // sev-guest: default /dev/sev-guest
    char tsm_dir[ATTEST_PATH_MAX_BYTES];    // tsm: default /sys/kernel/config/tsm/report
    uint32_t vmpl;                          // hardware providers: requested VMPL
};

struct attest_provider;

// struct attest_provider_ops: one report backend (attest_sim.c, attest_tsm.c,
// attest_sev_guest.c). Each is a static designated-initialised instance.
struct attest_provider_ops {
    const char *name;
    // open: prepare the backend; on failure fills `err` and returns its status.
    enum attest_status (*open)(void **out_state, struct attest_error *err,
                               const struct attest_provider_config *cfg);
    // get_report: request one report whose REPORT_DATA is `report_data`.
    enum attest_status (*get_report)(void *state, struct attest_report_out *out,
                                     struct attest_error *err,
                                     const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]);
    void (*close)(void *state);
};

#ifdef __cplusplus
}
#endif

#endif // ATLS_ATTEST_TYPES_H
