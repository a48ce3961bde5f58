// core_certcache.c: a worker's cache of client certificate chains that verified against its
// SSL_CTX's client CA, so a reconnecting mutual-TLS client skips the X.509 parse and the chain
// signature check (the TLS handshake still proves possession of the key every time).
// Fixed size, set-associative with LRU inside a set; one worker only, no locks.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core_certcache.h"

STATIC_ASSERT((CORE_CERTCACHE_SETS & (CORE_CERTCACHE_SETS - 1u)) == 0, "sets: a power of two");

int core_certcache_new(struct core_certcache **out_cache) {
    ASSERT(out_cache != NULL);
    *out_cache = calloc(1, sizeof(**out_cache)); // zero: every entry empty (used == 0)
    return *out_cache == NULL ? -ENOMEM : 0;
}

void core_certcache_free(struct core_certcache *cache) {
    free(cache);
}

void core_certcache_clear(struct core_certcache *cache) {
    ASSERT(cache != NULL);
    memset(cache->entry, 0, sizeof(cache->entry));
    cache->clock = 0;
}

// set_of returns the first entry of the set `key` maps to. Keys are SHA-256 digests, so any
// four of their bytes are uniform.
static struct core_certcache_entry *set_of(struct core_certcache *cache, const uint8_t *key) {
    uint32_t h =
        (uint32_t)key[0] | (uint32_t)key[1] << 8 | (uint32_t)key[2] << 16 | (uint32_t)key[3] << 24;
    return &cache->entry[(h & (CORE_CERTCACHE_SETS - 1u)) * CORE_CERTCACHE_WAYS];
}

static struct core_certcache_entry *find(struct core_certcache *cache, const uint8_t *key) {
    struct core_certcache_entry *set = set_of(cache, key);
    for (uint32_t i = 0; i < CORE_CERTCACHE_WAYS; i++) {
        if (set[i].used != 0 && memcmp(set[i].key, key, CORE_CERTCACHE_KEY_BYTES) == 0) {
            return &set[i];
        }
    }
    return NULL;
}

bool core_certcache_has(struct core_certcache *cache, const uint8_t *key, int64_t now_s) {
    ASSERT(cache != NULL);
    ASSERT(key != NULL);
    struct core_certcache_entry *e = find(cache, key);
    if (e == NULL) {
        return false;
    }
    ASSERT(e->not_before_s < e->not_after_s);
    // Same bounds as BoringSSL's check_cert_time: valid from notBefore (inclusive) until
    // notAfter (exclusive). Outside them the chain goes through the full verification again,
    // which denies it with the right alert (or, after a clock step back, admits it again).
    if (now_s < e->not_before_s || now_s >= e->not_after_s) {
        memset(e, 0, sizeof(*e));
        return false;
    }
    e->used = ++cache->clock;
    return true;
}

void core_certcache_insert(struct core_certcache *cache, const uint8_t *key, int64_t not_before_s,
                           int64_t not_after_s) {
    ASSERT(cache != NULL);
    ASSERT(key != NULL);
    if (not_before_s >= not_after_s) {
        return; // a window no time falls in: nothing to remember
    }
    struct core_certcache_entry *e = find(cache, key);
    if (e == NULL) {
        // An empty way (used == 0 is the smallest stamp), else the least recently used one.
        struct core_certcache_entry *set = set_of(cache, key);
        e = &set[0];
        for (uint32_t i = 1; i < CORE_CERTCACHE_WAYS; i++) {
            if (set[i].used < e->used) {
                e = &set[i];
            }
        }
    }
    memcpy(e->key, key, CORE_CERTCACHE_KEY_BYTES);
    e->not_before_s = not_before_s;
    e->not_after_s = not_after_s;
    e->used = ++cache->clock;
    ASSERT(find(cache, key) == e);
}
