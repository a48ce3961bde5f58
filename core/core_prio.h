// core_prio.h: [proxy] worker_priority = realtime, the part without worker state (core_prio.c).
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// [proxy] worker_priority = realtime (core_prio.c).
enum core_prio_state {
    CORE_PRIO_OFF = 0, // normal priority: not asked for, or refused
    CORE_PRIO_RT,      // SCHED_FIFO 1
    CORE_PRIO_DROPPED, // asked for, but now at normal priority: busy, or nothing to protect
};
#define CORE_PRIO_WINDOW_NS (100ull * 1000000ull) // CPU use is judged over this window
#define CORE_PRIO_DROP_PCT 80u                     // at or above: back to normal priority
#define CORE_PRIO_RESUME_PCT 50u                   // at or below: SCHED_FIFO again

// core_prio_next: the state after a window in which the worker used `cpu_ns` of `wall_ns`, with
// `protect` true when established sessions moved bytes lately (CORE_HS_PROTECT_NS):
// RT -> DROPPED at CORE_PRIO_DROP_PCT or more, or with nothing to protect; DROPPED -> RT at
// CORE_PRIO_RESUME_PCT or less, with something to protect. OFF stays OFF.
enum core_prio_state core_prio_next(enum core_prio_state now, uint64_t cpu_ns, uint64_t wall_ns,
                                    bool protect);

#ifdef __cplusplus
}
#endif
