// ring_op.c: the one place user_data is packed and unpacked, and the CQE dispatch table.
#include "ring.h"

#include "core_base.h"

// Layout: op in bits 63..56, slot in bits 55..32, generation in bits 31..0.
uint64_t ring_op_pack(uint8_t op, uint32_t slot, uint32_t generation) {
    ASSERT_HOT(slot <= RING_SLOT_MAX);
    return ((uint64_t)op << 56) | ((uint64_t)(slot & RING_SLOT_MAX) << 32) | generation;
}

struct ring_op_id ring_op_unpack(uint64_t user_data) {
    struct ring_op_id id = {
        .op = (uint8_t)(user_data >> 56),
        .slot = (uint32_t)(user_data >> 32) & RING_SLOT_MAX,
        .generation = (uint32_t)user_data,
    };
    return id;
}

void ring_op_dispatch(struct ring *r, const struct io_uring_cqe *cqe) {
    struct ring_op_id id = ring_op_unpack(cqe->user_data);
    if (unlikely(id.op >= r->ops_len || r->ops[id.op].on_done == NULL)) {
        // Our own cancel/close SQEs without a handler carry op 0 rows with no handler; an
        // unknown op is a programmer error.
        ASSERT(id.op < r->ops_len);
        return;
    }
    const struct ring_op_entry *e = &r->ops[id.op];
    if (e->needs_slot && r->validate != NULL && !r->validate(r->ctx, id)) {
        // A CQE for a recycled slot: the slot free rule (every SQE reaped before reuse) makes this
        // a bug; count it and drop the completion rather than touch another connection.
        r->stats.stale_cqes++;
        ASSERT_HOT(false);
        return;
    }
    if (cqe->res < 0 && e->on_error != NULL) {
        e->on_error(r->ctx, id, cqe);
        return;
    }
    e->on_done(r->ctx, id, cqe);
}
