// Tests for policy/policy_ratelimit.c: per-address token buckets with a fake clock.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/un.h>

#include "policy.h"

namespace {

constexpr uint64_t kSec = 1000000000ull;
constexpr uint64_t kT0 = 5000 * kSec;

struct sockaddr_in V4(const char *ip) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    EXPECT_EQ(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

struct sockaddr_in6 V6(const char *ip) {
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    EXPECT_EQ(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

const struct sockaddr *Sa(const void *p) {
    return static_cast<const struct sockaddr *>(p);
}

class PolicyRatelimit : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_EQ(policy_ratelimit_new(&rl_, 64, 5, 2), 0); }
    void TearDown() override { policy_ratelimit_free(rl_); }
    policy_ratelimit_verdict Take(const void *addr, uint64_t now) {
        return policy_ratelimit_take(rl_, Sa(addr), now);
    }
    struct policy_ratelimit *rl_ = nullptr;
};

TEST(PolicyRatelimitNew, RejectsBadSizes) {
    struct policy_ratelimit *rl = nullptr;
    EXPECT_EQ(policy_ratelimit_new(&rl, 100, 5, 1), -EINVAL);
    EXPECT_EQ(policy_ratelimit_new(&rl, 8, 5, 1), -EINVAL); // below the probe window
    EXPECT_EQ(policy_ratelimit_new(&rl, 64, 0, 1), -EINVAL);
    EXPECT_EQ(policy_ratelimit_new(&rl, 64, 5, 0), -EINVAL);
    EXPECT_EQ(rl, nullptr);
    policy_ratelimit_free(nullptr);
}

TEST_F(PolicyRatelimit, BurstThenLimitedThenRefillsWithTime) {
    auto a = V4("192.0.2.1");
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(Take(&a, kT0), POLICY_RATELIMIT_ALLOW) << i;
    }
    EXPECT_EQ(Take(&a, kT0), POLICY_RATELIMIT_LIMITED);
    EXPECT_EQ(Take(&a, kT0 + kSec / 2 - 1), POLICY_RATELIMIT_LIMITED); // 2/s: not yet one token
    EXPECT_EQ(Take(&a, kT0 + kSec / 2), POLICY_RATELIMIT_ALLOW);
    EXPECT_EQ(Take(&a, kT0 + kSec / 2), POLICY_RATELIMIT_LIMITED);
    // A long pause refills to the burst, never beyond it.
    uint64_t later = kT0 + 3600 * kSec;
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(Take(&a, later), POLICY_RATELIMIT_ALLOW) << i;
    }
    EXPECT_EQ(Take(&a, later), POLICY_RATELIMIT_LIMITED);
}

TEST_F(PolicyRatelimit, ClockGoingBackwardsGrantsNothing) {
    auto a = V4("192.0.2.1");
    for (int i = 0; i < 5; i++) {
        Take(&a, kT0);
    }
    EXPECT_EQ(Take(&a, kT0 - 100 * kSec), POLICY_RATELIMIT_LIMITED);
}

TEST_F(PolicyRatelimit, AddressesHaveSeparateBuckets) {
    auto a = V4("192.0.2.1");
    auto b = V4("192.0.2.2");
    for (int i = 0; i < 5; i++) {
        Take(&a, kT0);
    }
    EXPECT_EQ(Take(&a, kT0), POLICY_RATELIMIT_LIMITED);
    EXPECT_EQ(Take(&b, kT0), POLICY_RATELIMIT_ALLOW);
}

TEST_F(PolicyRatelimit, Ipv6SharesABucketPerSlash64AndMappedV4IsV4) {
    auto a = V6("2001:db8:1:2::1");
    auto b = V6("2001:db8:1:2:ffff::9"); // same /64
    auto c = V6("2001:db8:1:3::1");      // other /64
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(Take(&a, kT0), POLICY_RATELIMIT_ALLOW);
    }
    for (int i = 0; i < 2; i++) {
        EXPECT_EQ(Take(&b, kT0), POLICY_RATELIMIT_ALLOW);
    }
    EXPECT_EQ(Take(&a, kT0), POLICY_RATELIMIT_LIMITED);
    EXPECT_EQ(Take(&c, kT0), POLICY_RATELIMIT_ALLOW);

    auto v4 = V4("198.51.100.7");
    auto mapped = V6("::ffff:198.51.100.7");
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(Take(&v4, kT0), POLICY_RATELIMIT_ALLOW);
    }
    EXPECT_EQ(Take(&mapped, kT0), POLICY_RATELIMIT_LIMITED);
}

TEST_F(PolicyRatelimit, OtherFamiliesShareOneBucket) {
    struct sockaddr_un u1;
    memset(&u1, 0, sizeof(u1));
    u1.sun_family = AF_UNIX;
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(Take(&u1, kT0), POLICY_RATELIMIT_ALLOW);
    }
    EXPECT_EQ(Take(&u1, kT0), POLICY_RATELIMIT_LIMITED);
    EXPECT_EQ(policy_ratelimit_take(rl_, nullptr, kT0), POLICY_RATELIMIT_LIMITED);
}

TEST_F(PolicyRatelimit, FullTableRecyclesTheLongestIdleBucket) {
    // 64 buckets, many more addresses: the table never fails, and a recently limited address
    // that stays busy keeps its (empty) bucket.
    auto busy = V4("203.0.113.1");
    for (int i = 0; i < 5; i++) {
        Take(&busy, kT0);
    }
    for (uint32_t i = 0; i < 1000; i++) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(0x0a000000u + i);
        EXPECT_EQ(Take(&a, kT0 + i), POLICY_RATELIMIT_ALLOW);
        // The busy client asks again each time, so it is never the longest idle.
        EXPECT_EQ(Take(&busy, kT0 + i), POLICY_RATELIMIT_LIMITED) << i;
    }
}

} // namespace

namespace {

// Held counts: every nonce issued within the last lifetime is counted, none issued more than a
// lifetime and a sixteenth before, whatever the phase of the sub-windows.
TEST_F(PolicyRatelimit, HeldCountsEveryNonceStillLiveAndForgetsExpiredOnes) {
    const uint64_t ttl = 300 * kSec;
    auto a = V4("10.1.0.1");
    auto b = V4("10.1.0.2");
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&a), kT0, ttl), 0u);
    for (int i = 0; i < 10; i++) {
        policy_ratelimit_held_add(rl_, Sa(&a), kT0 + (uint64_t)i * kSec, ttl);
    }
    policy_ratelimit_held_add(rl_, Sa(&b), kT0, ttl);
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&a), kT0 + 10 * kSec, ttl), 10u);
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&b), kT0 + 10 * kSec, ttl), 1u);
    // Just before the first expires (issued at kT0, lives until kT0 + ttl): all still counted.
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&a), kT0 + ttl - 1, ttl), 10u);
    // A lifetime and an eighth after the last was issued: none.
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&a), kT0 + 9 * kSec + ttl + ttl / 8, ttl), 0u);
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&b), kT0 + ttl + ttl / 8, ttl), 0u);
}

// Never an undercount: one nonce issued at each phase of a sub-window is still counted one
// nanosecond before it expires.
TEST_F(PolicyRatelimit, HeldNeverMissesALiveNonce) {
    const uint64_t ttl = 16 * kSec; // sub-windows of 1 s (+1 ns)
    for (uint64_t phase = 0; phase < 2 * kSec; phase += kSec / 8) {
        struct policy_ratelimit *rl = nullptr;
        ASSERT_EQ(policy_ratelimit_new(&rl, 64, 5, 2), 0);
        auto a = V4("10.2.0.1");
        uint64_t t = kT0 + phase;
        policy_ratelimit_held_add(rl, Sa(&a), t, ttl);
        for (uint64_t later = t; later < t + ttl; later += kSec / 4) {
            ASSERT_EQ(policy_ratelimit_held(rl, Sa(&a), later, ttl), 1u)
                << "phase " << phase << " at +" << (later - t);
        }
        EXPECT_EQ(policy_ratelimit_held(rl, Sa(&a), t + ttl - 1, ttl), 1u);
        policy_ratelimit_free(rl);
    }
}

// A new lifetime (a policy reload changed ttl_s) starts the counts again.
TEST_F(PolicyRatelimit, HeldRestartsWhenTheLifetimeChanges) {
    auto a = V4("10.3.0.1");
    policy_ratelimit_held_add(rl_, Sa(&a), kT0, 300 * kSec);
    policy_ratelimit_held_add(rl_, Sa(&a), kT0, 300 * kSec);
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&a), kT0 + kSec, 300 * kSec), 2u);
    EXPECT_EQ(policy_ratelimit_held(rl_, Sa(&a), kT0 + kSec, 60 * kSec), 0u);
}

} // namespace
