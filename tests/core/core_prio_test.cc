// core_prio_next: when a real-time worker goes back to normal priority and when it returns.
#include <gtest/gtest.h>

#include "core_prio.h"

namespace {

constexpr uint64_t kMs = 1000000ull;

TEST(CorePrio, ARealtimeWorkerDropsAtEightyPercentOfItsWindow) {
    EXPECT_EQ(core_prio_next(CORE_PRIO_RT, 79 * kMs, 100 * kMs, true), CORE_PRIO_RT);
    EXPECT_EQ(core_prio_next(CORE_PRIO_RT, 80 * kMs, 100 * kMs, true), CORE_PRIO_DROPPED);
    EXPECT_EQ(core_prio_next(CORE_PRIO_RT, 100 * kMs, 100 * kMs, true), CORE_PRIO_DROPPED);
    EXPECT_EQ(core_prio_next(CORE_PRIO_RT, 0, 100 * kMs, true), CORE_PRIO_RT);
}

TEST(CorePrio, ADroppedWorkerReturnsAtFiftyPercentOrLess) {
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, 51 * kMs, 100 * kMs, true), CORE_PRIO_DROPPED);
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, 79 * kMs, 100 * kMs, true), CORE_PRIO_DROPPED);
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, 50 * kMs, 100 * kMs, true), CORE_PRIO_RT);
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, 0, 100 * kMs, true), CORE_PRIO_RT);
}

TEST(CorePrio, ANormalWorkerStaysNormalAndAnEmptyWindowChangesNothing) {
    EXPECT_EQ(core_prio_next(CORE_PRIO_OFF, 0, 100 * kMs, true), CORE_PRIO_OFF);
    EXPECT_EQ(core_prio_next(CORE_PRIO_OFF, 100 * kMs, 100 * kMs, true), CORE_PRIO_OFF);
    EXPECT_EQ(core_prio_next(CORE_PRIO_RT, 5 * kMs, 0, true), CORE_PRIO_RT);
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, 0, 0, true), CORE_PRIO_DROPPED);
}

// Long windows (a worker that did not tick for seconds): no overflow in the percentages.
TEST(CorePrio, LongWindowsDoNotOverflow) {
    const uint64_t hour = 3600ull * 1000 * kMs;
    EXPECT_EQ(core_prio_next(CORE_PRIO_RT, hour, hour, true), CORE_PRIO_DROPPED);
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, hour / 4, hour, true), CORE_PRIO_RT);
}

// Real-time only while established sessions moved bytes lately: without them there is no
// latency to protect, and a real-time worker only starves its audit writer and handshake thread.
TEST(CorePrio, WithNoSessionToProtectTheWorkerIsNormal) {
    EXPECT_EQ(core_prio_next(CORE_PRIO_RT, 0, 100 * kMs, false), CORE_PRIO_DROPPED);
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, 0, 100 * kMs, false), CORE_PRIO_DROPPED);
    EXPECT_EQ(core_prio_next(CORE_PRIO_DROPPED, 0, 100 * kMs, true), CORE_PRIO_RT);
    EXPECT_EQ(core_prio_next(CORE_PRIO_OFF, 0, 100 * kMs, true), CORE_PRIO_OFF);
}

} // namespace
