// core_api_query.c: the HTTP API's query-string values (limit, since): pure functions with no
// I/O, kept apart from core_api.c so that tests/fuzz/fuzz_api_query.c can fuzz them alone.
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"


int core_api_parse_limit(uint32_t *out, const char *text, uint32_t max) {
    if (text == NULL || text[0] == '\0' || strlen(text) > 10) {
        return -EINVAL;
    }
    uint64_t v = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -EINVAL;
        }
        v = v * 10u + (uint64_t)(*p - '0');
    }
    if (v < 1 || v > max) {
        return -ERANGE;
    }
    *out = (uint32_t)v;
    return 0;
}

static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -EINVAL;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

int core_api_parse_since(uint64_t *out_ns, const char *text) {
    if (text == NULL || text[0] == '\0' || strlen(text) > 40) {
        return -EINVAL;
    }
    size_t n = strlen(text);
    bool all_digits = true;
    for (size_t i = 0; i < n; i++) {
        all_digits = all_digits && text[i] >= '0' && text[i] <= '9';
    }
    if (all_digits) { // unix seconds
        if (n > 11) {
            return -ERANGE;
        }
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            s = s * 10u + (uint64_t)(text[i] - '0');
        }
        if (s > UINT64_MAX / 1000000000ull) {
            return -ERANGE; // past 2554 in nanoseconds: would wrap to a time near 1970
        }
        *out_ns = s * 1000000000ull;
        return 0;
    }
    // RFC 3339 in UTC: YYYY-MM-DDTHH:MM:SS[.fraction]Z
    int Y, M, D, h, m, s;
    if (n < 20 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') ||
        text[13] != ':' || text[16] != ':' || digits(text, 4, &Y) != 0 ||
        digits(text + 5, 2, &M) != 0 || digits(text + 8, 2, &D) != 0 ||
        digits(text + 11, 2, &h) != 0 || digits(text + 14, 2, &m) != 0 ||
        digits(text + 17, 2, &s) != 0) {
        return -EINVAL;
    }
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || s > 60 ||
        D > month_days[M - 1] + (M == 2 && leap ? 1 : 0)) {
        return -ERANGE; // a day the month does not have (timegm would roll it into the next)
    }
    const char *p = text + 19;
    uint64_t frac_ns = 0;
    if (*p == '.') {
        p++;
        uint64_t scale = 100000000ull;
        if (*p < '0' || *p > '9') {
            return -EINVAL;
        }
        while (*p >= '0' && *p <= '9') {
            frac_ns += (uint64_t)(*p - '0') * scale;
            scale /= 10u;
            p++;
        }
    }
    if ((*p != 'Z' && *p != 'z') || p[1] != '\0') {
        return -EINVAL; // only UTC: an offset would be easy to get wrong silently
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    if (t < 0 || (uint64_t)t > (UINT64_MAX - frac_ns) / 1000000000ull) {
        return -ERANGE;
    }
    *out_ns = (uint64_t)t * 1000000000ull + frac_ns;
    return 0;
}

