// core_backend.c: backend pool shared by all workers: least connections with passive health.
// Counters are atomics (the only state workers share besides the nonce table).
#include "core_internal.h"

uint32_t core_backend_pick(struct core_proc *proc, uint32_t tried_mask) {
    uint64_t now = core_base_now_ns();
    uint32_t best = CORE_IDX_NONE;
    uint32_t best_load = UINT32_MAX;
    uint32_t fallback = CORE_IDX_NONE; // a down backend, tried only when all are down
    uint64_t fallback_until = UINT64_MAX;
    for (uint32_t i = 0; i < proc->cfg.backend_count; i++) {
        if (tried_mask & (1u << i)) {
            continue;
        }
        struct core_backend_state *b = &proc->backends[i];
        uint64_t down = atomic_load_explicit(&b->down_until, memory_order_relaxed);
        if (down > now) {
            if (down < fallback_until) {
                fallback = i;
                fallback_until = down;
            }
            continue;
        }
        uint32_t load = (uint32_t)atomic_load_explicit(&b->active, memory_order_relaxed);
        if (load < best_load) {
            best = i;
            best_load = load;
        }
    }
    if (best == CORE_IDX_NONE && tried_mask == 0) {
        // Every backend is marked down: try the one that failed longest ago rather than refuse
        // without asking (it may have come back before its retry time).
        best = fallback;
    }
    return best;
}

void core_backend_mark_down(struct core_proc *proc, uint32_t idx) {
    ASSERT(idx < proc->cfg.backend_count);
    uint64_t until = core_base_now_ns() + (uint64_t)proc->cfg.health_interval_ms * 1000000ull;
    atomic_store_explicit(&proc->backends[idx].down_until, until, memory_order_relaxed);
}

void core_backend_mark_up(struct core_proc *proc, uint32_t idx) {
    ASSERT(idx < proc->cfg.backend_count);
    atomic_store_explicit(&proc->backends[idx].down_until, 0, memory_order_relaxed);
}
