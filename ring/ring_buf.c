// ring_buf.c: provided-buffer rings (liburing 2.3 has no io_uring_setup_buf_ring: we mmap).
#include "ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core_base.h"

void ring_buf_init(struct ring_buf *b) {
    memset(b, 0, sizeof(*b));
}

int ring_buf_open(struct ring_buf *b, struct ring *r, uint16_t bgid, uint32_t count,
                  uint32_t size) {
    ASSERT(b->br == NULL);
    if (count == 0 || count > RING_BUF_COUNT_MAX || (count & (count - 1)) != 0 || size == 0 ||
        size > RING_BUF_SIZE_MAX) {
        return -EINVAL;
    }
    size_t ring_len = (size_t)count * sizeof(struct io_uring_buf);
    size_t data_len = (size_t)count * size;
    size_t map_len = ring_len + data_len;
    // MAP_POPULATE: the kernel hands out buffers in ring order and they come back in any order,
    // so under traffic every buffer is touched sooner or later. Faulting them in now makes the
    // resident size honest from the start and flat afterwards (tests/e2e FaultSoak).
    void *mem = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        return -errno;
    }
    b->br = mem;
    b->base = (uint8_t *)mem + ring_len;
    b->map_len = map_len;
    b->count = count;
    b->size = size;
    b->mask = io_uring_buf_ring_mask(count);
    b->bgid = bgid;

    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)b->br;
    reg.ring_entries = count;
    reg.bgid = bgid;
    int ret = io_uring_register_buf_ring(&r->uring, &reg, 0);
    if (ret < 0) {
        munmap(mem, map_len);
        ring_buf_init(b);
        return ret;
    }
    io_uring_buf_ring_init(b->br);
    for (uint32_t i = 0; i < count; i++) {
        io_uring_buf_ring_add(b->br, b->base + (size_t)i * size, size, (unsigned short)i,
                              (int)b->mask, (int)i);
    }
    io_uring_buf_ring_advance(b->br, (int)count);
    return 0;
}

void ring_buf_cleanup(struct ring_buf *b, struct ring *r) {
    if (b->br == NULL) {
        return;
    }
    if (r->initialized) {
        (void)io_uring_unregister_buf_ring(&r->uring, b->bgid);
    }
    munmap(b->br, b->map_len);
    ring_buf_init(b);
}

void ring_buf_taken(struct ring_buf *b, uint16_t bid) {
    ASSERT_HOT(bid < b->count);
    (void)bid;
    b->in_use++;
}

void ring_buf_recycle(struct ring_buf *b, uint16_t bid) {
    ASSERT_HOT(bid < b->count);
    ASSERT_HOT(b->in_use > 0);
    io_uring_buf_ring_add(b->br, ring_buf_addr(b, bid), b->size, bid, (int)b->mask, 0);
    io_uring_buf_ring_advance(b->br, 1);
    b->in_use--;
}
