// core_prio.c: [proxy] worker_priority = realtime.
//
// A worker at normal priority shares its CPU with whatever else is runnable there: its own
// handshake thread (SCHED_IDLE, but the fair scheduler still picks it over a worker that has
// just had more than its share), the audit writer, kernel threads. Each pick costs an
// established session up to a whole time slice. Measured on the bench's storm (bench/RESULTS.md):
// the worker's wake-ups waited 0.3-1 ms behind a handshake step tens of times a second. A worker
// at SCHED_FIFO 1 runs as soon as it is woken.
//
// The price of a real-time thread is that nothing of normal priority runs on its CPU while it
// is busy, the audit writer and the handshake thread included, whose work the worker then waits
// for (measured: attested handshakes 29% slower when the worker ran them at SCHED_FIFO). So a
// worker is real-time only while it has latency to protect and room to spare: every
// CORE_PRIO_WINDOW_NS it looks at its own CPU time and at whether established sessions moved
// bytes lately (the signal that also sends handshake steps to the handshake thread). At
// CORE_PRIO_DROP_PCT or more, or with no such sessions, it goes back to normal priority; at
// CORE_PRIO_RESUME_PCT or less, with such sessions, it returns to SCHED_FIFO.
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"

enum core_prio_state core_prio_next(enum core_prio_state now, uint64_t cpu_ns, uint64_t wall_ns,
                                    bool protect) {
    if (wall_ns == 0) {
        return now;
    }
    if (now == CORE_PRIO_RT && (!protect || cpu_ns * 100u >= wall_ns * CORE_PRIO_DROP_PCT)) {
        return CORE_PRIO_DROPPED;
    }
    if (now == CORE_PRIO_DROPPED && protect && cpu_ns * 100u <= wall_ns * CORE_PRIO_RESUME_PCT) {
        return CORE_PRIO_RT;
    }
    return now;
}

static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int set_fifo(bool fifo) {
    struct sched_param sp = {.sched_priority = fifo ? 1 : 0};
    return pthread_setschedparam(pthread_self(), fifo ? SCHED_FIFO : SCHED_OTHER, &sp);
}

void core_prio_start(struct core_shard *shard, uint64_t now_ns) {
    shard->prio = CORE_PRIO_OFF;
    if (shard->proc->cfg.worker_priority != CORE_PRIO_REALTIME) {
        return;
    }
    // Asked once at start, so that a refusal is known (and said) before any client arrives;
    // the worker then waits at normal priority for sessions to protect.
    int ret = set_fifo(true);
    if (ret == 0) {
        ret = set_fifo(false);
    }
    if (ret != 0) {
        // A performance setting, not a security one: the worker runs, at normal priority.
        LOG_WARN("worker %u: worker_priority = realtime refused (%s): the worker runs at normal "
                 "priority; grant CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE, "
                 "RestrictRealtime=false)",
                 shard->id, strerror(ret));
        return;
    }
    shard->prio = CORE_PRIO_DROPPED;
    shard->prio_cpu_ns = thread_cpu_ns();
    shard->prio_wall_ns = now_ns;
}

void core_prio_tick(struct core_shard *shard, uint64_t now_ns) {
    if (shard->prio == CORE_PRIO_OFF || now_ns - shard->prio_wall_ns < CORE_PRIO_WINDOW_NS) {
        return;
    }
    uint64_t cpu = thread_cpu_ns();
    bool protect = now_ns < shard->hs_protect_until_ns;
    enum core_prio_state next = core_prio_next(shard->prio, cpu - shard->prio_cpu_ns,
                                               now_ns - shard->prio_wall_ns, protect);
    shard->prio_cpu_ns = cpu;
    shard->prio_wall_ns = now_ns;
    if (next == shard->prio || set_fifo(next == CORE_PRIO_RT) != 0) {
        return; // a failed switch is tried again next window
    }
    shard->prio = next;
    if (next == CORE_PRIO_RT) {
        atomic_fetch_add_explicit(&shard->counters.workers_realtime, 1, memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&shard->counters.workers_realtime, 1, memory_order_relaxed);
        if (protect) { // left because it was busy, not because the sessions went quiet
            atomic_fetch_add_explicit(&shard->counters.worker_rt_dropped, 1, memory_order_relaxed);
        }
    }
}

void core_prio_stop(struct core_shard *shard) {
    if (shard->prio == CORE_PRIO_RT) {
        atomic_fetch_sub_explicit(&shard->counters.workers_realtime, 1, memory_order_relaxed);
    }
    shard->prio = CORE_PRIO_OFF;
}
