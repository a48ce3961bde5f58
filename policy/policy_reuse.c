// policy_reuse.c: the attestation reuse cache of DESIGN.md §6 (reuse_window_s). One table shared
// by every worker, lock-free with the same seqlock slots as the nonce table: a client's pooled
// connections land on any worker through SO_REUSEPORT, so a per-worker cache would miss.
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core_base.h"
#include "policy.h"
#include "policy_internal.h"

// Control word: (generation << 2) | state. Key, epoch and deadline never change within a
// generation; a writer takes a slot by CAS to WRITING of the next generation.
enum reuse_state {
    REUSE_EMPTY = 0,
    REUSE_WRITING = 1,
    REUSE_READY = 2,
};

enum {
    reuse_key_words = 2 * policy_sha256_bytes / 8,
    reuse_attempts_max = 4, // scans of the window when another writer keeps winning
    reuse_read_attempts_max = 4,
};

struct reuse_slot {
    _Atomic uint64_t ctl;
    _Atomic uint64_t deadline_ns;
    _Atomic uint64_t epoch;
    _Atomic uint64_t key[reuse_key_words];
} __attribute__((aligned(128)));

struct policy_reuse {
    uint32_t slot_count;
    uint32_t probe_len;
    uint64_t seed;
    struct reuse_slot *slots;
};

struct reuse_snapshot {
    uint64_t ctl;
    uint64_t deadline_ns;
    uint64_t epoch;
    uint64_t key[reuse_key_words];
};

int policy_reuse_new(struct policy_reuse **out_cache, uint32_t slot_count) {
    ASSERT(out_cache != NULL);
    if (slot_count == 0 || (slot_count & (slot_count - 1)) != 0 || slot_count > (1u << 24)) {
        return -EINVAL;
    }
    int rc = -ENOMEM;
    struct policy_reuse *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto out;
    }
    c->slots = aligned_alloc(128, (size_t)slot_count * sizeof(struct reuse_slot));
    if (c->slots == NULL) {
        goto out_free_cache;
    }
    rc = policy_internal_random(&c->seed, sizeof(c->seed));
    if (rc < 0) {
        goto out_free_slots;
    }
    c->slot_count = slot_count;
    c->probe_len = slot_count < policy_reuse_probe_max ? slot_count : policy_reuse_probe_max;
    for (uint32_t i = 0; i < slot_count; i++) {
        struct reuse_slot *s = &c->slots[i];
        atomic_init(&s->ctl, REUSE_EMPTY);
        atomic_init(&s->deadline_ns, 0);
        atomic_init(&s->epoch, 0);
        for (uint32_t w = 0; w < reuse_key_words; w++) {
            atomic_init(&s->key[w], 0);
        }
    }
    *out_cache = c;
    return 0;

out_free_slots:
    free(c->slots);
    c->slots = NULL;
out_free_cache:
    free(c);
    c = NULL;
out:
    return rc;
}

void policy_reuse_free(struct policy_reuse *cache) {
    if (cache == NULL) {
        return;
    }
    free(cache->slots);
    cache->slots = NULL;
    free(cache);
}

static void make_key(uint64_t *key, const uint8_t *spki_sha256, const uint8_t *evidence_sha256) {
    memcpy(key, spki_sha256, policy_sha256_bytes);
    memcpy(key + policy_sha256_bytes / 8, evidence_sha256, policy_sha256_bytes);
}

static uint32_t home_of(const struct policy_reuse *c, const uint64_t *key) {
    // The digests are uniform already; the seed keeps placement unpredictable from outside.
    return (uint32_t)policy_internal_mix64(key[0] ^ c->seed ^ key[4]) & (c->slot_count - 1);
}

static struct reuse_slot *slot_at(const struct policy_reuse *c, uint32_t home, uint32_t i) {
    return &c->slots[(home + i) & (c->slot_count - 1)];
}

// read_slot: seqlock read of a READY slot (acquire loads pair with the writer's release stores).
static bool read_slot(const struct reuse_slot *s, struct reuse_snapshot *out) {
    for (uint32_t attempt = 0; attempt < reuse_read_attempts_max; attempt++) {
        uint64_t c1 = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if ((c1 & 3u) != REUSE_READY) {
            return false;
        }
        for (uint32_t w = 0; w < reuse_key_words; w++) {
            out->key[w] = atomic_load_explicit(&s->key[w], memory_order_acquire);
        }
        out->epoch = atomic_load_explicit(&s->epoch, memory_order_acquire);
        out->deadline_ns = atomic_load_explicit(&s->deadline_ns, memory_order_acquire);
        if (atomic_load_explicit(&s->ctl, memory_order_relaxed) == c1) {
            out->ctl = c1;
            return true;
        }
    }
    return false;
}

static bool entry_matches(const struct reuse_snapshot *snap, const uint64_t *key,
                          uint64_t epoch) {
    uint64_t diff = snap->epoch ^ epoch;
    for (uint32_t w = 0; w < reuse_key_words; w++) {
        diff |= snap->key[w] ^ key[w];
    }
    return diff == 0;
}

bool policy_reuse_is_allowed(const struct policy_reuse *cache, const uint8_t *spki_sha256,
                             const uint8_t *evidence_sha256, uint64_t policy_epoch,
                             uint64_t now_ns) {
    ASSERT(cache != NULL);
    ASSERT(spki_sha256 != NULL);
    ASSERT(evidence_sha256 != NULL);
    uint64_t key[reuse_key_words];
    make_key(key, spki_sha256, evidence_sha256);
    uint32_t home = home_of(cache, key);
    for (uint32_t i = 0; i < cache->probe_len; i++) {
        struct reuse_snapshot snap;
        if (read_slot(slot_at(cache, home, i), &snap) && entry_matches(&snap, key, policy_epoch)) {
            return now_ns < snap.deadline_ns;
        }
    }
    return false;
}

// pick_victim chooses where to write: the existing entry for the key (returns NULL: nothing to
// do), else an EMPTY or expired slot, else the READY entry closest to its deadline.
static struct reuse_slot *pick_victim(const struct policy_reuse *c, const uint64_t *key,
                                      uint64_t epoch, uint64_t now_ns, uint64_t *out_ctl,
                                      bool *out_present) {
    uint32_t home = home_of(c, key);
    struct reuse_slot *victim = NULL;
    uint64_t victim_deadline = UINT64_MAX;
    *out_present = false;
    for (uint32_t i = 0; i < c->probe_len; i++) {
        struct reuse_slot *s = slot_at(c, home, i);
        uint64_t ctl = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if ((ctl & 3u) == REUSE_WRITING) {
            continue;
        }
        uint64_t deadline = 0; // EMPTY sorts first
        if ((ctl & 3u) == REUSE_READY) {
            struct reuse_snapshot snap;
            if (!read_slot(s, &snap)) {
                continue;
            }
            if (entry_matches(&snap, key, epoch) && now_ns < snap.deadline_ns) {
                *out_present = true; // the first verdict's deadline stands
                return NULL;
            }
            ctl = snap.ctl;
            deadline = snap.deadline_ns <= now_ns ? 0 : snap.deadline_ns;
        }
        if (victim == NULL || deadline < victim_deadline) {
            victim = s;
            victim_deadline = deadline;
            *out_ctl = ctl;
        }
    }
    return victim;
}

void policy_reuse_remember(struct policy_reuse *cache, const uint8_t *spki_sha256,
                           const uint8_t *evidence_sha256, uint64_t policy_epoch,
                           uint64_t deadline_ns, uint64_t now_ns) {
    ASSERT(cache != NULL);
    ASSERT(spki_sha256 != NULL);
    ASSERT(evidence_sha256 != NULL);
    if (deadline_ns <= now_ns) {
        return; // reuse_window_s = 0: nothing to remember
    }
    uint64_t key[reuse_key_words];
    make_key(key, spki_sha256, evidence_sha256);
    for (uint32_t attempt = 0; attempt < reuse_attempts_max; attempt++) {
        uint64_t ctl = 0;
        bool present = false;
        struct reuse_slot *s = pick_victim(cache, key, policy_epoch, now_ns, &ctl, &present);
        if (present || s == NULL) {
            return; // already remembered, or every slot is being written right now
        }
        uint64_t writing = (((ctl >> 2) + 1) << 2) | REUSE_WRITING;
        if (!atomic_compare_exchange_strong_explicit(&s->ctl, &ctl, writing, memory_order_acq_rel,
                                                     memory_order_relaxed)) {
            continue; // another worker took it; look again
        }
        for (uint32_t w = 0; w < reuse_key_words; w++) {
            atomic_store_explicit(&s->key[w], key[w], memory_order_release);
        }
        atomic_store_explicit(&s->epoch, policy_epoch, memory_order_release);
        atomic_store_explicit(&s->deadline_ns, deadline_ns, memory_order_release);
        atomic_store_explicit(&s->ctl, (writing & ~(uint64_t)3) | REUSE_READY,
                              memory_order_release);
        return;
    }
    // WARNING: giving up only loses a cache entry; the client's later handshakes are refused as
    // nonce replays and it fetches a new nonce. Never blocks a worker.
}
