// store_ring.c: one worker's single-producer/single-consumer ring of fixed-size slots carrying
// packed AuditRecords to the store thread. Lock-free: acquire/release on head and tail.
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core_base.h"
#include "store_internal.h"

int store_ring_init(struct store_ring *ring, uint32_t slots) {
    ASSERT(ring != NULL);
    ASSERT(slots >= STORE_RING_SLOTS_MIN && slots <= STORE_RING_SLOTS_MAX);
    ASSERT((slots & (slots - 1)) == 0);
    atomic_init(&ring->head, 0);
    atomic_init(&ring->tail, 0);
    atomic_init(&ring->durable_seq, 0);
    atomic_init(&ring->ring_full, 0);
    ring->poison_seq = 0;
    ring->slots = slots;
    ring->durable_efd = -1;
    // Startup allocation (rule 6): the slots live until store_close.
    ring->mem = aligned_alloc(64, (size_t)slots * STORE_SLOT_BYTES);
    if (ring->mem == NULL) {
        return -ENOMEM;
    }
    memset(ring->mem, 0, (size_t)slots * STORE_SLOT_BYTES);
    ring->durable_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ring->durable_efd < 0) {
        int rc = -errno;
        free(ring->mem);
        ring->mem = NULL;
        return rc;
    }
    return 0;
}

void store_ring_cleanup(struct store_ring *ring) {
    if (ring == NULL) {
        return;
    }
    free(ring->mem);
    ring->mem = NULL;
    if (ring->durable_efd >= 0) {
        close(ring->durable_efd);
        ring->durable_efd = -1;
    }
}

static struct store_slot_hdr *slot_at(const struct store_ring *ring, uint64_t pos) {
    size_t idx = (size_t)(pos & (uint64_t)(ring->slots - 1));
    return (struct store_slot_hdr *)(ring->mem + idx * STORE_SLOT_BYTES);
}

uint32_t store_ring_free_slots(const struct store_ring *ring) {
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    ASSERT_HOT(head - tail <= ring->slots);
    return (uint32_t)(ring->slots - (head - tail));
}

struct store_slot_hdr *store_ring_reserve(struct store_ring *ring) {
    if (store_ring_free_slots(ring) == 0) {
        return NULL;
    }
    return slot_at(ring, atomic_load_explicit(&ring->head, memory_order_relaxed));
}

uint64_t store_ring_publish(struct store_ring *ring) {
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    // seq_cst (not just release): pairs with the store thread's `sleeping` handshake in
    // store_audit.c, so either the store thread sees this slot or the producer sees it asleep.
    atomic_store_explicit(&ring->head, head + 1, memory_order_seq_cst);
    return head + 1;
}

const struct store_slot_hdr *store_ring_peek(const struct store_ring *ring, uint64_t i) {
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    if (head - tail <= i) {
        return NULL;
    }
    return slot_at(ring, tail + i);
}

void store_ring_release(struct store_ring *ring, uint64_t n) {
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    ASSERT(atomic_load_explicit(&ring->head, memory_order_acquire) - tail >= n);
    atomic_store_explicit(&ring->tail, tail + n, memory_order_release);
}
