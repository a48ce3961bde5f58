// store_types.h: types, limits and configuration of the audit store (store/). Types only.
#ifndef ATLS_STORE_TYPES_H
#define ATLS_STORE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- Limits (rule 10) ----
#define STORE_WORKERS_MAX 256u
// STORE_SLOT_BYTES is one ring slot: a small header plus one packed AuditRecord. A decision with
// a 1184-byte report, a 48-byte measurement and a dozen failed checks packs to about 1.7 KiB.
#define STORE_SLOT_BYTES 4096u
#define STORE_RING_SLOTS_MIN 2u
#define STORE_RING_SLOTS_MAX 65536u
#define STORE_BATCH_MAX_MAX 4096u
#define STORE_RETENTION_DAYS_MAX 36500u
#define STORE_RETENTION_DELETE_BATCH_MAX 1024u // records deleted per retention write batch
#define STORE_RETENTION_INTERVAL_MS_MIN 10u
#define STORE_QUERY_LIMIT_MAX 10000u
#define STORE_MEMTABLE_BYTES (4u << 20) // RocksDB write buffer per column family
#define STORE_DIR_BYTES_MAX 4096u
#define STORE_KEY_BYTES 20u                      // be64 time_ns | be32 worker | be64 seq
#define STORE_CURSOR_BYTES (2u * STORE_KEY_BYTES + 1u) // hex key + NUL
#define STORE_VALUE_BYTES_MAX 8192u              // a stored (re-packed) record, chain fields added
#define STORE_ERR_BYTES 256u
#define STORE_MEASUREMENT_BYTES 48u
#define STORE_SHA256_BYTES 32u
#define STORE_VERDICT_SLOTS 5u // indexes by Atls__Verdict value 0..4 (UNSPECIFIED..ERROR)

// enum store_sync is `[audit] sync`: when a committed batch is acknowledged to producers.
enum store_sync {
    // Each write batch is written with sync=true (fdatasync of the WAL) before its records are
    // acknowledged: an acknowledged record survives power loss.
    STORE_SYNC_ALWAYS = 0,
    // Batches are written to the WAL without fsync: an acknowledged record survives a crash of
    // the process but not of the machine.
    STORE_SYNC_BATCH = 1,
};

// struct store_config is the `[audit]` section: flat and pointer-free (rule 11).
struct store_config {
    char dir[STORE_DIR_BYTES_MAX];  // RocksDB directory; created if missing (parent must exist)
    enum store_sync sync;
    uint32_t retention_days;        // delete records older than this; 0 = no age limit
    uint64_t retention_max_records; // keep at most this many records; 0 = no count limit
    uint32_t ring_slots_per_worker; // power of two, STORE_RING_SLOTS_MIN..MAX
    uint32_t batch_max;             // records per write batch, 1..STORE_BATCH_MAX_MAX
    uint32_t retention_interval_ms; // how often the store thread applies retention
};

// struct store_key names one record: the big-endian encoding of these three fields is its
// RocksDB key, so key order is time order.
struct store_key {
    uint64_t time_ns;
    uint32_t worker;
    uint64_t seq;
};

// struct store_list_query is GET /api/v1/attestations?limit=&since=&cursor=.
struct store_list_query {
    uint32_t limit;                   // 1..STORE_QUERY_LIMIT_MAX
    uint64_t since_ns;                // only records with time_ns >= since_ns; 0 = all
    char cursor[STORE_CURSOR_BYTES];  // "" = newest; else a next_cursor from a previous page
};

// struct store_measurement_count: decisions per measurement, split by verdict.
struct store_measurement_count {
    uint8_t measurement[STORE_MEASUREMENT_BYTES]; // all zero: decisions without evidence
    uint64_t by_verdict[STORE_VERDICT_SLOTS];     // indexed by Atls__Verdict
    uint64_t total;
};

// struct store_stats: counters of one open store (read from any thread, approximate).
struct store_stats {
    uint64_t records_written;
    uint64_t batches_written;
    uint64_t ring_full;          // pushes refused with -EAGAIN
    uint64_t corrupt_slots;      // slots that did not decode (store turns unhealthy)
    uint64_t retention_deleted;
    uint64_t retention_runs;
    uint64_t head_global_seq;    // last global_seq written (0 = none)
    uint64_t first_global_seq;   // oldest global_seq kept (retention anchor + 1)
    uint64_t memtable_bytes;     // RocksDB memtables, bounded by STORE_MEMTABLE_BYTES x 2 x CFs
};

// enum store_verify_status is the outcome of walking the hash chain (a domain outcome, rule 3).
enum store_verify_status {
    STORE_VERIFY_OK = 0,
    STORE_VERIFY_ALTERED = 1,  // a record's bytes no longer match the chain
    STORE_VERIFY_REMOVED = 2,  // a record in the chain is missing (gap)
    STORE_VERIFY_INSERTED = 3, // a record exists that the chain does not contain
    STORE_VERIFY_CORRUPT = 4,  // a record, chain entry, head or anchor does not decode
    // The verdict or measurement index disagrees with the records: an entry missing, extra,
    // naming a record that does not exist, or with another verdict or measurement than its
    // record (the denied-clients and measurement-count queries trust these indexes).
    STORE_VERIFY_INDEX = 5,
    // The chain is self-consistent but no longer holds the record pinned by the caller
    // (`atlsctl audit verify --expect-head`) with the pinned digest: records were removed from
    // the end, a prefix removed up to the pin, or the chain rewritten.
    STORE_VERIFY_EXPECT_HEAD = 6,
};

// struct store_chain_pos names a record by its chain position and the SHA-256 of its stored
// bytes. The chain has no secret and its head lives in the same database: a head recorded
// outside the database is what detects truncation or rewriting of the chain up to it.
struct store_chain_pos {
    uint64_t global_seq;
    uint8_t sha256[STORE_SHA256_BYTES];
};

// struct store_verify_result names the first bad record found (when status != OK).
struct store_verify_result {
    enum store_verify_status status;
    uint64_t records_checked;
    uint64_t first_global_seq;   // first record of the walk (after the retention anchor)
    uint64_t last_global_seq;    // last record walked
    uint64_t bad_global_seq;     // chain position of the first bad record
    struct store_key bad_key;    // its key (zero when not known, e.g. a removed tail)
    bool bad_key_known;
    // The head the walk verified (status OK): the last record and its digest; when retention
    // has deleted every record, the anchor's position - 1 and digest. {0, zeros}: empty store.
    struct store_chain_pos head;
    char detail[STORE_ERR_BYTES];
};

#ifdef __cplusplus
}
#endif

#endif // ATLS_STORE_TYPES_H
