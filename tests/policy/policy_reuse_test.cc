// Tests for policy/policy_reuse.c: the shared attestation reuse cache (reuse_window_s).
// The concurrent case is in PolicyReuseRace (label tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "policy.h"

namespace {

constexpr uint64_t kSec = 1000000000ull;
constexpr uint64_t kT0 = 100 * kSec;

struct Key {
    uint8_t spki[32];
    uint8_t ev[32];
};

Key MakeKey(uint32_t i) {
    Key k;
    memset(&k, 0, sizeof(k));
    for (int b = 0; b < 32; b++) {
        k.spki[b] = static_cast<uint8_t>((i * 131 + static_cast<uint32_t>(b) * 7) >> (b % 3));
        k.ev[b] = static_cast<uint8_t>(i >> ((b % 4) * 8));
    }
    return k;
}

class PolicyReuse : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_EQ(policy_reuse_new(&c_, 256), 0); }
    void TearDown() override { policy_reuse_free(c_); }
    bool Allowed(const Key &k, uint64_t epoch, uint64_t now) {
        return policy_reuse_is_allowed(c_, k.spki, k.ev, epoch, now);
    }
    struct policy_reuse *c_ = nullptr;
};

TEST(PolicyReuseNew, RejectsBadSizes) {
    struct policy_reuse *c = nullptr;
    EXPECT_EQ(policy_reuse_new(&c, 0), -EINVAL);
    EXPECT_EQ(policy_reuse_new(&c, 100), -EINVAL);
    EXPECT_EQ(c, nullptr);
    policy_reuse_free(nullptr);
}

TEST_F(PolicyReuse, RememberedVerdictHoldsUntilItsDeadlineOnly) {
    Key k = MakeKey(1);
    EXPECT_FALSE(Allowed(k, 1, kT0));
    policy_reuse_remember(c_, k.spki, k.ev, 1, kT0 + 30 * kSec, kT0);
    EXPECT_TRUE(Allowed(k, 1, kT0 + 1));
    EXPECT_TRUE(Allowed(k, 1, kT0 + 30 * kSec - 1));
    EXPECT_FALSE(Allowed(k, 1, kT0 + 30 * kSec));
}

TEST_F(PolicyReuse, DifferentKeyEvidenceOrEpochDoesNotMatch) {
    Key k = MakeKey(1);
    policy_reuse_remember(c_, k.spki, k.ev, 7, kT0 + 30 * kSec, kT0);
    Key other_key = k;
    other_key.spki[31] ^= 1; // same evidence lifted into another certificate
    Key other_ev = k;
    other_ev.ev[0] ^= 1;
    EXPECT_FALSE(Allowed(other_key, 7, kT0 + 1));
    EXPECT_FALSE(Allowed(other_ev, 7, kT0 + 1));
    EXPECT_FALSE(Allowed(k, 8, kT0 + 1)); // the policy was reloaded since
    EXPECT_TRUE(Allowed(k, 7, kT0 + 1));
}

TEST_F(PolicyReuse, DeadlineIsNotExtendedByRememberingAgain) {
    Key k = MakeKey(2);
    policy_reuse_remember(c_, k.spki, k.ev, 1, kT0 + 10 * kSec, kT0);
    policy_reuse_remember(c_, k.spki, k.ev, 1, kT0 + 50 * kSec, kT0 + 5 * kSec);
    EXPECT_FALSE(Allowed(k, 1, kT0 + 10 * kSec));
}

TEST_F(PolicyReuse, ZeroWindowRemembersNothing) {
    Key k = MakeKey(3);
    policy_reuse_remember(c_, k.spki, k.ev, 1, kT0, kT0);
    EXPECT_FALSE(Allowed(k, 1, kT0));
}

TEST_F(PolicyReuse, FullCacheEvictsTheEntryClosestToItsDeadline) {
    struct policy_reuse *small = nullptr;
    ASSERT_EQ(policy_reuse_new(&small, 4), 0);
    for (uint32_t i = 0; i < 4; i++) {
        Key k = MakeKey(i);
        policy_reuse_remember(small, k.spki, k.ev, 1, kT0 + (10 + i) * kSec, kT0);
    }
    Key fresh = MakeKey(99);
    policy_reuse_remember(small, fresh.spki, fresh.ev, 1, kT0 + 60 * kSec, kT0);
    Key k0 = MakeKey(0);
    EXPECT_FALSE(policy_reuse_is_allowed(small, k0.spki, k0.ev, 1, kT0 + 1));
    for (uint32_t i = 1; i < 4; i++) {
        Key k = MakeKey(i);
        EXPECT_TRUE(policy_reuse_is_allowed(small, k.spki, k.ev, 1, kT0 + 1)) << i;
    }
    EXPECT_TRUE(policy_reuse_is_allowed(small, fresh.spki, fresh.ev, 1, kT0 + 1));
    policy_reuse_free(small);
}

// Workers remember and look up concurrently: a lookup never matches a key nobody remembered,
// and a remembered key stays visible to every thread (the cache is large enough not to evict).
TEST(PolicyReuseRace, ConcurrentRememberAndLookup) {
    struct policy_reuse *c = nullptr;
    ASSERT_EQ(policy_reuse_new(&c, 4096), 0);
    constexpr uint32_t kPerWriter = 400;
    std::atomic<uint32_t> published[2] = {{0}, {0}};
    std::atomic<int> false_positive{0};
    std::atomic<int> missing{0};
    std::vector<std::thread> threads;
    for (uint32_t w = 0; w < 2; w++) {
        threads.emplace_back([&, w] {
            for (uint32_t i = 0; i < kPerWriter; i++) {
                Key k = MakeKey(w * 100000 + i);
                policy_reuse_remember(c, k.spki, k.ev, 1, UINT64_MAX, kT0);
                published[w].store(i + 1, std::memory_order_release);
            }
        });
    }
    for (uint32_t r = 0; r < 2; r++) {
        threads.emplace_back([&, r] {
            for (uint32_t round = 0; round < 2000; round++) {
                uint32_t w = round % 2;
                uint32_t n = published[w].load(std::memory_order_acquire);
                if (n > 0) {
                    Key k = MakeKey(w * 100000 + (round * 7 + r) % n);
                    if (!policy_reuse_is_allowed(c, k.spki, k.ev, 1, kT0 + 1)) {
                        missing.fetch_add(1);
                    }
                }
                Key never = MakeKey(500000 + round);
                if (policy_reuse_is_allowed(c, never.spki, never.ev, 1, kT0 + 1)) {
                    false_positive.fetch_add(1);
                }
            }
        });
    }
    for (auto &t : threads) {
        t.join();
    }
    EXPECT_EQ(false_positive.load(), 0);
    EXPECT_EQ(missing.load(), 0);
    policy_reuse_free(c);
}

} // namespace
