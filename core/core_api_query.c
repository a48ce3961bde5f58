// core_api_query.c: the HTTP API's query-string values (limit, since) and its Accept header: pure
// functions with no I/O, kept apart from core_api.c so that tests/fuzz/fuzz_api_query.c can fuzz
// them alone.
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core_api_query.h"

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

// accept_q parses the value of a q parameter into thousandths. -1 when malformed.
static int accept_q(const char *v, size_t n) {
    if (n == 0 || (v[0] != '0' && v[0] != '1') || (n > 1 && v[1] != '.') || n > 5) {
        return -1;
    }
    int q = (v[0] - '0') * 1000;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        q += (v[i] - '0') * scale;
    }
    return q <= 1000 ? q : -1;
}

static bool ows(char c) {
    return c == ' ' || c == '\t';
}

// trimmed narrows [*p, *p + *n) to its part without leading or trailing spaces and tabs.
static void trimmed(const char **p, size_t *n) {
    while (*n > 0 && ows(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ows((*p)[*n - 1])) {
        (*n)--;
    }
}

static bool names(const char *p, size_t n, const char *want) {
    return n == strlen(want) && strncasecmp(p, want, n) == 0;
}

enum core_api_accept core_api_parse_accept(const char *accept) {
    if (accept == NULL) {
        return CORE_API_ACCEPT_EITHER;
    }
    // Best q per kind of range: exact JSON, exact protobuf, application/*, */* (-1: not named).
    int best[4] = {-1, -1, -1, -1};
    for (const char *at = accept; *at != '\0';) {
        size_t len = strcspn(at, ",");
        const char *range = at;
        at += len + (at[len] == ',' ? 1 : 0);
        size_t type_len = strcspn(range, ";");
        if (type_len > len) {
            type_len = len;
        }
        int q = 1000;
        // Parameters: ";name=value" pairs after the type; only q matters.
        for (size_t i = type_len; i < len && q >= 0;) {
            const char *param = range + i + 1;
            size_t plen = strcspn(param, ";,");
            if (param + plen > range + len) {
                plen = (size_t)(range + len - param);
            }
            i += plen + 1;
            const char *eq = memchr(param, '=', plen);
            if (eq == NULL) {
                continue;
            }
            const char *name = param;
            size_t name_len = (size_t)(eq - param);
            trimmed(&name, &name_len);
            if (names(name, name_len, "q")) {
                const char *v = eq + 1;
                size_t vlen = (size_t)(param + plen - v);
                trimmed(&v, &vlen);
                q = accept_q(v, vlen);
            }
        }
        if (q < 0) {
            continue; // malformed q: the range is ignored
        }
        const char *type = range;
        trimmed(&type, &type_len);
        int kind = names(type, type_len, "application/json")         ? 0
                   : names(type, type_len, "application/x-protobuf") ? 1
                   : names(type, type_len, "application/*")          ? 2
                   : names(type, type_len, "*/*")                    ? 3
                                                                     : -1;
        if (kind >= 0 && q > best[kind]) {
            best[kind] = q;
        }
    }
    int wild = best[2] >= 0 ? best[2] : best[3];
    int json = best[0] >= 0 ? best[0] : wild;
    int pb = best[1] >= 0 ? best[1] : wild;
    json = json < 0 ? 0 : json;
    pb = pb < 0 ? 0 : pb;
    if (json > pb) {
        return CORE_API_ACCEPT_JSON;
    }
    return pb > json ? CORE_API_ACCEPT_PROTOBUF : CORE_API_ACCEPT_EITHER;
}
