// policy_types.h: types, enums and limits of the policy module: the immutable policy model loaded
// from the INI file of DESIGN.md §7, evaluation input and result, and nonce-table outcomes.
#ifndef ATLS_POLICY_TYPES_H
#define ATLS_POLICY_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- Limits (CONVENTIONS.md rule 10: every table has a named maximum) ----
enum {
    policy_measurement_bytes = 48,  // SNP MEASUREMENT (SHA-384)
    policy_measurements_max = 64,   // [measurement] allow entries
    policy_roles_max = 64,          // [roles] measurement rows
    policy_role_users_max = 16,     // users per [roles] row
    policy_user_max_bytes = 64,     // PostgreSQL NAMEDATALEN: 63 bytes + NUL
    policy_version_max_bytes = 64,  // [policy] version, with NUL
    policy_path_max_bytes = 1024,   // resolved [chain] paths, with NUL
    policy_checks_max = 16,         // failed checks in one result
    policy_detail_max_bytes = 96,   // human detail of one failed check, with NUL
    policy_error_min_bytes = 128,   // callers pass error buffers at least this large
    policy_nonce_bytes = 32,        // nonces issued by this proxy
    policy_sha256_bytes = 32,       // digests keying the reuse cache
};

// Policy bit positions in the guest POLICY u64 (snp-verification.md §2.1).
enum {
    policy_guest_abi_minor_shift = 0,
    policy_guest_abi_major_shift = 8,
    policy_guest_smt_bit = 16,
    policy_guest_migrate_ma_bit = 18,
    policy_guest_debug_bit = 19,
};

// PLATFORM_INFO bit positions (snp-verification.md §2.2).
enum {
    policy_platform_smt_en_bit = 0,
};

// How a policy section is applied.
enum policy_mode {
    POLICY_MODE_STRICT = 0, // a violation denies
    POLICY_MODE_WARN = 1,   // a violation is recorded as a warning; the verdict stays ALLOW
    POLICY_MODE_DISABLED = 2, // the section is skipped and listed as disabled in the result
};

// Sections whose mode can be set; bit (1 << section) in policy_result.disabled_sections.
enum policy_section {
    POLICY_SECTION_MEASUREMENT = 0,
    POLICY_SECTION_TCB = 1,
    POLICY_SECTION_GUEST = 2,
    POLICY_SECTION_COUNT = 3,
};

// TCB components of REPORTED_TCB. `fmc` exists only on Turin (TCB structVersion 1).
struct policy_tcb {
    uint8_t bootloader;
    uint8_t tee;
    uint8_t snp;
    uint8_t microcode;
    uint8_t fmc;
};

struct policy_role {
    uint8_t measurement[policy_measurement_bytes];
    uint32_t user_count;
    char users[policy_role_users_max][policy_user_max_bytes];
};

// struct policy is the loaded policy: flat, pointer-free and immutable after loading, so it can
// be copied, compared and shared read-only by every thread. Defaults are those of
// policy_rules_defaults (see policy.h).
struct policy {
    char version[policy_version_max_bytes];
    struct {
        enum policy_mode mode;
        uint32_t allow_count;
        uint8_t allow[policy_measurements_max][policy_measurement_bytes];
    } measurement;
    struct {
        enum policy_mode mode;
        struct policy_tcb min; // fmc is checked only when the input is a Turin report
    } tcb;
    struct {
        enum policy_mode mode;
        bool debug_allowed;      // guest POLICY.DEBUG may be 1
        bool smt_allowed;        // PLATFORM_INFO.SMT_EN may be 1
        bool migrate_ma_allowed; // guest POLICY.MIGRATE_MA may be 1
        uint32_t min_guest_svn;
        uint8_t min_abi_major; // compared with min_abi_minor as (major, minor)
        uint8_t min_abi_minor;
        uint8_t max_vmpl; // reports requested from VMPL > max_vmpl are refused
    } guest;
    struct {
        bool required;
        uint32_t ttl_s;
        uint32_t reuse_window_s; // 0 = every handshake needs a fresh nonce
    } nonce;
    struct {
        bool roots_builtin; // true: the built-in AMD ARKs; false: roots_path names a PEM file
        char roots_path[policy_path_max_bytes]; // absolute, or "" when roots_builtin
        char vcek_dir[policy_path_max_bytes];   // absolute, or "" when unset
        // No crl: CRLs are not checked, so the loader refuses a non-empty `crl =` (DESIGN.md §7).
    } chain;
    struct {
        uint32_t count; // 0: [roles] absent or empty, any user may log in
        struct policy_role rows[policy_roles_max];
    } roles;
};

// Evaluation input: the decoded claims of a *verified* report, copied by core from the attest
// module's claims. Plain data so that policy does not depend on attest's functions.
struct policy_input {
    uint8_t measurement[policy_measurement_bytes];
    uint32_t guest_svn;
    uint64_t guest_policy; // ABI minor 7:0, ABI major 15:8, SMT 16, MIGRATE_MA 18, DEBUG 19
    uint32_t vmpl;
    struct policy_tcb reported_tcb;
    bool is_turin; // TCB structVersion 1: reported_tcb.fmc is meaningful
    uint64_t platform_info;
};

enum policy_verdict {
    POLICY_VERDICT_DENY = 0, // zero state denies: a result never filled in fails closed
    POLICY_VERDICT_ALLOW = 1,
};

// Stable check codes (DESIGN.md §7); policy_check_code_name gives the audit string.
enum policy_check_code {
    POLICY_CHECK_MEASUREMENT_NOT_ALLOWED = 0,
    POLICY_CHECK_TCB_BELOW_MIN_BOOTLOADER,
    POLICY_CHECK_TCB_BELOW_MIN_TEE,
    POLICY_CHECK_TCB_BELOW_MIN_SNP,
    POLICY_CHECK_TCB_BELOW_MIN_MICROCODE,
    POLICY_CHECK_TCB_BELOW_MIN_FMC,
    POLICY_CHECK_DEBUG_ENABLED,
    POLICY_CHECK_SMT_ENABLED,
    POLICY_CHECK_MIGRATE_MA_ENABLED,
    POLICY_CHECK_GUEST_SVN_BELOW_MIN,
    POLICY_CHECK_ABI_BELOW_MIN,
    POLICY_CHECK_VMPL_NOT_ALLOWED,
    POLICY_CHECK_ROLE_NOT_ALLOWED,
    POLICY_CHECK_NONCE_UNKNOWN,
    POLICY_CHECK_NONCE_EXPIRED,
    POLICY_CHECK_NONCE_REPLAYED,
    POLICY_CHECK_CODE_COUNT,
};

struct policy_check {
    enum policy_check_code code;
    bool is_warning; // true: recorded under a `warn` section, did not deny
    char detail[policy_detail_max_bytes];
};

// struct policy_result is filled by policy_evaluate; fixed size, no allocation.
struct policy_result {
    enum policy_verdict verdict;
    uint32_t check_count; // failed checks, denials and warnings, in evaluation order
    struct policy_check checks[policy_checks_max];
    uint32_t disabled_sections; // bit (1 << enum policy_section) per skipped section
};

// ---- Nonce table (policy_nonce.c) ----

enum {
    policy_nonce_shards_max = 1024,           // shards per table (power of two)
    policy_nonce_slots_per_shard_max = 1 << 20, // slots per shard (power of two)
    policy_nonce_probe_max = 64,   // slots a lookup or an issue examines, from the home slot on
    policy_nonce_issue_attempts_max = 16, // fresh random nonces tried before -ENOSPC
};

enum policy_nonce_peek_result {
    POLICY_NONCE_PEEK_VALID = 0, // issued, not consumed, not expired
    POLICY_NONCE_PEEK_UNKNOWN,   // never issued here, reclaimed, or of the wrong length
    POLICY_NONCE_PEEK_EXPIRED,   // issued, never consumed, past its expiry
    POLICY_NONCE_PEEK_CONSUMED,  // already consumed
};

enum policy_nonce_consume_result {
    POLICY_NONCE_CONSUME_OK = 0, // this caller, and only this caller, consumed it
    POLICY_NONCE_CONSUME_UNKNOWN,
    POLICY_NONCE_CONSUME_EXPIRED,
    POLICY_NONCE_CONSUME_REPLAYED, // consumed before (by anyone)
};

// Counters of the nonce table, summed over shards (a snapshot, not atomic as a whole).
struct policy_nonce_stats {
    uint64_t capacity;        // slots in the table
    uint64_t live;            // slots ISSUED and not yet consumed or reclaimed (may be expired)
    uint64_t consumed_held;   // slots CONSUMED, kept until expiry to answer REPLAYED
    uint64_t issued_total;    // nonces ever issued
    uint64_t consumed_total;  // successful consumes
    uint64_t reclaimed_total; // expired slots reclaimed (issued or consumed ones)
    uint64_t full_total;      // issues refused with -ENOSPC
};

// ---- Issuance rate limiter (policy_ratelimit.c) ----

enum policy_ratelimit_verdict {
    POLICY_RATELIMIT_LIMITED = 0,
    POLICY_RATELIMIT_ALLOW = 1,
};

enum {
    policy_ratelimit_probe_max = 16, // buckets examined per lookup
};

// ---- Attestation reuse cache (policy_reuse.c) ----

enum {
    policy_reuse_probe_max = 16, // slots examined per lookup or insert
};

#ifdef __cplusplus
}
#endif

#endif // ATLS_POLICY_TYPES_H
