// policy_ratelimit.c: per-client-address token buckets limiting nonce issuance (DESIGN.md §6).
// Used by the control thread alone: no atomics, no locks, fixed table allocated once.
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core_base.h"
#include "policy.h"
#include "policy_internal.h"

enum {
    key_bytes = 16,
    held_windows = 16,            // sub-windows a nonce lifetime is cut into
    held_ring = held_windows + 1, // sub-windows counted: at least one whole lifetime back
    tag_other = 0,                // AF_UNIX and anything else: one shared bucket
    tag_ipv4 = 4,
    tag_ipv6_64 = 6,
};

static const uint64_t credit_per_token = 1000000000ull; // credit is counted in 1e-9 tokens

struct bucket {
    uint8_t key[key_bytes];
    uint8_t tag;
    bool used;
    uint64_t credit; // 1e-9 tokens, at most burst * credit_per_token
    uint64_t last_ns;
    // Nonces issued to the address, per sub-window of held_slot_ns (a nonce lifetime / held
    // _windows, rounded up). The held_ring sub-windows up to held_epoch span more than a
    // lifetime, so their sum bounds the address's nonces still live from above: one issued
    // before the oldest of them was issued over held_windows * held_slot_ns > ttl ago.
    uint64_t held_slot_ns; // 0: nothing counted yet
    uint64_t held_epoch;   // now / held_slot_ns of the newest sub-window
    uint32_t held[held_ring];
};

struct policy_ratelimit {
    uint32_t bucket_count;
    uint32_t burst;
    uint32_t refill_per_s;
    struct bucket *buckets;
};

int policy_ratelimit_new(struct policy_ratelimit **out_limiter, uint32_t bucket_count,
                         uint32_t burst, uint32_t refill_per_s) {
    ASSERT(out_limiter != NULL);
    if (bucket_count < policy_ratelimit_probe_max || (bucket_count & (bucket_count - 1)) != 0 ||
        burst == 0 || burst > 1000000 || refill_per_s == 0 || refill_per_s > 1000000) {
        return -EINVAL;
    }
    struct policy_ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl == NULL) {
        return -ENOMEM;
    }
    rl->buckets = calloc(bucket_count, sizeof(*rl->buckets));
    if (rl->buckets == NULL) {
        free(rl);
        rl = NULL;
        return -ENOMEM;
    }
    rl->bucket_count = bucket_count;
    rl->burst = burst;
    rl->refill_per_s = refill_per_s;
    *out_limiter = rl;
    return 0;
}

void policy_ratelimit_free(struct policy_ratelimit *limiter) {
    if (limiter == NULL) {
        return;
    }
    free(limiter->buckets);
    limiter->buckets = NULL;
    free(limiter);
}

// address_key reduces `addr` to the bucket key: IPv4 whole, IPv6 by /64, v4-mapped as IPv4.
static uint8_t address_key(uint8_t *key, const struct sockaddr *addr) {
    memset(key, 0, key_bytes);
    if (addr != NULL && addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        memcpy(key, &in->sin_addr, 4);
        return tag_ipv4;
    }
    if (addr != NULL && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(key, &in6->sin6_addr.s6_addr[12], 4);
            return tag_ipv4;
        }
        memcpy(key, &in6->sin6_addr, 8);
        return tag_ipv6_64;
    }
    return tag_other;
}

static uint64_t key_hash(const uint8_t *key, uint8_t tag) {
    uint64_t a;
    uint64_t b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    return policy_internal_mix64(policy_internal_mix64(a ^ tag) ^ b);
}

// find_bucket returns the bucket of the key, claiming a free one or recycling the one idle the
// longest in the probe window.
static struct bucket *find_bucket(struct policy_ratelimit *rl, const uint8_t *key, uint8_t tag,
                                  uint64_t now_ns) {
    uint32_t home = (uint32_t)key_hash(key, tag) & (rl->bucket_count - 1);
    struct bucket *free_bucket = NULL;
    struct bucket *oldest = NULL;
    for (uint32_t i = 0; i < policy_ratelimit_probe_max; i++) {
        struct bucket *b = &rl->buckets[(home + i) & (rl->bucket_count - 1)];
        if (!b->used) {
            if (free_bucket == NULL) {
                free_bucket = b;
            }
            continue;
        }
        if (b->tag == tag && memcmp(b->key, key, key_bytes) == 0) {
            return b;
        }
        if (oldest == NULL || b->last_ns < oldest->last_ns) {
            oldest = b;
        }
    }
    struct bucket *b = free_bucket != NULL ? free_bucket : oldest;
    ASSERT(b != NULL);
    memcpy(b->key, key, key_bytes);
    b->tag = tag;
    b->used = true;
    b->credit = (uint64_t)rl->burst * credit_per_token;
    b->last_ns = now_ns;
    b->held_slot_ns = 0;
    memset(b->held, 0, sizeof(b->held));
    return b;
}

enum policy_ratelimit_verdict policy_ratelimit_take(struct policy_ratelimit *limiter,
                                                    const struct sockaddr *addr, uint64_t now_ns) {
    ASSERT(limiter != NULL);
    uint8_t key[key_bytes];
    uint8_t tag = address_key(key, addr);
    struct bucket *b = find_bucket(limiter, key, tag, now_ns);
    uint64_t cap = (uint64_t)limiter->burst * credit_per_token;
    if (now_ns > b->last_ns) {
        uint64_t elapsed = now_ns - b->last_ns;
        // Bounded before multiplying: past the time to refill completely the bucket is full.
        uint64_t to_full_ns = (cap - b->credit) / limiter->refill_per_s + 1;
        b->credit = elapsed >= to_full_ns ? cap : b->credit + elapsed * limiter->refill_per_s;
        if (b->credit > cap) {
            b->credit = cap;
        }
        b->last_ns = now_ns;
    }
    ASSERT(b->credit <= cap);
    if (b->credit < credit_per_token) {
        return POLICY_RATELIMIT_LIMITED;
    }
    b->credit -= credit_per_token;
    return POLICY_RATELIMIT_ALLOW;
}

// held_advance brings b's issue counts to `now_ns` for nonces living `ttl_ns`: sub-windows that
// ended more than a lifetime ago are emptied. A new lifetime (a policy reload) starts afresh.
static void held_advance(struct bucket *b, uint64_t now_ns, uint64_t ttl_ns) {
    uint64_t slot = ttl_ns / held_windows + 1;
    uint64_t epoch = now_ns / slot;
    if (b->held_slot_ns != slot) {
        b->held_slot_ns = slot;
        b->held_epoch = epoch;
        memset(b->held, 0, sizeof(b->held));
        return;
    }
    if (epoch <= b->held_epoch) {
        return;
    }
    uint64_t steps = epoch - b->held_epoch;
    for (uint64_t i = 1; i <= steps && i <= held_ring; i++) {
        b->held[(b->held_epoch + i) % held_ring] = 0;
    }
    b->held_epoch = epoch;
}

// held_bucket returns the bucket of `addr` with its issue counts brought to `now_ns`.
static struct bucket *held_bucket(struct policy_ratelimit *limiter, const struct sockaddr *addr,
                                  uint64_t now_ns, uint64_t ttl_ns) {
    ASSERT(limiter != NULL);
    ASSERT(ttl_ns > 0);
    uint8_t key[key_bytes];
    uint8_t tag = address_key(key, addr);
    struct bucket *b = find_bucket(limiter, key, tag, now_ns);
    held_advance(b, now_ns, ttl_ns);
    return b;
}

uint32_t policy_ratelimit_held(struct policy_ratelimit *limiter, const struct sockaddr *addr,
                               uint64_t now_ns, uint64_t ttl_ns) {
    const struct bucket *b = held_bucket(limiter, addr, now_ns, ttl_ns);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < held_ring; i++) {
        sum += b->held[i];
    }
    return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

void policy_ratelimit_held_add(struct policy_ratelimit *limiter, const struct sockaddr *addr,
                               uint64_t now_ns, uint64_t ttl_ns) {
    struct bucket *b = held_bucket(limiter, addr, now_ns, ttl_ns);
    uint32_t *h = &b->held[b->held_epoch % held_ring];
    if (*h < UINT32_MAX) {
        (*h)++;
    }
}
