// store.h: the RocksDB audit store (DESIGN.md §9): per-worker SPSC rings into one store thread
// that hash-chains and appends AuditRecords, durability acknowledgements, queries, retention
// and chain verification.
//
// Threads (DESIGN.md §2):
//   - store thread: started by store_open, the only writer to RocksDB.
//   - worker `w` (producer): store_audit_push(.., w, ..), store_durable_seq(.., w),
//     store_worker_eventfd(.., w), store_is_healthy. Each ring has exactly one producer: only
//     the thread that owns worker `w` may push with that index.
//   - any thread (control/HTTP, atlsctl): store_query_*, store_stats, store_is_healthy,
//     store_health_error. RocksDB reads are thread-safe and run concurrently with the store
//     thread's writes.
//   - owner (startup/shutdown thread): store_open, store_open_readonly, store_close, once every
//     producer has stopped pushing and every query has returned.
//
// Durability contract: store_audit_push returns the record's per-worker sequence number `seq`
// (1, 2, 3, ... per worker). The record is durable (per `[audit] sync`) once
// store_durable_seq(store, w) >= seq. After every committed batch that advances worker `w`'s
// durable seq the store thread adds 1 to store_worker_eventfd(store, w) (an eventfd, counter
// semantics), so a worker can wait for it in its io_uring and then re-read store_durable_seq.
// Durable seqs never decrease. A worker must not forward a connection's bytes before its
// decision record is durable.
//
// Fail closed: when a write fails (disk full, read-only file system, I/O error) or a slot does
// not decode, the store turns unhealthy for good (store_is_healthy() == false, the error in
// store_health_error); it then stops consuming the rings, so no further record becomes durable
// and pushes fail. Workers check store_is_healthy before admitting a handshake and refuse when
// a push returns -EAGAIN (ring full) or any other error.
#ifndef ATLS_STORE_H
#define ATLS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.pb-c.h"
#include "store_types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct store;

// store_record_fn receives one record of a query: its key and its stored (packed AuditRecord)
// bytes, both valid only during the call. Return 0 to continue; any other value stops the query,
// which then returns it when negative and 0 when positive.
typedef int (*store_record_fn)(void *arg, const struct store_key *key, const uint8_t *value,
                               size_t len);

/* store.c */

// store_config_defaults fills `cfg` with the documented defaults (dir
// /var/lib/atls-proxy/audit, sync always, 90 days, no count limit, 1024 slots, batch 256,
// retention every 60 s). Cannot fail.
void store_config_defaults(struct store_config *cfg);

// store_config_validate checks ranges and cross-field rules of `cfg`. Returns 0, or -EINVAL
// with a one-line reason naming the key in `err` (`errlen` bytes).
int store_config_validate(char *err, size_t errlen, const struct store_config *cfg);

// store_open opens (creating if missing) the audit database in `cfg->dir`, sets up one ring of
// `cfg->ring_slots_per_worker` slots per worker for `workers` producers (1..STORE_WORKERS_MAX)
// and starts the store thread. Before that it reads the measurement index once to count the
// decisions kept per measurement (store_query_measurements): O(decisions kept), so a large
// audit trail opens more slowly. On success `*out_store` is owned by the caller (store_close).
// Returns 0, or -errno with a one-line reason in `err`: -EINVAL (config), -ENOENT (parent
// directory missing), -ENOTDIR (not a directory), -EACCES (not writable), -EIO (RocksDB
// refused: corrupt database, locked by another process, ...), -ENOMEM.
int store_open(struct store **out_store, char *err, size_t errlen, const struct store_config *cfg,
               uint32_t workers);

// store_open_readonly opens an existing audit database in `dir` for queries only (no store
// thread, no rings; pushes are a programmer error). Safe while a gateway has the database open.
// Returns 0, -ENOENT (no database there), -ENOTDIR, -EIO, with a reason in `err`.
int store_open_readonly(struct store **out_store, char *err, size_t errlen, const char *dir);

// store_close stops the store thread after it has written every record already pushed, closes
// RocksDB and frees `store`. store_close(NULL) is a no-op. Owner thread only; producers and
// queries must have stopped.
void store_close(struct store *store);

// store_is_healthy is false once a write or a slot has failed (sticky). Any thread.
bool store_is_healthy(const struct store *store);

// store_health_error returns 0 when healthy, else the -errno of the first failure and copies
// its reason into `err` (`errlen` bytes, may be NULL/0). Any thread.
int store_health_error(const struct store *store, char *err, size_t errlen);

// store_durable_seq returns the highest per-worker seq of `worker` whose record is durable.
// Any thread; meant for worker `worker`.
uint64_t store_durable_seq(const struct store *store, uint32_t worker);

// store_worker_eventfd returns the eventfd signalled when `worker`'s durable seq advances.
// Borrowed: valid until store_close. Non-blocking; read it to reset the counter.
int store_worker_eventfd(const struct store *store, uint32_t worker);

// store_stats copies the store's counters into `out`. Any thread.
void store_stats(const struct store *store, struct store_stats *out);

// store_retention_request asks the store thread to apply retention now instead of at its next
// interval; store_stats().retention_runs increments when it has. Any thread.
void store_retention_request(struct store *store);

// store_key_encode writes the STORE_KEY_BYTES big-endian key of `key` into `out`.
void store_key_encode(uint8_t out[STORE_KEY_BYTES], const struct store_key *key);

// store_key_decode parses `len` bytes of `in`. Returns 0, or -EINVAL unless len is
// STORE_KEY_BYTES.
int store_key_decode(struct store_key *out_key, const uint8_t *in, size_t len);

// store_key_format writes `key` as the STORE_CURSOR_BYTES-1 hex text used for cursors and by
// `atlsctl audit show`, plus a NUL, into `out` (STORE_CURSOR_BYTES).
void store_key_format(char out[STORE_CURSOR_BYTES], const struct store_key *key);

// store_key_parse parses hex text made by store_key_format. Returns 0 or -EINVAL.
int store_key_parse(struct store_key *out_key, const char *text);

/* store_audit.c */

// store_audit_push packs `rec` into the next slot of worker `worker`'s ring and sets `*out_seq`
// to its per-worker sequence number. Never blocks, never allocates. The store fills `worker`,
// `seq`, `global_seq` and `prev_sha256`; the caller fills the rest (`kind`, `time_ns` required;
// a decision needs a verdict; `measurement` is empty or 48 bytes). Returns 0, -EAGAIN when the
// ring is full (refuse the handshake, counted in store_stats), -EMSGSIZE when the record does
// not fit a slot, -EINVAL for a record missing a required field, or the store's health error
// once it is unhealthy. Worker `worker`'s thread only.
int store_audit_push(struct store *store, uint64_t *out_seq, uint32_t worker,
                     const Atls__AuditRecord *rec);

// store_ring_free returns how many records worker `worker`'s ring can take now (it only grows
// until that worker pushes again). Worker `worker`'s thread only.
uint32_t store_ring_free(const struct store *store, uint32_t worker);

// store_audit_verify opens the database in `dir` read-only and walks the hash chain from the
// retention anchor to the head, checks that every stored record is in the chain, and that the
// verdict and measurement indexes hold exactly the entries of the decision records. Returns 0
// when the walk ran (the outcome, including the first altered/removed/inserted/corrupt record
// or bad index entry, is in `*out_result`; a head or anchor that does not decode is
// STORE_VERIFY_CORRUPT), or -errno with a reason in `err` when the database cannot be opened
// or read. O(records log records) time, memory independent of the number of records. Any
// thread; safe while a gateway writes (it verifies the state at the moment it opens).
// WARNING: the chain has no secret and its head and anchor are in the same database: whoever
// can write the database can remove records from the end and rewrite the head, remove a prefix
// and forge the anchor, or rewrite the whole chain, and this still reports OK. Only a head
// recorded elsewhere detects that (store_audit_verify_expect_head).
int store_audit_verify(struct store_verify_result *out_result, char *err, size_t errlen,
                       const char *dir);

// store_audit_verify_expect_head is store_audit_verify that also requires the chain to still
// hold record `expect->global_seq` with exactly the digest `expect->sha256` (a head printed by
// an earlier verify and kept outside the database); otherwise, once the rest verifies, the
// status is STORE_VERIFY_EXPECT_HEAD. A pinned record since deleted by retention fails too:
// pin a newer head. `expect` may be NULL (store_audit_verify). Same returns and threads.
int store_audit_verify_expect_head(struct store_verify_result *out_result, char *err, size_t errlen,
                                   const char *dir, const struct store_chain_pos *expect);

/* store_query.c */

// store_query_list calls `fn` for up to `q->limit` records, newest first, that are older than
// `q->cursor` (when set) and not older than `q->since_ns`. When more may follow, writes the
// cursor of the next page into `out_next_cursor` (STORE_CURSOR_BYTES), else "". A cursor stays
// valid while records are added; a record deleted by retention simply ends the listing there.
// Returns 0, -EINVAL (bad limit or cursor), -EIO, or what `fn` returned. Any thread.
int store_query_list(struct store *store, char *out_next_cursor, const struct store_list_query *q,
                     store_record_fn fn, void *arg);

// store_query_latest calls `fn` for the newest `limit` records, newest first. Any thread.
int store_query_latest(struct store *store, uint32_t limit, store_record_fn fn, void *arg);

// store_query_denied calls `fn` for the newest `limit` decisions with VERDICT_DENIED, newest
// first (through the verdict index). Any thread.
int store_query_denied(struct store *store, uint32_t limit, store_record_fn fn, void *arg);

// STORE_COUNTS_ENTRIES_MAX is how many distinct measurements the in-memory decision counts hold
// (store_counts.c): 104 bytes each, 1.7 MiB allocated at open, plus 73 bytes per record of the
// largest write batch for staging (at most 292 KiB). Four times the HTTP API's page of 4096, so
// that page is answered from memory even after the table has overflowed and retention has
// since dropped up to 12288 of its measurements.
#define STORE_COUNTS_ENTRIES_MAX 16384u

// store_query_measurements fills `out` (room for `cap`) with decision counts per measurement,
// ordered by measurement bytes, and sets `*out_n`. A store opened by store_open answers from
// counts it keeps in memory, in O(distinct measurements): they follow every committed write
// batch and retention batch. Past 16384 distinct measurements (STORE_COUNTS_ENTRIES_MAX, 1.7
// MiB) it keeps only the smallest ones; a query that needs more than it keeps also scans the
// measurement index from there on, so the answer is always exact. A store opened by
// store_open_readonly scans the index: O(records kept). Returns 0, -ENOSPC when there are more
// than `cap` distinct measurements (the first `cap` are filled), -ENOMEM, -EIO. Any thread.
int store_query_measurements(struct store *store, struct store_measurement_count *out,
                             size_t *out_n, size_t cap);

// store_query_measurements_kept is store_query_measurements limited to the measurements the
// in-memory counts hold (at most STORE_COUNTS_ENTRIES_MAX): it never reads the index, and returns
// -ENOSPC whenever more measurements are on record than it filled (more than `cap`, or past the
// table's limit after an overflow). A store opened by store_open_readonly scans, as
// store_query_measurements does. Any thread.
int store_query_measurements_kept(struct store *store, struct store_measurement_count *out,
                                  size_t *out_n, size_t cap);

// store_query_get copies the stored bytes of the record named `key` into `out` (`cap` bytes)
// and sets `*out_len`. Returns 0, -ENOENT, -EMSGSIZE, -EIO. Any thread.
int store_query_get(struct store *store, uint8_t *out, size_t *out_len, size_t cap,
                    const struct store_key *key);

#ifdef __cplusplus
}
#endif

#endif // ATLS_STORE_H
