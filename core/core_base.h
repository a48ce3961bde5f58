// core_base.h: assertions, logging and small helpers shared by every module.
// The only core header other folders may include (CMake target core_base). libc only.
#ifndef ATLS_CORE_BASE_H
#define ATLS_CORE_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

// Copies from this size up may take glibc's `rep movsb` (see core_base_copy).
#define CORE_BASE_COPY_LOOP_MIN 2048u

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#ifdef __cplusplus
#define STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

// core_base_assert_fail prints the failed condition with its location and aborts. Never returns.
__attribute__((noreturn)) void core_base_assert_fail(const char *cond, const char *file, int line,
                                                     const char *func);

// ASSERT stays on in release builds: boundary invariants and programmer errors only.
#define ASSERT(x)                                                                                  \
    do {                                                                                           \
        if (unlikely(!(x))) {                                                                      \
            core_base_assert_fail(#x, __FILE__, __LINE__, __func__);                               \
        }                                                                                          \
    } while (0)

// ASSERT_HOT is for per-byte / per-CQE paths: compiled only in Debug and CI builds.
#if defined(ATLS_HOT_ASSERTS)
#define ASSERT_HOT(x) ASSERT(x)
#else
#define ASSERT_HOT(x) ((void)sizeof(!(x)))
#endif

#define UNREACHABLE() core_base_assert_fail("unreachable", __FILE__, __LINE__, __func__)

enum core_base_log_level {
    CORE_LOG_ERROR = 0,
    CORE_LOG_WARN = 1,
    CORE_LOG_INFO = 2,
    CORE_LOG_DEBUG = 3,
};

// core_base_log writes one line "LEVEL func: message" to stderr. Thread-safe (one write(2) per
// line). Lines above the level set by core_base_log_set_level are dropped.
void core_base_log(enum core_base_log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// core_base_log_set_level sets the maximum level printed (default CORE_LOG_INFO).
void core_base_log_set_level(enum core_base_log_level level);

#define LOG_ERROR(...) core_base_log(CORE_LOG_ERROR, __func__, __VA_ARGS__)
#define LOG_WARN(...) core_base_log(CORE_LOG_WARN, __func__, __VA_ARGS__)
#define LOG_INFO(...) core_base_log(CORE_LOG_INFO, __func__, __VA_ARGS__)
#define LOG_DEBUG(...) core_base_log(CORE_LOG_DEBUG, __func__, __VA_ARGS__)

// fatal prints the message and exits with status 2. Startup and configuration loading only.
__attribute__((noreturn, format(printf, 1, 2))) void fatal(const char *fmt, ...);

// core_base_now_ns returns CLOCK_MONOTONIC in nanoseconds.
uint64_t core_base_now_ns(void);

// core_base_log_due: whether a warning rate-limited to one a second (per `*last_ns`, owned by
// the caller's thread) is due now; if so, `*last_ns` becomes now.
bool core_base_log_due(uint64_t *last_ns);

// core_base_wall_ns returns CLOCK_REALTIME in nanoseconds since the Unix epoch.
uint64_t core_base_wall_ns(void);

// core_base_copy copies `n` bytes from `src` to `dst` like memcpy (the buffers must not
// overlap), but never with glibc's `rep movsb` where that is pathological: on AMD Zen 3 it
// copies at ~3 GB/s instead of 60-90 when `dst` lies 1-63 bytes past `src` modulo 4 KiB
// (glibc 2.36 uses it from ~2 KiB up). Those copies take a 16-byte vector loop (~40 GB/s);
// every other copy is a memcpy.
void core_base_copy(void *dst, const void *src, size_t n);

// core_base_copy_is_slow tells whether memcpy(dst, src, n) would take that slow case: n of at
// least 2 KiB with dst 1-63 bytes past src modulo 4 KiB.
static inline bool core_base_copy_is_slow(const void *dst, const void *src, size_t n) {
    uintptr_t d = ((uintptr_t)dst - (uintptr_t)src) & 4095u;
    return n >= CORE_BASE_COPY_LOOP_MIN && d >= 1 && d < 64;
}

// core_base_hex_encode writes 2*`len` lowercase hex digits and a NUL into `out` (size >= 2*len+1).
void core_base_hex_encode(char *out, const uint8_t *in, size_t len);

// core_base_hex_decode parses exactly `out_len` bytes from the hex string `in` (which must be
// exactly 2*out_len hex digits). Returns 0 or -EINVAL.
int core_base_hex_decode(uint8_t *out, size_t out_len, const char *in);

// core_base_lazy_alloc returns `len` bytes of zeroed memory whose pages become resident only
// when first touched (an anonymous mapping: calloc through mimalloc may zero, and so touch, the
// whole block), or NULL. Free with core_base_lazy_free(ptr, len).
void *core_base_lazy_alloc(size_t len);

// core_base_lazy_free releases memory from core_base_lazy_alloc; NULL is a no-op.
void core_base_lazy_free(void *ptr, size_t len);

// core_base_utf8_seq_len returns the length (1..4) of the valid UTF-8 sequence at the start of
// `s` (`len` bytes, len > 0), or 0 when `s` does not start with one (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF, no truncated sequence). A NUL byte is a valid
// sequence of length 1.
size_t core_base_utf8_seq_len(const uint8_t *s, size_t len);

// core_base_utf8_valid reports whether the `len` bytes at `s` are valid UTF-8.
bool core_base_utf8_valid(const uint8_t *s, size_t len);

// Poison unsafe string functions in our own code (HAProxy). The libc headers that declare them
// are included first so later includes of them are no-ops.
#ifndef __cplusplus
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#pragma GCC poison strcpy strcat sprintf vsprintf gets
#endif

#ifdef __cplusplus
}
#endif

#endif // ATLS_CORE_BASE_H
