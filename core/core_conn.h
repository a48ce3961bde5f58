// core_conn.h: slot table, staging chunks and timer wheel of one worker (core-internal).
#ifndef ATLS_CORE_CONN_H
#define ATLS_CORE_CONN_H

#include "core_internal.h"

// core_conn_table_init allocates `conns_max` slots and their chunks (startup only).
int core_conn_table_init(struct core_shard *shard, uint32_t conns_max);
// core_conn_table_cleanup frees what core_conn_table_init allocated. Idempotent.
void core_conn_table_cleanup(struct core_shard *shard);
// core_conn_open takes a free slot (zeroed, fds -1) or returns NULL when the table is full.
struct core_conn *core_conn_open(struct core_shard *shard);
// core_conn_release returns a CLOSING slot with no pending op to the free list, closing fds.
void core_conn_release(struct core_shard *shard, struct core_conn *c);
// core_side_close closes s's socket (a descriptor, or empties its ring file slot); fd -1 after.
void core_side_close(struct core_shard *shard, struct core_side *s);
// core_conn_chunk_get / core_conn_chunk_put: staging chunks (never fails: two per slot).
uint32_t core_conn_chunk_get(struct core_shard *shard);
void core_conn_chunk_put(struct core_shard *shard, uint32_t chunk);
// core_conn_set_deadline (re)schedules `c` at `deadline_ns` (0 cancels).
void core_conn_set_deadline(struct core_shard *shard, struct core_conn *c, uint64_t deadline_ns);
// core_conn_wheel_remove unschedules `c`.
void core_conn_wheel_remove(struct core_shard *shard, struct core_conn *c);
// core_conn_wheel_expire calls `on_expired` for every connection whose deadline has passed.
void core_conn_wheel_expire(struct core_shard *shard, uint64_t now_ns,
                            void (*on_expired)(struct core_shard *, struct core_conn *));

static inline uint8_t *core_conn_chunk_addr(struct core_shard *shard, uint32_t chunk) {
    return shard->chunks + (size_t)chunk * CORE_CHUNK_BYTES;
}

#endif // ATLS_CORE_CONN_H
