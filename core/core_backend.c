// core_backend.c: backend pool shared by all workers: least connections; passive health here,
// active checks in core_health.c.
// Counters are atomics (the only state workers share besides the nonce table).
#include "core_internal.h"

// least_loaded: the backend with the fewest connections among those not in `skip_mask` whose
// retry time has come; sets `*out_down` to its down_until (0 = healthy, else due for a retry).
// The one skipped for being down that failed longest ago goes to `*out_fallback`.
static uint32_t least_loaded(struct core_proc *proc, uint64_t *out_down, uint32_t *out_fallback,
                             uint32_t skip_mask, uint64_t now) {
    uint32_t best = CORE_IDX_NONE;
    uint32_t best_load = UINT32_MAX;
    uint64_t fallback_until = UINT64_MAX;
    *out_down = 0;
    *out_fallback = CORE_IDX_NONE;
    for (uint32_t i = 0; i < proc->cfg.backend_count; i++) {
        if (skip_mask & (1u << i)) {
            continue;
        }
        struct core_backend_state *b = &proc->backends[i];
        uint64_t down = atomic_load_explicit(&b->down_until, memory_order_relaxed);
        if (down > now) {
            if (down < fallback_until) {
                *out_fallback = i;
                fallback_until = down;
            }
            continue;
        }
        uint32_t load = (uint32_t)atomic_load_explicit(&b->active, memory_order_relaxed);
        if (load < best_load) {
            best = i;
            best_load = load;
            *out_down = down;
        }
    }
    return best;
}

uint32_t core_backend_pick(struct core_proc *proc, uint32_t tried_mask) {
    uint64_t now = core_base_now_ns();
    uint64_t retry_ns = (uint64_t)proc->cfg.health_interval_ms * 1000000ull;
    uint32_t skip = tried_mask;
    uint32_t fallback = CORE_IDX_NONE;
    // Bounded: each round either returns or adds one backend to `skip`.
    for (uint32_t round = 0; round <= proc->cfg.backend_count; round++) {
        uint64_t down = 0;
        uint32_t round_fallback = CORE_IDX_NONE;
        uint32_t best = least_loaded(proc, &down, &round_fallback, skip, now);
        if (fallback == CORE_IDX_NONE) {
            fallback = round_fallback;
        }
        if (best == CORE_IDX_NONE) {
            break;
        }
        if (down == 0) {
            return best;
        }
        // A failed backend whose retry time has come: one connection, on any worker, probes
        // it; the others keep skipping it for another interval unless the probe succeeds
        // (core_backend_mark_up). Without the claim every connection opened during a slow
        // probe (up to connect_timeout_ms) would pick it, as it has the fewest connections.
        if (atomic_compare_exchange_strong_explicit(&proc->backends[best].down_until, &down,
                                                    now + retry_ns, memory_order_relaxed,
                                                    memory_order_relaxed)) {
            return best;
        }
        skip |= 1u << best; // another connection is probing it
        if (fallback == CORE_IDX_NONE) {
            fallback = best;
        }
    }
    if (tried_mask == 0) {
        // Every backend is marked down: try the one that failed longest ago rather than refuse
        // without asking (it may have come back before its retry time).
        return fallback;
    }
    return CORE_IDX_NONE;
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
