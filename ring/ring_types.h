// ring_types.h: types and limits of the io_uring loop (one ring per worker thread).
#ifndef ATLS_RING_TYPES_H
#define ATLS_RING_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Limits of the ring module (CONVENTIONS.md rule 10).
#define RING_OPS_MAX 32u              // distinct op kinds in one dispatch table
#define RING_SLOT_MAX 0x00ffffffu     // slot index is 24 bits in user_data
#define RING_CQE_BATCH_MAX 256u       // completions handled per loop tick before submitting
#define RING_BUF_SIZE_MAX (1024u * 1024u) // one provided buffer
#define RING_BUF_COUNT_MAX 32768u     // kernel limit on provided-buffer ring entries
#define RING_BUSY_POLL_NS_MAX (1000u * 1000u) // one busy poll of ring_run_once, at most

// One decoded user_data: which op completed, for which slot, at which slot generation.
struct ring_op_id {
    uint8_t op;
    uint32_t slot;       // 24 bits used
    uint32_t generation; // 32 bits; catches CQEs for a recycled slot
};

struct io_uring_cqe;

// ring_op_fn handles one completion. `ctx` is the ring's owner context, `cqe` the completion.
typedef void (*ring_op_fn)(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe);

// ring_op_validate_fn returns true when (slot, generation) still names a live slot.
typedef bool (*ring_op_validate_fn)(void *ctx, struct ring_op_id id);

// One row of the dispatch table: negative `res` goes to `on_error` before `on_done` ever runs.
struct ring_op_entry {
    const char *name;
    ring_op_fn on_done;
    ring_op_fn on_error; // NULL: errors go to on_done too (the handler checks res itself)
    bool needs_slot;     // validate (slot, generation) before dispatch
};

struct ring_config {
    uint32_t sq_entries;    // power of two
    uint32_t cq_entries;    // >= 2 * sq_entries
    uint32_t cqe_batch_max; // <= RING_CQE_BATCH_MAX
};

// Counters read by the control thread (relaxed; per worker, never shared-written).
struct ring_stats {
    uint64_t cqes;
    uint64_t stale_cqes;
    uint64_t submits;
    uint64_t sqe_full;
    uint64_t cq_overflow;
    uint64_t poll_ns;     // time spent in busy polls (ring_set_busy_poll)
    uint64_t poll_hits;   // busy polls that found a completion: no sleep, no wake-up
    uint64_t poll_misses; // busy polls that ran out and went to sleep
};

#ifdef __cplusplus
}
#endif

#endif // ATLS_RING_TYPES_H
