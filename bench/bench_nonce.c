// bench_nonce.c: throughput of the shared nonce table (policy/policy_nonce.c): each thread
// issues a nonce then peeks and consumes it, as the control thread and a worker would.
// Usage: bench_nonce [seconds_per_run] ; prints one line per thread count (1 and 2).
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core_base.h"
#include "policy.h"

enum {
    bench_shards = 16,
    bench_slots_per_shard = 4096,
    bench_threads_max = 2,
    bench_batch = 1024, // operations between clock reads
};

// Short TTL so consumed slots expire and are reclaimed by later issues, as in steady state.
static const uint64_t bench_ttl_ns = 10ull * 1000 * 1000;

struct worker {
    pthread_t thread;
    struct policy_nonce *table;
    uint64_t deadline_ns;
    uint64_t pairs;
    uint64_t enospc;
    uint64_t failures;
    atomic_bool *start;
};

static void *run(void *arg) {
    struct worker *w = arg;
    while (!atomic_load_explicit(w->start, memory_order_acquire)) {
    }
    uint64_t now = core_base_now_ns();
    while (now < w->deadline_ns) {
        for (int i = 0; i < bench_batch; i++) {
            uint8_t nonce[policy_nonce_bytes];
            int rc = policy_nonce_issue(w->table, nonce, now, bench_ttl_ns);
            if (rc == -ENOSPC) {
                w->enospc++;
                continue;
            }
            ASSERT(rc == 0);
            if (policy_nonce_peek(w->table, nonce, sizeof(nonce), now) != POLICY_NONCE_PEEK_VALID ||
                policy_nonce_consume(w->table, nonce, sizeof(nonce), now) !=
                    POLICY_NONCE_CONSUME_OK) {
                w->failures++;
            }
            w->pairs++;
        }
        now = core_base_now_ns();
    }
    return NULL;
}

static int bench(uint32_t threads, double seconds) {
    struct policy_nonce *table = NULL;
    int rc = policy_nonce_new(&table, bench_shards, bench_slots_per_shard);
    if (rc < 0) {
        fprintf(stderr, "policy_nonce_new: %d\n", rc);
        return 1;
    }
    struct worker workers[bench_threads_max] = {0};
    atomic_bool start = false;
    uint64_t t0 = core_base_now_ns();
    uint64_t deadline = t0 + (uint64_t)(seconds * 1e9);
    for (uint32_t i = 0; i < threads; i++) {
        workers[i] = (struct worker){.table = table, .deadline_ns = deadline, .start = &start};
        if (pthread_create(&workers[i].thread, NULL, run, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    atomic_store_explicit(&start, true, memory_order_release);
    uint64_t pairs = 0;
    uint64_t enospc = 0;
    uint64_t failures = 0;
    for (uint32_t i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        pairs += workers[i].pairs;
        enospc += workers[i].enospc;
        failures += workers[i].failures;
    }
    double elapsed = (double)(core_base_now_ns() - t0) / 1e9;
    printf("threads=%u seconds=%.2f issue+peek+consume=%.0f/s (%.0f ops/s) enospc=%llu "
           "failures=%llu\n",
           threads, elapsed, (double)pairs / elapsed, 3.0 * (double)pairs / elapsed,
           (unsigned long long)enospc, (unsigned long long)failures);
    policy_nonce_free(table);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (seconds <= 0) {
        fprintf(stderr, "usage: %s [seconds_per_run]\n", argv[0]);
        return 2;
    }
    printf("nonce table: %d shards x %d slots, ttl %llu ms\n", bench_shards,
           bench_slots_per_shard, (unsigned long long)(bench_ttl_ns / 1000000));
    int rc = 0;
    for (uint32_t threads = 1; threads <= bench_threads_max; threads++) {
        rc |= bench(threads, seconds);
    }
    return rc;
}
