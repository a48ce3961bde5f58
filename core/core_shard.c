// core_shard.c: one worker thread: its ring, listeners and the connection state machine
// (sniff -> TLS handshake -> startup -> backend connect -> forward -> close).
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "core_conn.h"
#include "core_certcache.h"
#include "audit.pb-c.h"

static void conn_pump(struct core_shard *shard, struct core_conn *c);
static void audit_admit(struct core_shard *shard, struct core_conn *c);
static void audit_release_durable(struct core_shard *shard);
static void audit_wait_compact(struct core_shard *shard);
static void start_backend(struct core_shard *shard, struct core_conn *c);
static void count_admitted(struct core_shard *shard, struct core_conn *c);

// conn_is_gone: closing, or already released to the free list by a nested close (handlers
// must not touch a released slot's sockets or buffers).
static bool conn_is_gone(const struct core_conn *c) {
    return c->state == CORE_CONN_CLOSING || c->state == CORE_CONN_FREE;
}
static void conn_close(struct core_shard *shard, struct core_conn *c, const char *reason);

// ---------------------------------------------------------------------------------------------
// SQE helpers: every SQE that names a slot is counted in `pending` until its final CQE.

static struct io_uring_sqe *conn_sqe(struct core_shard *shard, struct core_conn *c,
                                     enum core_op op) {
    struct io_uring_sqe *sqe = ring_get_sqe(&shard->ring);
    if (sqe == NULL) {
        return NULL;
    }
    io_uring_sqe_set_data64(sqe, ring_op_pack((uint8_t)op, c->index, c->generation));
    c->pending++;
    return sqe;
}

// side_sqe_file: an SQE on s's socket names a ring file slot when s is fixed.
static inline void side_sqe_file(struct io_uring_sqe *sqe, const struct core_side *s) {
    if (s->fixed) {
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

// ignore_sqe_cancel_side queues a cancel of every operation on s's socket. Returns false when
// no submission entry could be had (the submit that would free one failed).
static bool ignore_sqe_cancel_side(struct core_shard *shard, const struct core_side *s) {
    struct io_uring_sqe *sqe = ring_get_sqe(&shard->ring);
    if (sqe == NULL) {
        return false;
    }
    unsigned flags = IORING_ASYNC_CANCEL_ALL | (s->fixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0u);
    io_uring_prep_cancel_fd(sqe, s->fd, flags);
    io_uring_sqe_set_data64(sqe, ring_op_pack(CORE_OP_IGNORE, 0, 0));
    return true;
}

// conn_cancel_pending cancels what closing connection `c` still has in flight, so that its slot
// is released. A cancel that cannot be queued now is tried again a tick later (on_conn_expired):
// a receive left pending would otherwise hold the slot until its peer sends or closes.
static void conn_cancel_pending(struct core_shard *shard, struct core_conn *c) {
    bool queued = true;
    for (int i = 0; i < 2; i++) {
        if (c->side[i].fd >= 0 && c->pending > 0) {
            queued = ignore_sqe_cancel_side(shard, &c->side[i]) && queued;
        }
    }
    if (!queued) {
        core_conn_set_deadline(shard, c, core_base_now_ns() + CORE_TICK_MS * 1000000ull);
    }
}

static struct core_conn *conn_of(struct core_shard *shard, struct ring_op_id id) {
    struct core_conn *c = &shard->conns[id.slot];
    ASSERT_HOT(c->magic == CORE_CONN_MAGIC && c->generation == id.generation);
    return c;
}

static void conn_cqe_done(struct core_shard *shard, struct core_conn *c,
                          const struct io_uring_cqe *cqe) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        ASSERT(c->pending > 0);
        c->pending--;
    }
    (void)shard;
}

// ---------------------------------------------------------------------------------------------
// Handshake queue. A TLS handshake step costs a key exchange and a signature (and, attested, a
// P-384 verification: ~0.1-1 ms of CPU); run inside completion dispatch, a burst of new clients
// would delay every established session's bytes behind it. Instead conn_pump queues the
// connection here, and shard_main runs CORE_HS_STEPS_PER_TURN steps after each batch of
// completions, not waiting in the ring while any is queued.

static void hs_enqueue(struct core_shard *shard, struct core_conn *c) {
    if (c->hs_queued) {
        return;
    }
    c->hs_queued = true;
    c->hs_next = CORE_IDX_NONE;
    c->hs_prev = shard->hs_tail;
    if (shard->hs_tail == CORE_IDX_NONE) {
        shard->hs_head = c->index;
    } else {
        shard->conns[shard->hs_tail].hs_next = c->index;
    }
    shard->hs_tail = c->index;
}

static void hs_remove(struct core_shard *shard, struct core_conn *c) {
    if (!c->hs_queued) {
        return;
    }
    if (c->hs_prev == CORE_IDX_NONE) {
        shard->hs_head = c->hs_next;
    } else {
        shard->conns[c->hs_prev].hs_next = c->hs_next;
    }
    if (c->hs_next == CORE_IDX_NONE) {
        shard->hs_tail = c->hs_prev;
    } else {
        shard->conns[c->hs_next].hs_prev = c->hs_prev;
    }
    c->hs_queued = false;
    c->hs_prev = c->hs_next = CORE_IDX_NONE;
}

// hs_can_step: a queued handshake may step now (inline: always; with the handshake thread: a
// job is free and no reload waits for the thread to go quiet).
static bool hs_can_step(const struct core_shard *shard) {
    return shard->hs_head != CORE_IDX_NONE &&
           (shard->hs == NULL ||
            (core_hs_inflight(shard) < CORE_HS_JOBS && !shard->event_deferred));
}

static void hs_run(struct core_shard *shard) {
    uint32_t inline_steps = 0; // steps handed to the thread do not count: they take no time here
    while (inline_steps < CORE_HS_STEPS_PER_TURN && hs_can_step(shard)) {
        uint32_t away = core_hs_inflight(shard);
        struct core_conn *c = &shard->conns[shard->hs_head];
        hs_remove(shard, c);
        shard->hs_running = true;
        conn_pump(shard, c);
        shard->hs_running = false;
        if (core_hs_inflight(shard) == away) {
            inline_steps++;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inbound ring buffers held by a side.

static void in_push(struct core_shard *shard, struct core_conn *c, struct core_side *s,
                    uint16_t bid, uint32_t len) {
    ring_buf_taken(&shard->bufs, bid);
    if (s->in_count >= CORE_IN_BUFS_MAX) {
        // Only reachable if a cancelled multishot recv kept delivering: fail this connection,
        // never the worker.
        ring_buf_recycle(&shard->bufs, bid);
        conn_close(shard, c, "receive backlog overflow");
        return;
    }
    uint32_t at = (s->in_head + s->in_count) % CORE_IN_BUFS_MAX;
    s->in_bid[at] = bid;
    s->in_len[at] = len;
    s->in_count++;
    s->in_bytes += len;
}

static void in_consume(struct core_shard *shard, struct core_side *s, uint32_t n) {
    ASSERT(n <= s->in_bytes);
    s->in_bytes -= n;
    if (s->stash_len > 0) {
        uint32_t take = n < s->stash_len ? n : s->stash_len;
        memmove(s->stash, s->stash + take, s->stash_len - take);
        s->stash_len = (uint8_t)(s->stash_len - take);
        n -= take;
    }
    while (n > 0) {
        uint32_t avail = s->in_len[s->in_head] - s->in_off;
        uint32_t take = n < avail ? n : avail;
        s->in_off += take;
        n -= take;
        if (s->in_off == s->in_len[s->in_head]) {
            ring_buf_recycle(&shard->bufs, s->in_bid[s->in_head]);
            s->in_head = (s->in_head + 1) % CORE_IN_BUFS_MAX;
            s->in_count--;
            s->in_off = 0;
        }
    }
}

static uint32_t in_peek(struct core_shard *shard, const struct core_side *s, uint8_t *out,
                        uint32_t len) {
    uint32_t copied = s->stash_len < len ? s->stash_len : len;
    memcpy(out, s->stash, copied);
    uint32_t off = s->in_off;
    for (uint32_t k = 0; k < s->in_count && copied < len; k++) {
        uint32_t i = (s->in_head + k) % CORE_IN_BUFS_MAX;
        uint32_t avail = s->in_len[i] - off;
        uint32_t take = len - copied < avail ? len - copied : avail;
        core_base_copy(out + copied, ring_buf_addr(&shard->bufs, s->in_bid[i]) + off, take);
        copied += take;
        off = 0;
    }
    return copied;
}

uint32_t core_shard_in_read(struct core_shard *shard, struct core_side *side, uint8_t *out,
                            uint32_t len) {
    uint32_t n = in_peek(shard, side, out, len);
    in_consume(shard, side, n);
    return n;
}

static void in_release_all(struct core_shard *shard, struct core_side *s) {
    in_consume(shard, s, s->in_bytes);
    ASSERT(s->in_count == 0 && s->stash_len == 0);
}

// in_stash moves the few bytes a side holds (at most the stash's size) out of the shared receive
// pool into the side's stash. Each receive takes a whole pool buffer however little arrives, so
// without this a few dozen connections that each send one byte and wait would hold every buffer
// of the worker until the handshake timeout, and stall every session on it.
static void in_stash(struct core_shard *shard, struct core_side *s) {
    if (s->in_count == 0 || s->in_bytes > sizeof(s->stash)) {
        return;
    }
    uint8_t tmp[sizeof(s->stash)];
    uint32_t n = in_peek(shard, s, tmp, sizeof(tmp));
    ASSERT(n == s->in_bytes);
    in_consume(shard, s, n);
    ASSERT(s->in_count == 0 && s->stash_len == 0);
    memcpy(s->stash, tmp, n);
    s->stash_len = (uint8_t)n;
    s->in_bytes = n;
}

// ---------------------------------------------------------------------------------------------
// Outbound chunk of a side.

static uint32_t out_free(const struct core_side *s) {
    return s->out_chunk == CORE_CHUNK_NONE ? CORE_CHUNK_BYTES : CORE_CHUNK_BYTES - s->out_len;
}

// out_compact drops already-sent bytes when no send is in flight (releasing an empty chunk),
// so free space is measured after what the kernel has taken, not before.
static void out_compact(struct core_shard *shard, struct core_side *s) {
    if (s->out_chunk == CORE_CHUNK_NONE || s->out_inflight > 0 || s->out_sent == 0) {
        return;
    }
    if (s->out_sent == s->out_len) {
        core_conn_chunk_put(shard, s->out_chunk);
        s->out_chunk = CORE_CHUNK_NONE;
        s->out_len = s->out_sent = 0;
        return;
    }
    uint8_t *base = core_conn_chunk_addr(shard, s->out_chunk);
    memmove(base, base + s->out_sent, s->out_len - s->out_sent);
    s->out_len -= s->out_sent;
    s->out_sent = 0;
}

uint32_t core_shard_out_append(struct core_shard *shard, struct core_side *s, const uint8_t *data,
                               uint32_t len) {
    if (s->out_chunk == CORE_CHUNK_NONE) {
        s->out_chunk = core_conn_chunk_get(shard);
        s->out_len = 0;
        s->out_sent = 0;
    }
    uint32_t room = CORE_CHUNK_BYTES - s->out_len;
    uint32_t n = len < room ? len : room;
    core_base_copy(core_conn_chunk_addr(shard, s->out_chunk) + s->out_len, data, n);
    s->out_len += n;
    return n;
}

// side_flush submits a send of the queued bytes when none is in flight (one per socket keeps
// the byte order; io_uring does not order independent SQEs).
static void side_flush(struct core_shard *shard, struct core_conn *c, enum core_side_id id) {
    struct core_side *s = &c->side[id];
    if (s->out_inflight > 0 || s->out_chunk == CORE_CHUNK_NONE || s->fd < 0 || s->wr_shut) {
        return;
    }
    out_compact(shard, s); // nothing is in flight, so moving bytes is safe
    if (s->out_chunk == CORE_CHUNK_NONE || s->out_len == 0) {
        return;
    }
    struct io_uring_sqe *sqe =
        conn_sqe(shard, c, id == CORE_SIDE_CLIENT ? CORE_OP_SEND_CLIENT : CORE_OP_SEND_BACKEND);
    if (sqe == NULL) {
        conn_close(shard, c, "submission queue unavailable");
        return;
    }
    s->out_inflight = s->out_len;
    io_uring_prep_send(sqe, s->fd, core_conn_chunk_addr(shard, s->out_chunk), s->out_len,
                       MSG_NOSIGNAL);
    side_sqe_file(sqe, s);
}

static bool side_out_empty(const struct core_side *s) {
    return s->out_chunk == CORE_CHUNK_NONE || (s->out_inflight == 0 && s->out_sent == s->out_len);
}

// ---------------------------------------------------------------------------------------------
// Receive arming with backpressure: a side holding CORE_IN_BUFS_HIGH buffers is not re-armed
// until its peer has drained some of them.

static void side_arm_recv(struct core_shard *shard, struct core_conn *c, enum core_side_id id) {
    struct core_side *s = &c->side[id];
    if (s->recv_armed || s->recv_eof || s->fd < 0 || s->recv_starved ||
        conn_is_gone(c)) {
        return;
    }
    if (s->in_count >= CORE_IN_BUFS_HIGH) {
        return;
    }
    struct io_uring_sqe *sqe =
        conn_sqe(shard, c, id == CORE_SIDE_CLIENT ? CORE_OP_RECV_CLIENT : CORE_OP_RECV_BACKEND);
    if (sqe == NULL) {
        conn_close(shard, c, "submission queue unavailable");
        return;
    }
    // One-shot recv with a provided buffer: an idle connection holds no buffer, and a busy one
    // holds at most CORE_IN_BUFS_HIGH. (A multishot recv kept delivering buffers within one CQE
    // batch faster than a cancel could stop it, which broke per-connection backpressure under
    // bulk COPY; one SQE per 64 KiB receive is cheap by comparison.)
    io_uring_prep_recv(sqe, s->fd, NULL, CORE_RECV_BUF_BYTES, 0);
    side_sqe_file(sqe, s);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = shard->bufs.bgid;
    s->recv_armed = true;
}

// ---------------------------------------------------------------------------------------------
// Closing.

static void conn_maybe_release(struct core_shard *shard, struct core_conn *c) {
    if (c->state != CORE_CONN_CLOSING || c->pending > 0) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        struct core_side *s = &c->side[i];
        in_release_all(shard, s);
        if (s->out_chunk != CORE_CHUNK_NONE) {
            core_conn_chunk_put(shard, s->out_chunk);
            s->out_chunk = CORE_CHUNK_NONE;
        }
    }
    core_conn_release(shard, c);
}

// conn_released_if_gone: whether `c` is closing, for a completion handler to stop at; it is then
// released if that completion was its last operation in flight.
static bool conn_released_if_gone(struct core_shard *shard, struct core_conn *c) {
    if (!conn_is_gone(c)) {
        return false;
    }
    conn_maybe_release(shard, c);
    return true;
}

static void conn_close(struct core_shard *shard, struct core_conn *c, const char *reason) {
    if (conn_is_gone(c)) {
        return;
    }
    if (c->hs_away) {
        // The handshake thread holds the SSL and the decision: close when it hands them back.
        if (c->close_deferred == NULL) {
            c->close_deferred = reason;
        }
        return;
    }
    bool was_forwarding = c->state == CORE_CONN_FORWARD || c->state == CORE_CONN_PASSTHROUGH;
    c->close_reason = reason;
    if (shard->proc->store != NULL) {
        if (c->decision != CORE_IDX_NONE) { // every path that records a decision releases it
            // A handshake decided but its session never started (no StartupMessage): the
            // decision is recorded all the same, with why the connection ended.
            uint64_t seq = 0;
            if (core_audit_decision(shard, c, reason, &seq) != 0) {
                atomic_fetch_add_explicit(&shard->counters.audit_lost, 1, memory_order_relaxed);
            }
        }
        if (c->admitted) {
            core_audit_disconnect(shard, c, reason);
            c->admitted = false;
        }
    }
    core_decision_put(shard, c);
    if (was_forwarding && c->backend_idx != CORE_IDX_NONE) {
        atomic_fetch_sub_explicit(&shard->proc->backends[c->backend_idx].active, 1,
                                  memory_order_relaxed);
    }
    if (c->state != CORE_CONN_CANCEL_OUT) {
        LOG_DEBUG("conn %u.%u closed: %s", shard->id, c->index, reason);
    }
    c->state = CORE_CONN_CLOSING;
    core_conn_wheel_remove(shard, c);
    hs_remove(shard, c);
    conn_cancel_pending(shard, c);
    conn_maybe_release(shard, c);
}

// close_deadline arms, once, the deadline by which a closing connection is closed whether or not
// its queued bytes went out (CORE_CLOSE_FLUSH_NS), unless an earlier deadline is set already.
static void close_deadline(struct core_shard *shard, struct core_conn *c) {
    if (c->close_deadline_set || conn_is_gone(c)) {
        return;
    }
    c->close_deadline_set = true;
    uint64_t at = core_base_now_ns() + CORE_CLOSE_FLUSH_NS;
    if (c->deadline_ns == 0 || c->deadline_ns > at) {
        core_conn_set_deadline(shard, c, at);
    }
}

// Queue a pgwire ErrorResponse (inside TLS when a session exists) and close once it is sent.
static void conn_fail(struct core_shard *shard, struct core_conn *c, const char *sqlstate,
                      const char *msg) {
    uint8_t buf[512];
    uint32_t n = core_pgwire_error(buf, sizeof(buf), sqlstate, msg);
    ASSERT(n > 0);
    if (c->ssl != NULL && SSL_is_init_finished(c->ssl)) {
        // In a session the backend's messages are on their way: pgwire allows an ErrorResponse
        // only between two of them, and it must fit now (a short SSL_write would leave a write
        // BoringSSL insists on finishing). Otherwise only the close can say it.
        struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
        bool between = c->state != CORE_CONN_FORWARD ||
                       core_pgwire_frames_is_boundary(&c->b2c_frames);
        out_compact(shard, cl);
        if (between && out_free(cl) >= n + CORE_TLS_OVERHEAD_MAX &&
            SSL_write(c->ssl, buf, (int)n) <= 0) {
            ERR_clear_error();
        }
    } else {
        (void)core_shard_out_append(shard, &c->side[CORE_SIDE_CLIENT], buf, n);
    }
    // The close usually happens later, when the send completes: keep `msg` (often on the
    // caller's stack) as the close reason, so the records say why the gateway ended it.
    if (c->close_reason == NULL) {
        if (!c->attest_denied && msg != c->deny_reason) {
            snprintf(c->deny_reason, sizeof(c->deny_reason), "%s", msg);
        }
        if (!c->attest_denied || msg == c->deny_reason) {
            c->close_reason = c->deny_reason;
        }
    }
    c->close_after_flush = true;
    side_flush(shard, c, CORE_SIDE_CLIENT);
    if (side_out_empty(&c->side[CORE_SIDE_CLIENT])) {
        conn_close(shard, c, msg);
        return;
    }
    close_deadline(shard, c);
}

// ---------------------------------------------------------------------------------------------
// Backend connect.

static void backend_connect(struct core_shard *shard, struct core_conn *c);

static void backend_connect_failed(struct core_shard *shard, struct core_conn *c, int err) {
    uint32_t idx = c->backend_idx;
    // Out of descriptors or memory here says nothing of the backend: it is not marked down
    // (nor counted against it), and no other backend is tried (they would fail the same way).
    bool local = err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
    if (!local) {
        core_backend_mark_down(shard->proc, idx);
        atomic_fetch_add_explicit(&shard->counters.backend_errors, 1, memory_order_relaxed);
        LOG_WARN("backend %s: %s", shard->proc->cfg.backends[idx].text, strerror(-err));
    } else if (core_base_log_due(&shard->nofile_logged_ns)) {
        LOG_WARN("worker %u: cannot open a backend connection: %s", shard->id, strerror(-err));
    }
    core_side_close(shard, &c->side[CORE_SIDE_BACKEND]);
    if (c->state == CORE_CONN_CANCEL_OUT) {
        conn_close(shard, c, "cancel: backend unreachable");
        return;
    }
    if (c->close_after_flush) {
        conn_pump(shard, c); // failed while connecting: finish sending why, then close
        return;
    }
    uint32_t next = local ? CORE_IDX_NONE : core_backend_pick(shard->proc, c->connect_tries);
    if (next != CORE_IDX_NONE && c->state == CORE_CONN_CONNECTING) {
        c->backend_idx = next;
        backend_connect(shard, c);
        return;
    }
    char msg[256];
    if (local) {
        snprintf(msg, sizeof(msg),
                 "could not connect to the database: the gateway is out of resources (%s)",
                 strerror(-err));
    } else {
        snprintf(msg, sizeof(msg), "could not connect to the database: backend %s: %s",
                 shard->proc->cfg.backends[idx].text, strerror(-err));
    }
    if (c->ssl == NULL) { // passthrough: no way to speak pgwire to a client that does TLS itself
        conn_close(shard, c, "backend unreachable");
        return;
    }
    conn_fail(shard, c, "08006", msg);
}

static void backend_connect(struct core_shard *shard, struct core_conn *c) {
    ASSERT(c->backend_idx < shard->proc->cfg.backend_count);
    const struct core_addr *a = &shard->proc->cfg.backends[c->backend_idx];
    c->connect_tries |= 1u << c->backend_idx;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        backend_connect_failed(shard, c, -errno);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct core_side *b = &c->side[CORE_SIDE_BACKEND];
    b->fd = fd;
    b->fixed = false;
    // Into the ring's file table if there is one: the descriptor is then closed at once.
    if (c->index < shard->fixed_files && ring_file_install(&shard->ring, c->index, fd) == 0) {
        close(fd);
        b->fd = (int)c->index;
        b->fixed = true;
    }
    struct io_uring_sqe *sqe = conn_sqe(shard, c, CORE_OP_CONNECT);
    if (sqe == NULL) {
        conn_close(shard, c, "submission queue unavailable");
        return;
    }
    io_uring_prep_connect(sqe, b->fd, (const struct sockaddr *)&a->ss, a->len);
    side_sqe_file(sqe, b);
    sqe->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *t = conn_sqe(shard, c, CORE_OP_CONNECT_TIMEOUT);
    if (t == NULL) {
        conn_close(shard, c, "submission queue unavailable");
        return;
    }
    uint32_t ms = shard->proc->cfg.connect_timeout_ms;
    // The kernel reads the timespec at submission: one shared value per shard suffices since
    // every connect uses the same timeout.
    struct __kernel_timespec *ts = &shard->connect_ts;
    ts->tv_sec = ms / 1000u;
    ts->tv_nsec = (long long)(ms % 1000u) * 1000000ll;
    io_uring_prep_link_timeout(t, ts, 0);
}

static void passthrough_pump(struct core_shard *shard, struct core_conn *c);

static void set_idle_deadline(struct core_shard *shard, struct core_conn *c) {
    if (c->close_deadline_set) {
        return; // closing: its flush deadline stands
    }
    uint32_t idle = shard->proc->cfg.idle_timeout_ms;
    core_conn_set_deadline(shard, c, idle ? core_base_now_ns() + (uint64_t)idle * 1000000ull : 0);
}

static void on_connect(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    struct core_conn *c = conn_of(shard, id);
    conn_cqe_done(shard, c, cqe);
    if (conn_released_if_gone(shard, c)) {
        return;
    }
    if (cqe->res < 0) {
        backend_connect_failed(shard, c, cqe->res == -ECANCELED ? -ETIMEDOUT : cqe->res);
        return;
    }
    core_backend_mark_up(shard->proc, c->backend_idx);
    if (c->state == CORE_CONN_CANCEL_OUT) {
        c->close_after_flush = true;
        side_flush(shard, c, CORE_SIDE_BACKEND);
        return;
    }
    if (c->close_after_flush) {
        // Failed while connecting (revoked by a policy reload): the client is being told why;
        // nothing may reach the backend. conn_pump closes once the ErrorResponse is sent.
        core_side_close(shard, &c->side[CORE_SIDE_BACKEND]);
        conn_pump(shard, c);
        return;
    }
    atomic_fetch_add_explicit(&shard->proc->backends[c->backend_idx].active, 1,
                              memory_order_relaxed);
    if (c->ssl == NULL) {
        c->state = CORE_CONN_PASSTHROUGH;
    } else {
        c->state = CORE_CONN_FORWARD;
        c->scan_active = true;
    }
    if (c->state == CORE_CONN_FORWARD && !c->close_deadline_set) {
        // Until the backend's first ReadyForQuery the session is still starting: a backend that
        // accepts and never answers must not hold the client forever (scan_backend_bytes then
        // switches to the idle deadline).
        core_conn_set_deadline(shard, c,
                               core_base_now_ns() +
                                   (uint64_t)shard->proc->cfg.handshake_timeout_ms * 1000000ull);
    } else {
        set_idle_deadline(shard, c); // a connection closing already keeps its flush deadline
    }
    if (c->state == CORE_CONN_PASSTHROUGH) {
        passthrough_pump(shard, c);
        return;
    }
    conn_pump(shard, c);
}

static void on_connect_timeout(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    struct core_conn *c = conn_of(shard, id);
    conn_cqe_done(shard, c, cqe);
    conn_maybe_release(shard, c);
}

// ---------------------------------------------------------------------------------------------
// Cancel routing (DESIGN.md §3.1): the client sees pid = worker << 24 | slot and a random key.

static void cancel_send_to_backend(struct core_shard *shard, struct core_conn *owner) {
    struct core_conn *c = core_conn_open(shard);
    if (c == NULL) {
        atomic_fetch_add_explicit(&shard->counters.refused_full, 1, memory_order_relaxed);
        return;
    }
    c->state = CORE_CONN_CANCEL_OUT;
    c->backend_idx = owner->backend_idx;
    uint8_t req[16];
    core_pgwire_put_be32(req, 16);
    core_pgwire_put_be32(req + 4, CORE_PG_CANCEL_REQUEST);
    core_pgwire_put_be32(req + 8, owner->backend_pid);
    core_pgwire_put_be32(req + 12, owner->backend_key);
    (void)core_shard_out_append(shard, &c->side[CORE_SIDE_BACKEND], req, sizeof(req));
    core_conn_set_deadline(shard, c,
                           core_base_now_ns() +
                               (uint64_t)shard->proc->cfg.connect_timeout_ms * 1000000ull * 2);
    atomic_fetch_add_explicit(&shard->counters.cancels_routed, 1, memory_order_relaxed);
    backend_connect(shard, c);
}

// cancel_deliver forwards a cancel for `slot` of this worker. Returns whether a session matched.
static bool cancel_deliver(struct core_shard *shard, uint32_t slot, uint32_t key) {
    if (slot >= shard->conns_max) {
        return false;
    }
    struct core_conn *owner = &shard->conns[slot];
    // Compare the key in constant time: a wrong key must not reveal how close it was.
    uint32_t diff = owner->proxy_key ^ key;
    if (owner->state != CORE_CONN_FORWARD || !owner->have_backend_key || diff != 0) {
        LOG_DEBUG("cancel for slot %u ignored: no matching session", slot);
        return false;
    }
    cancel_send_to_backend(shard, owner);
    return true;
}

static void cancel_route(struct core_shard *shard, const uint8_t req[16]) {
    uint32_t pid = core_pgwire_be32(req + 8);
    uint32_t key = core_pgwire_be32(req + 12);
    uint32_t worker = pid >> 24;
    uint32_t slot = pid & RING_SLOT_MAX;
    struct core_proc *proc = shard->proc;
    if (worker >= proc->worker_count) {
        return;
    }
    if (worker == shard->id) {
        (void)cancel_deliver(shard, slot, key);
        return;
    }
    // Another thread's ring: its descriptor only through what that thread published.
    int fd = atomic_load_explicit(&proc->shards[worker].msg_fd, memory_order_acquire);
    if (fd < 0) {
        return; // that worker is not running (yet): no session of it can be cancelled
    }
    struct io_uring_sqe *sqe = ring_get_sqe(&shard->ring);
    if (sqe == NULL) {
        return;
    }
    io_uring_prep_msg_ring(sqe, fd, key, ring_op_pack(CORE_OP_MSG, slot, 0), 0);
    io_uring_sqe_set_data64(sqe, ring_op_pack(CORE_OP_IGNORE, 0, 0));
}

static void on_msg(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    if (cancel_deliver(shard, id.slot, (uint32_t)cqe->res)) {
        atomic_fetch_add_explicit(&shard->counters.cancels_cross_worker, 1, memory_order_relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// State machine steps.

static void step_sniff(struct core_shard *shard, struct core_conn *c) {
    struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    uint8_t head[CORE_SNIFF_BYTES_MAX];
    uint32_t n = in_peek(shard, cl, head, sizeof(head));
    enum core_pgwire_sniff kind = core_pgwire_sniff(head, n);
    switch (kind) {
    case CORE_SNIFF_NEED_MORE:
        if (cl->recv_eof) {
            conn_close(shard, c, "client closed before sending a request");
            return;
        }
        in_stash(shard, cl);
        return;
    case CORE_SNIFF_DIRECT_TLS:
        c->direct_tls = true;
        c->state = CORE_CONN_HANDSHAKE;
        return;
    case CORE_SNIFF_SSL_REQUEST:
        if (cl->in_bytes != 8) {
            // Bytes after the SSLRequest before our 'S' could be injected by a MITM.
            atomic_fetch_add_explicit(&shard->counters.protocol_errors, 1, memory_order_relaxed);
            conn_close(shard, c, "unencrypted data after SSL request");
            return;
        }
        in_consume(shard, cl, 8);
        (void)core_shard_out_append(shard, cl, (const uint8_t *)"S", 1);
        side_flush(shard, c, CORE_SIDE_CLIENT);
        c->state = CORE_CONN_HANDSHAKE;
        return;
    case CORE_SNIFF_GSSENC_REQUEST:
        if (c->gss_done || cl->in_bytes != 8) {
            conn_close(shard, c, "repeated or followed GSSENCRequest");
            return;
        }
        c->gss_done = true;
        in_consume(shard, cl, 8);
        (void)core_shard_out_append(shard, cl, (const uint8_t *)"N", 1);
        side_flush(shard, c, CORE_SIDE_CLIENT);
        return;
    case CORE_SNIFF_CANCEL:
        in_consume(shard, cl, 16);
        cancel_route(shard, head);
        conn_close(shard, c, "cancel request handled");
        return;
    case CORE_SNIFF_PLAINTEXT:
        atomic_fetch_add_explicit(&shard->counters.plaintext_refused, 1, memory_order_relaxed);
        in_release_all(shard, cl);
        conn_fail(shard, c, "08P01",
                  "this server requires TLS: connect with sslmode=require and a client "
                  "certificate");
        return;
    }
}

// hs_finish applies the outcome of a handshake step (run inline or by the handshake thread).
static void hs_finish(struct core_shard *shard, struct core_conn *c, const struct core_hs_result *r) {
    struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    c->hs_want_write = false;
    if (r->ret == 1) {
        if (r->alpn_refused) {
            SSL_send_fatal_alert(c->ssl, SSL_AD_NO_APPLICATION_PROTOCOL);
            atomic_fetch_add_explicit(&shard->counters.handshakes_failed, 1, memory_order_relaxed);
            c->close_after_flush = true;
            side_flush(shard, c, CORE_SIDE_CLIENT);
            return;
        }
        atomic_fetch_add_explicit(&shard->counters.handshakes_ok, 1, memory_order_relaxed);
        core_hist_add(&shard->counters.handshake_hist, r->done_ns - c->opened_ns);
        c->state = CORE_CONN_STARTUP;
        return;
    }
    if (r->err == SSL_ERROR_WANT_READ) {
        if (cl->recv_eof && cl->in_bytes == 0) {
            atomic_fetch_add_explicit(&shard->counters.handshakes_failed, 1, memory_order_relaxed);
            conn_close(shard, c, "client closed during TLS handshake");
        }
        return;
    }
    if (r->err == SSL_ERROR_WANT_WRITE) {
        c->hs_want_write = true; // the next step runs once the send chunk has room
        return;
    }
    LOG_DEBUG("handshake failed: %s", r->why);
    atomic_fetch_add_explicit(&shard->counters.handshakes_failed, 1, memory_order_relaxed);
    // BoringSSL has already queued its alert in our send chunk: flush it, then close.
    c->close_after_flush = true;
    side_flush(shard, c, CORE_SIDE_CLIENT);
    if (side_out_empty(cl)) {
        conn_close(shard, c, "TLS handshake failed");
    }
}

// hs_has_work: a handshake step can make progress (first step, new client bytes or EOF, or
// room for what the last step could not write).
static bool hs_has_work(const struct core_conn *c) {
    const struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    return c->ssl == NULL || cl->in_bytes > 0 || cl->recv_eof ||
           (c->hs_want_write && out_free(cl) > 0);
}

// hs_stage hands the next step of `c` to the handshake thread: the client bytes held now are
// copied (and stay held until the step says how many it read), the reply goes to the job.
static void hs_stage(struct core_shard *shard, struct core_conn *c) {
    uint32_t j;
    bool took = core_hs_job_take(shard, &j);
    ASSERT(took); // hs_run steps only while a job is free
    (void)took;
    struct core_hs_job *job = core_hs_job_of(shard, j);
    struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    job->conn = c->index;
    job->decision = shard->policy != NULL ? core_decision_take(shard) : CORE_IDX_NONE;
    job->in_len = in_peek(shard, cl, job->in, CORE_HS_IN_BYTES);
    job->in_off = 0;
    job->in_eof = cl->recv_eof && job->in_len == cl->in_bytes;
    out_compact(shard, cl);
    uint32_t room = out_free(cl);
    job->out_cap = room < CORE_HS_OUT_BYTES ? room : CORE_HS_OUT_BYTES;
    job->out_len = 0;
    c->hs_away = true;
    c->hs_job = (uint8_t)j;
    core_hs_submit(shard, j);
}

// hs_done takes back a finished job: the bytes the step read leave the client side, its reply
// joins the send chunk, and the outcome is applied (or the close that waited is done).
static void hs_done(struct core_shard *shard, uint32_t j) {
    struct core_hs_job *job = core_hs_job_of(shard, j);
    struct core_conn *c = &shard->conns[job->conn];
    struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    ASSERT(c->hs_away && c->hs_job == j);
    c->hs_away = false;
    if (job->decision != CORE_IDX_NONE && c->decision != job->decision) {
        core_decision_give_back(shard, job->decision); // the step did not reach the check
    }
    in_consume(shard, cl, job->in_off);
    uint32_t n = core_shard_out_append(shard, cl, job->out, job->out_len);
    ASSERT(n == job->out_len); // out_cap was the room the chunk had, and only it grows
    (void)n;
    struct core_hs_result res = job->res;
    core_hs_release(shard, j);
    atomic_fetch_add_explicit(&shard->counters.hs_steps_offloaded, 1, memory_order_relaxed);
    if (c->close_deferred != NULL) {
        const char *why = c->close_deferred;
        c->close_deferred = NULL;
        conn_close(shard, c, why);
        return;
    }
    hs_finish(shard, c, &res);
    if (!conn_is_gone(c)) {
        conn_pump(shard, c);
    }
}

static void step_handshake(struct core_shard *shard, struct core_conn *c) {
    if (c->ssl == NULL && core_tls_conn_new(shard, c) != 0) {
        conn_close(shard, c, "out of memory for TLS");
        return;
    }
    // Steps go to the handshake thread while established sessions are moving bytes (they must
    // not wait for a step), and while steps are out there (they share the worker's verifier
    // and scratch). Otherwise the worker runs the step itself: a handoff costs two context
    // switches per event, which is wasted when no one is waiting.
    if (shard->hs != NULL &&
        (shard->proc->cfg.handshake_thread == CORE_HS_THREAD_ALWAYS ||
         core_base_now_ns() < shard->hs_protect_until_ns || core_hs_inflight(shard) > 0)) {
        hs_stage(shard, c);
        return;
    }
    struct core_hs_result res;
    core_hs_step(shard, c, CORE_IDX_NONE, &res);
    hs_finish(shard, c, &res);
}

// tls_read is SSL_read into `dst`. Where SSL_read's own memcpy of the plaintext into `dst`
// would take memcpy's slow case (core_base_copy), it reads one record into the worker's stage
// instead, at the page offset BoringSSL decrypts at, and copies from there with core_base_copy:
// two fast copies instead of one at ~3 GB/s.
static int tls_read(struct core_shard *shard, struct core_conn *c, uint8_t *dst, uint32_t room) {
    uint32_t want = room < CORE_TLS_RECORD_MAX ? room : CORE_TLS_RECORD_MAX;
    const uint8_t *from = (const uint8_t *)(uintptr_t)c->tls_rx_page_off; // offset only matters
    if (!c->tls_rx_known || !core_base_copy_is_slow(dst, from, want)) {
        return SSL_read(c->ssl, dst, (int)room);
    }
    uint8_t *stage = shard->tls_stage + c->tls_rx_page_off;
    int n = SSL_read(c->ssl, stage, (int)want);
    if (n > 0) {
        core_base_copy(dst, stage, (size_t)n);
    }
    return n;
}

// SSL_read into the backend side's chunk. Returns false when the connection was closed.
static bool tls_read_into_backend(struct core_shard *shard, struct core_conn *c) {
    struct core_side *be = &c->side[CORE_SIDE_BACKEND];
    for (;;) {
        out_compact(shard, be);
        if (be->out_chunk == CORE_CHUNK_NONE) {
            be->out_chunk = core_conn_chunk_get(shard); // LIFO: usually the one just released
            be->out_len = be->out_sent = 0;
        }
        uint32_t room = CORE_CHUNK_BYTES - be->out_len;
        if (room == 0) {
            return true; // backpressure: the backend must drain first
        }
        int n = tls_read(shard, c, core_conn_chunk_addr(shard, be->out_chunk) + be->out_len, room);
        if (n > 0) {
            be->out_len += (uint32_t)n;
            c->side[CORE_SIDE_CLIENT].bytes_rx += (uint64_t)n;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ) {
            if (be->out_len == 0 && be->out_inflight == 0) {
                core_conn_chunk_put(shard, be->out_chunk);
                be->out_chunk = CORE_CHUNK_NONE;
            }
            return true;
        }
        if (err == SSL_ERROR_ZERO_RETURN && c->state == CORE_CONN_FORWARD) {
            // close_notify: a half-close (see client_shut). A bare TCP close without it still
            // ends the session at once below: it may be a truncation, and the client is gone.
            // The client's socket stays watched: a reset still ends the session, and anything
            // it sends after close_notify is dropped unread (on_recv).
            ERR_clear_error();
            if (!c->client_shut) {
                c->client_shut = true;
                c->close_reason = "client ended the session (close_notify)";
            }
            return true;
        }
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && n == 0)) {
            ERR_clear_error();
            c->side[CORE_SIDE_CLIENT].recv_eof = true;
            c->close_after_flush = true;
            return true;
        }
        char why[128];
        core_tls_describe_error(why, sizeof(why));
        LOG_DEBUG("TLS read failed: %s", why);
        c->close_after_flush = true;
        side_flush(shard, c, CORE_SIDE_CLIENT); // any alert BoringSSL queued
        return true;
    }
}

static void step_startup(struct core_shard *shard, struct core_conn *c) {
    if (!tls_read_into_backend(shard, c) || conn_is_gone(c)) {
        return;
    }
    struct core_side *be = &c->side[CORE_SIDE_BACKEND];
    if (c->close_after_flush) {
        conn_close(shard, c, c->close_reason ? c->close_reason : "client closed before startup");
        return;
    }
    if (be->out_chunk == CORE_CHUNK_NONE) {
        return;
    }
    uint8_t *buf = core_conn_chunk_addr(shard, be->out_chunk);
    uint32_t msg_len = 0;
    const char *reason = NULL;
    enum core_pgwire_startup st =
        core_pgwire_startup(buf, be->out_len, &msg_len, c->user, sizeof(c->user), c->database,
                            sizeof(c->database), &reason);
    switch (st) {
    case CORE_STARTUP_NEED_MORE:
        return;
    case CORE_STARTUP_CANCEL: {
        uint8_t req[16];
        memcpy(req, buf, 16);
        be->out_len = 0;
        cancel_route(shard, req);
        conn_close(shard, c, "cancel request handled");
        return;
    }
    case CORE_STARTUP_BAD:
    case CORE_STARTUP_VERSION:
        atomic_fetch_add_explicit(&shard->counters.protocol_errors, 1, memory_order_relaxed);
        be->out_len = 0;
        conn_fail(shard, c, "08P01", reason);
        return;
    case CORE_STARTUP_OK:
        break;
    }
    if ((core_pgwire_be32(buf + 4) & 0xffffu) != 0) {
        // 3.x with x > 0: speak 3.0 to the backend (CockroachDB accepts only 3.0) and tell the
        // client so with NegotiateProtocolVersion.
        core_pgwire_put_be32(buf + 4, CORE_PG_PROTOCOL_3_0);
        uint8_t v[13] = {'v'};
        core_pgwire_put_be32(v + 1, 12);
        core_pgwire_put_be32(v + 5, 0);
        core_pgwire_put_be32(v + 9, 0);
        if (SSL_write(c->ssl, v, sizeof(v)) <= 0) {
            ERR_clear_error();
        }
    }
    if (shard->policy != NULL && (c->attest_denied || !core_attest_role_check(shard, c))) {
        // Denied: the reason goes to the client inside TLS; nothing reaches the backend.
        atomic_fetch_add_explicit(&shard->counters.attest_denied, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&shard->counters.decisions_denied, 1, memory_order_relaxed);
        core_deny_count_add(shard, c->deny_code);
        LOG_INFO("conn %u.%u: %s", shard->id, c->index, c->deny_reason);
        be->out_len = 0;
        if (shard->proc->store != NULL) {
            uint64_t seq = 0;
            int ret = core_audit_decision(shard, c, NULL, &seq);
            if (ret != 0) {
                atomic_fetch_add_explicit(&shard->counters.audit_lost, 1, memory_order_relaxed);
                LOG_WARN("worker %u: denial record not queued: %s", shard->id, strerror(-ret));
            }
            core_decision_put(shard, c); // recorded (or counted as lost): not again at close
        }
        conn_fail(shard, c, "28000", c->deny_reason);
        return;
    }
    if (shard->proc->cfg.backend_count > 1) {
        // Kept to start the session again on another backend if the first one refuses it
        // (backend_retry); without a copy it is simply not retried.
        c->startup_copy = malloc(msg_len);
        if (c->startup_copy != NULL) {
            memcpy(c->startup_copy, buf, msg_len);
            c->startup_len = msg_len;
        }
    }
    if (shard->proc->store != NULL) {
        audit_admit(shard, c);
        return;
    }
    count_admitted(shard, c);
    start_backend(shard, c);
}

static void count_admitted(struct core_shard *shard, struct core_conn *c) {
    bool warned = c->decision != CORE_IDX_NONE &&
                  shard->decisions[c->decision].verdict == ATLS__VERDICT__VERDICT_WARNED;
    atomic_fetch_add_explicit(warned ? &shard->counters.decisions_warned
                                     : &shard->counters.decisions_allowed,
                              1, memory_order_relaxed);
}

// audit_admit queues the allowing decision record and parks the connection until the store
// reports it durable (DESIGN.md §9): no byte reaches the backend before. A full ring or a
// failed store refuses the session (fail closed).
static void audit_admit(struct core_shard *shard, struct core_conn *c) {
    uint64_t seq = 0;
    int ret = core_audit_decision(shard, c, NULL, &seq);
    if (ret != 0) {
        atomic_fetch_add_explicit(&shard->counters.audit_refused, 1, memory_order_relaxed);
        core_decision_put(shard, c); // nothing to record at close: the refusal is counted
        char msg[CORE_DENY_REASON_MAX];
        if (ret == -EAGAIN) {
            snprintf(msg, sizeof(msg),
                     "audit trail busy: this gateway cannot record the session now; retry");
            conn_fail(shard, c, "53300", msg);
            return;
        }
        char why[128];
        (void)store_health_error(shard->proc->store, why, sizeof(why));
        snprintf(msg, sizeof(msg), "audit trail unavailable, sessions refused: %s",
                 ret == -EMSGSIZE ? "record too large" : why);
        conn_fail(shard, c, "58030", msg);
        return;
    }
    count_admitted(shard, c);
    core_decision_put(shard, c);
    c->audit_seq = seq;
    c->admitted = true;
    c->admitted_wall_ns = core_base_wall_ns();
    c->state = CORE_CONN_AUDIT_WAIT;
    if (shard->audit_wait_len == shard->conns_max) {
        audit_wait_compact(shard);
    }
    ASSERT(shard->audit_wait_len < shard->conns_max);
    shard->audit_wait[(shard->audit_wait_head + shard->audit_wait_len) % shard->conns_max] =
        (uint64_t)c->generation << 32 | c->index;
    shard->audit_wait_len++;
    audit_release_durable(shard);
}

// audit_wait_entry_live: the parked connection an audit_wait entry names still waits there.
static bool audit_wait_entry_live(const struct core_shard *shard, uint64_t entry) {
    const struct core_conn *c = &shard->conns[(uint32_t)entry];
    return c->state == CORE_CONN_AUDIT_WAIT && c->generation == (uint32_t)(entry >> 32) &&
           !c->close_after_flush;
}

// audit_wait_compact drops the entries of connections that closed while parked. They leave the
// queue only when they reach its head, so while the head's record waits for the disk, slots that
// close and are reused add entries beyond conns_max; the live ones are at most one per slot.
static void audit_wait_compact(struct core_shard *shard) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < shard->audit_wait_len; i++) {
        uint64_t entry = shard->audit_wait[(shard->audit_wait_head + i) % shard->conns_max];
        if (audit_wait_entry_live(shard, entry)) {
            shard->audit_wait[(shard->audit_wait_head + kept) % shard->conns_max] = entry;
            kept++;
        }
    }
    shard->audit_wait_len = kept;
}

// audit_release_durable starts the backend of every parked connection whose decision record
// is now durable. Parked connections are in push order, so the queue drains from its head.
static void audit_release_durable(struct core_shard *shard) {
    struct store *store = shard->proc->store;
    uint64_t durable = store_durable_seq(store, shard->id);
    bool healthy = store_is_healthy(store);
    while (shard->audit_wait_len > 0) {
        uint64_t entry = shard->audit_wait[shard->audit_wait_head];
        struct core_conn *c = &shard->conns[(uint32_t)entry];
        // A session failed while it waited (revoked by a reload, or timed out) is flushing its
        // ErrorResponse: it must never reach the backend.
        bool waiting = audit_wait_entry_live(shard, entry);
        if (waiting && c->audit_seq > durable && healthy) {
            break;
        }
        shard->audit_wait_head = (shard->audit_wait_head + 1) % shard->conns_max;
        shard->audit_wait_len--;
        if (!waiting) {
            continue; // closed while waiting (its slot may even be reused)
        }
        if (c->audit_seq > durable) {
            char why[128];
            (void)store_health_error(store, why, sizeof(why));
            char msg[CORE_DENY_REASON_MAX];
            snprintf(msg, sizeof(msg), "audit trail unavailable, sessions refused: %s", why);
            atomic_fetch_add_explicit(&shard->counters.audit_refused, 1, memory_order_relaxed);
            conn_fail(shard, c, "58030", msg);
            continue;
        }
        start_backend(shard, c);
        if (!conn_is_gone(c)) {
            conn_pump(shard, c);
        }
    }
}

static void start_backend(struct core_shard *shard, struct core_conn *c) {
    uint32_t idx = core_backend_pick(shard->proc, 0);
    if (idx == CORE_IDX_NONE) {
        conn_fail(shard, c, "08006", "could not connect to the database: no backend available");
        return;
    }
    c->backend_idx = idx;
    c->state = CORE_CONN_CONNECTING;
    backend_connect(shard, c);
}

// backend_blame marks the backend of starting session `c` down for health_interval_ms, as a failed
// connect would, counts a backend error and says `why` (at most once a second).
static void backend_blame(struct core_shard *shard, struct core_conn *c, const char *why) {
    core_backend_mark_down(shard->proc, c->backend_idx);
    atomic_fetch_add_explicit(&shard->counters.backend_errors, 1, memory_order_relaxed);
    if (core_base_log_due(&shard->backend_silent_logged_ns)) {
        LOG_WARN("backend %s: %s; skipped for health_interval_ms",
                 shard->proc->cfg.backends[c->backend_idx].text, why);
    }
}

// backend_refused_session: the backend answered a starting session with an ErrorResponse (whose
// first bytes are in scan_err). One whose SQLSTATE says the node takes no new sessions is marked
// down for health_interval_ms, as a failed connect would be.
static void backend_refused_session(struct core_shard *shard, struct core_conn *c) {
    char code[6];
    char why[48];
    core_pgwire_error_sqlstate(c->scan_err, c->scan_err_len, code);
    c->scan_err_len = 0;
    if (c->backend_idx != CORE_IDX_NONE && core_pgwire_sqlstate_refuses(code, why)) {
        backend_blame(shard, c, why);
    }
}

// backend_retry moves starting session `c`, whose backend refused it or ended it without a
// byte, to another backend, if nothing of the first reached the client: the first is blamed
// (backend_blame, with `why`) and the StartupMessage kept at startup is sent to the next one.
// A client never learns of it. Only while no operation on the backend socket is in flight, and
// the client has sent nothing but its StartupMessage (nothing else could be replayed), and an
// untried backend is up. Returns whether it moved the session; if not, nothing changed.
static bool backend_retry(struct core_shard *shard, struct core_conn *c, const char *why) {
    struct core_side *be = &c->side[CORE_SIDE_BACKEND];
    if (c->startup_copy == NULL || c->state != CORE_CONN_FORWARD || !c->scan_active ||
        c->client_shut || // its SHUTDOWN may be in flight on the socket slot the retry reuses
        c->close_after_flush || c->side[CORE_SIDE_CLIENT].bytes_tx != 0 || be->recv_armed ||
        be->recv_starved || !side_out_empty(be) || be->bytes_tx != c->startup_len) {
        return false;
    }
    uint32_t next = core_backend_pick(shard->proc, c->connect_tries);
    if (next == CORE_IDX_NONE) {
        return false;
    }
    backend_blame(shard, c, why);
    atomic_fetch_sub_explicit(&shard->proc->backends[c->backend_idx].active, 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&shard->counters.backend_retries, 1, memory_order_relaxed);
    LOG_DEBUG("conn %u.%u: backend %s %s; retrying on %s", shard->id, c->index,
              shard->proc->cfg.backends[c->backend_idx].text, why,
              shard->proc->cfg.backends[next].text);
    in_release_all(shard, be); // the refusal, never forwarded
    core_side_close(shard, be);
    be->recv_eof = false;
    be->wr_shut = false;
    be->bytes_rx = 0;
    be->bytes_tx = 0;
    if (be->out_chunk != CORE_CHUNK_NONE) {
        be->out_len = 0;
        be->out_sent = 0;
    }
    memset(&c->b2c_frames, 0, sizeof(c->b2c_frames));
    c->scan_active = false; // on_connect starts the scan again
    c->scan_err_len = 0;
    c->have_backend_key = false;
    c->close_reason = NULL;
    c->backend_idx = next;
    c->state = CORE_CONN_CONNECTING;
    uint32_t queued = core_shard_out_append(shard, be, c->startup_copy, c->startup_len);
    ASSERT(queued == c->startup_len);
    backend_connect(shard, c);
    return true;
}

// backend_first_refusal: whether the first message the backend sent, held unforwarded in `be`,
// is an ErrorResponse whose SQLSTATE refuses new sessions (1; its text in why), or not (0), or
// its first bytes are still to come (-1).
static int backend_first_refusal(struct core_shard *shard, const struct core_side *be,
                                 char why[48]) {
    uint8_t head[5 + 64];
    uint32_t have = in_peek(shard, be, head, sizeof(head));
    if (have == 0 || head[0] != 'E') {
        return 0;
    }
    if (have < 5) {
        return be->recv_eof ? 0 : -1;
    }
    uint32_t len = core_pgwire_be32(head + 1);
    uint32_t want = len < 4 ? 5 : 5 + (len - 4 < 64 ? len - 4 : 64);
    if (have < want) {
        return be->recv_eof ? 0 : -1;
    }
    char code[6];
    core_pgwire_error_sqlstate(head + 5, want - 5, code);
    return core_pgwire_sqlstate_refuses(code, why) ? 1 : 0;
}

// Backend -> client during startup: replace BackendKeyData with our routing key, until the
// first ReadyForQuery. Follows the messages with c->b2c_frames, which it advances over all `n`
// bytes (so the caller does not).
static void scan_backend_bytes(struct core_shard *shard, struct core_conn *c, uint8_t *p,
                               uint32_t n) {
    struct core_pgwire_frames *f = &c->b2c_frames;
    uint32_t i = 0;
    while (i < n && c->scan_active) {
        // One header byte at a time (the frame's type and length decide what follows), a body
        // in one piece.
        uint32_t take = f->body_left == 0 ? 1 : (n - i < f->body_left ? n - i : f->body_left);
        if (f->body_left > 0 && f->last_type == 'E') {
            uint32_t off = f->body_len - f->body_left;
            for (uint32_t k = 0; k < take && off + k < sizeof(c->scan_err); k++) {
                c->scan_err[off + k] = p[i + k];
                c->scan_err_len = (uint8_t)(off + k + 1);
            }
        }
        if (f->body_left > 0 && f->last_type == 'K' && f->body_len == 8) {
            uint8_t mine[8];
            core_pgwire_put_be32(mine, c->proxy_pid);
            core_pgwire_put_be32(mine + 4, c->proxy_key);
            for (uint32_t k = 0; k < take; k++) {
                uint32_t pos = 8 - f->body_left + k;
                c->scan_key[pos] = p[i + k];
                p[i + k] = mine[pos];
            }
            if (take == f->body_left) {
                c->backend_pid = core_pgwire_be32(c->scan_key);
                c->backend_key = core_pgwire_be32(c->scan_key + 4);
                c->have_backend_key = true;
            }
        }
        core_pgwire_frames_advance(f, p + i, take);
        i += take;
        if (f->last_type == 'E' && core_pgwire_frames_is_boundary(f)) {
            backend_refused_session(shard, c);
        }
        if (f->last_type == 'Z' && core_pgwire_frames_is_boundary(f)) {
            c->scan_active = false;
            free(c->startup_copy); // the session started: never retried from now on
            c->startup_copy = NULL;
        }
    }
    core_pgwire_frames_advance(f, p + i, n - i); // the rest: framing only
    if (!c->scan_active) {
        set_idle_deadline(shard, c); // the session is ready: from now on only idleness counts
    }
}

// backend_failed_silently: the backend accepted the connection of a starting session and then
// closed it, failed it or let its start deadline pass without sending a single byte (a node
// shutting down, a port something else listens on). Health is otherwise judged on connect
// only, and such a backend, its sessions failing at once, would always have the fewest
// connections and draw every new session: mark it down like a failed connect. A backend that
// answered anything, an authentication error for instance, is not blamed. The session is
// retried on another backend where it can be (backend_retry): returns whether it was.
static bool backend_failed_silently(struct core_shard *shard, struct core_conn *c) {
    if (c->state != CORE_CONN_FORWARD || !c->scan_active ||
        c->side[CORE_SIDE_CLIENT].bytes_tx != 0 || c->backend_idx == CORE_IDX_NONE) {
        return false;
    }
    const char *why = "ended a new session without a byte";
    if (backend_retry(shard, c, why)) {
        return true;
    }
    backend_blame(shard, c, why);
    return false;
}

// Backend bytes -> SSL_write -> client chunk, bounded by the client's free space.
static void pump_b2c(struct core_shard *shard, struct core_conn *c) {
    struct core_side *be = &c->side[CORE_SIDE_BACKEND];
    struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    uint8_t scratch[CORE_TLS_RECORD_MAX];
    if (c->startup_copy != NULL && c->scan_active && cl->bytes_tx == 0 && be->in_bytes > 0 &&
        !c->close_after_flush) {
        // The backend's first message is held until it is known not to refuse the session: a
        // refusal the client has not seen can be retried on another backend.
        char why[48];
        int refused = backend_first_refusal(shard, be, why);
        if (refused < 0 || (refused > 0 && backend_retry(shard, c, why))) {
            return;
        }
    }
    // Once the session is failing (conn_fail) nothing more of the backend's goes out.
    while (be->in_bytes > 0 && c->state == CORE_CONN_FORWARD && !c->close_after_flush) {
        out_compact(shard, cl);
        if (out_free(cl) < CORE_TLS_RECORD_MAX + CORE_TLS_OVERHEAD_MAX) {
            break; // backpressure: the client must drain first
        }
        uint32_t i = be->in_head;
        uint8_t *p = ring_buf_addr(&shard->bufs, be->in_bid[i]) + be->in_off;
        uint32_t n = be->in_len[i] - be->in_off;
        if (n > CORE_TLS_RECORD_MAX) {
            n = CORE_TLS_RECORD_MAX;
        }
        if (c->scan_active) {
            core_base_copy(scratch, p, n);
            p = scratch;
            scan_backend_bytes(shard, c, p, n); // advances b2c_frames
        } else {
            core_pgwire_frames_advance(&c->b2c_frames, p, n); // reads only type and length bytes
        }
        int w = SSL_write(c->ssl, p, (int)n);
        if (w <= 0) {
            ERR_clear_error();
            conn_close(shard, c, "TLS write failed");
            return;
        }
        ASSERT((uint32_t)w == n);
        in_consume(shard, be, n);
        cl->bytes_tx += n;
    }
    if (be->recv_eof && be->in_bytes == 0 && !c->close_after_flush) {
        if (backend_failed_silently(shard, c)) {
            return; // moved to another backend
        }
        // After the client's half-close, a backend that closes once idle (its last message a
        // ReadyForQuery, as after Terminate or a half-close) ended the session cleanly: the
        // client's reason stands and nothing is added. Any other close is the backend's doing.
        bool boundary = core_pgwire_frames_is_boundary(&c->b2c_frames);
        bool clean_after_shut = c->client_shut && boundary && c->b2c_frames.last_type == 'Z';
        if (c->client_shut && !clean_after_shut) {
            c->close_reason = "backend closed the session";
        }
        if (!clean_after_shut && c->b2c_frames.last_type != 'E' && boundary) {
            // The backend went away without an ErrorResponse (killed, crashed): tell the
            // client in pgwire, which allows one between messages. Mid-message only the close
            // can say it. (A client that sent Terminate and keeps reading gets it too.)
            out_compact(shard, cl);
            if (out_free(cl) < CORE_TLS_RECORD_MAX + CORE_TLS_OVERHEAD_MAX) {
                return; // on_send pumps again once the client has drained
            }
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "terminating connection: the database server closed the session "
                     "unexpectedly (backend %s)",
                     shard->proc->cfg.backends[c->backend_idx].text);
            uint8_t buf[512];
            uint32_t len = core_pgwire_error(buf, sizeof(buf), "08006", msg);
            ASSERT(len > 0);
            if (SSL_write(c->ssl, buf, (int)len) <= 0) {
                ERR_clear_error();
            }
            c->close_reason = "backend lost mid-session";
        }
        // The backend ended the session: close_notify, then close once flushed.
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
        c->close_after_flush = true;
    }
}

// backend_shut_write passes the client's half-close on: shutdown(SHUT_WR) of the backend socket
// once everything the client sent is written to it (through the ring: the socket may be a ring
// file slot). Once per connection; the session then waits for the backend to close.
static void backend_shut_write(struct core_shard *shard, struct core_conn *c) {
    struct core_side *be = &c->side[CORE_SIDE_BACKEND];
    if (be->wr_shut || be->fd < 0 || !side_out_empty(be)) {
        return;
    }
    struct io_uring_sqe *sqe = conn_sqe(shard, c, CORE_OP_SHUTDOWN);
    if (sqe == NULL) {
        conn_close(shard, c, "submission queue unavailable");
        return;
    }
    io_uring_prep_shutdown(sqe, be->fd, SHUT_WR);
    side_sqe_file(sqe, be);
    be->wr_shut = true;
}

static void on_shutdown(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    struct core_conn *c = conn_of(shard, id);
    conn_cqe_done(shard, c, cqe);
    if (conn_released_if_gone(shard, c)) {
        return;
    }
    if (cqe->res < 0 && cqe->res != -ENOTCONN) {
        conn_close(shard, c, "backend shutdown failed");
    }
}

// client_watch_reset: after the client's half-close and then its FIN nothing more can be
// received, but a reset must still end the session (the backend may not close for a long time):
// a poll for POLLERR | POLLHUP on the client's socket, which a FIN alone does not raise.
static void client_watch_reset(struct core_shard *shard, struct core_conn *c) {
    struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    if (!c->client_shut || !cl->recv_eof || cl->poll_in_armed || cl->fd < 0 ||
        c->state != CORE_CONN_FORWARD || conn_is_gone(c)) {
        return;
    }
    struct io_uring_sqe *sqe = conn_sqe(shard, c, CORE_OP_POLL_CLIENT);
    if (sqe == NULL) {
        conn_close(shard, c, "submission queue unavailable");
        return;
    }
    io_uring_prep_poll_add(sqe, cl->fd, POLLERR | POLLHUP);
    side_sqe_file(sqe, cl);
    cl->poll_in_armed = true;
}

static void conn_pump(struct core_shard *shard, struct core_conn *c) {
    if (c->state == CORE_CONN_PASSTHROUGH) {
        return; // bytes move by splice in passthrough_pump, never through user space
    }
    if (c->state == CORE_CONN_FORWARD) {
        c->last_io_ns = core_base_now_ns(); // see on_conn_expired
        if (c->last_io_ns - c->opened_ns >= CORE_HS_PROTECT_AGE_NS) {
            shard->hs_protect_until_ns = c->last_io_ns + CORE_HS_PROTECT_NS;
        }
    }
    for (int guard = 0; guard < 4; guard++) {
        enum core_conn_state before = c->state;
        switch (c->state) {
        case CORE_CONN_SNIFF:
            step_sniff(shard, c);
            break;
        case CORE_CONN_HANDSHAKE:
            if (c->close_after_flush || c->hs_away || !hs_has_work(c)) {
                break;
            }
            if (!shard->hs_running) {
                hs_enqueue(shard, c); // after this turn's completions (hs_run)
                break;
            }
            step_handshake(shard, c);
            break;
        case CORE_CONN_STARTUP:
            step_startup(shard, c);
            break;
        case CORE_CONN_FORWARD:
            if (!c->client_shut &&
                (!c->close_after_flush || c->side[CORE_SIDE_BACKEND].recv_eof)) {
                (void)tls_read_into_backend(shard, c);
            }
            if (c->state == CORE_CONN_FORWARD) {
                pump_b2c(shard, c);
            }
            break;
        case CORE_CONN_PASSTHROUGH:
        case CORE_CONN_AUDIT_WAIT:
        case CORE_CONN_CONNECTING:
        case CORE_CONN_CANCEL_OUT:
        case CORE_CONN_CLOSING:
        case CORE_CONN_FREE:
            break;
        }
        if (c->state == before || conn_is_gone(c)) {
            break;
        }
    }
    if (conn_is_gone(c)) {
        return;
    }
    side_flush(shard, c, CORE_SIDE_CLIENT);
    if (c->state != CORE_CONN_CONNECTING && c->state != CORE_CONN_AUDIT_WAIT) {
        side_flush(shard, c, CORE_SIDE_BACKEND);
    }
    if (c->client_shut && c->state == CORE_CONN_FORWARD && !c->close_after_flush) {
        backend_shut_write(shard, c);
        if (conn_is_gone(c)) {
            return;
        }
    }
    if (c->close_after_flush) {
        if (side_out_empty(&c->side[CORE_SIDE_CLIENT]) &&
            (c->state != CORE_CONN_FORWARD || side_out_empty(&c->side[CORE_SIDE_BACKEND]))) {
            conn_close(shard, c, c->close_reason ? c->close_reason : "session ended");
            return;
        }
        close_deadline(shard, c);
        return;
    }
    side_arm_recv(shard, c, CORE_SIDE_CLIENT);
    client_watch_reset(shard, c);
    if (c->state == CORE_CONN_FORWARD) {
        side_arm_recv(shard, c, CORE_SIDE_BACKEND);
    }
}

// ---------------------------------------------------------------------------------------------
// Passthrough: non-blocking splice(2) through a per-connection pipe after readiness.

static void passthrough_arm_poll(struct core_shard *shard, struct core_conn *c,
                                 enum core_side_id id, bool want_in, bool want_out) {
    struct core_side *s = &c->side[id];
    bool armed = s->poll_in_armed || s->poll_out_armed;
    // One poll per side, waiting for what is wanted now and for what it already waited for.
    bool in = want_in || s->poll_in_armed;
    bool out = want_out || s->poll_out_armed;
    if ((!in && !out) || (in == s->poll_in_armed && out == s->poll_out_armed)) {
        return;
    }
    enum core_op op = id == CORE_SIDE_CLIENT ? CORE_OP_POLL_CLIENT : CORE_OP_POLL_BACKEND;
    unsigned mask = (in ? POLLIN | POLLRDHUP : 0) | (out ? POLLOUT : 0);
    struct io_uring_sqe *sqe = armed ? ring_get_sqe(&shard->ring) : conn_sqe(shard, c, op);
    if (sqe == NULL) {
        conn_close(shard, c, "submission queue unavailable");
        return;
    }
    if (armed) {
        // The armed poll waits for less than is wanted now (POLLIN, while the other side's
        // bytes wait for this one's POLLOUT): widen it in place. Left as it was, a client that
        // only reads would never wake it, and the transfer would stop for good. -ENOENT when it
        // has completed already: its completion pumps and re-arms.
        uint64_t poll_id = ring_op_pack((uint8_t)op, c->index, c->generation);
        io_uring_prep_poll_update(sqe, poll_id, 0, // new user data: only with UPDATE_USER_DATA
                                  mask, IORING_POLL_UPDATE_EVENTS);
        io_uring_sqe_set_data64(sqe, ring_op_pack(CORE_OP_IGNORE, 0, 0));
    } else {
        io_uring_prep_poll_add(sqe, s->fd, mask);
        side_sqe_file(sqe, s);
    }
    s->poll_in_armed = in;
    s->poll_out_armed = out;
}

// Move bytes src -> pipe -> dst. Returns -errno on a hard error, else 0; sets wants.
static int passthrough_dir(struct core_shard *shard, struct core_conn *c,
                           enum core_side_id src_id, bool *want_in, bool *want_out) {
    struct core_side *src = &c->side[src_id];
    struct core_side *dst = &c->side[src_id ^ 1];
    // Counted as received, like the terminate path counts recv completions.
    atomic_uint_fast64_t *received = src_id == CORE_SIDE_CLIENT ? &shard->counters.bytes_c2b
                                                                : &shard->counters.bytes_b2c;
    for (int rounds = 0; rounds < 16; rounds++) {
        if (src->pipe_bytes > 0) {
            ssize_t n = splice(src->pipe_fd[0], NULL, dst->fd, NULL, src->pipe_bytes,
                               SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n > 0) {
                src->pipe_bytes -= (uint32_t)n;
                dst->bytes_tx += (uint64_t)n;
                continue;
            }
            if (n < 0 && errno == EAGAIN) {
                *want_out = true;
                return 0;
            }
            return n < 0 ? -errno : -EPIPE;
        }
        if (src->recv_eof) {
            if (!dst->wr_shut) {
                (void)shutdown(dst->fd, SHUT_WR);
                dst->wr_shut = true;
            }
            return 0;
        }
        ssize_t n = splice(src->fd, NULL, src->pipe_fd[1], NULL, 1u << 20,
                           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n > 0) {
            src->pipe_bytes += (uint32_t)n;
            src->bytes_rx += (uint64_t)n;
            atomic_fetch_add_explicit(received, (uint64_t)n, memory_order_relaxed);
            continue;
        }
        if (n == 0) {
            src->recv_eof = true;
            continue;
        }
        if (errno == EAGAIN) {
            *want_in = true;
            return 0;
        }
        return -errno;
    }
    // Fairness: yield after a burst and come back through the ring: for the bytes still in the
    // pipe, when the other side can take them (at once if it has room); else for more from this
    // side. Waiting for this side alone could wait forever: a client that has sent its last
    // bytes (which sit in the pipe) waits for the answer to them.
    if (src->pipe_bytes > 0) {
        *want_out = true;
    } else {
        *want_in = true;
    }
    return 0;
}

static void passthrough_pump(struct core_shard *shard, struct core_conn *c) {
    c->last_io_ns = core_base_now_ns(); // see on_conn_expired
    bool in[2] = {false, false};
    bool out[2] = {false, false};
    for (int d = 0; d < 2; d++) {
        bool wi = false;
        bool wo = false;
        int ret = passthrough_dir(shard, c, (enum core_side_id)d, &wi, &wo);
        if (ret < 0) {
            conn_close(shard, c, "passthrough socket error");
            return;
        }
        in[d] |= wi;
        out[d ^ 1] |= wo;
    }
    struct core_side *cl = &c->side[CORE_SIDE_CLIENT];
    struct core_side *be = &c->side[CORE_SIDE_BACKEND];
    if (cl->recv_eof && be->recv_eof && cl->pipe_bytes == 0 && be->pipe_bytes == 0) {
        conn_close(shard, c, "session ended");
        return;
    }
    passthrough_arm_poll(shard, c, CORE_SIDE_CLIENT, in[0], out[0]);
    passthrough_arm_poll(shard, c, CORE_SIDE_BACKEND, in[1], out[1]);
}

static void on_poll(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    struct core_conn *c = conn_of(shard, id);
    conn_cqe_done(shard, c, cqe);
    enum core_side_id sid = id.op == CORE_OP_POLL_CLIENT ? CORE_SIDE_CLIENT : CORE_SIDE_BACKEND;
    c->side[sid].poll_in_armed = false;
    c->side[sid].poll_out_armed = false;
    if (conn_released_if_gone(shard, c)) {
        return;
    }
    if (cqe->res < 0) {
        conn_close(shard, c, "poll failed");
        return;
    }
    if (c->state != CORE_CONN_PASSTHROUGH) {
        // client_watch_reset's poll: the half-closed client reset its connection.
        if (cqe->res & (POLLERR | POLLHUP)) {
            conn_close(shard, c, "client connection error");
            return;
        }
        conn_pump(shard, c);
        return;
    }
    passthrough_pump(shard, c);
}

static int passthrough_start(struct core_shard *shard, struct core_conn *c) {
    for (int i = 0; i < 2; i++) {
        if (pipe2(c->side[i].pipe_fd, O_NONBLOCK | O_CLOEXEC) != 0) {
            return -errno;
        }
    }
    (void)shard;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Completion handlers.

static void on_recv(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    struct core_conn *c = conn_of(shard, id);
    enum core_side_id sid = id.op == CORE_OP_RECV_CLIENT ? CORE_SIDE_CLIENT : CORE_SIDE_BACKEND;
    struct core_side *s = &c->side[sid];
    conn_cqe_done(shard, c, cqe);
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
        s->recv_armed = false;
    }
    if (cqe->res > 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (conn_is_gone(c)) {
            ring_buf_taken(&shard->bufs, bid);
            ring_buf_recycle(&shard->bufs, bid);
            conn_maybe_release(shard, c);
            return;
        }
        if (sid == CORE_SIDE_CLIENT && c->client_shut) {
            // Bytes after the client's close_notify: TLS allows none, and none are read.
            ring_buf_taken(&shard->bufs, bid);
            ring_buf_recycle(&shard->bufs, bid);
            conn_pump(shard, c);
            return;
        }
        in_push(shard, c, s, bid, (uint32_t)cqe->res);
        if (sid == CORE_SIDE_BACKEND) {
            atomic_fetch_add_explicit(&shard->counters.bytes_b2c, (uint64_t)cqe->res,
                                      memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&shard->counters.bytes_c2b, (uint64_t)cqe->res,
                                      memory_order_relaxed);
        }
    } else if (cqe->res == 0) {
        s->recv_eof = true;
    } else if (cqe->res == -ENOBUFS) {
        // The shared buffer ring ran dry; re-arm once buffers come back.
        atomic_fetch_add_explicit(&shard->counters.recv_starved, 1, memory_order_relaxed);
        // Both sides can run dry; the connection is queued once and re-arms both.
        if (c->state != CORE_CONN_CLOSING) {
            s->recv_starved = true;
            if (!c->on_starved) {
                c->on_starved = true;
                c->starved_next = shard->starved_head;
                shard->starved_head = c->index;
            }
        }
    } else if (cqe->res != -ECANCELED) {
        if (sid == CORE_SIDE_BACKEND && c->state == CORE_CONN_FORWARD) {
            // A reset backend ends the session like one that closed it: what it sent goes out,
            // then the client gets 08006 at a message boundary (pump_b2c), not a bare close.
            s->recv_eof = true;
        } else if (c->state != CORE_CONN_CLOSING) {
            conn_close(shard, c, sid == CORE_SIDE_CLIENT ? "client connection error"
                                                         : "backend connection error");
        }
    }
    if (conn_released_if_gone(shard, c)) {
        return;
    }
    if (s->recv_eof && sid == CORE_SIDE_BACKEND && c->state == CORE_CONN_FORWARD &&
        !c->client_shut) {
        c->close_reason = "backend closed the session";
    }
    conn_pump(shard, c);
}

static void on_send(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    struct core_conn *c = conn_of(shard, id);
    enum core_side_id sid = id.op == CORE_OP_SEND_CLIENT ? CORE_SIDE_CLIENT : CORE_SIDE_BACKEND;
    struct core_side *s = &c->side[sid];
    conn_cqe_done(shard, c, cqe);
    s->out_inflight = 0;
    if (conn_released_if_gone(shard, c)) {
        return;
    }
    if (cqe->res < 0) {
        const char *why = sid == CORE_SIDE_BACKEND ? "backend send failed" : "client send failed";
        if (sid == CORE_SIDE_CLIENT && c->client_shut && c->close_reason != NULL) {
            why = c->close_reason; // it half-closed, then left before reading the end: its choice
        }
        conn_close(shard, c, why);
        return;
    }
    s->out_sent += (uint32_t)cqe->res; // a short send leaves the rest for the next side_flush
    if (sid == CORE_SIDE_BACKEND) {
        s->bytes_tx += (uint64_t)cqe->res;
    }
    if (c->state == CORE_CONN_CANCEL_OUT) {
        side_flush(shard, c, sid);
        if (side_out_empty(s)) {
            conn_close(shard, c, "cancel forwarded");
        }
        return;
    }
    conn_pump(shard, c);
}

static void conn_accept(struct core_shard *shard, int fd) {
    if (shard->draining) {
        close(fd);
        return;
    }
    // Every handshake ends in a decision record (DESIGN §2): one is accepted only while the
    // audit ring has a slot for it beyond those the handshakes in progress hold.
    bool audited = shard->proc->store != NULL && shard->proc->cfg.mode != CORE_MODE_PASSTHROUGH;
    if (audited && !core_audit_reserve(shard)) {
        atomic_fetch_add_explicit(&shard->counters.refused_audit_busy, 1, memory_order_relaxed);
        static _Thread_local uint64_t last_busy_log_ns;
        if (core_base_log_due(&last_busy_log_ns)) {
            LOG_WARN("worker %u: audit ring full (the store is behind), refusing connections",
                     shard->id);
        }
        close(fd);
        return;
    }
    struct core_conn *c = core_conn_open(shard);
    if (c == NULL) {
        atomic_fetch_add_explicit(&shard->counters.refused_full, 1, memory_order_relaxed);
        static _Thread_local uint64_t last_log_ns;
        if (core_base_log_due(&last_log_ns)) {
            LOG_WARN("worker %u: all %u connection slots busy, refusing", shard->id,
                     shard->conns_max);
        }
        close(fd);
        return;
    }
    atomic_fetch_add_explicit(&shard->counters.accepted, 1, memory_order_relaxed);
    if (audited) {
        c->audit_owed = true;
        shard->audit_owed++;
    }
    c->conn_id = (uint64_t)shard->id << 48 | ++shard->conn_serial;
    c->side[CORE_SIDE_CLIENT].fd = fd;
    socklen_t plen = sizeof(c->peer);
    (void)getpeername(fd, (struct sockaddr *)&c->peer, &plen);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint8_t rnd[4];
    RAND_bytes(rnd, sizeof(rnd));
    c->proxy_pid = (shard->id << 24) | c->index;
    c->proxy_key = core_pgwire_be32(rnd);
    if (shard->proc->cfg.mode == CORE_MODE_PASSTHROUGH) {
        // Out of FREE first: conn_close ignores a FREE slot, and would leak this one with its
        // descriptors (and keep the worker from ever finishing a drain).
        c->state = CORE_CONN_CONNECTING;
        if (passthrough_start(shard, c) != 0) {
            conn_close(shard, c, "cannot create pipes");
            return;
        }
        uint32_t idx = core_backend_pick(shard->proc, 0);
        if (idx == CORE_IDX_NONE) {
            conn_close(shard, c, "no backend available");
            return;
        }
        c->backend_idx = idx;
        backend_connect(shard, c);
        return;
    }
    c->state = CORE_CONN_SNIFF;
    core_conn_set_deadline(shard, c,
                           c->opened_ns +
                               (uint64_t)shard->proc->cfg.handshake_timeout_ms * 1000000ull);
    side_arm_recv(shard, c, CORE_SIDE_CLIENT);
}

static void arm_accept(struct core_shard *shard, uint32_t li) {
    struct io_uring_sqe *sqe = ring_get_sqe(&shard->ring);
    if (sqe == NULL) {
        return;
    }
    io_uring_prep_multishot_accept(sqe, shard->listen_fd[li], NULL, NULL,
                                   SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ring_op_pack(CORE_OP_ACCEPT, li, 0));
}

static void on_accept(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    bool nofile = cqe->res == -EMFILE || cqe->res == -ENFILE;
    if (cqe->res >= 0) {
        conn_accept(shard, cqe->res);
    } else if (nofile) {
        // Out of descriptors: the connection stays in the backlog, so accepting again at once
        // would fail at once (a busy loop). Pause this listener until the next tick.
        atomic_fetch_add_explicit(&shard->counters.refused_nofile, 1, memory_order_relaxed);
        if (core_base_log_due(&shard->nofile_logged_ns)) {
            LOG_WARN("worker %u: accept failed: %s; pausing accepts (raise LimitNOFILE)",
                     shard->id, strerror(-cqe->res));
        }
    } else if (cqe->res != -ECANCELED && cqe->res != -EBADF) {
        LOG_WARN("accept failed: %s", strerror(-cqe->res));
    }
    if (!(cqe->flags & IORING_CQE_F_MORE) && shard->accepting) {
        if (nofile) {
            shard->accept_paused |= 1u << id.slot;
        } else {
            arm_accept(shard, id.slot);
        }
    }
}

static void on_conn_expired(struct core_shard *shard, struct core_conn *c) {
    if (c->state == CORE_CONN_CLOSING) {
        conn_cancel_pending(shard, c); // a cancel conn_close could not queue
        return;
    }
    if (c->close_after_flush && c->state != CORE_CONN_PASSTHROUGH) {
        // Closing, and its peers did not take what was queued for them in time.
        atomic_fetch_add_explicit(&shard->counters.timeouts, 1, memory_order_relaxed);
        conn_close(shard, c, c->close_reason ? c->close_reason : "closing: queued bytes not taken");
        return;
    }
    uint64_t idle_ns = (uint64_t)shard->proc->cfg.idle_timeout_ms * 1000000ull;
    bool starting = c->state == CORE_CONN_FORWARD && c->scan_active;
    bool idle_timed = c->state == CORE_CONN_PASSTHROUGH || (c->state == CORE_CONN_FORWARD &&
                                                            !starting);
    if (idle_timed && idle_ns != 0 && c->last_io_ns + idle_ns > core_base_now_ns()) {
        // The session moved bytes since this deadline was set. Traffic only stamps
        // last_io_ns; the wheel entry is moved here, once per idle period, not per completion.
        core_conn_set_deadline(shard, c, c->last_io_ns + idle_ns);
        return;
    }
    atomic_fetch_add_explicit(&shard->counters.timeouts, 1, memory_order_relaxed);
    switch (c->state) {
    case CORE_CONN_SNIFF:
    case CORE_CONN_HANDSHAKE:
    case CORE_CONN_STARTUP:
        conn_close(shard, c, "handshake timeout");
        return;
    case CORE_CONN_AUDIT_WAIT:
        atomic_fetch_add_explicit(&shard->counters.audit_refused, 1, memory_order_relaxed);
        conn_fail(shard, c, "58030",
                  "audit trail did not confirm the session record in time; session refused");
        return;
    case CORE_CONN_FORWARD:
    case CORE_CONN_PASSTHROUGH:
        if (starting) {
            if (c->side[CORE_SIDE_CLIENT].bytes_tx == 0) {
                // Counts the error; returns whether it moved the session to another backend.
                if (backend_failed_silently(shard, c)) {
                    return;
                }
            } else {
                atomic_fetch_add_explicit(&shard->counters.backend_errors, 1,
                                          memory_order_relaxed);
            }
            conn_fail(shard, c, "08006",
                      "could not connect to the database: the backend did not complete the "
                      "session startup in time");
            return;
        }
        if (c->state == CORE_CONN_FORWARD && c->ssl != NULL) {
            conn_fail(shard, c, "57P05", "terminating connection due to idle timeout");
            return;
        }
        conn_close(shard, c, "idle timeout");
        return;
    case CORE_CONN_CONNECTING:
        // The handshake deadline passed while the backend connect (connect_timeout_ms, per
        // backend tried) was still waiting. A client that speaks TLS is told why.
        atomic_fetch_add_explicit(&shard->counters.backend_errors, 1, memory_order_relaxed);
        if (c->ssl != NULL) {
            conn_fail(shard, c, "08006",
                      "could not connect to the database: no backend answered before the "
                      "session's start deadline");
            return;
        }
        conn_close(shard, c, "backend connect timeout");
        return;
    default:
        conn_close(shard, c, "timeout");
        return;
    }
}

static void arm_tick(struct core_shard *shard) {
    struct io_uring_sqe *sqe = ring_get_sqe(&shard->ring);
    if (sqe == NULL) {
        return; // retried by the loop (tick_armed)
    }
    shard->tick_armed = true;
    shard->tick_ts.tv_sec = 0;
    shard->tick_ts.tv_nsec = (long long)CORE_TICK_MS * 1000000ll;
    io_uring_prep_timeout(sqe, &shard->tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ring_op_pack(CORE_OP_TICK, 0, 0));
}

static void rearm_starved(struct core_shard *shard) {
    // Re-arm only while at least a quarter of the buffers are free, so the ring can refill.
    while (shard->starved_head != CORE_IDX_NONE &&
           shard->bufs.in_use < shard->bufs.count - shard->bufs.count / 4) {
        struct core_conn *c = &shard->conns[shard->starved_head];
        shard->starved_head = c->starved_next;
        c->on_starved = false;
        c->starved_next = CORE_IDX_NONE;
        for (int i = 0; i < 2; i++) {
            c->side[i].recv_starved = false;
        }
        if (c->state != CORE_CONN_CLOSING && c->state != CORE_CONN_FREE) {
            conn_pump(shard, c);
        }
    }
}

static void drain_step(struct core_shard *shard);

static void on_tick(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    (void)id;
    (void)cqe;
    shard->tick_armed = false;
    uint64_t now = core_base_now_ns();
    core_conn_wheel_expire(shard, now, on_conn_expired);
    core_hs_watch(shard, now);
    core_prio_tick(shard, now);
    if (shard->proc->cfg.busy_poll_us > 0) {
        const struct ring_stats *rs = &shard->ring.stats;
        atomic_store_explicit(&shard->counters.busy_poll_hits, rs->poll_hits, memory_order_relaxed);
        atomic_store_explicit(&shard->counters.busy_poll_misses, rs->poll_misses,
                              memory_order_relaxed);
        atomic_store_explicit(&shard->counters.busy_poll_us, rs->poll_ns / 1000u,
                              memory_order_relaxed);
    }
    rearm_starved(shard);
    atomic_store_explicit(&shard->counters.recv_bufs_in_use, shard->bufs.in_use,
                          memory_order_relaxed);
    for (uint32_t li = 0; li < shard->listen_count && shard->accept_paused != 0; li++) {
        if ((shard->accept_paused & (1u << li)) && shard->accepting) {
            arm_accept(shard, li);
        }
    }
    shard->accept_paused = 0;
    if (shard->audit_wait_len > 0 && !store_is_healthy(shard->proc->store)) {
        audit_release_durable(shard); // refuses the parked sessions: nothing will confirm them
    }
    drain_step(shard);
    if (!shard->stopped) {
        arm_tick(shard);
    }
}

static void on_ignore(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    (void)ctx;
    (void)id;
    (void)cqe;
}

// arm_efd_read queues a read of eventfd `fd` into `buf`, completing as `op`. Returns false when
// the submission queue is full (the caller retries).
static bool arm_efd_read(struct core_shard *shard, int fd, uint64_t *buf, uint8_t op) {
    struct io_uring_sqe *sqe = ring_get_sqe(&shard->ring);
    if (sqe == NULL) {
        return false;
    }
    io_uring_prep_read(sqe, fd, buf, sizeof(*buf), 0);
    io_uring_sqe_set_data64(sqe, ring_op_pack(op, 0, 0));
    return true;
}

static void arm_audit(struct core_shard *shard) {
    // Not queued: the tick notices a stalled queue only through health; retried by the loop.
    shard->audit_armed = arm_efd_read(shard, store_worker_eventfd(shard->proc->store, shard->id),
                                      &shard->audit_efd_buf, CORE_OP_AUDIT);
}

// The store committed a batch for this worker: start the sessions it made durable.
static void on_audit(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    (void)id;
    (void)cqe;
    shard->audit_armed = false;
    audit_release_durable(shard);
    if (!shard->stopped) {
        arm_audit(shard);
    }
}

static void arm_event(struct core_shard *shard) {
    // Not queued: retried by the loop (event_armed).
    shard->event_armed = arm_efd_read(shard, shard->event_fd, &shard->event_buf, CORE_OP_EVENT);
}

static void stop_accepting(struct core_shard *shard) {
    if (!shard->accepting) {
        return;
    }
    shard->accepting = false;
    // Cancel the multishot accepts and close the sockets now, so the kernel stops completing
    // handshakes for us (queued connections are reset rather than left hanging).
    for (uint32_t i = 0; i < shard->listen_count; i++) {
        struct io_uring_sqe *sqe = ring_get_sqe(&shard->ring);
        if (sqe != NULL) {
            io_uring_prep_cancel64(sqe, ring_op_pack(CORE_OP_ACCEPT, i, 0), 0);
            io_uring_sqe_set_data64(sqe, ring_op_pack(CORE_OP_IGNORE, 0, 0));
        }
        // shutdown() takes the socket out of the SO_REUSEPORT group and resets its backlog at
        // once; close() alone leaves it listening while the armed accept holds a reference,
        // and a worker that stops right away may never submit the cancel above.
        (void)shutdown(shard->listen_fd[i], SHUT_RDWR);
        close(shard->listen_fd[i]);
        shard->listen_fd[i] = -1;
    }
}

static void drain_step(struct core_shard *shard) {
    if (!atomic_load(&shard->proc->draining)) {
        return;
    }
    if (!shard->draining) {
        shard->draining = true;
        stop_accepting(shard);
        LOG_INFO("worker %u draining %u connections", shard->id, shard->active);
    }
    if (core_base_now_ns() >= shard->proc->drain_deadline_ns) {
        for (uint32_t i = 0; i < shard->conns_max; i++) {
            struct core_conn *c = &shard->conns[i];
            if (c->state != CORE_CONN_FREE && c->state != CORE_CONN_CLOSING) {
                conn_close(shard, c, "drain deadline reached");
            }
        }
    }
    if (shard->active == 0) {
        shard->stopped = true;
    }
}

static void revoke_session(struct core_shard *shard, struct core_conn *c, const char *reason) {
    LOG_INFO("conn %u.%u: %s", shard->id, c->index, reason);
    atomic_fetch_add_explicit(&shard->counters.attest_denied, 1, memory_order_relaxed);
    conn_fail(shard, c, "28000", reason); // keeps the reason for the disconnect record
}

// mtls_recheck verifies the client chain of every mutual-TLS session past its handshake again,
// against the client CA just adopted, and ends those it no longer admits (28000 with the reason,
// recorded as their close reason), as policy reloads do for attested sessions. Replacing the
// server certificate alone keeps every session: the chains still verify (from the cache after
// the first of each).
static void mtls_recheck(struct core_shard *shard) {
    uint32_t rechecked = 0;
    uint32_t revoked = 0;
    for (uint32_t i = 0; i < shard->conns_max; i++) {
        struct core_conn *c = &shard->conns[i];
        if (c->ssl == NULL || c->close_after_flush ||
            (c->state != CORE_CONN_STARTUP && c->state != CORE_CONN_AUDIT_WAIT &&
             c->state != CORE_CONN_CONNECTING && c->state != CORE_CONN_FORWARD)) {
            continue;
        }
        rechecked++;
        char why[160];
        if (core_tls_client_still_trusted(shard, c, why, sizeof(why))) {
            continue;
        }
        revoked++;
        char reason[CORE_DENY_REASON_MAX];
        snprintf(reason, sizeof(reason), "session ended by the TLS reload: %s", why);
        LOG_INFO("conn %u.%u: %s", shard->id, c->index, reason);
        conn_fail(shard, c, "28000", reason);
    }
    if (rechecked > 0) {
        LOG_INFO("worker %u: %u mutual-TLS sessions checked against the new client CA, %u ended",
                 shard->id, rechecked, revoked);
    }
}

// event_apply: reloads (TLS context, policy), snapshot requests and drain, signalled by the
// main and control threads.
static void event_apply(struct core_shard *shard) {
    shard->event_deferred = false;
    SSL_CTX *next = atomic_exchange(&shard->ssl_ctx_next, NULL);
    if (next != NULL) {
        SSL_CTX_free(shard->ssl_ctx); // live SSLs keep their own reference
        shard->ssl_ctx = next;
        if (shard->certcache != NULL) {
            // What the old context's client CA accepted proves nothing under the new one.
            core_certcache_clear(shard->certcache);
        }
        LOG_INFO("worker %u: TLS certificate reloaded", shard->id);
        if (shard->policy == NULL) {
            mtls_recheck(shard);
        }
    }
    if (shard->policy != NULL) {
        core_attest_policy_changed(shard, revoke_session);
    }
    core_audit_snapshot_answer(shard);
    drain_step(shard);
    if (!shard->stopped) {
        arm_event(shard);
    }
}

static void on_event(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    (void)id;
    (void)cqe;
    shard->event_armed = false;
    if (core_hs_inflight(shard) > 0) {
        // The handshake thread reads the policy, verifier, certificate cache and TLS context
        // this would replace: no new step starts, and the event is applied once the steps in
        // flight are back (on_hs_done).
        shard->event_deferred = true;
        return;
    }
    event_apply(shard);
}

static void arm_hs_done(struct core_shard *shard) {
    // Not queued: retried by the loop (hs_done_armed).
    shard->hs_done_armed =
        arm_efd_read(shard, core_hs_done_fd(shard), &shard->hs_done_buf, CORE_OP_HS_DONE);
}

// The handshake thread finished steps: take them back.
static void on_hs_done(void *ctx, struct ring_op_id id, const struct io_uring_cqe *cqe) {
    struct core_shard *shard = ctx;
    (void)id;
    (void)cqe;
    shard->hs_done_armed = false;
    uint32_t j;
    while (core_hs_done_pop(shard, &j)) {
        hs_done(shard, j);
    }
    if (shard->event_deferred && core_hs_inflight(shard) == 0) {
        event_apply(shard);
    }
    if (!shard->stopped) {
        arm_hs_done(shard);
    }
}

static bool validate_slot(void *ctx, struct ring_op_id id) {
    struct core_shard *shard = ctx;
    if (id.slot >= shard->conns_max) {
        return false;
    }
    const struct core_conn *c = &shard->conns[id.slot];
    return c->magic == CORE_CONN_MAGIC && c->generation == id.generation &&
           c->state != CORE_CONN_FREE;
}

static const struct ring_op_entry core_ops[CORE_OP_COUNT] = {
    [CORE_OP_ACCEPT] = {"accept", on_accept, NULL, false},
    [CORE_OP_RECV_CLIENT] = {"recv-client", on_recv, NULL, true},
    [CORE_OP_RECV_BACKEND] = {"recv-backend", on_recv, NULL, true},
    [CORE_OP_SEND_CLIENT] = {"send-client", on_send, NULL, true},
    [CORE_OP_SEND_BACKEND] = {"send-backend", on_send, NULL, true},
    [CORE_OP_CONNECT] = {"connect", on_connect, NULL, true},
    [CORE_OP_CONNECT_TIMEOUT] = {"connect-timeout", on_connect_timeout, NULL, true},
    [CORE_OP_POLL_CLIENT] = {"poll-client", on_poll, NULL, true},
    [CORE_OP_POLL_BACKEND] = {"poll-backend", on_poll, NULL, true},
    [CORE_OP_TICK] = {"tick", on_tick, NULL, false},
    [CORE_OP_IGNORE] = {"ignore", on_ignore, NULL, false},
    [CORE_OP_EVENT] = {"event", on_event, NULL, false},
    [CORE_OP_MSG] = {"msg", on_msg, NULL, false},
    [CORE_OP_AUDIT] = {"audit", on_audit, NULL, false},
    [CORE_OP_HS_DONE] = {"handshake-done", on_hs_done, NULL, false},
    [CORE_OP_SHUTDOWN] = {"shutdown", on_shutdown, NULL, true},
};

// ---------------------------------------------------------------------------------------------
// Thread.

static int open_listener(const struct core_addr *a, char *err, size_t err_len) {
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "listen %s: socket: %s", a->text, strerror(errno));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, err_len, "listen %s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

// The ring is created on the worker thread itself: SINGLE_ISSUER binds it to its creator.
static int shard_ring_setup(struct core_shard *shard) {
    struct ring_config rc = {.sq_entries = 1024, .cq_entries = 8192, .cqe_batch_max = 256};
    int ret = ring_open(&shard->ring, &rc, core_ops, CORE_OP_COUNT, validate_slot, shard);
    if (ret != 0) {
        snprintf(shard->start_err, sizeof(shard->start_err), "io_uring setup failed: %s",
                 strerror(-ret));
        return ret;
    }
    ret = ring_buf_open(&shard->bufs, &shard->ring, 1, CORE_RECV_BUFS, CORE_RECV_BUF_BYTES);
    if (ret != 0) {
        snprintf(shard->start_err, sizeof(shard->start_err),
                 "io_uring buffer ring setup failed: %s", strerror(-ret));
        return ret;
    }
    // Backend sockets as direct descriptors (terminate mode; passthrough splices with plain
    // ones): a session then takes one entry of the process's descriptor table, not two, so
    // RLIMIT_NOFILE = N holds about N sessions instead of N / 2. The kernel caps the table at
    // RLIMIT_NOFILE as well. Only on a ring with the 6.1 flags: closing a session cancels by
    // file slot (IORING_ASYNC_CANCEL_FD_FIXED, 6.0). Otherwise backend sockets are descriptors.
    shard->fixed_files = 0;
    if (shard->proc->cfg.mode != CORE_MODE_TERMINATE) {
        return 0;
    }
    if (!shard->ring.defer_taskrun) {
        LOG_WARN("worker %u: io_uring without DEFER_TASKRUN (kernel < 6.1): backend sockets use "
                 "descriptors, two per session",
                 shard->id);
        return 0;
    }
    uint32_t n = shard->conns_max;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n) {
        n = (uint32_t)rl.rlim_cur;
    }
    ret = n > 0 ? ring_files_open(&shard->ring, n) : -EINVAL;
    if (ret == 0) {
        shard->fixed_files = n;
    } else {
        LOG_WARN("worker %u: no io_uring file table (%s): backend sockets use descriptors, "
                 "two per session",
                 shard->id, strerror(-ret));
    }
    return 0;
}

static void *shard_main(void *arg) {
    struct core_shard *shard = arg;
    char name[16];
    snprintf(name, sizeof(name), "atls-w%u", shard->id); // top -H, perf, chrt find it by name
    (void)pthread_setname_np(pthread_self(), name);
    shard->start_ret = shard_ring_setup(shard);
    if (shard->start_ret != 0) {
        sem_post(&shard->started);
        return NULL;
    }
    // Pin to the id-th CPU of the set the process was started with (taskset, cpusets,
    // systemd CPUAffinity=), never to a CPU outside it.
    cpu_set_t allowed, set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) > 0) {
        uint32_t want = shard->id % (uint32_t)CPU_COUNT(&allowed);
        for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
            if (CPU_ISSET(cpu, &allowed) && (uint32_t)seen++ == want) {
                CPU_SET(cpu, &set);
                break;
            }
        }
        (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    if (shard->proc->cfg.handshake_thread != CORE_HS_THREAD_OFF) {
        // Started from here so that it inherits this thread's CPU.
        shard->start_ret = core_hs_start(shard, shard->start_err, sizeof(shard->start_err));
        if (shard->start_ret != 0) {
            sem_post(&shard->started);
            return NULL;
        }
        arm_hs_done(shard);
    }
    // After the handshake thread exists: it would inherit SCHED_FIFO.
    core_prio_start(shard, core_base_now_ns());
    atomic_store_explicit(&shard->msg_fd, ring_fd(&shard->ring), memory_order_release);
    sem_post(&shard->started);
    for (uint32_t i = 0; i < shard->listen_count; i++) {
        arm_accept(shard, i);
    }
    arm_tick(shard);
    arm_event(shard);
    if (shard->proc->store != NULL) {
        arm_audit(shard);
    }
    STATIC_ASSERT(CORE_BUSY_POLL_US_MAX * 1000ull <= RING_BUSY_POLL_NS_MAX, "busy poll bound");
    const uint64_t busy_poll_ns = (uint64_t)shard->proc->cfg.busy_poll_us * 1000u;
    while (!shard->stopped) {
        if (shard->proc->store != NULL && !shard->audit_armed) {
            arm_audit(shard); // the submission queue was full when on_audit re-armed
        }
        if (shard->hs != NULL && !shard->hs_done_armed) {
            arm_hs_done(shard);
        }
        if (!shard->tick_armed) {
            arm_tick(shard);
        }
        if (!shard->event_armed && !shard->event_deferred) {
            arm_event(shard); // on_event defers while steps are away; event_apply re-arms
        }
        // No busy poll while handshake steps are at the handshake thread: it runs on this CPU,
        // at the lowest priority, and the poll would hold it off.
        ring_set_busy_poll(&shard->ring, core_hs_inflight(shard) > 0 ? 0 : busy_poll_ns);
        // Queued handshakes that can step: only collect what has completed, then step.
        int ret = ring_run_once(&shard->ring, hs_can_step(shard) ? 0 : 1000);
        if (ret < 0) {
            LOG_ERROR("worker %u: ring failed: %s", shard->id, strerror(-ret));
            break;
        }
        if (hs_can_step(shard)) {
            // What this turn's completions queued (forwarded bytes above all) leaves before the
            // handshake step, not after it, so a forwarded query waits for no extra step.
            ret = ring_flush(&shard->ring);
            if (ret < 0) {
                LOG_ERROR("worker %u: ring failed: %s", shard->id, strerror(-ret));
                break;
            }
            hs_run(shard);
        }
    }
    core_hs_stop(shard); // after the last step came back (every away connection was active)
    core_prio_stop(shard);
    core_audit_snapshot_close(shard);
    return NULL;
}

int core_shard_start(struct core_proc *proc, struct core_shard *shard, uint32_t id,
                     SSL_CTX *ctx, char *err, size_t err_len) {
    shard->id = id;
    shard->proc = proc;
    shard->event_fd = -1;
    atomic_store_explicit(&shard->msg_fd, -1, memory_order_relaxed);
    for (uint32_t i = 0; i < CORE_LISTEN_MAX; i++) {
        shard->listen_fd[i] = -1;
    }
    ring_init(&shard->ring);
    ring_buf_init(&shard->bufs);
    int ret;
    ret = core_conn_table_init(shard, proc->cfg.conns_max);
    if (ret != 0) {
        snprintf(err, err_len, "cannot allocate %u connection slots", proc->cfg.conns_max);
        return ret;
    }
    for (uint32_t i = 0; i < proc->cfg.listen_count; i++) {
        int fd = open_listener(&proc->cfg.listen[i], err, err_len);
        if (fd < 0) {
            return -EADDRINUSE;
        }
        shard->listen_fd[i] = fd;
        shard->listen_count++;
    }
    if (core_audit_shard_init(shard) != 0) {
        snprintf(err, err_len, "cannot allocate the audit tables");
        return -ENOMEM;
    }
    pthread_mutex_init(&shard->snap.mu, NULL);
    pthread_cond_init(&shard->snap.cv, NULL);
    if (atomic_load(&proc->policy) != NULL) {
        ret = core_attest_shard_init(shard, err, err_len);
        if (ret != 0) {
            return ret;
        }
    }
    shard->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (shard->event_fd < 0) {
        snprintf(err, err_len, "eventfd: %s", strerror(errno));
        return -errno;
    }
    if (proc->cfg.mode == CORE_MODE_TERMINATE && !proc->cfg.attestation_required &&
        core_certcache_new(&shard->certcache) != 0) {
        snprintf(err, err_len, "cannot allocate the client certificate cache");
        return -ENOMEM;
    }
    SSL_CTX_up_ref(ctx);
    shard->ssl_ctx = ctx;
    shard->accepting = true;
    sem_init(&shard->started, 0, 0);
    if (pthread_create(&shard->thread, NULL, shard_main, shard) != 0) {
        snprintf(err, err_len, "cannot start worker thread");
        return -EAGAIN;
    }
    shard->thread_started = true;
    while (sem_wait(&shard->started) != 0) {
    }
    if (shard->start_ret != 0) {
        snprintf(err, err_len, "%s", shard->start_err);
        return shard->start_ret;
    }
    return 0;
}

void core_shard_wake(struct core_shard *shard) {
    uint64_t one = 1;
    ssize_t n = write(shard->event_fd, &one, sizeof(one));
    (void)n;
}

void core_shard_wait(struct core_shard *shard) {
    if (shard->thread_started) {
        pthread_join(shard->thread, NULL);
        shard->thread_started = false;
    }
}

void core_shard_join(struct core_shard *shard) {
    core_shard_wait(shard);
    for (uint32_t i = 0; i < shard->listen_count; i++) {
        if (shard->listen_fd[i] >= 0) {
            close(shard->listen_fd[i]);
        }
    }
    if (shard->event_fd >= 0) {
        close(shard->event_fd);
    }
    SSL_CTX *next = atomic_exchange(&shard->ssl_ctx_next, NULL);
    SSL_CTX_free(next);
    SSL_CTX_free(shard->ssl_ctx);
    shard->ssl_ctx = NULL;
    core_certcache_free(shard->certcache);
    shard->certcache = NULL;
    ring_buf_cleanup(&shard->bufs, &shard->ring);
    ring_cleanup(&shard->ring);
    core_conn_table_cleanup(shard);
    core_attest_shard_cleanup(shard);
    core_audit_shard_cleanup(shard);
}
