// atls_bench_util.c: clock, /proc sampling, the latency histogram and the pgwire stream parser
// shared by the atls-bench client engine and its built-in backend.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "atls_bench.h"

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_cpu_ticks(struct bench_ticks *t) {
    *t = (struct bench_ticks){0};
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return;
    }
    // cpu  user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
    // then one such line per CPU: cpuN ...
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL && strncmp(line, "cpu", 3) == 0) {
        unsigned long long v[8];
        int cpu = -1;
        int n = line[3] == ' '
                    ? sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                             &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
                    : sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0],
                             &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) - 1;
        if (n != 8) {
            break;
        }
        uint64_t total = 0;
        for (int i = 0; i < 8; i++) {
            total += v[i];
        }
        if (cpu < 0) {
            t->total = total;
            t->steal = v[7];
            t->ok = true;
        } else if (cpu < BENCH_CPUS_MAX && cpu == t->ncpu) {
            t->cpu_total[cpu] = total;
            t->cpu_busy[cpu] = total - v[3] - v[4];
            t->ncpu++;
        }
    }
    fclose(f);
}

struct calib {
    int cpu;
    double ns_per_m, chase_ns;
};

#define CHASE_BYTES (256 * 1024)
#define CHASE_LOADS 500000

static uint32_t *g_chase_ring;
static pthread_once_t g_chase_once = PTHREAD_ONCE_INIT;

// One cycle through all slots (Sattolo's shuffle with a fixed xorshift seed), built once.
static void chase_build(void) {
    uint32_t n = CHASE_BYTES / sizeof(uint32_t);
    uint32_t *r = malloc(CHASE_BYTES);
    if (r == NULL) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        r[i] = i;
    }
    uint64_t x = 88172645463325252ull;
    for (uint32_t i = n - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t j = (uint32_t)(x % i); // j < i: a single cycle
        uint32_t t = r[i];
        r[i] = r[j];
        r[j] = t;
    }
    g_chase_ring = r;
}

static void *calib_main(void *arg) {
    struct calib *c = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(c->cpu, &set);
    c->ns_per_m = -1;
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        return NULL;
    }
    double best = -1;
    volatile uint64_t sink = 0;
    const uint32_t *ring = g_chase_ring;
    c->chase_ns = -1;
    if (ring != NULL) {
        uint32_t p = 0;
        for (uint32_t i = 0; i < CHASE_BYTES / sizeof(uint32_t); i++) { // warm the cache
            p = ring[p];
        }
        for (int round = 0; round < 5; round++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
            for (int i = 0; i < CHASE_LOADS; i++) {
                p = ring[p];
            }
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
            double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                        CHASE_LOADS;
            c->chase_ns = c->chase_ns < 0 || ns < c->chase_ns ? ns : c->chase_ns;
        }
        sink += p;
    }
    for (int round = 0; round < 5; round++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        uint64_t x = 0x9e3779b97f4a7c15ull + (uint64_t)round;
        for (int i = 0; i < 1000000; i++) { // xorshift64: a dependent chain of shifts and xors
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        sink += x;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
        best = best < 0 || ns < best ? ns : best;
    }
    (void)sink;
    c->ns_per_m = best;
    return NULL;
}

int bench_calibrate(double ns_per_m[BENCH_CPUS_MAX], double chase_ns[BENCH_CPUS_MAX]) {
    pthread_once(&g_chase_once, chase_build);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n = n < 1 ? 1 : n > BENCH_CPUS_MAX ? BENCH_CPUS_MAX : n;
    // One CPU after the other, so that the threads do not share a CPU or an SMT core's time.
    for (int i = 0; i < n; i++) {
        struct calib c = {.cpu = i, .ns_per_m = -1, .chase_ns = -1};
        pthread_t t;
        if (pthread_create(&t, NULL, calib_main, &c) == 0) {
            pthread_join(t, NULL);
        }
        ns_per_m[i] = c.ns_per_m;
        chase_ns[i] = c.chase_ns;
    }
    return (int)n;
}

void bench_cpu_busy_json(FILE *f, const struct bench_ticks *a, const struct bench_ticks *b) {
    fputs(",\"cpu_busy_pct\":[", f);
    int n = a->ok && b->ok && a->ncpu == b->ncpu ? a->ncpu : 0;
    for (int i = 0; i < n; i++) {
        uint64_t tot = b->cpu_total[i] - a->cpu_total[i];
        double pct = tot > 0 ? 100.0 * (double)(b->cpu_busy[i] - a->cpu_busy[i]) / (double)tot : -1;
        fprintf(f, "%s%.1f", i ? "," : "", pct);
    }
    cpu_set_t set;
    int pinned = -1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1) {
        for (int i = 0; i < CPU_SETSIZE; i++) {
            if (CPU_ISSET(i, &set)) {
                pinned = i;
                break;
            }
        }
    }
    fprintf(f, "],\"bench_cpu\":%d", pinned);
}

double bench_steal_pct(const struct bench_ticks *a, const struct bench_ticks *b) {
    if (!a->ok || !b->ok || b->total < a->total || b->steal < a->steal) {
        return -1;
    }
    if (b->total == a->total) {
        return 0; // less than a tick passed: nothing seen
    }
    return 100.0 * (double)(b->steal - a->steal) / (double)(b->total - a->total);
}

double bench_steal_ms(const struct bench_ticks *a, const struct bench_ticks *b) {
    if (!a->ok || !b->ok || b->steal < a->steal) {
        return -1;
    }
    long hz = sysconf(_SC_CLK_TCK);
    return 1000.0 * (double)(b->steal - a->steal) / (double)(hz > 0 ? hz : 100);
}

double bench_proc_cpu_s(int pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    // The command name may hold spaces and parentheses: fields restart after the last ')'.
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    unsigned long utime = 0, stime = 0;
    // Fields 3..13 skipped, 14 = utime, 15 = stime.
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) {
        return -1;
    }
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}

long bench_proc_rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

// ---- histogram ---------------------------------------------------------------------------------

void bench_hist_init(struct bench_hist *h) {
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

// Bucket of `v`: values below BENCH_HIST_SUB are exact; above, 32 linear steps per power of two.
static uint32_t hist_index(uint64_t v) {
    if (v < BENCH_HIST_SUB) {
        return (uint32_t)v;
    }
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(v); // >= 5
    uint32_t shift = msb - 5u;
    uint32_t sub = (uint32_t)(v >> shift) & (BENCH_HIST_SUB - 1u);
    uint32_t idx = (shift + 1u) * BENCH_HIST_SUB + sub;
    uint32_t last = BENCH_HIST_POW * BENCH_HIST_SUB - 1u;
    return idx > last ? last : idx;
}

// Upper edge (exclusive) of bucket `idx`.
static uint64_t hist_upper(uint32_t idx) {
    if (idx < BENCH_HIST_SUB) {
        return idx + 1u;
    }
    uint32_t shift = idx / BENCH_HIST_SUB - 1u;
    uint64_t sub = idx % BENCH_HIST_SUB;
    return ((BENCH_HIST_SUB + sub + 1u) << shift);
}

void bench_hist_add(struct bench_hist *h, uint64_t ns) {
    h->b[hist_index(ns)]++;
    h->count++;
    h->sum_ns += ns;
    h->max_ns = ns > h->max_ns ? ns : h->max_ns;
    h->min_ns = ns < h->min_ns ? ns : h->min_ns;
}

void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from) {
    for (size_t i = 0; i < BENCH_HIST_POW * BENCH_HIST_SUB; i++) {
        into->b[i] += from->b[i];
    }
    into->count += from->count;
    into->sum_ns += from->sum_ns;
    into->max_ns = from->max_ns > into->max_ns ? from->max_ns : into->max_ns;
    into->min_ns = from->min_ns < into->min_ns ? from->min_ns : into->min_ns;
}

uint64_t bench_hist_pct(const struct bench_hist *h, double q) {
    if (h->count == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    rank = rank < 1 ? 1 : rank;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < BENCH_HIST_POW * BENCH_HIST_SUB; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_upper(i);
            return v > h->max_ns ? h->max_ns : v;
        }
    }
    return h->max_ns;
}

void bench_hist_json(FILE *f, const struct bench_hist *h) {
    double us = 1000.0;
    fprintf(f,
            "{\"count\":%llu,\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
            "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}",
            (unsigned long long)h->count, h->count ? (double)h->min_ns / us : 0.0,
            h->count ? (double)h->sum_ns / (double)h->count / us : 0.0,
            (double)bench_hist_pct(h, 0.50) / us, (double)bench_hist_pct(h, 0.90) / us,
            (double)bench_hist_pct(h, 0.99) / us, (double)bench_hist_pct(h, 0.999) / us,
            (double)h->max_ns / us);
}

// ---- pgwire -----------------------------------------------------------------------------------

void bench_pg_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t bench_pg_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

size_t bench_pg_put_msg(uint8_t *out, size_t cap, size_t at, uint8_t type, const void *body,
                        size_t len) {
    if (at + 5 + len > cap) {
        return 0;
    }
    out[at] = type;
    bench_pg_put_be32(out + at + 1, (uint32_t)(len + 4));
    if (len > 0) {
        memcpy(out + at + 5, body, len);
    }
    return at + 5 + len;
}

int bench_pg_parser_init(struct bench_pg_parser *p) {
    memset(p, 0, sizeof(*p));
    p->body = malloc(BENCH_MSG_BYTES_MAX);
    return p->body == NULL ? -ENOMEM : 0;
}

void bench_pg_parser_cleanup(struct bench_pg_parser *p) {
    free(p->body);
    p->body = NULL;
}

void bench_pg_parser_reset(struct bench_pg_parser *p) {
    p->hdr_len = 0;
    p->body_len = 0;
    p->body_got = 0;
    p->skipping = false;
    p->skipped_bytes = 0;
}

int bench_pg_parser_feed(struct bench_pg_parser *p, const uint8_t *data, size_t len,
                         bench_pg_msg_fn fn, void *arg) {
    size_t at = 0;
    while (at < len) {
        if (p->hdr_len < 5) {
            size_t take = 5 - p->hdr_len;
            take = take < len - at ? take : len - at;
            memcpy(p->hdr + p->hdr_len, data + at, take);
            p->hdr_len += (uint32_t)take;
            at += take;
            if (p->hdr_len < 5) {
                break;
            }
            uint32_t l = bench_pg_be32(p->hdr + 1);
            if (l < 4) {
                return -EPROTO;
            }
            p->body_len = l - 4;
            p->body_got = 0;
            p->skipping = p->hdr[0] == 'D' || p->hdr[0] == 'd' || p->body_len > BENCH_MSG_BYTES_MAX;
        }
        size_t take = p->body_len - p->body_got;
        take = take < len - at ? take : len - at;
        if (p->skipping) {
            p->skipped_bytes += take;
        } else {
            memcpy(p->body + p->body_got, data + at, take);
        }
        p->body_got += (uint32_t)take;
        at += take;
        if (p->body_got == p->body_len) {
            p->hdr_len = 0;
            int rc = p->skipping ? fn(arg, p->hdr[0], NULL, 0)
                                 : fn(arg, p->hdr[0], p->body, p->body_len);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

#define METRICS_BYTES_MAX (1u << 20)

int bench_parse_addr(struct sockaddr_in *out, const char *text) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host)) {
        return -EINVAL;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -EINVAL;
}

int bench_http_get(char *out, size_t cap, const char *api, uint32_t src, const char *path,
                   const char *accept) {
    if (cap == 0) {
        return -EINVAL;
    }
    out[0] = '\0';
    struct sockaddr_in sa;
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
    if (bench_parse_addr(&sa, api) != 0) {
        return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if ((src != 0 && bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0) ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    char req[256];
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: %s\r\n\r\n",
                      path, api, accept);
    size_t got = 0;
    ssize_t r = send(fd, req, (size_t)rl, MSG_NOSIGNAL);
    while (r >= 0 && got + 1 < cap && (r = recv(fd, out + got, cap - 1 - got, 0)) > 0) {
        got += (size_t)r;
    }
    close(fd);
    out[got] = '\0';
    return 0;
}

int bench_gateway_metric(const char *api, const char *const *names, long long *vals, size_t n) {
    for (size_t i = 0; i < n; i++) {
        vals[i] = -1;
    }
    char *resp = malloc(METRICS_BYTES_MAX);
    if (resp == NULL) {
        return -ENOMEM;
    }
    int rc = bench_http_get(resp, METRICS_BYTES_MAX, api, 0, "/metrics", "text/plain");
    if (rc != 0) {
        free(resp);
        return rc;
    }
    if (strncmp(resp, "HTTP/1.", 7) != 0 || strncmp(resp + 8, " 200", 4) != 0) {
        free(resp);
        return -EPROTO;
    }
    // Lines "name value" or "name{labels} value"; a name's label sets are summed.
    for (char *line = resp; *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        for (size_t i = 0; i < n && line[0] != '#'; i++) {
            size_t nl = strlen(names[i]);
            if (len > nl && strncmp(line, names[i], nl) == 0 &&
                (line[nl] == ' ' || line[nl] == '{')) {
                size_t at = len; // the value follows the line's last space
                while (at > nl && line[at - 1] != ' ') {
                    at--;
                }
                if (at > nl) {
                    vals[i] = (vals[i] < 0 ? 0 : vals[i]) + strtoll(line + at, NULL, 10);
                }
            }
        }
        line += len + (end != NULL ? 1 : 0);
    }
    free(resp);
    return 0;
}
