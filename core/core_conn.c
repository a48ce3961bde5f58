// core_conn.c: connection slots (free list, generation + magic), staging chunks and the timer
// wheel. All of it is preallocated per worker at startup; nothing here allocates afterwards.
#include <sys/mman.h>
#include <unistd.h>

#include "core_conn.h"

int core_conn_table_init(struct core_shard *shard, uint32_t conns_max) {
    ASSERT(conns_max > 0 && conns_max <= RING_SLOT_MAX);
    shard->conns_max = conns_max;
    shard->conns = core_base_lazy_alloc((size_t)conns_max * sizeof(*shard->conns));
    // Two staging chunks per slot (one per direction) so a connection can always get one; the
    // mapping is lazily backed, so resident memory follows actual use, not conns_max.
    shard->chunk_count = conns_max * 2u;
    shard->chunk_free = calloc(shard->chunk_count, sizeof(uint32_t));
    size_t len = (size_t)shard->chunk_count * CORE_CHUNK_BYTES;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    void *stage = mmap(NULL, CORE_TLS_STAGE_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (shard->conns == NULL || shard->chunk_free == NULL || mem == MAP_FAILED ||
        stage == MAP_FAILED) {
        if (mem != MAP_FAILED) {
            munmap(mem, len);
        }
        if (stage != MAP_FAILED) {
            munmap(stage, CORE_TLS_STAGE_BYTES);
        }
        return -ENOMEM;
    }
    shard->chunks = mem;
    shard->tls_stage = stage;
    // LIFO free lists: recently used (hot, resident) chunks and slots are reused first.
    for (uint32_t i = 0; i < shard->chunk_count; i++) {
        shard->chunk_free[i] = shard->chunk_count - 1u - i;
    }
    shard->chunk_free_len = shard->chunk_count;
    // Slots are handed out fresh (conn_fresh, in index order) until each was used once, then
    // from the LIFO free list: a slot's page is touched only when it first serves, so resident
    // memory follows the connections held, not conns_max. An untouched slot reads as zero:
    // CORE_CONN_FREE, no magic.
    shard->free_head = CORE_IDX_NONE;
    shard->conn_fresh = 0;
    for (uint32_t i = 0; i < CORE_WHEEL_SLOTS; i++) {
        shard->wheel[i] = CORE_IDX_NONE;
    }
    shard->starved_head = CORE_IDX_NONE;
    shard->hs_head = CORE_IDX_NONE;
    shard->hs_tail = CORE_IDX_NONE;
    return 0;
}

void core_conn_table_cleanup(struct core_shard *shard) {
    if (shard->chunks != NULL) {
        munmap(shard->chunks, (size_t)shard->chunk_count * CORE_CHUNK_BYTES);
        shard->chunks = NULL;
    }
    if (shard->tls_stage != NULL) {
        munmap(shard->tls_stage, CORE_TLS_STAGE_BYTES);
        shard->tls_stage = NULL;
    }
    free(shard->chunk_free);
    shard->chunk_free = NULL;
    core_base_lazy_free(shard->conns, (size_t)shard->conns_max * sizeof(*shard->conns));
    shard->conns = NULL;
}

static void side_reset(struct core_side *s) {
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->out_chunk = CORE_CHUNK_NONE;
    s->pipe_fd[0] = -1;
    s->pipe_fd[1] = -1;
}

struct core_conn *core_conn_open(struct core_shard *shard) {
    struct core_conn *c;
    if (shard->free_head != CORE_IDX_NONE) {
        c = &shard->conns[shard->free_head];
        ASSERT(c->magic == CORE_CONN_MAGIC && c->state == CORE_CONN_FREE);
        shard->free_head = c->next_free;
    } else if (shard->conn_fresh < shard->conns_max) {
        c = &shard->conns[shard->conn_fresh];
        ASSERT(c->magic == 0 && c->state == CORE_CONN_FREE);
        c->index = shard->conn_fresh++;
    } else {
        return NULL;
    }
    uint32_t gen = c->generation;
    uint32_t idx = c->index;
    memset(c, 0, sizeof(*c));
    c->shard = shard;
    c->magic = CORE_CONN_MAGIC;
    c->generation = gen;
    c->index = idx;
    c->wheel_prev = CORE_IDX_NONE;
    c->wheel_next = CORE_IDX_NONE;
    c->wheel_bucket = CORE_IDX_NONE;
    c->starved_next = CORE_IDX_NONE;
    c->backend_idx = CORE_IDX_NONE;
    c->decision = CORE_IDX_NONE;
    side_reset(&c->side[0]);
    side_reset(&c->side[1]);
    c->opened_ns = core_base_now_ns();
    shard->active++;
    atomic_store_explicit(&shard->counters.active, shard->active, memory_order_relaxed);
    return c;
}

void core_side_close(struct core_shard *shard, struct core_side *s) {
    if (s->fd < 0) {
        return;
    }
    if (s->fixed) {
        int ret = ring_file_remove(&shard->ring, (uint32_t)s->fd);
        if (ret != 0) { // only a bad slot number can fail: a bug, but not worth the process
            LOG_ERROR("worker %u: cannot empty file slot %d: %s", shard->id, s->fd,
                      strerror(-ret));
        }
    } else {
        close(s->fd);
    }
    s->fd = -1;
    s->fixed = false;
}

// starved_unlink takes `c` off the worker's list of connections waiting for receive buffers: a
// slot released while on it would otherwise cut the list when it is reused (core_conn_open
// clears starved_next), and every connection behind it would wait for buffers forever.
static void starved_unlink(struct core_shard *shard, struct core_conn *c) {
    uint32_t *link = &shard->starved_head;
    while (*link != CORE_IDX_NONE && *link != c->index) {
        link = &shard->conns[*link].starved_next;
    }
    ASSERT(*link == c->index); // on_starved means it is on the list
    *link = c->starved_next;
    c->starved_next = CORE_IDX_NONE;
    c->on_starved = false;
}

void core_conn_release(struct core_shard *shard, struct core_conn *c) {
    ASSERT(c->state == CORE_CONN_CLOSING);
    ASSERT(c->pending == 0);
    ASSERT(!c->hs_queued); // conn_close took it off the handshake queue
    core_conn_wheel_remove(shard, c);
    core_audit_unreserve(shard, c); // ended without a decision record (sniff, cancel, ...)
    if (c->on_starved) {
        starved_unlink(shard, c);
    }
    for (int i = 0; i < 2; i++) {
        struct core_side *s = &c->side[i];
        ASSERT(s->in_count == 0 && s->stash_len == 0 && s->out_chunk == CORE_CHUNK_NONE);
        core_side_close(shard, s);
        if (s->pipe_fd[0] >= 0) {
            close(s->pipe_fd[0]);
            close(s->pipe_fd[1]);
        }
        side_reset(s);
    }
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    free(c->startup_copy);
    c->startup_copy = NULL;
    c->generation++; // every CQE still naming the old generation is now recognisably stale
    c->state = CORE_CONN_FREE;
    c->next_free = shard->free_head;
    shard->free_head = c->index;
    ASSERT(shard->active > 0);
    shard->active--;
    atomic_store_explicit(&shard->counters.active, shard->active, memory_order_relaxed);
}

uint32_t core_conn_chunk_get(struct core_shard *shard) {
    ASSERT(shard->chunk_free_len > 0); // two per slot: a connection can never run out
    return shard->chunk_free[--shard->chunk_free_len];
}

void core_conn_chunk_put(struct core_shard *shard, uint32_t chunk) {
    ASSERT(chunk < shard->chunk_count);
    ASSERT(shard->chunk_free_len < shard->chunk_count);
    shard->chunk_free[shard->chunk_free_len++] = chunk;
}

// Timer wheel: CORE_WHEEL_SLOTS buckets of CORE_TICK_MS; deadlines beyond one turn simply stay
// in their bucket until the turn in which they fall due.
static uint32_t bucket_of(uint64_t deadline_ns) {
    return (uint32_t)((deadline_ns / (CORE_TICK_MS * 1000000ull)) % CORE_WHEEL_SLOTS);
}

void core_conn_wheel_remove(struct core_shard *shard, struct core_conn *c) {
    if (c->wheel_bucket == CORE_IDX_NONE) {
        return;
    }
    if (c->wheel_prev != CORE_IDX_NONE) {
        shard->conns[c->wheel_prev].wheel_next = c->wheel_next;
    } else {
        shard->wheel[c->wheel_bucket] = c->wheel_next;
    }
    if (c->wheel_next != CORE_IDX_NONE) {
        shard->conns[c->wheel_next].wheel_prev = c->wheel_prev;
    }
    c->wheel_prev = CORE_IDX_NONE;
    c->wheel_next = CORE_IDX_NONE;
    c->wheel_bucket = CORE_IDX_NONE;
}

void core_conn_set_deadline(struct core_shard *shard, struct core_conn *c, uint64_t deadline_ns) {
    core_conn_wheel_remove(shard, c);
    c->deadline_ns = deadline_ns;
    if (deadline_ns == 0) {
        return;
    }
    uint32_t b = bucket_of(deadline_ns);
    c->wheel_bucket = b;
    c->wheel_prev = CORE_IDX_NONE;
    c->wheel_next = shard->wheel[b];
    if (c->wheel_next != CORE_IDX_NONE) {
        shard->conns[c->wheel_next].wheel_prev = c->index;
    }
    shard->wheel[b] = c->index;
}

void core_conn_wheel_expire(struct core_shard *shard, uint64_t now_ns,
                            void (*on_expired)(struct core_shard *, struct core_conn *)) {
    uint64_t now_tick = now_ns / (CORE_TICK_MS * 1000000ull);
    if (shard->wheel_tick == 0) {
        shard->wheel_tick = now_tick;
    }
    uint32_t turns = 0;
    // A bucket is visited only once its whole tick is in the past, so every deadline in it
    // has passed or belongs to a later turn of the wheel.
    while (shard->wheel_tick < now_tick && turns < CORE_WHEEL_SLOTS) {
        uint32_t b = (uint32_t)(shard->wheel_tick % CORE_WHEEL_SLOTS);
        uint32_t i = shard->wheel[b];
        while (i != CORE_IDX_NONE) {
            struct core_conn *c = &shard->conns[i];
            uint32_t next = c->wheel_next;
            if (c->deadline_ns <= now_ns) {
                core_conn_wheel_remove(shard, c);
                c->deadline_ns = 0;
                on_expired(shard, c);
            }
            i = next;
        }
        shard->wheel_tick++;
        turns++;
    }
    if (shard->wheel_tick < now_tick) {
        shard->wheel_tick = now_tick; // a stall longer than one turn: all buckets were seen
    }
}
