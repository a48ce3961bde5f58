// Tests for policy/policy_nonce.c: the shared nonce table (DESIGN.md §6), single-threaded
// semantics here; races in policy_nonce_race_test.cc (label tsan).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "policy.h"

namespace {

constexpr uint64_t kSec = 1000000000ull;
constexpr uint64_t kT0 = 1000 * kSec; // fake clock origin

struct Nonce {
    uint8_t b[policy_nonce_bytes];
};

class PolicyNonce : public ::testing::Test {
  protected:
    void Make(uint32_t shards, uint32_t slots) {
        policy_nonce_free(t_);
        t_ = nullptr;
        ASSERT_EQ(policy_nonce_new(&t_, shards, slots), 0);
    }
    void SetUp() override { Make(4, 64); }
    void TearDown() override { policy_nonce_free(t_); }
    Nonce Issue(uint64_t now, uint64_t ttl = 300 * kSec) {
        Nonce n{};
        EXPECT_EQ(policy_nonce_issue(t_, n.b, now, ttl), 0);
        return n;
    }
    struct policy_nonce *t_ = nullptr;
};

TEST(PolicyNonceNew, RejectsSizesThatAreNotPowersOfTwo) {
    struct policy_nonce *t = nullptr;
    EXPECT_EQ(policy_nonce_new(&t, 0, 64), -EINVAL);
    EXPECT_EQ(policy_nonce_new(&t, 3, 64), -EINVAL);
    EXPECT_EQ(policy_nonce_new(&t, 4, 0), -EINVAL);
    EXPECT_EQ(policy_nonce_new(&t, 4, 100), -EINVAL);
    EXPECT_EQ(policy_nonce_new(&t, policy_nonce_shards_max * 2, 64), -EINVAL);
    EXPECT_EQ(policy_nonce_new(&t, 1, policy_nonce_slots_per_shard_max * 2u), -EINVAL);
    EXPECT_EQ(t, nullptr);
    policy_nonce_free(nullptr); // no-op
}

TEST_F(PolicyNonce, IssuedNonceIsValidAndRandom) {
    Nonce a = Issue(kT0);
    Nonce b = Issue(kT0);
    EXPECT_NE(memcmp(a.b, b.b, sizeof(a.b)), 0);
    EXPECT_EQ(policy_nonce_peek(t_, a.b, sizeof(a.b), kT0), POLICY_NONCE_PEEK_VALID);
    EXPECT_EQ(policy_nonce_peek(t_, b.b, sizeof(b.b), kT0 + 299 * kSec), POLICY_NONCE_PEEK_VALID);
}

TEST_F(PolicyNonce, ConsumeSucceedsOnceThenReportsReplay) {
    Nonce n = Issue(kT0);
    EXPECT_EQ(policy_nonce_consume(t_, n.b, sizeof(n.b), kT0 + 1), POLICY_NONCE_CONSUME_OK);
    EXPECT_EQ(policy_nonce_consume(t_, n.b, sizeof(n.b), kT0 + 2), POLICY_NONCE_CONSUME_REPLAYED);
    EXPECT_EQ(policy_nonce_peek(t_, n.b, sizeof(n.b), kT0 + 3), POLICY_NONCE_PEEK_CONSUMED);
    // Still a replay after the TTL, as long as the slot was not reclaimed.
    EXPECT_EQ(policy_nonce_consume(t_, n.b, sizeof(n.b), kT0 + 400 * kSec),
              POLICY_NONCE_CONSUME_REPLAYED);
}

TEST_F(PolicyNonce, NeverIssuedNonceIsUnknown) {
    Issue(kT0);
    Nonce other{};
    memset(other.b, 0x5a, sizeof(other.b));
    EXPECT_EQ(policy_nonce_peek(t_, other.b, sizeof(other.b), kT0), POLICY_NONCE_PEEK_UNKNOWN);
    EXPECT_EQ(policy_nonce_consume(t_, other.b, sizeof(other.b), kT0),
              POLICY_NONCE_CONSUME_UNKNOWN);
}

TEST_F(PolicyNonce, OneFlippedBitIsUnknown) {
    Nonce n = Issue(kT0);
    for (size_t i = 0; i < sizeof(n.b); i += 7) {
        Nonce m = n;
        m.b[i] ^= 0x01;
        EXPECT_EQ(policy_nonce_consume(t_, m.b, sizeof(m.b), kT0), POLICY_NONCE_CONSUME_UNKNOWN)
            << "byte " << i;
    }
    EXPECT_EQ(policy_nonce_consume(t_, n.b, sizeof(n.b), kT0), POLICY_NONCE_CONSUME_OK);
}

TEST_F(PolicyNonce, OtherLengthsAreUnknown) {
    Nonce n = Issue(kT0);
    uint8_t big[64] = {};
    memcpy(big, n.b, sizeof(n.b));
    for (size_t len : {size_t{0}, size_t{16}, size_t{31}, size_t{33}, size_t{48}, size_t{64}}) {
        EXPECT_EQ(policy_nonce_peek(t_, big, len, kT0), POLICY_NONCE_PEEK_UNKNOWN) << len;
        EXPECT_EQ(policy_nonce_consume(t_, big, len, kT0), POLICY_NONCE_CONSUME_UNKNOWN) << len;
    }
    EXPECT_EQ(policy_nonce_consume(t_, nullptr, 32, kT0), POLICY_NONCE_CONSUME_UNKNOWN);
    // The prefix attempts did not consume it.
    EXPECT_EQ(policy_nonce_consume(t_, n.b, sizeof(n.b), kT0), POLICY_NONCE_CONSUME_OK);
}

TEST_F(PolicyNonce, ExpiredNonceIsExpiredAtAndAfterItsDeadline) {
    Nonce n = Issue(kT0, 10 * kSec);
    EXPECT_EQ(policy_nonce_peek(t_, n.b, sizeof(n.b), kT0 + 10 * kSec - 1),
              POLICY_NONCE_PEEK_VALID);
    EXPECT_EQ(policy_nonce_peek(t_, n.b, sizeof(n.b), kT0 + 10 * kSec), POLICY_NONCE_PEEK_EXPIRED);
    EXPECT_EQ(policy_nonce_consume(t_, n.b, sizeof(n.b), kT0 + 10 * kSec),
              POLICY_NONCE_CONSUME_EXPIRED);
    // A failed consume does not consume: still expired, never OK.
    EXPECT_EQ(policy_nonce_consume(t_, n.b, sizeof(n.b), kT0 + 11 * kSec),
              POLICY_NONCE_CONSUME_EXPIRED);
}

TEST_F(PolicyNonce, SweepReclaimsExpiredSlotsAndForgetsThem) {
    Nonce a = Issue(kT0, 10 * kSec);
    Nonce b = Issue(kT0, 10 * kSec);
    Nonce c = Issue(kT0, 100 * kSec);
    ASSERT_EQ(policy_nonce_consume(t_, b.b, sizeof(b.b), kT0 + 1), POLICY_NONCE_CONSUME_OK);
    struct policy_nonce_stats st;
    policy_nonce_get_stats(t_, &st);
    EXPECT_EQ(st.live, 2u);
    EXPECT_EQ(st.consumed_held, 1u);
    EXPECT_EQ(st.issued_total, 3u);
    EXPECT_EQ(st.consumed_total, 1u);
    EXPECT_EQ(st.capacity, 4u * 64u);

    EXPECT_EQ(policy_nonce_sweep(t_, kT0 + 5 * kSec), 0u);
    EXPECT_EQ(policy_nonce_sweep(t_, kT0 + 10 * kSec), 2u);
    EXPECT_EQ(policy_nonce_peek(t_, a.b, sizeof(a.b), kT0 + 10 * kSec), POLICY_NONCE_PEEK_UNKNOWN);
    EXPECT_EQ(policy_nonce_consume(t_, b.b, sizeof(b.b), kT0 + 10 * kSec),
              POLICY_NONCE_CONSUME_UNKNOWN);
    EXPECT_EQ(policy_nonce_peek(t_, c.b, sizeof(c.b), kT0 + 10 * kSec), POLICY_NONCE_PEEK_VALID);
    policy_nonce_get_stats(t_, &st);
    EXPECT_EQ(st.live, 1u);
    EXPECT_EQ(st.consumed_held, 0u);
    EXPECT_EQ(st.reclaimed_total, 2u);
}

TEST_F(PolicyNonce, FullTableRefusesWithEnospcAndEvictsNothing) {
    Make(1, 64); // the probe window covers the whole shard: capacity is exact
    std::vector<Nonce> live;
    for (int i = 0; i < 64; i++) {
        live.push_back(Issue(kT0, 10 * kSec));
    }
    Nonce extra{};
    EXPECT_EQ(policy_nonce_issue(t_, extra.b, kT0 + 1, 10 * kSec), -ENOSPC);
    EXPECT_EQ(policy_nonce_issue(t_, extra.b, kT0 + 10 * kSec - 1, 10 * kSec), -ENOSPC);
    for (const Nonce &n : live) {
        EXPECT_EQ(policy_nonce_peek(t_, n.b, sizeof(n.b), kT0 + 2), POLICY_NONCE_PEEK_VALID);
    }
    // Consumed-but-unexpired slots are not free either: they must still answer REPLAYED.
    ASSERT_EQ(policy_nonce_consume(t_, live[0].b, 32, kT0 + 3), POLICY_NONCE_CONSUME_OK);
    EXPECT_EQ(policy_nonce_issue(t_, extra.b, kT0 + 4, 10 * kSec), -ENOSPC);
    struct policy_nonce_stats st;
    policy_nonce_get_stats(t_, &st);
    EXPECT_EQ(st.full_total, 3u);
    EXPECT_EQ(st.live, 63u);

    // Once they expire, issue reclaims them lazily.
    Nonce fresh = Issue(kT0 + 10 * kSec, 10 * kSec);
    EXPECT_EQ(policy_nonce_peek(t_, fresh.b, 32, kT0 + 10 * kSec), POLICY_NONCE_PEEK_VALID);
    policy_nonce_get_stats(t_, &st);
    EXPECT_GE(st.reclaimed_total, 1u);
}

TEST_F(PolicyNonce, ShardedTableFillsNearCapacityWithoutEvicting) {
    Make(4, 16);
    std::vector<Nonce> live;
    for (int i = 0; i < 1000; i++) {
        Nonce n{};
        int rc = policy_nonce_issue(t_, n.b, kT0, 10 * kSec);
        if (rc == -ENOSPC) {
            break;
        }
        ASSERT_EQ(rc, 0);
        live.push_back(n);
    }
    EXPECT_LE(live.size(), 64u);
    EXPECT_GE(live.size(), 32u); // 16 random attempts find a non-full shard almost surely
    std::set<std::string> distinct;
    for (const Nonce &n : live) {
        EXPECT_EQ(policy_nonce_peek(t_, n.b, 32, kT0 + 1), POLICY_NONCE_PEEK_VALID);
        distinct.insert(std::string(reinterpret_cast<const char *>(n.b), 32));
    }
    EXPECT_EQ(distinct.size(), live.size());
}

TEST_F(PolicyNonce, ExpiredAndReclaimedNonceNeverComesBack) {
    Make(1, 4);
    Nonce old = Issue(kT0, 1 * kSec);
    // Force every slot to be recycled with new nonces.
    for (int i = 0; i < 4; i++) {
        Issue(kT0 + 2 * kSec, 100 * kSec);
    }
    EXPECT_EQ(policy_nonce_consume(t_, old.b, 32, kT0 + 2 * kSec), POLICY_NONCE_CONSUME_UNKNOWN);
}

TEST_F(PolicyNonce, HugeTtlSaturatesInsteadOfWrapping) {
    Nonce n = Issue(kT0, UINT64_MAX);
    EXPECT_EQ(policy_nonce_peek(t_, n.b, 32, UINT64_MAX - 1), POLICY_NONCE_PEEK_VALID);
}

} // namespace
