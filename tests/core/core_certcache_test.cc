// Tests for core/core_certcache.c: the verified client-chain cache of one worker.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <memory>

#include "core_certcache.h"

namespace {

using Key = std::array<uint8_t, CORE_CERTCACHE_KEY_BYTES>;

// KeyOf makes a key in set `set` (the first four bytes pick the set) that differs by `tag`.
Key KeyOf(uint32_t set, uint32_t tag) {
    Key k{};
    for (int i = 0; i < 4; i++) {
        k[i] = (uint8_t)(set >> (8 * i));
        k[4 + i] = (uint8_t)(tag >> (8 * i));
    }
    k[31] = 0x5a;
    return k;
}

struct CacheDeleter {
    void operator()(core_certcache *c) const { core_certcache_free(c); }
};

std::unique_ptr<core_certcache, CacheDeleter> NewCache() {
    core_certcache *c = nullptr;
    EXPECT_EQ(core_certcache_new(&c), 0);
    return std::unique_ptr<core_certcache, CacheDeleter>(c);
}

constexpr int64_t kNow = 1750000000;

} // namespace

TEST(CoreCertcache, MissesUntilInsertedThenHits) {
    auto c = NewCache();
    Key k = KeyOf(7, 1);
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow));
    core_certcache_insert(c.get(), k.data(), kNow - 10, kNow + 10);
    EXPECT_TRUE(core_certcache_has(c.get(), k.data(), kNow));
    Key other = KeyOf(7, 2);
    EXPECT_FALSE(core_certcache_has(c.get(), other.data(), kNow));
    Key last_byte = k;
    last_byte[31] ^= 1; // the whole digest is compared, not only the bytes that pick the set
    EXPECT_FALSE(core_certcache_has(c.get(), last_byte.data(), kNow));
}

TEST(CoreCertcache, HitsOnlyFromNotBeforeUntilJustBeforeNotAfter) {
    auto c = NewCache();
    Key k = KeyOf(3, 1);
    core_certcache_insert(c.get(), k.data(), kNow, kNow + 5);
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow - 1)); // not yet valid: dropped
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow));     // ...so a miss from now on
    core_certcache_insert(c.get(), k.data(), kNow, kNow + 5);
    EXPECT_TRUE(core_certcache_has(c.get(), k.data(), kNow));
    EXPECT_TRUE(core_certcache_has(c.get(), k.data(), kNow + 4));
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow + 5)); // notAfter itself: expired
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow + 4)); // and the entry is gone
}

TEST(CoreCertcache, EmptyWindowIsNotStored) {
    auto c = NewCache();
    Key k = KeyOf(1, 1);
    core_certcache_insert(c.get(), k.data(), kNow, kNow);
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow));
    core_certcache_insert(c.get(), k.data(), kNow + 1, kNow);
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow));
}

TEST(CoreCertcache, InsertingAgainReplacesTheWindowOfTheSameEntry) {
    auto c = NewCache();
    Key k = KeyOf(9, 1);
    core_certcache_insert(c.get(), k.data(), kNow - 10, kNow + 100);
    core_certcache_insert(c.get(), k.data(), kNow - 10, kNow + 1);
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow + 1)); // no older, longer copy left
    EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow));
}

TEST(CoreCertcache, ClearForgetsEveryEntry) {
    auto c = NewCache();
    for (uint32_t i = 0; i < 64; i++) {
        Key k = KeyOf(i * 13u, i);
        core_certcache_insert(c.get(), k.data(), kNow - 1, kNow + 1);
    }
    core_certcache_clear(c.get());
    for (uint32_t i = 0; i < 64; i++) {
        Key k = KeyOf(i * 13u, i);
        EXPECT_FALSE(core_certcache_has(c.get(), k.data(), kNow)) << i;
    }
}

TEST(CoreCertcache, FullSetReplacesItsLeastRecentlyUsedEntry) {
    auto c = NewCache();
    for (uint32_t w = 0; w < CORE_CERTCACHE_WAYS; w++) {
        Key k = KeyOf(5, w);
        core_certcache_insert(c.get(), k.data(), kNow - 1, kNow + 100);
    }
    Key first = KeyOf(5, 0);
    EXPECT_TRUE(core_certcache_has(c.get(), first.data(), kNow)); // now the most recent
    Key extra = KeyOf(5, 1000);
    core_certcache_insert(c.get(), extra.data(), kNow - 1, kNow + 100);
    EXPECT_TRUE(core_certcache_has(c.get(), extra.data(), kNow));
    EXPECT_TRUE(core_certcache_has(c.get(), first.data(), kNow));
    Key lru = KeyOf(5, 1); // the oldest untouched one went
    EXPECT_FALSE(core_certcache_has(c.get(), lru.data(), kNow));
    for (uint32_t w = 2; w < CORE_CERTCACHE_WAYS; w++) {
        Key k = KeyOf(5, w);
        EXPECT_TRUE(core_certcache_has(c.get(), k.data(), kNow)) << w;
    }
    Key other_set = KeyOf(6, 1); // other sets are untouched by the eviction
    EXPECT_FALSE(core_certcache_has(c.get(), other_set.data(), kNow));
}

TEST(CoreCertcache, NeverHoldsMoreThanItsCapacity) {
    auto c = NewCache();
    const uint32_t cap = CORE_CERTCACHE_SETS * CORE_CERTCACHE_WAYS;
    for (uint32_t i = 0; i < cap * 4; i++) {
        Key k = KeyOf(i * 2654435761u, i);
        core_certcache_insert(c.get(), k.data(), kNow - 1, kNow + 100);
    }
    uint32_t held = 0;
    for (uint32_t i = 0; i < cap * 4; i++) {
        Key k = KeyOf(i * 2654435761u, i);
        held += core_certcache_has(c.get(), k.data(), kNow) ? 1u : 0u;
    }
    EXPECT_LE(held, cap);
    EXPECT_GT(held, cap / 2); // and it does use its room
    EXPECT_EQ(sizeof(core_certcache::entry) / sizeof(core_certcache_entry), cap);
}
