// Concurrency tests for policy/policy_nonce.c (label tsan): exactly-one consume under races,
// issue/expire/refill with concurrent consumers, peekers and a sweeper. Run them under
// ThreadSanitizer as well (build with -DATLS_TSAN=ON).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "policy.h"

namespace {

constexpr uint64_t kT0 = 1000000000000ull;

#if defined(__SANITIZE_THREAD__)
constexpr int kRounds = 300; // TSan is ~10x slower; still many interleavings
#else
constexpr int kRounds = 3000;
#endif

// Spin barrier for `n` threads; yields because there are more threads than cores.
class Barrier {
  public:
    explicit Barrier(int n) : n_(n) {}
    void Wait() {
        int gen = gen_.load(std::memory_order_acquire);
        if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
            count_.store(0, std::memory_order_relaxed);
            gen_.fetch_add(1, std::memory_order_acq_rel);
            return;
        }
        while (gen_.load(std::memory_order_acquire) == gen) {
            std::this_thread::yield();
        }
    }

  private:
    const int n_;
    std::atomic<int> count_{0};
    std::atomic<int> gen_{0};
};

struct Nonce {
    uint8_t b[policy_nonce_bytes];
};

TEST(PolicyNonceRace, ExactlyOneOfManyConcurrentConsumersWins) {
    constexpr int kThreads = 4;
    struct policy_nonce *t = nullptr;
    ASSERT_EQ(policy_nonce_new(&t, 8, 1024), 0);
    std::vector<Nonce> nonces(kRounds);
    for (auto &n : nonces) {
        ASSERT_EQ(policy_nonce_issue(t, n.b, kT0, 1000000000000ull), 0);
    }
    std::vector<std::atomic<int>> wins(kRounds);
    std::vector<std::atomic<int>> replays(kRounds);
    std::atomic<int> other{0};
    Barrier barrier(kThreads);
    std::vector<std::thread> threads;
    for (int k = 0; k < kThreads; k++) {
        threads.emplace_back([&, k] {
            for (int r = 0; r < kRounds; r++) {
                barrier.Wait();
                // One thread peeks first now and then, to mix peeks into the race.
                if (k == 0 && (r % 3) == 0) {
                    auto p = policy_nonce_peek(t, nonces[r].b, 32, kT0 + 1);
                    if (p != POLICY_NONCE_PEEK_VALID && p != POLICY_NONCE_PEEK_CONSUMED) {
                        other.fetch_add(1);
                    }
                }
                switch (policy_nonce_consume(t, nonces[r].b, 32, kT0 + 1)) {
                case POLICY_NONCE_CONSUME_OK:
                    wins[r].fetch_add(1);
                    break;
                case POLICY_NONCE_CONSUME_REPLAYED:
                    replays[r].fetch_add(1);
                    break;
                default:
                    other.fetch_add(1);
                    break;
                }
            }
        });
    }
    for (auto &th : threads) {
        th.join();
    }
    for (int r = 0; r < kRounds; r++) {
        ASSERT_EQ(wins[r].load(), 1) << "round " << r;
        ASSERT_EQ(replays[r].load(), kThreads - 1) << "round " << r;
    }
    EXPECT_EQ(other.load(), 0);
    struct policy_nonce_stats st;
    policy_nonce_get_stats(t, &st);
    EXPECT_EQ(st.consumed_total, static_cast<uint64_t>(kRounds));
    EXPECT_EQ(st.live, 0u);
    policy_nonce_free(t);
}

// An issuer with a fake clock keeps a small table busy: nonces expire, slots are reclaimed and
// refilled while consumers race on recently issued nonces, probe unknown ones and a sweeper runs.
// The table (2 shards of 16 slots) holds 32 nonces; the run issues kIssues, so every slot is
// reclaimed and refilled many times. Only the issuer moves the clock, one tick per issue, and a
// nonce lives kTtl ticks: at most kLive - 1 nonces are unexpired when the next one is issued,
// never more than one shard holds, so an issue can only fail when all of its
// policy_nonce_issue_attempts_max random placements land in a shard with no free or expired
// slot (each with probability <= 1/2): ENOSPC must stay rare.
TEST(PolicyNonceRace, IssueExpireRefillUnderConcurrency) {
    constexpr int kIssues = kRounds * 10;
    constexpr int kConsumers = 3;
    constexpr uint32_t kShards = 2;
    constexpr uint32_t kSlotsPerShard = 16;
    constexpr uint64_t kCapacity = kShards * kSlotsPerShard;
    constexpr uint64_t kLive = 24;           // unexpired nonces at most (< kCapacity)
    constexpr uint64_t kTick = 1000;         // ns of fake time per issue
    constexpr uint64_t kTtl = kLive * kTick; // short: slots recycle constantly
    static_assert(kIssues > 50 * kCapacity, "the run must refill the table many times");
    struct policy_nonce *t = nullptr;
    ASSERT_EQ(policy_nonce_new(&t, kShards, kSlotsPerShard), 0);

    struct Published {
        Nonce n;
        uint64_t expiry_ns = 0; // written before `ready` is released
        std::atomic<bool> ready{false};
        std::atomic<int> wins{0};
    };
    std::unique_ptr<Published[]> pub(new Published[kIssues]);
    std::atomic<int> published{0};
    std::atomic<uint64_t> clock{kT0};
    std::atomic<bool> done{false};
    std::atomic<int> enospc{0};
    std::atomic<int> unknown_ok{0};
    std::atomic<int> bad_peek{0};
    std::atomic<int> won_after_expiry{0};
    std::atomic<int> expired_checked{0}; // consumes attempted at or after the nonce's expiry
    // Consumer rounds so far. The issuer waits for new ones every kPace issues: without it, on a
    // loaded machine the issuer could finish before any consumer ran, and the run would test
    // nothing (no wins, no expired nonce tried).
    std::atomic<uint64_t> consumer_rounds{0};
    constexpr int kPace = 32;

    std::thread issuer([&] {
        for (int i = 0; i < kIssues; i++) {
            uint64_t now = clock.fetch_add(kTick) + kTick;
            int rc = policy_nonce_issue(t, pub[i].n.b, now, kTtl);
            if (rc == -ENOSPC) {
                enospc.fetch_add(1);
                memset(pub[i].n.b, 0, 32);
            } else {
                ASSERT_EQ(rc, 0);
            }
            pub[i].expiry_ns = now + kTtl;
            pub[i].ready.store(true, std::memory_order_release);
            published.store(i + 1, std::memory_order_release);
            if (i % kPace == kPace - 1) {
                uint64_t seen = consumer_rounds.load();
                while (consumer_rounds.load() == seen) {
                    std::this_thread::yield();
                }
            }
        }
        done.store(true);
    });
    std::thread sweeper([&] {
        while (!done.load()) {
            policy_nonce_sweep(t, clock.load());
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> consumers;
    for (int k = 0; k < kConsumers; k++) {
        consumers.emplace_back([&, k] {
            std::mt19937_64 rng(static_cast<uint64_t>(k) + 1);
            while (!done.load()) {
                int n = published.load(std::memory_order_acquire);
                if (n == 0) {
                    std::this_thread::yield();
                    continue;
                }
                // Recent ones mostly, so that wins happen; sometimes older (expired) ones.
                int back = static_cast<int>(rng() % 48);
                int i = n - 1 - (back < n ? back : n - 1);
                if (!pub[i].ready.load(std::memory_order_acquire)) {
                    continue;
                }
                uint64_t now = clock.load();
                auto p = policy_nonce_peek(t, pub[i].n.b, 32, now);
                if (p == POLICY_NONCE_PEEK_VALID || p == POLICY_NONCE_PEEK_CONSUMED ||
                    p == POLICY_NONCE_PEEK_EXPIRED || p == POLICY_NONCE_PEEK_UNKNOWN) {
                } else {
                    bad_peek.fetch_add(1);
                }
                bool expired = now >= pub[i].expiry_ns;
                expired_checked.fetch_add(expired ? 1 : 0);
                if (policy_nonce_consume(t, pub[i].n.b, 32, now) == POLICY_NONCE_CONSUME_OK) {
                    pub[i].wins.fetch_add(1);
                    if (expired) {
                        won_after_expiry.fetch_add(1);
                    }
                }
                uint8_t random_nonce[32];
                for (auto &b : random_nonce) {
                    b = static_cast<uint8_t>(rng());
                }
                if (policy_nonce_consume(t, random_nonce, 32, now) != POLICY_NONCE_CONSUME_UNKNOWN) {
                    unknown_ok.fetch_add(1);
                }
                consumer_rounds.fetch_add(1);
            }
        });
    }
    issuer.join();
    sweeper.join();
    for (auto &th : consumers) {
        th.join();
    }
    int total_wins = 0;
    for (int i = 0; i < kIssues; i++) {
        ASSERT_LE(pub[i].wins.load(), 1) << "nonce " << i << " consumed twice";
        total_wins += pub[i].wins.load();
    }
    EXPECT_GT(total_wins, 0);
    EXPECT_EQ(unknown_ok.load(), 0);
    EXPECT_EQ(bad_peek.load(), 0);
    EXPECT_EQ(won_after_expiry.load(), 0) << "a nonce was consumed at or after its expiry";
    EXPECT_GT(expired_checked.load(), 0) << "no consumer tried an expired nonce: test too weak";
    // Expired slots are reclaimed (lazily by issue, or by the sweeper): issues almost never
    // fail. Expected failures over the run are well below one; 1% allows for no luck at all.
    EXPECT_LE(enospc.load(), kIssues / 100) << "expired slots are not being reclaimed";

    struct policy_nonce_stats st;
    policy_nonce_get_stats(t, &st);
    EXPECT_EQ(st.capacity, kCapacity);
    EXPECT_GT(st.issued_total, 50 * kCapacity) << "the table was not refilled many times";
    EXPECT_EQ(st.consumed_total, static_cast<uint64_t>(total_wins));
    EXPECT_EQ(st.issued_total, static_cast<uint64_t>(kIssues - enospc.load()));
    EXPECT_EQ(st.full_total, static_cast<uint64_t>(enospc.load()));
    // Quiescent now: everything expires at the end of time and the counters return to zero.
    policy_nonce_sweep(t, UINT64_MAX);
    policy_nonce_get_stats(t, &st);
    EXPECT_EQ(st.live, 0u);
    EXPECT_EQ(st.consumed_held, 0u);
    EXPECT_EQ(st.reclaimed_total, st.issued_total);
    policy_nonce_free(t);
}

// Two issuers fill the same table concurrently: no two nonces share a slot, none is lost.
TEST(PolicyNonceRace, ConcurrentIssuersNeverShareASlot) {
    constexpr int kPerThread = 500;
    struct policy_nonce *t = nullptr;
    ASSERT_EQ(policy_nonce_new(&t, 4, 512), 0);
    std::vector<Nonce> a(kPerThread), b(kPerThread);
    std::thread ta([&] {
        for (auto &n : a) {
            ASSERT_EQ(policy_nonce_issue(t, n.b, kT0, 1000000000ull), 0);
        }
    });
    std::thread tb([&] {
        for (auto &n : b) {
            ASSERT_EQ(policy_nonce_issue(t, n.b, kT0, 1000000000ull), 0);
        }
    });
    ta.join();
    tb.join();
    for (auto *v : {&a, &b}) {
        for (auto &n : *v) {
            ASSERT_EQ(policy_nonce_consume(t, n.b, 32, kT0 + 1), POLICY_NONCE_CONSUME_OK);
        }
    }
    struct policy_nonce_stats st;
    policy_nonce_get_stats(t, &st);
    EXPECT_EQ(st.issued_total, 2u * kPerThread);
    EXPECT_EQ(st.consumed_held, 2u * kPerThread);
    policy_nonce_free(t);
}

} // namespace
