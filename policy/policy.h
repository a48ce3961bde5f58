// policy.h: the policy module's API: loading the policy INI (DESIGN.md §7), evaluating verified
// claims against it, the role map, the shared lock-free nonce table (§6), the per-address nonce
// issuance rate limiter, and the attestation reuse cache.
#ifndef ATLS_POLICY_H
#define ATLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* policy.c */

// policy_evaluate checks the verified claims `input` against `policy` and fills `out_result`
// (fully overwritten): every failed check with its code and a short detail, warnings for `warn`
// sections, and the bitmask of `disabled` sections. Returns the verdict, also stored in
// `out_result->verdict`. Pure function of its inputs: thread-safe, no allocation.
enum policy_verdict policy_evaluate(const struct policy *policy, struct policy_result *out_result,
                                    const struct policy_input *input);

// policy_result_add appends a failed check to `result`: a warning (`is_warning`) keeps the
// verdict, anything else sets it to DENY. `detail` is copied (truncated to
// policy_detail_max_bytes - 1). Core uses it to record nonce and role failures in the same list.
// When the list is full the check is not stored, but a denial still sets DENY (fails closed).
void policy_result_add(struct policy_result *result, enum policy_check_code code, bool is_warning,
                       const char *detail);

// policy_check_code_name returns the stable audit string of `code` ("TCB_BELOW_MIN:snp").
// Static storage; never NULL ("UNKNOWN" for an out-of-range value).
const char *policy_check_code_name(enum policy_check_code code);

// policy_section_name returns "measurement", "tcb" or "guest" (static storage).
const char *policy_section_name(enum policy_section section);

// policy_result_format writes one line a person can act on into `out` (always NUL-terminated
// when `out_bytes` > 0, truncated to fit): the first denying check's detail, followed by
// "(+N more)" when more failed, e.g. "measurement 5a1c2b3d4e5f… not in policy". For an ALLOW
// it writes "allowed" or "allowed with N warning(s): <first warning>". Returns the length
// written, excluding the NUL.
size_t policy_result_format(char *out, size_t out_bytes, const struct policy_result *result);

// policy_role_is_allowed returns whether database user `user` may log in from a client whose
// verified measurement is `measurement` (policy_measurement_bytes). An empty [roles] section
// allows every user; otherwise the measurement must have a row naming `user` exactly (core
// records POLICY_CHECK_ROLE_NOT_ALLOWED when it returns false). Thread-safe.
bool policy_role_is_allowed(const struct policy *policy, const uint8_t *measurement,
                            const char *user);

/* policy_rules.c */

// policy_rules_defaults fills `out_policy` with the defaults used for keys a file omits:
// every mode strict, no allowed measurement, TCB floors 0, debug/SMT/MIGRATE_MA not allowed,
// min_guest_svn 0, ABI 0.0, max_vmpl 0, nonce required with ttl_s 300 and reuse_window_s 0,
// roots builtin, no vcek_dir, no roles. Cannot fail.
void policy_rules_defaults(struct policy *out_policy);

// policy_rules_load_file parses the policy INI at `path` (DESIGN.md §7) and validates it.
// On success returns 0 and overwrites `*out_policy`. On failure returns -EINVAL (bad content),
// -ENOMEM, or the -errno of opening `path`, writes "path:line: problem" (or "path: problem" for
// a whole-file problem) into `out_err` (`err_bytes` >= policy_error_min_bytes recommended), and
// leaves `*out_policy` untouched, so a SIGHUP reload can keep the running policy. Relative paths
// in [chain] are resolved against the directory of `path`. `[chain] crl` must be empty: CRLs are
// not checked, so a CRL path is refused (-EINVAL) rather than ignored. Never exits the process.
// Allocates a scratch copy while parsing (startup and reload only; not a data-path function).
int policy_rules_load_file(struct policy *out_policy, char *out_err, size_t err_bytes,
                           const char *path);

// policy_rules_load_string is policy_rules_load_file on the INI text `text`; `name` is used in
// error messages in place of the file name and relative [chain] paths are resolved against
// `base_dir`. Same return values and guarantees.
int policy_rules_load_string(struct policy *out_policy, char *out_err, size_t err_bytes,
                             const char *text, const char *name, const char *base_dir);

/* policy_nonce.c */

// The nonce table is shared by every thread: any function below may run concurrently with any
// other on the same table, except policy_nonce_free. Lock-free: no mutex, slot state changes only
// by compare-and-swap. Time is always passed in (CLOCK_MONOTONIC ns in production).
struct policy_nonce;

// policy_nonce_new allocates a table of `shard_count` shards of `slots_per_shard` slots each
// (both powers of two, within policy_nonce_shards_max and policy_nonce_slots_per_shard_max).
// Returns 0 and an owned table in `*out_table`, -EINVAL for bad sizes, -ENOMEM, or -EIO when the
// kernel gives no randomness. The only allocation of the table's life.
int policy_nonce_new(struct policy_nonce **out_table, uint32_t shard_count,
                     uint32_t slots_per_shard);

// policy_nonce_free releases `table`; NULL is a no-op. No other thread may use it any more.
void policy_nonce_free(struct policy_nonce *table);

// policy_nonce_issue creates a fresh random nonce valid for `ttl_ns` from `now_ns` and writes it
// to `out_nonce` (policy_nonce_bytes). Returns 0, -ENOSPC when no slot is free or expired (a live
// nonce is never evicted; may happen slightly before every slot is live, because a nonce can only
// live within policy_nonce_probe_max slots of its hash), or -EIO when getrandom(2) fails.
// Expired slots met on the way are reclaimed. Any thread (the control thread in production).
int policy_nonce_issue(struct policy_nonce *table, uint8_t *out_nonce, uint64_t now_ns,
                       uint64_t ttl_ns);

// policy_nonce_peek reports the state of `nonce` (`len` bytes) at `now_ns` without changing it
// (the cheap check in the TLS verify callback). A `len` other than policy_nonce_bytes is UNKNOWN.
enum policy_nonce_peek_result policy_nonce_peek(const struct policy_nonce *table,
                                                const uint8_t *nonce, size_t len,
                                                uint64_t now_ns);

// policy_nonce_consume consumes `nonce` at `now_ns`: POLICY_NONCE_CONSUME_OK for exactly one
// caller ever, REPLAYED for every later caller (until the slot is reclaimed after expiry, then
// UNKNOWN), EXPIRED when it expired unconsumed, UNKNOWN when never issued or `len` is not
// policy_nonce_bytes.
enum policy_nonce_consume_result policy_nonce_consume(struct policy_nonce *table,
                                                      const uint8_t *nonce, size_t len,
                                                      uint64_t now_ns);

// policy_nonce_sweep reclaims every expired slot (issued or consumed) so that the counters show
// only live nonces; issue also reclaims lazily, so calling it is optional (the control thread may
// call it once a second). Returns the number of slots reclaimed. Cost: one pass over the table.
uint64_t policy_nonce_sweep(struct policy_nonce *table, uint64_t now_ns);

// policy_nonce_get_stats fills `out_stats` with a snapshot of the counters (for /metrics).
void policy_nonce_get_stats(const struct policy_nonce *table, struct policy_nonce_stats *out_stats);

/* policy_ratelimit.c */

// Per-client-address token buckets for GET /api/v1/nonce. NOT thread-safe: owned and used by the
// control thread alone. IPv4 addresses are keyed whole, IPv6 by their /64 prefix (one host
// usually owns a /64); IPv4-mapped IPv6 counts as IPv4; other families share one bucket. The
// table has a fixed number of buckets; when the probe window of an address is full the bucket
// idle the longest is recycled (that client starts again with a full burst).
struct policy_ratelimit;

// policy_ratelimit_new allocates `bucket_count` buckets (power of two, >= policy_ratelimit_probe
// _max) allowing `burst` issues at once and `refill_per_s` per second after that. Returns 0 and an
// owned limiter in `*out_limiter`, -EINVAL for bad sizes (burst or refill 0), or -ENOMEM.
int policy_ratelimit_new(struct policy_ratelimit **out_limiter, uint32_t bucket_count,
                         uint32_t burst, uint32_t refill_per_s);

// policy_ratelimit_free releases `limiter`; NULL is a no-op.
void policy_ratelimit_free(struct policy_ratelimit *limiter);

// policy_ratelimit_take takes one token from the bucket of `addr` at `now_ns` (monotonic).
// Returns POLICY_RATELIMIT_ALLOW, or POLICY_RATELIMIT_LIMITED (answer HTTP 429).
enum policy_ratelimit_verdict policy_ratelimit_take(struct policy_ratelimit *limiter,
                                                    const struct sockaddr *addr, uint64_t now_ns);

// policy_ratelimit_held bounds from above how many nonces issued to `addr` (as counted by
// policy_ratelimit_held_add) are still live at `now_ns`, nonces living `ttl_ns`: it counts those
// issued within the last ttl_ns, and some issued up to ttl_ns / 8 before. Counts restart when
// ttl_ns changes, and when the address's bucket is recycled.
uint32_t policy_ratelimit_held(struct policy_ratelimit *limiter, const struct sockaddr *addr,
                               uint64_t now_ns, uint64_t ttl_ns);

// policy_ratelimit_held_add counts one nonce issued to `addr` at `now_ns`, living `ttl_ns`.
void policy_ratelimit_held_add(struct policy_ratelimit *limiter, const struct sockaddr *addr,
                               uint64_t now_ns, uint64_t ttl_ns);

/* policy_reuse.c */

// The reuse cache remembers ALLOW verdicts for reuse_window_s (DESIGN.md §6), keyed by
// SHA-256(certificate SPKI) and SHA-256(evidence) and the policy epoch they were decided under.
// ONE cache is shared by every worker (a client's pooled connections land on any worker through
// SO_REUSEPORT): lock-free like the nonce table, every function may run concurrently except
// policy_reuse_free. A full probe window recycles the entry closest to its deadline; losing an
// entry only costs that client a new nonce (its later handshakes are refused as replays).
struct policy_reuse;

// policy_reuse_new allocates `slot_count` entries (power of two). Returns 0 and an owned cache in
// `*out_cache`, -EINVAL or -ENOMEM.
int policy_reuse_new(struct policy_reuse **out_cache, uint32_t slot_count);

// policy_reuse_free releases `cache`; NULL is a no-op.
void policy_reuse_free(struct policy_reuse *cache);

// policy_reuse_remember records that the handshake with `spki_sha256` and `evidence_sha256`
// (policy_sha256_bytes each) was ALLOWED under policy `policy_epoch` (core bumps the epoch on
// every reload, so a new policy never inherits old verdicts), until `deadline_ns`. Call it once,
// after the nonce was consumed with POLICY_NONCE_CONSUME_OK; the deadline is not extended by
// later reuse.
void policy_reuse_remember(struct policy_reuse *cache, const uint8_t *spki_sha256,
                           const uint8_t *evidence_sha256, uint64_t policy_epoch,
                           uint64_t deadline_ns, uint64_t now_ns);

// policy_reuse_is_allowed returns whether an ALLOW verdict for exactly this key and
// `policy_epoch` is remembered and `now_ns` is before its deadline. The handshake must still
// prove possession of the certificate key itself.
bool policy_reuse_is_allowed(const struct policy_reuse *cache, const uint8_t *spki_sha256,
                             const uint8_t *evidence_sha256, uint64_t policy_epoch,
                             uint64_t now_ns);

#ifdef __cplusplus
}
#endif

#endif // ATLS_POLICY_H
