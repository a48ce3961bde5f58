// core_certcache.h: a worker's cache of client certificate chains that verified against its
// client CA (core-internal; plain C types only, so the unit tests include it from C++).
#ifndef ATLS_CORE_CERTCACHE_H
#define ATLS_CORE_CERTCACHE_H

#include "core_base.h"

#ifdef __cplusplus
extern "C" {
#endif

// Verified client chains one worker remembers: sets x ways, LRU inside a set (56 KiB).
#define CORE_CERTCACHE_SETS 256u // a power of two
#define CORE_CERTCACHE_WAYS 4u
#define CORE_CERTCACHE_KEY_BYTES 32u // SHA-256 of the peer chain's DER

// struct core_certcache_entry: one client chain that verified against the worker's client CA.
struct core_certcache_entry {
    uint8_t key[CORE_CERTCACHE_KEY_BYTES]; // SHA-256 over each certificate's length and DER
    int64_t not_before_s; // unix seconds: the latest notBefore of the verified chain (the CA's too)
    int64_t not_after_s;  // unix seconds: the earliest notAfter of that chain
    uint64_t used;        // LRU stamp (the cache's clock at the last use); 0 = empty
};

// struct core_certcache: a worker's verified-chain cache. It belongs to the worker's current
// SSL_CTX: the worker clears it whenever it adopts a new one (core_shard.c on_event).
struct core_certcache {
    struct core_certcache_entry entry[CORE_CERTCACHE_SETS * CORE_CERTCACHE_WAYS];
    uint64_t clock;
};

/* core_certcache.c */

// core_certcache_new allocates an empty cache into `out_cache` (startup only). Returns 0 or
// -ENOMEM. The caller owns it; one worker thread uses it, without locks.
int core_certcache_new(struct core_certcache **out_cache);
// core_certcache_free frees `cache`; NULL is a no-op.
void core_certcache_free(struct core_certcache *cache);
// core_certcache_clear forgets every entry (the CA they verified against is no longer in force).
void core_certcache_clear(struct core_certcache *cache);
// core_certcache_has reports whether `key` (CORE_CERTCACHE_KEY_BYTES) is cached with a validity
// window that contains `now_s` (notBefore <= now < notAfter, the bounds X509_verify_cert
// checks), and marks it recently used. An entry whose window does not contain `now_s` is dropped.
bool core_certcache_has(struct core_certcache *cache, const uint8_t *key, int64_t now_s);
// core_certcache_insert remembers `key` as verified and valid in [`not_before_s`,
// `not_after_s`), replacing the least recently used entry of its set when the set is full. An
// empty window is not stored.
void core_certcache_insert(struct core_certcache *cache, const uint8_t *key, int64_t not_before_s,
                           int64_t not_after_s);

#ifdef __cplusplus
}
#endif

#endif // ATLS_CORE_CERTCACHE_H
