// ring.c: io_uring setup with feature fallback, submission and the bounded reap loop.
#include "ring.h"

#include <errno.h>
#include <string.h>

#include "core_base.h"

void ring_init(struct ring *r) {
    memset(r, 0, sizeof(*r));
}

int ring_open(struct ring *r, const struct ring_config *cfg, const struct ring_op_entry *ops,
              uint32_t ops_len, ring_op_validate_fn validate, void *ctx) {
    ASSERT(r != NULL && cfg != NULL && ops != NULL);
    ASSERT(ops_len > 0 && ops_len <= RING_OPS_MAX);
    ASSERT(cfg->cqe_batch_max > 0 && cfg->cqe_batch_max <= RING_CQE_BATCH_MAX);
    ASSERT(!r->initialized);

    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = cfg->cq_entries;
    int ret = io_uring_queue_init_params(cfg->sq_entries, &r->uring, &p);
    if (ret == -EINVAL) {
        // Kernels before 6.1 lack DEFER_TASKRUN; COOP_TASKRUN still avoids IPIs.
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
        p.cq_entries = cfg->cq_entries;
        ret = io_uring_queue_init_params(cfg->sq_entries, &r->uring, &p);
        r->defer_taskrun = false;
    } else {
        r->defer_taskrun = (ret == 0);
    }
    if (ret < 0) {
        return ret;
    }
    r->initialized = true;
    r->cqe_batch_max = cfg->cqe_batch_max;
    r->ops = ops;
    r->ops_len = ops_len;
    r->validate = validate;
    r->ctx = ctx;
    return 0;
}

void ring_cleanup(struct ring *r) {
    if (r->initialized) {
        io_uring_queue_exit(&r->uring);
        r->initialized = false;
    }
}

int ring_fd(const struct ring *r) {
    return r->uring.ring_fd;
}

int ring_files_open(struct ring *r, uint32_t count) {
    ASSERT(r->initialized && count > 0);
    return io_uring_register_files_sparse(&r->uring, count);
}

// files_update sets slot `slot` to `fd` (-1: empty). 0 or -errno.
static int files_update(struct ring *r, uint32_t slot, int fd) {
    ASSERT(r->initialized);
    int ret = io_uring_register_files_update(&r->uring, slot, &fd, 1);
    return ret == 1 ? 0 : (ret < 0 ? ret : -EIO);
}

int ring_file_install(struct ring *r, uint32_t slot, int fd) {
    ASSERT(fd >= 0);
    return files_update(r, slot, fd);
}

int ring_file_remove(struct ring *r, uint32_t slot) {
    return files_update(r, slot, -1);
}

struct io_uring_sqe *ring_get_sqe(struct ring *r) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (likely(sqe != NULL)) {
        return sqe;
    }
    // SQ full: flush what we have and try once more.
    r->stats.sqe_full++;
    int ret = io_uring_submit(&r->uring);
    if (ret < 0) {
        return NULL;
    }
    r->stats.submits++;
    return io_uring_get_sqe(&r->uring);
}

int ring_flush(struct ring *r) {
    if (io_uring_sq_ready(&r->uring) == 0) {
        return 0;
    }
    int ret = io_uring_submit(&r->uring);
    if (ret >= 0) {
        r->stats.submits++;
    }
    return ret == -EBUSY || ret == -EINTR || ret == -EAGAIN ? 0 : ret;
}

void ring_set_busy_poll(struct ring *r, uint64_t ns) {
    ASSERT(ns <= RING_BUSY_POLL_NS_MAX);
    r->busy_poll_ns = ns;
}

// busy_poll submits what is queued and polls the completion queue for up to busy_poll_ns.
// Returns true when a completion is there (the caller skips its wait). A failed submit is left
// for the wait that follows, which submits again and reports it.
static bool busy_poll(struct ring *r) {
    if (io_uring_submit(&r->uring) < 0) {
        return false;
    }
    r->stats.submits++;
    uint64_t start = core_base_now_ns();
    uint64_t now = start;
    bool found = false;
    do {
        // With DEFER_TASKRUN (and COOP_TASKRUN) finished operations become CQEs only when this
        // thread enters the kernel for them; nothing waits, so nothing is woken.
        (void)io_uring_get_events(&r->uring);
        found = io_uring_cq_ready(&r->uring) > 0;
        now = core_base_now_ns();
    } while (!found && now - start < r->busy_poll_ns);
    r->stats.poll_ns += now - start;
    if (found) {
        r->stats.poll_hits++;
    } else {
        r->stats.poll_misses++;
    }
    return found;
}

int ring_run_once(struct ring *r, uint32_t timeout_ms) {
    struct __kernel_timespec ts = {
        .tv_sec = timeout_ms / 1000u,
        .tv_nsec = (long long)(timeout_ms % 1000u) * 1000000ll,
    };
    struct io_uring_cqe *cqe = NULL;
    int ret = 0;
    if (r->busy_poll_ns == 0 || timeout_ms == 0 || !busy_poll(r)) {
        ret = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
        r->stats.submits++;
    }
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY) {
        return ret;
    }
    if (IO_URING_READ_ONCE(*r->uring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) {
        r->stats.cq_overflow++;
        (void)io_uring_get_events(&r->uring);
    }
    uint32_t done = 0;
    struct io_uring_cqe *c = NULL;
    // Copy and mark each CQE seen before dispatch: a handler may submit (ring_get_sqe) and must
    // never observe a half-consumed CQ.
    while (done < r->cqe_batch_max && io_uring_peek_cqe(&r->uring, &c) == 0) {
        struct io_uring_cqe copy = *c;
        io_uring_cqe_seen(&r->uring, c);
        ring_op_dispatch(r, &copy);
        done++;
    }
    r->stats.cqes += done;
    return (int)done;
}
