// ring.h: io_uring loop, user_data encoding, provided-buffer rings. Single-threaded: a ring and
// its buffer rings belong to the thread that created them (SINGLE_ISSUER).
#ifndef ATLS_RING_H
#define ATLS_RING_H

#include <liburing.h>
#include <stddef.h>

#include "ring_types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ring {
    struct io_uring uring;
    bool initialized;
    bool defer_taskrun;
    uint32_t cqe_batch_max;
    const struct ring_op_entry *ops; // borrowed, RING_OPS_MAX rows at most
    uint32_t ops_len;
    ring_op_validate_fn validate;
    void *ctx;
    uint64_t busy_poll_ns; // ring_set_busy_poll; 0: wait in the kernel at once
    struct ring_stats stats;
};

// Provided-buffer ring: `count` buffers of `size` bytes registered as buffer group `bgid`.
struct ring_buf {
    struct io_uring_buf_ring *br;
    uint8_t *base;
    size_t map_len;
    uint32_t count;
    uint32_t size;
    uint32_t mask;
    uint16_t bgid;
    uint32_t in_use; // buffers handed out by the kernel and not yet recycled
};

/* ring.c */

// ring_init prepares `r` in its zero state (cannot fail).
void ring_init(struct ring *r);

// ring_open creates the io_uring with `cfg`, preferring SINGLE_ISSUER|DEFER_TASKRUN and falling
// back to plain flags on older kernels. `ops` (borrowed, must outlive the ring) is the dispatch
// table indexed by op; `validate` checks (slot, generation) for ops with needs_slot. Returns 0 or
// -errno.
int ring_open(struct ring *r, const struct ring_config *cfg, const struct ring_op_entry *ops,
              uint32_t ops_len, ring_op_validate_fn validate, void *ctx);

// ring_cleanup closes the ring. Idempotent; safe from the zero state.
void ring_cleanup(struct ring *r);

// ring_get_sqe returns a free SQE, submitting pending ones first if the SQ is full. Returns NULL
// only if the kernel refuses submission (counted in stats.sqe_full).
struct io_uring_sqe *ring_get_sqe(struct ring *r);

// ring_run_once submits pending SQEs, waits up to `timeout_ms` for at least one completion and
// dispatches at most cqe_batch_max of them. Returns the number dispatched or -errno. With a busy
// poll set (ring_set_busy_poll) and nothing completed yet, it first polls the completion queue
// for up to that long, on the CPU, and only then sleeps in the kernel (never with `timeout_ms`
// 0).
int ring_run_once(struct ring *r, uint32_t timeout_ms);

// ring_set_busy_poll sets how long ring_run_once polls before it sleeps: `ns` (at most
// RING_BUSY_POLL_NS_MAX), 0 for none. Whoever completes an operation for a polling ring has
// nobody to wake: in a VM that is an inter-processor interrupt and a VM exit saved per wake-up,
// paid for with the poll's CPU time (stats.poll_ns). Owner thread only.
void ring_set_busy_poll(struct ring *r, uint64_t ns);

// ring_flush submits pending SQEs now, without waiting or reaping. Returns how many were
// submitted (0 when none were pending) or -errno.
int ring_flush(struct ring *r);

// ring_fd returns the ring's file descriptor (target of IORING_OP_MSG_RING from other rings).
int ring_fd(const struct ring *r);

// ring_files_open registers a table of `count` empty slots for direct descriptors: files the
// ring's SQEs name by slot (IOSQE_FIXED_FILE) and that take no entry in the process's descriptor
// table. The kernel caps `count` at RLIMIT_NOFILE. Returns 0 or -errno (an older kernel: -EINVAL).
int ring_files_open(struct ring *r, uint32_t count);

// ring_file_install puts `fd`'s file into slot `slot` (which must be empty). The caller may then
// close `fd`: the slot keeps the file open. Returns 0 or -errno.
int ring_file_install(struct ring *r, uint32_t slot, int fd);

// ring_file_remove empties slot `slot` at once, so it can be installed again. SQEs already in
// flight on the file keep it until they complete; the file closes after the last. Returns 0 or
// -errno.
int ring_file_remove(struct ring *r, uint32_t slot);

/* ring_op.c */

// ring_op_pack encodes {op, slot, generation} into a 64-bit user_data.
uint64_t ring_op_pack(uint8_t op, uint32_t slot, uint32_t generation);

// ring_op_unpack decodes a user_data produced by ring_op_pack.
struct ring_op_id ring_op_unpack(uint64_t user_data);

// ring_op_dispatch routes one CQE through the ring's table (validation, error handler, handler).
void ring_op_dispatch(struct ring *r, const struct io_uring_cqe *cqe);

/* ring_buf.c */

// ring_buf_init prepares `b` in its zero state.
void ring_buf_init(struct ring_buf *b);

// ring_buf_open maps and registers `count` (power of two) buffers of `size` bytes as group
// `bgid` on `r`, all handed to the kernel. Returns 0 or -errno.
int ring_buf_open(struct ring_buf *b, struct ring *r, uint16_t bgid, uint32_t count,
                  uint32_t size);

// ring_buf_cleanup unregisters and unmaps. Idempotent.
void ring_buf_cleanup(struct ring_buf *b, struct ring *r);

// ring_buf_addr returns the address of buffer `bid`.
static inline uint8_t *ring_buf_addr(const struct ring_buf *b, uint16_t bid) {
    return b->base + (size_t)bid * b->size;
}

// ring_buf_taken records that the kernel handed buffer `bid` to a completion.
void ring_buf_taken(struct ring_buf *b, uint16_t bid);

// ring_buf_recycle gives buffer `bid` back to the kernel.
void ring_buf_recycle(struct ring_buf *b, uint16_t bid);

#ifdef __cplusplus
}
#endif

#endif // ATLS_RING_H
