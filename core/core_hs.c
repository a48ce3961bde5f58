// core_hs.c: TLS handshake steps, and the handshake thread that runs them for a worker.
//
// A handshake step costs a key agreement and a signature (and, attested, a P-384 verification):
// 0.1-1 ms of CPU that cannot be split. Run on the worker, every established session's bytes
// wait behind the step in progress. With [proxy] handshake_thread (the default) each worker has
// a second thread, started by the worker and so pinned to the same CPU, that runs the steps:
// when a session's bytes arrive the kernel wakes the worker, which preempts the step in
// progress, forwards them and goes back to sleep. The worker keeps every socket, buffer and
// table; the thread gets a job (the staged client bytes, room for the reply) and, while it holds
// the job, the connection's SSL and attestation fields. Jobs move through two single-producer
// single-consumer queues; eventfds wake each side.
#include <openssl/err.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core_internal.h"

// A single-producer single-consumer queue of job indices. It holds at most CORE_HS_JOBS
// entries, and there are only that many jobs, so a push always finds room.
struct core_hs_queue {
    _Atomic uint32_t head; // consumer
    _Atomic uint32_t tail; // producer
    uint32_t slot[CORE_HS_JOBS];
};

struct core_hs_thread {
    struct core_shard *shard;
    pthread_t thread;
    bool started;
    sem_t running; // posted by the thread once its own code runs
    int submit_fd; // eventfd: worker -> thread (the thread blocks reading it)
    int done_fd;   // eventfd: thread -> worker (the worker's ring reads it)
    atomic_bool stop;
    struct core_hs_queue submit;
    struct core_hs_queue done;
    uint32_t free_mask; // worker only: jobs not in flight (the others are at the thread)
    bool raised;        // worker only: raised to SCHED_OTHER by core_hs_watch
    bool raise_warned;
    struct core_hs_job *jobs;
};

_Static_assert(CORE_HS_JOBS <= 32 && (CORE_HS_JOBS & (CORE_HS_JOBS - 1)) == 0,
               "CORE_HS_JOBS: a power of two that fits the free mask");

static void queue_push(struct core_hs_queue *q, uint32_t j) {
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    ASSERT(tail - atomic_load_explicit(&q->head, memory_order_acquire) < CORE_HS_JOBS);
    q->slot[tail % CORE_HS_JOBS] = j;
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
}

static bool queue_pop(struct core_hs_queue *q, uint32_t *out) {
    uint32_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (head == atomic_load_explicit(&q->tail, memory_order_acquire)) {
        return false;
    }
    *out = q->slot[head % CORE_HS_JOBS];
    atomic_store_explicit(&q->head, head + 1, memory_order_release);
    return true;
}

static void efd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof(one)); // an eventfd write fails only on overflow
    (void)n;
}

void core_hs_step(struct core_shard *shard, struct core_conn *c, uint32_t decision,
                  struct core_hs_result *r) {
    memset(r, 0, sizeof(*r));
    ERR_clear_error(); // the error queue is per thread: only this step's errors are read
    r->ret = SSL_do_handshake(c->ssl);
    if (r->ret == 1) {
        r->done_ns = core_base_now_ns();
        // PostgreSQL refuses direct TLS without ALPN "postgresql"; so do we (the worker sends
        // the alert), and nothing about such a client is verified.
        r->alpn_refused = c->direct_tls && !core_tls_alpn_is_postgresql(c->ssl);
        if (!r->alpn_refused && shard->policy != NULL) {
            if (c->decision == CORE_IDX_NONE && decision != CORE_IDX_NONE) {
                c->decision = decision;
            }
            core_attest_after_handshake(shard, c); // possession proven: now the full check
        }
        return;
    }
    r->err = SSL_get_error(c->ssl, r->ret);
    if (r->err != SSL_ERROR_WANT_READ && r->err != SSL_ERROR_WANT_WRITE) {
        core_tls_describe_error(r->why, sizeof(r->why));
    }
    ERR_clear_error();
}

static void *hs_thread_main(void *arg) {
    struct core_hs_thread *t = arg;
    struct core_shard *shard = t->shard;
    sem_post(&t->running);
    for (;;) {
        uint32_t j;
        while (queue_pop(&t->submit, &j)) {
            struct core_hs_job *job = &t->jobs[j];
            core_hs_step(shard, &shard->conns[job->conn], job->decision, &job->res);
            queue_push(&t->done, j);
            efd_signal(t->done_fd);
        }
        if (atomic_load_explicit(&t->stop, memory_order_acquire)) {
            return NULL; // the worker stops it only after its last submit: the queue is empty
        }
        uint64_t n;
        ssize_t got = read(t->submit_fd, &n, sizeof(n)); // blocks; EINTR just loops
        (void)got;
    }
}

int core_hs_start(struct core_shard *shard, char *err, size_t err_len) {
    struct core_hs_thread *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, err_len, "cannot allocate the handshake thread");
        return -ENOMEM;
    }
    t->shard = shard;
    sem_init(&t->running, 0, 0);
    t->submit_fd = eventfd(0, EFD_CLOEXEC);
    t->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t->jobs = calloc(CORE_HS_JOBS, sizeof(*t->jobs));
    t->free_mask = (uint32_t)((1ull << CORE_HS_JOBS) - 1u);
    shard->hs = t;
    if (t->submit_fd < 0 || t->done_fd < 0 || t->jobs == NULL) {
        int e = t->jobs == NULL ? ENOMEM : errno;
        snprintf(err, err_len, "handshake thread: %s", strerror(e));
        core_hs_stop(shard);
        return -e;
    }
    int ret = pthread_create(&t->thread, NULL, hs_thread_main, t);
    if (ret != 0) {
        snprintf(err, err_len, "cannot start the handshake thread: %s", strerror(ret));
        core_hs_stop(shard);
        return -ret;
    }
    t->started = true;
    // Named and lowered here, by the worker, before the gateway says it is ready: done by the
    // new thread itself, both could come after (under load the thread may not have run yet),
    // and meanwhile it carried the worker's name and priority.
    char name[16];
    snprintf(name, sizeof(name), "atls-hs%u", shard->id);
    (void)pthread_setname_np(t->thread, name);
    // The lowest priority: the worker's wake-ups preempt a step at once (a nice value alone
    // does not make the scheduler preempt on wake-up). core_hs_watch raises it if it starves.
    struct sched_param sp = {0};
    if (pthread_setschedparam(t->thread, SCHED_IDLE, &sp) != 0) {
        LOG_WARN("worker %u: handshake thread stays at normal priority", shard->id);
    }
    // Ready only once the thread runs its own code: until then it may sit in the C library's
    // (or a sanitizer's) thread start, holding locks the worker needs too, and a test that stops
    // the thread after "ready" could stall the worker. (Inferred as the cause of one ASan CI
    // failure; that failure was not reproduced.)
    while (sem_wait(&t->running) != 0) {
    }
    return 0;
}

void core_hs_stop(struct core_shard *shard) {
    struct core_hs_thread *t = shard->hs;
    if (t == NULL) {
        return;
    }
    if (t->started) {
        atomic_store_explicit(&t->stop, true, memory_order_release);
        efd_signal(t->submit_fd);
        pthread_join(t->thread, NULL);
    }
    if (t->submit_fd >= 0) {
        close(t->submit_fd);
    }
    if (t->done_fd >= 0) {
        close(t->done_fd);
    }
    sem_destroy(&t->running);
    free(t->jobs);
    free(t);
    shard->hs = NULL;
}

bool core_hs_job_take(struct core_shard *shard, uint32_t *out_job) {
    struct core_hs_thread *t = shard->hs;
    if (t->free_mask == 0) {
        return false;
    }
    uint32_t j = (uint32_t)__builtin_ctz(t->free_mask);
    t->free_mask &= ~(1u << j);
    *out_job = j;
    return true;
}

struct core_hs_job *core_hs_job_of(const struct core_shard *shard, uint32_t j) {
    ASSERT(j < CORE_HS_JOBS);
    return &shard->hs->jobs[j];
}

void core_hs_submit(struct core_shard *shard, uint32_t j) {
    struct core_hs_thread *t = shard->hs;
    t->jobs[j].submit_ns = core_base_now_ns();
    atomic_fetch_add_explicit(&shard->counters.hs_steps_away, 1, memory_order_relaxed);
    queue_push(&t->submit, j);
    efd_signal(t->submit_fd);
}

bool core_hs_done_pop(struct core_shard *shard, uint32_t *out_job) {
    return queue_pop(&shard->hs->done, out_job);
}

void core_hs_release(struct core_shard *shard, uint32_t j) {
    struct core_hs_thread *t = shard->hs;
    ASSERT(!(t->free_mask & (1u << j)));
    atomic_fetch_sub_explicit(&shard->counters.hs_steps_away, 1, memory_order_relaxed);
    t->free_mask |= 1u << j;
    if (core_hs_inflight(shard) == 0 && t->raised) {
        struct sched_param sp = {0};
        if (pthread_setschedparam(t->thread, SCHED_IDLE, &sp) == 0) {
            t->raised = false;
        }
    }
}

void core_hs_watch(struct core_shard *shard, uint64_t now_ns) {
    struct core_hs_thread *t = shard->hs;
    if (t == NULL || t->raised || core_hs_inflight(shard) == 0) {
        return;
    }
    uint64_t oldest = now_ns;
    for (uint32_t j = 0; j < CORE_HS_JOBS; j++) {
        if (!(t->free_mask & (1u << j)) && t->jobs[j].submit_ns < oldest) {
            oldest = t->jobs[j].submit_ns;
        }
    }
    if (now_ns - oldest < CORE_HS_STARVE_NS) {
        return;
    }
    // The CPU is busy with other work and the steps wait: let the thread compete as an equal
    // until it has caught up (core_hs_release lowers it again).
    struct sched_param sp = {0};
    int ret = pthread_setschedparam(t->thread, SCHED_OTHER, &sp);
    if (ret == 0) {
        t->raised = true;
        atomic_fetch_add_explicit(&shard->counters.hs_thread_raised, 1, memory_order_relaxed);
    } else if (!t->raise_warned) {
        t->raise_warned = true;
        LOG_WARN("worker %u: handshake steps wait on a busy CPU and the handshake thread cannot "
                 "be raised (%s): grant CAP_SYS_NICE, or set [proxy] handshake_thread = off",
                 shard->id, strerror(ret));
    }
}

uint32_t core_hs_inflight(const struct core_shard *shard) {
    // A job is taken and submitted in one go (hs_stage), so the jobs not free are those out.
    return shard->hs == NULL ? 0
                             : CORE_HS_JOBS - (uint32_t)__builtin_popcount(shard->hs->free_mask);
}

int core_hs_done_fd(const struct core_shard *shard) {
    return shard->hs->done_fd;
}
