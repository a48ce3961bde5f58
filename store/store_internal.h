// store_internal.h: shared among store/*.c and tests/store/ only: the store object, the SPSC
// ring, the RocksDB wrapper (the only place RocksDB's errptr is seen is store_rocksdb.c) and
// the on-disk layout.
#ifndef ATLS_STORE_INTERNAL_H
#define ATLS_STORE_INTERNAL_H

#include <pthread.h>
#ifndef __cplusplus
#include <stdatomic.h>
#endif

#include "proto.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- On-disk layout ----
// Column families:
//   default        key (20 B)                            -> packed AuditRecord (chain filled)
//   chain          be64 global_seq                       -> key (20 B) | SHA-256(value) (32 B)
//   by_verdict     be32 verdict | key                    -> "" (decisions only)
//   by_measurement measurement (48 B) | be32 verdict | key -> "" (decisions only)
//   meta           "head"   -> be64 global_seq | SHA-256 of that record's value
//                  "anchor" -> be64 first kept global_seq | SHA-256 of the last deleted value
// One write batch holds a record and all its index entries plus the new head, so they appear
// together or not at all. The genesis prev_sha256 (record 1) is 32 zero bytes.
enum store_cf {
    STORE_CF_RECORDS = 0,
    STORE_CF_CHAIN = 1,
    STORE_CF_BY_VERDICT = 2,
    STORE_CF_BY_MEASUREMENT = 3,
    STORE_CF_META = 4,
    STORE_CF_COUNT = 5,
};
extern const char *const store_cf_names[STORE_CF_COUNT];

#define STORE_CHAIN_VALUE_BYTES (STORE_KEY_BYTES + STORE_SHA256_BYTES)
#define STORE_META_HEAD "head"
#define STORE_META_ANCHOR "anchor"
#define STORE_META_POS_BYTES (8u + STORE_SHA256_BYTES)
#define STORE_VERDICT_KEY_BYTES (4u + STORE_KEY_BYTES)
#define STORE_MEAS_KEY_BYTES (STORE_MEASUREMENT_BYTES + 4u + STORE_KEY_BYTES)
#define STORE_ARENA_BYTES 32768u // unpacking one AuditRecord (report copy, strings, slabs)

// ---- Ring slot ----
#define STORE_SLOT_MAGIC 0x41554431u // "AUD1"
struct store_slot_hdr {
    uint32_t len;   // packed bytes following the header
    uint32_t magic;
    uint64_t seq;   // per-worker sequence number
};
#define STORE_SLOT_PAYLOAD_MAX (STORE_SLOT_BYTES - sizeof(struct store_slot_hdr))

// WARNING: the structs below use C11 atomics, which C++ cannot parse; C++ tests see only the
// prototypes and the layout constants and treat struct store as opaque.
#ifndef __cplusplus
// struct store_ring is one worker's single-producer/single-consumer ring. `head` is written by
// the producer only, `tail` and `durable_seq` by the store thread only. Slot i holds seq i+1.
struct store_ring {
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) _Atomic uint64_t durable_seq;
    _Atomic uint64_t ring_full;
    int durable_efd;
    uint32_t slots;
    uint8_t *mem;     // slots * STORE_SLOT_BYTES
    uint64_t poison_seq; // store thread: first corrupt slot's seq (0 = none); durable < it
};

struct store_db;
struct store_batch;
struct store_iter;

struct store {
    struct store_config cfg;
    struct store_db *db;
    bool read_only;
    uint32_t workers;
    struct store_ring *rings; // [workers]

    pthread_t thread;
    bool thread_started;
    int wake_efd;               // producers -> store thread
    _Atomic bool sleeping;      // store thread is (about to be) blocked on wake_efd
    _Atomic bool stop;
    _Atomic bool retention_requested;
    _Atomic bool paused;        // tests: the store thread leaves the rings alone

    _Atomic int health_err;     // 0 healthy, else -errno (sticky)
    char health_msg[STORE_ERR_BYTES]; // written once before health_err is published

    // Store thread state.
    uint64_t next_global_seq;
    uint8_t last_digest[STORE_SHA256_BYTES];
    uint64_t last_retention_ns;
    uint32_t rr_next;           // round-robin start ring
    struct store_batch *batch;
    struct proto_arena arena;
    uint8_t *arena_buf;         // STORE_ARENA_BYTES
    uint8_t *value_buf;         // STORE_VALUE_BYTES_MAX
    uint64_t *taken;            // [workers] slots consumed by the batch being built
    // Decision counts per measurement (store_counts.c); NULL in a read-only store, whose
    // queries scan the index instead.
    struct store_counts *counts;

    // Counters (store_stats).
    _Atomic uint64_t records_written;
    _Atomic uint64_t batches_written;
    _Atomic uint64_t corrupt_slots;
    _Atomic uint64_t retention_deleted;
    _Atomic uint64_t retention_runs;
    _Atomic uint64_t head_global_seq;
    _Atomic uint64_t first_global_seq;
    _Atomic uint64_t measurement_scans; // reads of the measurement index by queries (tests)
};
#endif // __cplusplus

/* store.c */

// store_open_with_counts is store_open with room for `counts_max` distinct measurements in the
// in-memory decision counts (store_open uses STORE_COUNTS_ENTRIES_MAX; tests overflow a small
// table).
int store_open_with_counts(struct store **out_store, char *err, size_t errlen,
                           const struct store_config *cfg, uint32_t workers, uint32_t counts_max);

// store_set_unhealthy records the first failure (`rc`, formatted reason). Store thread.
void store_set_unhealthy(struct store *store, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// store_be64_put / store_be64_get / store_be32_put / store_be32_get: big-endian integers.
void store_be64_put(uint8_t *out, uint64_t v);
uint64_t store_be64_get(const uint8_t *in);
void store_be32_put(uint8_t *out, uint32_t v);
uint32_t store_be32_get(const uint8_t *in);

// store_open_readonly_raw is store_open_readonly that, without `load_chain`, leaves the chain
// head and retention anchor unread (store_stats reports none): verification reads and judges
// them itself, so a value that does not decode is a finding, not a failure to open.
int store_open_readonly_raw(struct store **out_store, char *err, size_t errlen, const char *dir,
                            bool load_chain);

/* store_ring.c */

// store_ring_init allocates `slots` slots and the durable eventfd (startup). Returns 0/-errno.
int store_ring_init(struct store_ring *ring, uint32_t slots);

// store_ring_cleanup frees the ring; idempotent and safe on a zeroed ring.
void store_ring_cleanup(struct store_ring *ring);

// store_ring_free_slots returns how many slots the producer can reserve now (producer only: the
// count only grows until it publishes again).
uint32_t store_ring_free_slots(const struct store_ring *ring);

// store_ring_reserve returns the next free slot for the producer, or NULL when full.
struct store_slot_hdr *store_ring_reserve(struct store_ring *ring);

// store_ring_publish makes the reserved slot visible to the consumer and returns its seq.
uint64_t store_ring_publish(struct store_ring *ring);

// store_ring_peek returns the `i`-th unconsumed slot (consumer), or NULL when fewer exist.
const struct store_slot_hdr *store_ring_peek(const struct store_ring *ring, uint64_t i);

// store_ring_release frees `n` consumed slots (consumer).
void store_ring_release(struct store_ring *ring, uint64_t n);

// store_set_paused stops (true) or resumes (false) the store thread's draining of the rings, so
// tests can fill a ring deterministically. Any thread.
void store_set_paused(struct store *store, bool paused);

// store_ring_push_raw copies `len` arbitrary bytes into a slot (tests inject corrupt slots).
int store_ring_push_raw(struct store *store, uint64_t *out_seq, uint32_t worker,
                        const uint8_t *data, size_t len);

/* store_audit.c */

// store_audit_thread_main is the store thread.
void *store_audit_thread_main(void *arg);

// store_audit_load_chain reads the head/anchor into the store's chain state (open).
int store_audit_load_chain(struct store *store, char *err, size_t errlen);

// store_audit_retention applies retention once (store thread); returns records deleted or
// -errno.
int store_audit_retention(struct store *store);

// store_audit_record_is_valid checks the producer-filled fields of `rec` (both before a push
// and after the store thread decodes a slot: paired validation, rule 9).
bool store_audit_record_is_valid(const Atls__AuditRecord *rec);

/* store_counts.c */

// struct store_counts: decisions per (measurement, verdict) as the by_measurement index holds
// them, for up to a fixed number of distinct measurements (the smallest ones). Opaque.
struct store_counts;

// store_counts_new allocates a table for `entries_max` (>= 1) measurements whose staging area
// holds `staged_max` index entries (the largest write batch). Startup; NULL when out of memory.
// The caller owns it (store_counts_free).
struct store_counts *store_counts_new(uint32_t entries_max, uint32_t staged_max);

// store_counts_free frees `counts`; store_counts_free(NULL) is a no-op.
void store_counts_free(struct store_counts *counts);

// store_counts_load counts the by_measurement index of `db` into an empty table: one scan,
// O(index entries below the table's limit). Owner thread, before the store thread starts.
// Returns 0, or -EIO/-ENOMEM with a reason in `err`.
int store_counts_load(struct store_counts *counts, char *err, size_t errlen, struct store_db *db);

// store_counts_stage remembers that the write batch being built puts (`delta` = +1) or deletes
// (`delta` = -1) the by_measurement entry `mk`; a delete only for an entry that exists on disk.
// At most `staged_max` per batch. Store thread.
void store_counts_stage(struct store_counts *counts, const uint8_t mk[STORE_MEAS_KEY_BYTES],
                        int delta);

// store_counts_discard forgets the staged entries: their batch was not written. Store thread.
void store_counts_discard(struct store_counts *counts);

// store_counts_commit applies the staged entries once their batch is written, then forgets
// them. Store thread.
void store_counts_commit(struct store_counts *counts);

// store_counts_invalidate empties the table for good: until the store is opened again, every
// query counts from the index. For when an update cannot be known exactly. Store thread.
void store_counts_invalidate(struct store_counts *counts);

// store_counts_copy copies the first min(tracked, `cap`) measurements, in measurement order,
// into `out` and sets `*out_n`. Returns -ENOSPC when more than `cap` are tracked (the answer is
// complete), else 0. When it returns 0 with `*out_partial` set, the table tracks only the
// measurements below `out_from`: the caller adds those from `out_from` on from the index. Any
// thread; holds the table's mutex only for the copy.
int store_counts_copy(struct store_counts *counts, struct store_measurement_count *out,
                      size_t *out_n, size_t cap, uint8_t out_from[STORE_MEASUREMENT_BYTES],
                      bool *out_partial);

/* store_query.c */

// store_query_measurements_scan is store_query_measurements computed by scanning the whole
// by_measurement index: O(records kept). The read-only store answers with it; tests compare the
// in-memory counts against it. Any thread.
int store_query_measurements_scan(struct store *store, struct store_measurement_count *out,
                                  size_t *out_n, size_t cap);

// store_query_measurement_scans returns how many store_query_measurements calls have read the
// index (a full or partial scan) instead of answering from memory. Any thread.
uint64_t store_query_measurement_scans(const struct store *store);

/* store_rocksdb.c */

// store_rocksdb_open opens `dir` with every column family (created when `!read_only`).
int store_rocksdb_open(struct store_db **out_db, char *err, size_t errlen, const char *dir,
                       bool read_only);
void store_rocksdb_close(struct store_db *db);
// store_rocksdb_memtable_bytes: memory held by every column family's memtables. Any thread.
uint64_t store_rocksdb_memtable_bytes(struct store_db *db);
struct store_batch *store_rocksdb_batch_new(void);
void store_rocksdb_batch_free(struct store_batch *batch);
void store_rocksdb_batch_clear(struct store_batch *batch);
uint32_t store_rocksdb_batch_count(const struct store_batch *batch);
void store_rocksdb_batch_put(struct store_db *db, struct store_batch *batch, enum store_cf cf,
                             const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
void store_rocksdb_batch_delete(struct store_db *db, struct store_batch *batch, enum store_cf cf,
                                const uint8_t *key, size_t klen);
// store_rocksdb_write commits `batch`, fsyncing the WAL first when `sync`. 0 or -EIO/-ENOSPC.
int store_rocksdb_write(struct store_db *db, char *err, size_t errlen, struct store_batch *batch,
                        bool sync);
// store_rocksdb_get copies the value of `key` into `out`. 0, -ENOENT, -EMSGSIZE, -EIO.
int store_rocksdb_get(struct store_db *db, uint8_t *out, size_t *out_len, size_t cap,
                      enum store_cf cf, const uint8_t *key, size_t klen);

struct store_iter *store_rocksdb_iter_new(struct store_db *db, enum store_cf cf);
void store_rocksdb_iter_free(struct store_iter *it);
bool store_rocksdb_iter_is_valid(const struct store_iter *it);
void store_rocksdb_iter_seek_first(struct store_iter *it);
void store_rocksdb_iter_seek_last(struct store_iter *it);
void store_rocksdb_iter_seek(struct store_iter *it, const uint8_t *key, size_t klen);
void store_rocksdb_iter_seek_for_prev(struct store_iter *it, const uint8_t *key, size_t klen);
void store_rocksdb_iter_next(struct store_iter *it);
void store_rocksdb_iter_prev(struct store_iter *it);
const uint8_t *store_rocksdb_iter_key(const struct store_iter *it, size_t *out_len);
const uint8_t *store_rocksdb_iter_value(const struct store_iter *it, size_t *out_len);
// store_rocksdb_iter_error returns 0, or -EIO with the reason, once iteration has ended.
int store_rocksdb_iter_error(const struct store_iter *it, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif // ATLS_STORE_INTERNAL_H
