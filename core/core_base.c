// core_base.c: assertion-failure handler, the logger sink, clocks, hex helpers, the copy that
// avoids a slow memcpy case, lazily backed tables and the UTF-8 check.
#include "core_base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static volatile int log_level = CORE_LOG_INFO;

void core_base_assert_fail(const char *cond, const char *file, int line, const char *func) {
    fprintf(stderr, "ASSERT failed: %s at %s:%d in %s\n", cond, file, line, func);
    fflush(stderr);
    abort();
}

void core_base_log_set_level(enum core_base_log_level level) {
    log_level = (int)level;
}

void core_base_log(enum core_base_log_level level, const char *func, const char *fmt, ...) {
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if ((int)level > log_level) {
        return;
    }
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s %s: ", names[level], func);
    if (n < 0) {
        return;
    }
    size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
    va_end(ap);
    if (m > 0) {
        used += (size_t)m < sizeof(line) - used ? (size_t)m : sizeof(line) - used - 1;
    }
    if (used > sizeof(line) - 2) {
        used = sizeof(line) - 2;
    }
    // One event, one line: control bytes that arrived inside a message (a client's user name
    // can hold a newline) become '?', so no one can forge log lines.
    for (size_t i = 0; i < used; i++) {
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
            line[i] = '?';
        }
    }
    line[used++] = '\n';
    // One write per line keeps lines from different threads whole.
    ssize_t w = write(STDERR_FILENO, line, used);
    (void)w;
}

void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

uint64_t core_base_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t core_base_wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void core_base_hex_encode(char *out, const uint8_t *in, size_t len) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}

static int hex_val(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int core_base_hex_decode(uint8_t *out, size_t out_len, const char *in) {
    if (strlen(in) != 2 * out_len) {
        return -EINVAL;
    }
    for (size_t i = 0; i < out_len; i++) {
        int hi = hex_val(in[2 * i]);
        int lo = hex_val(in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -EINVAL;
        }
        out[i] = (uint8_t)((hi << 4) | lo);
    }
    return 0;
}

void core_base_copy(void *dst, const void *src, size_t n) {
#if defined(__SSE2__)
    if (core_base_copy_is_slow(dst, src, n)) {
        uint8_t *d = dst;
        const uint8_t *s = src;
        size_t i = 0;
        for (; i + 64 <= n; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
            __m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
            _mm_storeu_si128((__m128i *)(d + i), a);
            _mm_storeu_si128((__m128i *)(d + i + 16), b);
            _mm_storeu_si128((__m128i *)(d + i + 32), c);
            _mm_storeu_si128((__m128i *)(d + i + 48), e);
        }
        memcpy(d + i, s + i, n - i); // < 64 bytes: never the slow case
        return;
    }
#endif
    memcpy(dst, src, n);
}

size_t core_base_utf8_seq_len(const uint8_t *s, size_t len) {
    ASSERT(len > 0);
    uint8_t c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf; // range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; // no overlong forms
        hi = c == 0xed ? 0x9f : 0xbf; // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80; // no overlong forms
        hi = c == 0xf4 ? 0x8f : 0xbf; // nothing above U+10FFFF
    } else {
        return 0; // a continuation byte, C0/C1 (overlong) or F5..FF
    }
    if (len < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

bool core_base_utf8_valid(const uint8_t *s, size_t len) {
    for (size_t at = 0; at < len;) {
        size_t n = core_base_utf8_seq_len(s + at, len - at);
        if (n == 0) {
            return false;
        }
        at += n;
    }
    return true;
}

void *core_base_lazy_alloc(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void core_base_lazy_free(void *ptr, size_t len) {
    if (ptr != NULL) {
        munmap(ptr, len);
    }
}

bool core_base_log_due(uint64_t *last_ns) {
    uint64_t now = core_base_now_ns();
    if (now - *last_ns <= 1000000000ull) {
        return false;
    }
    *last_ns = now;
    return true;
}
