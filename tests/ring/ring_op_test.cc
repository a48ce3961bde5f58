// Tests for ring/ring_op.c and ring/ring.c: user_data packing and table dispatch.
#include <fcntl.h>
#include <sys/socket.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "core_base.h"
#include "ring.h"

namespace {

struct Seen {
    int done = 0;
    int errors = 0;
    int last_res = 0;
    uint32_t last_slot = 0;
    bool live = true;
};

void on_done(void *ctx, ring_op_id id, const io_uring_cqe *cqe) {
    auto *s = static_cast<Seen *>(ctx);
    s->done++;
    s->last_res = cqe->res;
    s->last_slot = id.slot;
}

void on_error(void *ctx, ring_op_id, const io_uring_cqe *cqe) {
    auto *s = static_cast<Seen *>(ctx);
    s->errors++;
    s->last_res = cqe->res;
}

bool validate(void *ctx, ring_op_id) {
    return static_cast<Seen *>(ctx)->live;
}

const ring_op_entry kOps[] = {
    {"nop", on_done, on_error, true},
    {"timeout", on_done, on_error, false},
};

// OpenRing opens `r` (64 SQEs) dispatching kOps to `seen`, at most `batch` completions a turn.
void OpenRing(ring *r, Seen *seen, uint32_t batch = 16) {
    ring_init(r);
    ring_config cfg = {64, 256, batch};
    ASSERT_EQ(ring_open(r, &cfg, kOps, 2, validate, seen), 0);
}

} // namespace

TEST(RingOp, PackUnpackRoundTrip) {
    uint64_t ud = ring_op_pack(7, 0x00abcdef, 0xdeadbeef);
    ring_op_id id = ring_op_unpack(ud);
    EXPECT_EQ(id.op, 7);
    EXPECT_EQ(id.slot, 0x00abcdefu);
    EXPECT_EQ(id.generation, 0xdeadbeefu);
    id = ring_op_unpack(ring_op_pack(31, RING_SLOT_MAX, 0));
    EXPECT_EQ(id.op, 31);
    EXPECT_EQ(id.slot, RING_SLOT_MAX);
    EXPECT_EQ(id.generation, 0u);
}

TEST(RingOp, DispatchesNopToHandlerAndErrorsToErrorHandler) {
    Seen seen;
    ring r;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &seen));

    io_uring_sqe *sqe = ring_get_sqe(&r);
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 42, 1));
    ASSERT_EQ(ring_run_once(&r, 1000), 1);
    EXPECT_EQ(seen.done, 1);
    EXPECT_EQ(seen.last_slot, 42u);

    // A relative timeout completes with -ETIME: the error handler runs, not the done handler.
    static __kernel_timespec ts = {0, 1000000};
    sqe = ring_get_sqe(&r);
    io_uring_prep_timeout(sqe, &ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ring_op_pack(1, 0, 0));
    int n = 0;
    for (int i = 0; i < 10 && n == 0; i++) {
        n = ring_run_once(&r, 100);
    }
    EXPECT_EQ(n, 1);
    EXPECT_EQ(seen.errors, 1);
    EXPECT_EQ(seen.last_res, -ETIME);
    ring_cleanup(&r);
    ring_cleanup(&r); // idempotent
}

TEST(RingOp, BatchIsBounded) {
    Seen seen;
    ring r;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &seen, 4));
    for (int i = 0; i < 10; i++) {
        io_uring_sqe *sqe = ring_get_sqe(&r);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, ring_op_pack(0, (uint32_t)i, 1));
    }
    EXPECT_EQ(ring_run_once(&r, 1000), 4);
    EXPECT_EQ(ring_run_once(&r, 1000), 4);
    EXPECT_EQ(ring_run_once(&r, 1000), 2);
    EXPECT_EQ(seen.done, 10);
    ring_cleanup(&r);
}

// ring_flush hands queued SQEs to the kernel at once: a write queued during dispatch reaches its
// pipe before the next ring_run_once (core_shard flushes forwarded bytes before a handshake step).
TEST(RingOp, FlushSubmitsQueuedWorkWithoutReaping) {
    Seen seen;
    ring r;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &seen));
    EXPECT_EQ(ring_flush(&r), 0); // nothing queued

    int p[2];
    ASSERT_EQ(pipe2(p, O_NONBLOCK), 0);
    static const char msg[] = "forwarded";
    io_uring_sqe *sqe = ring_get_sqe(&r);
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_write(sqe, p[1], msg, sizeof(msg), 0);
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 7, 1));

    char buf[32];
    EXPECT_EQ(read(p[0], buf, sizeof(buf)), -1); // queued, not submitted
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(ring_flush(&r), 1);
    EXPECT_EQ(seen.done, 0); // flush never dispatches
    ASSERT_EQ(read(p[0], buf, sizeof(buf)), (ssize_t)sizeof(msg));
    EXPECT_STREQ(buf, msg);
    EXPECT_EQ(ring_flush(&r), 0);

    int n = 0;
    for (int i = 0; i < 10 && n == 0; i++) {
        n = ring_run_once(&r, 100);
    }
    EXPECT_EQ(n, 1);
    EXPECT_EQ(seen.done, 1);
    EXPECT_EQ(seen.last_res, (int)sizeof(msg));
    close(p[0]);
    close(p[1]);
    ring_cleanup(&r);
}

namespace {

uint64_t thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

} // namespace

// With a busy poll, a completion that is there (or arrives) within the poll is reaped without a
// sleep in the kernel: the poll counts a hit, and no wait was entered for it.
TEST(RingBusyPoll, ReapsACompletionWithoutSleeping) {
    Seen seen;
    ring r;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &seen));
    ring_set_busy_poll(&r, RING_BUSY_POLL_NS_MAX);
    io_uring_sqe *sqe = ring_get_sqe(&r);
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 5, 1));
    uint64_t submits = r.stats.submits;
    ASSERT_EQ(ring_run_once(&r, 1000), 1);
    EXPECT_EQ(seen.done, 1);
    EXPECT_EQ(seen.last_slot, 5u);
    EXPECT_EQ(r.stats.poll_hits, 1u);
    EXPECT_EQ(r.stats.poll_misses, 0u);
    EXPECT_EQ(r.stats.submits, submits + 1); // the poll's submit only: no wait followed
    EXPECT_LT(r.stats.poll_ns, (uint64_t)RING_BUSY_POLL_NS_MAX);
    ring_cleanup(&r);
}

// With nothing to complete, the poll gives up after its time and the thread sleeps in the kernel
// for the rest of the timeout: it does not spin through it.
TEST(RingBusyPoll, GivesUpAfterItsTimeAndSleeps) {
    Seen seen;
    ring r;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &seen));
    const uint64_t poll_ns = 2000000; // capped below
    ring_set_busy_poll(&r, poll_ns < RING_BUSY_POLL_NS_MAX ? poll_ns : RING_BUSY_POLL_NS_MAX);
    int p[2];
    ASSERT_EQ(pipe2(p, O_NONBLOCK), 0);
    char buf[8];
    io_uring_sqe *sqe = ring_get_sqe(&r);
    io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0); // never written
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 1, 1));

    uint64_t cpu0 = thread_cpu_ns();
    uint64_t t0 = core_base_now_ns();
    EXPECT_EQ(ring_run_once(&r, 50), 0);
    uint64_t wall = core_base_now_ns() - t0;
    uint64_t cpu = thread_cpu_ns() - cpu0;
    EXPECT_EQ(r.stats.poll_hits, 0u);
    EXPECT_EQ(r.stats.poll_misses, 1u);
    EXPECT_GE(r.stats.poll_ns, r.busy_poll_ns);
    EXPECT_GE(wall, 45000000u); // the timeout ran out
    EXPECT_LT(cpu, 25000000u);  // about the poll's 1 ms, not the 50 ms of the wait

    // Without a timeout (the worker has handshake steps to run) there is no poll at all.
    EXPECT_EQ(ring_run_once(&r, 0), 0);
    EXPECT_EQ(r.stats.poll_misses, 1u);
    ring_set_busy_poll(&r, 0);
    EXPECT_EQ(ring_run_once(&r, 1), 0);
    EXPECT_EQ(r.stats.poll_misses, 1u);
    close(p[0]);
    close(p[1]);
    ring_cleanup(&r);
}

// A file installed in the ring's table stays open after its descriptor is closed, is reached by
// slot with IOSQE_FIXED_FILE, and closes when its slot is emptied (the peer then reads EOF).
TEST(RingFiles, InstalledSocketWorksBySlotAndClosesOnRemove) {
    Seen seen;
    ring r;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &seen));
    int ret = ring_files_open(&r, 4);
    if (ret == -EINVAL) {
        ring_cleanup(&r);
        GTEST_SKIP() << "this kernel cannot register a sparse file table (needs 5.19)";
    }
    ASSERT_EQ(ret, 0);
    int sp[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    ASSERT_EQ(ring_file_install(&r, 2, sp[0]), 0);
    ASSERT_EQ(close(sp[0]), 0); // the slot holds the file now
    EXPECT_EQ(fcntl(sp[0], F_GETFD), -1);

    ASSERT_EQ(write(sp[1], "hello", 5), 5);
    char buf[16] = {0};
    io_uring_sqe *sqe = ring_get_sqe(&r);
    io_uring_prep_recv(sqe, 2, buf, sizeof(buf), 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 1, 1));
    ASSERT_EQ(ring_run_once(&r, 1000), 1);
    EXPECT_EQ(seen.last_res, 5);
    EXPECT_STREQ(buf, "hello");

    sqe = ring_get_sqe(&r);
    io_uring_prep_send(sqe, 2, "ok", 2, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 1, 1));
    ASSERT_EQ(ring_run_once(&r, 1000), 1);
    EXPECT_EQ(seen.last_res, 2);
    ASSERT_EQ(read(sp[1], buf, sizeof(buf)), 2);

    // Emptying the slot closes the file: the peer sees EOF, and the slot names nothing.
    ASSERT_EQ(ring_file_remove(&r, 2), 0);
    EXPECT_EQ(read(sp[1], buf, sizeof(buf)), 0);
    sqe = ring_get_sqe(&r);
    io_uring_prep_send(sqe, 2, "x", 1, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 1, 1));
    ASSERT_EQ(ring_run_once(&r, 1000), 1);
    EXPECT_EQ(seen.errors, 1);
    EXPECT_EQ(seen.last_res, -EBADF);
    close(sp[1]);

    // The slot can be filled again; a slot beyond the table cannot.
    int sp2[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp2), 0);
    EXPECT_EQ(ring_file_install(&r, 2, sp2[0]), 0);
    EXPECT_LT(ring_file_install(&r, 4, sp2[0]), 0);
    close(sp2[0]);
    close(sp2[1]);
    ring_cleanup(&r);
}
