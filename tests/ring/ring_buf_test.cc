// Tests for ring/ring_buf.c: provided buffers feed a multishot recv and are recycled.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "ring.h"

namespace {

struct RecvState {
    ring_buf *buf = nullptr;
    std::string got;
    int enobufs = 0;
    bool more = true;
};

void on_recv(void *ctx, ring_op_id, const io_uring_cqe *cqe) {
    auto *s = static_cast<RecvState *>(ctx);
    s->more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (cqe->res == -ENOBUFS) {
        s->enobufs++;
        return;
    }
    ASSERT_GT(cqe->res, 0);
    ASSERT_TRUE(cqe->flags & IORING_CQE_F_BUFFER);
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    ring_buf_taken(s->buf, bid);
    s->got.append(reinterpret_cast<char *>(ring_buf_addr(s->buf, bid)), (size_t)cqe->res);
    ring_buf_recycle(s->buf, bid);
}

const ring_op_entry kOps[] = {{"recv", on_recv, nullptr, false}};

// OpenRing opens `r` (16 SQEs) dispatching kOps to `st`.
void OpenRing(ring *r, RecvState *st) {
    ring_init(r);
    ring_config cfg = {16, 64, 16};
    ASSERT_EQ(ring_open(r, &cfg, kOps, 1, nullptr, st), 0);
}

} // namespace

TEST(RingBuf, RejectsBadGeometry) {
    ring r;
    RecvState st;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &st));
    ring_buf b;
    ring_buf_init(&b);
    EXPECT_EQ(ring_buf_open(&b, &r, 0, 3, 4096), -EINVAL);       // not a power of two
    EXPECT_EQ(ring_buf_open(&b, &r, 0, 4, 0), -EINVAL);          // zero size
    EXPECT_EQ(ring_buf_open(&b, &r, 0, 4, RING_BUF_SIZE_MAX + 1u), -EINVAL); // too large
    ring_buf_cleanup(&b, &r);
    ring_cleanup(&r);
}

TEST(RingBuf, MultishotRecvUsesAndRecyclesBuffers) {
    ring r;
    RecvState st;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &st));
    ring_buf b;
    ring_buf_init(&b);
    ASSERT_EQ(ring_buf_open(&b, &r, 3, 4, 64), 0);
    st.buf = &b;

    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    io_uring_sqe *sqe = ring_get_sqe(&r);
    io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 3;
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 0, 0));

    std::string sent;
    for (int round = 0; round < 20; round++) { // 20 x 50 bytes through 4 x 64-byte buffers
        std::string chunk(50, static_cast<char>('a' + round));
        ASSERT_EQ(write(sv[1], chunk.data(), chunk.size()), (ssize_t)chunk.size());
        sent += chunk;
        while (st.got.size() < sent.size()) {
            ASSERT_GE(ring_run_once(&r, 1000), 0);
        }
    }
    EXPECT_EQ(st.got, sent);
    EXPECT_TRUE(st.more);
    EXPECT_EQ(b.in_use, 0u);
    close(sv[0]);
    close(sv[1]);
    ring_buf_cleanup(&b, &r);
    ring_cleanup(&r);
}

// A provided buffer larger than 64 KiB takes more than 64 KiB in one completion (the gateway's
// receives are 256 KiB): nothing on the way caps a receive at 16 bits.
TEST(RingBuf, OneRecvFillsABufferLargerThan64KiB) {
    ring r;
    RecvState st;
    ASSERT_NO_FATAL_FAILURE(OpenRing(&r, &st));
    ring_buf b;
    ring_buf_init(&b);
    const uint32_t size = 256u * 1024u;
    ASSERT_EQ(ring_buf_open(&b, &r, 5, 2, size), 0);
    st.buf = &b;

    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int sndbuf = 1 << 20;
    ASSERT_EQ(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    std::string sent(200u * 1024u, '\0');
    for (size_t i = 0; i < sent.size(); i++) {
        sent[i] = static_cast<char>(i * 131u >> 3);
    }
    size_t off = 0;
    while (off < sent.size()) { // a unix socket may take it in pieces; all before the recv
        ssize_t n = write(sv[1], sent.data() + off, sent.size() - off);
        ASSERT_GT(n, 0);
        off += (size_t)n;
    }
    io_uring_sqe *sqe = ring_get_sqe(&r);
    io_uring_prep_recv(sqe, sv[0], nullptr, size, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 5;
    io_uring_sqe_set_data64(sqe, ring_op_pack(0, 0, 0));
    while (st.got.empty()) {
        ASSERT_GE(ring_run_once(&r, 1000), 0);
    }
    EXPECT_GT(st.got.size(), 64u * 1024u);
    EXPECT_EQ(st.got, sent.substr(0, st.got.size()));
    EXPECT_EQ(st.enobufs, 0);
    close(sv[0]);
    close(sv[1]);
    ring_buf_cleanup(&b, &r);
    ring_cleanup(&r);
}
