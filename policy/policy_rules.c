// policy_rules.c: loads the policy INI file (DESIGN.md §7) into an immutable struct policy.
// Startup and SIGHUP reload only: parses into a scratch copy and publishes it only when valid.
//
// Rule exception (CONVENTIONS.md rule 11 says core_config.c is the only inih handler): the policy
// file is a separate, normative file that is reloaded on its own on SIGHUP, so its parser lives
// with the policy model; core only passes its path. It follows the same key-table style.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core_base.h"
#include "policy.h"

enum {
    policy_file_max_bytes = 1 << 20, // a policy file is small; refuse anything bigger
    problem_max_bytes = 256,
};

enum key_type {
    KEY_STRING, // version
    KEY_MODE,
    KEY_BOOL,
    KEY_U8,
    KEY_U32,
    KEY_ALLOW, // [measurement] allow: repeatable 96 hex
    KEY_ROOTS, // builtin | path
    KEY_PATH,  // optional path, resolved against the file's directory
    KEY_CRL,   // [chain] crl: only empty (unset) is accepted, see set_value
};

enum rules_section {
    SEC_POLICY,
    SEC_MEASUREMENT,
    SEC_TCB,
    SEC_GUEST,
    SEC_NONCE,
    SEC_CHAIN,
    SEC_ROLES,
    SEC_COUNT,
};

static const char *const section_names[SEC_COUNT] = {
    [SEC_POLICY] = "policy", [SEC_MEASUREMENT] = "measurement",
    [SEC_TCB] = "tcb",       [SEC_GUEST] = "guest",
    [SEC_NONCE] = "nonce",   [SEC_CHAIN] = "chain",
    [SEC_ROLES] = "roles",
};

struct key_row {
    enum rules_section section;
    const char *name;
    enum key_type type;
    size_t offset; // into struct policy
    uint64_t min;
    uint64_t max;
};

#define ROW(sec, key, type, field, lo, hi) {sec, key, type, offsetof(struct policy, field), lo, hi}

static const struct key_row key_rows[] = {
    ROW(SEC_POLICY, "version", KEY_STRING, version, 1, policy_version_max_bytes - 1),
    ROW(SEC_MEASUREMENT, "mode", KEY_MODE, measurement.mode, 0, 0),
    ROW(SEC_MEASUREMENT, "allow", KEY_ALLOW, measurement.allow, 0, 0),
    ROW(SEC_TCB, "mode", KEY_MODE, tcb.mode, 0, 0),
    ROW(SEC_TCB, "min_bootloader", KEY_U8, tcb.min.bootloader, 0, UINT8_MAX),
    ROW(SEC_TCB, "min_tee", KEY_U8, tcb.min.tee, 0, UINT8_MAX),
    ROW(SEC_TCB, "min_snp", KEY_U8, tcb.min.snp, 0, UINT8_MAX),
    ROW(SEC_TCB, "min_microcode", KEY_U8, tcb.min.microcode, 0, UINT8_MAX),
    ROW(SEC_TCB, "min_fmc", KEY_U8, tcb.min.fmc, 0, UINT8_MAX),
    ROW(SEC_GUEST, "mode", KEY_MODE, guest.mode, 0, 0),
    ROW(SEC_GUEST, "debug_allowed", KEY_BOOL, guest.debug_allowed, 0, 0),
    ROW(SEC_GUEST, "smt_allowed", KEY_BOOL, guest.smt_allowed, 0, 0),
    ROW(SEC_GUEST, "migrate_ma_allowed", KEY_BOOL, guest.migrate_ma_allowed, 0, 0),
    ROW(SEC_GUEST, "min_guest_svn", KEY_U32, guest.min_guest_svn, 0, UINT32_MAX),
    ROW(SEC_GUEST, "min_abi_major", KEY_U8, guest.min_abi_major, 0, UINT8_MAX),
    ROW(SEC_GUEST, "min_abi_minor", KEY_U8, guest.min_abi_minor, 0, UINT8_MAX),
    ROW(SEC_GUEST, "max_vmpl", KEY_U8, guest.max_vmpl, 0, 3),
    ROW(SEC_NONCE, "required", KEY_BOOL, nonce.required, 0, 0),
    ROW(SEC_NONCE, "ttl_s", KEY_U32, nonce.ttl_s, 1, 86400),
    ROW(SEC_NONCE, "reuse_window_s", KEY_U32, nonce.reuse_window_s, 0, 86400),
    ROW(SEC_CHAIN, "roots", KEY_ROOTS, chain.roots_path, 0, 0),
    ROW(SEC_CHAIN, "vcek_dir", KEY_PATH, chain.vcek_dir, 0, 0),
    // [chain] crl is part of the file format (DESIGN.md §7) but CRLs are not checked: the row
    // exists so that a CRL path is refused by name, never parsed and then ignored. No field.
    {SEC_CHAIN, "crl", KEY_CRL, 0, 0, 0},
};

STATIC_ASSERT(ARRAY_LEN(key_rows) <= 64, "seen_keys is a 64-bit mask");

struct parse_ctx {
    struct policy *policy; // scratch, published by the caller only on success
    const char *name;      // file name in messages
    const char *base_dir;  // relative paths are resolved against it
    char *err;
    size_t err_bytes;
    bool failed; // first problem recorded; later ones are ignored
    // reader state: the whole file in memory, handed to inih line by line
    const char *text;
    size_t pos;
    int line;
    uint32_t seen_sections; // bit per rules_section
    uint64_t seen_keys;     // bit per key_rows index
};

__attribute__((format(printf, 2, 3))) static void fail(struct parse_ctx *ctx, const char *fmt,
                                                       ...) {
    if (ctx->failed) {
        return;
    }
    ctx->failed = true;
    char problem[problem_max_bytes];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    if (ctx->err != NULL && ctx->err_bytes > 0) {
        if (ctx->line > 0) {
            snprintf(ctx->err, ctx->err_bytes, "%s:%d: %s", ctx->name, ctx->line, problem);
        } else {
            snprintf(ctx->err, ctx->err_bytes, "%s: %s", ctx->name, problem);
        }
    }
}

static int section_index(const char *name) {
    for (int i = 0; i < SEC_COUNT; i++) {
        if (strcmp(section_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

// check_section_header validates a "[name]" line before inih sees it: inih does not call the
// handler for a section without keys, so an empty unknown section would otherwise pass.
static void check_section_header(struct parse_ctx *ctx, const char *line, size_t len) {
    size_t i = 0;
    // Skip what inih skips before a header: a UTF-8 BOM and any isspace() byte.
    if (len >= 3 && (uint8_t)line[0] == 0xef && (uint8_t)line[1] == 0xbb &&
        (uint8_t)line[2] == 0xbf) {
        i = 3;
    }
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\f' || line[i] == '\v' ||
                       line[i] == '\r')) {
        i++;
    }
    if (i == len || line[i] != '[') {
        return;
    }
    const char *start = line + i + 1;
    const char *end = memchr(start, ']', len - i - 1);
    if (end == NULL) {
        return; // inih reports the syntax error at this line
    }
    char name[32];
    size_t name_len = (size_t)(end - start);
    if (name_len >= sizeof(name)) {
        fail(ctx, "unknown section [%.*s]", (int)name_len, start);
        return;
    }
    memcpy(name, start, name_len);
    name[name_len] = '\0';
    int sec = section_index(name);
    if (sec < 0) {
        fail(ctx, "unknown section [%s]", name);
        return;
    }
    if (ctx->seen_sections & (1u << sec)) {
        fail(ctx, "section [%s] appears twice", name);
        return;
    }
    ctx->seen_sections |= 1u << sec;
}

// reader hands inih one line at a time and counts lines, because Debian's libinih is built
// without INI_HANDLER_LINENO: when the handler runs, ctx->line is the line being parsed.
static char *reader(char *str, int num, void *stream) {
    struct parse_ctx *ctx = stream;
    if (ctx->failed || ctx->text[ctx->pos] == '\0') {
        return NULL; // stop at the first problem: its line is the one reported
    }
    const char *line = ctx->text + ctx->pos;
    const char *nl = strchr(line, '\n');
    size_t len = nl != NULL ? (size_t)(nl - line) + 1 : strlen(line);
    ctx->line++;
    ASSERT(num > 2);
    if (len > (size_t)num - 1) {
        fail(ctx, "line too long (%zu bytes, at most %d)", len, num - 2);
        return NULL;
    }
    check_section_header(ctx, line, len);
    memcpy(str, line, len);
    str[len] = '\0';
    ctx->pos += len;
    return str;
}

static const struct key_row *find_row(enum rules_section sec, const char *name) {
    for (size_t i = 0; i < ARRAY_LEN(key_rows); i++) {
        if (key_rows[i].section == sec && strcmp(key_rows[i].name, name) == 0) {
            return &key_rows[i];
        }
    }
    return NULL;
}

// parse_u64 accepts decimal or 0x-prefixed hex digits only: no sign, no spaces, no octal.
static bool parse_u64(const char *value, uint64_t *out) {
    const char *digits = value;
    int base = 10;
    if (value[0] == '0' && (value[1] == 'x' || value[1] == 'X')) {
        digits = value + 2;
        base = 16;
    }
    if (digits[0] == '\0') {
        return false;
    }
    for (const char *c = digits; *c != '\0'; c++) {
        bool ok = base == 10 ? (*c >= '0' && *c <= '9')
                             : ((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') ||
                                (*c >= 'A' && *c <= 'F'));
        if (!ok) {
            return false;
        }
    }
    errno = 0;
    unsigned long long v = strtoull(digits, NULL, base);
    if (errno == ERANGE) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_bool(const char *value, bool *out) {
    if (strcmp(value, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(value, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_mode(const char *value, enum policy_mode *out) {
    static const struct {
        const char *name;
        enum policy_mode mode;
    } modes[] = {{"strict", POLICY_MODE_STRICT},
                 {"warn", POLICY_MODE_WARN},
                 {"disabled", POLICY_MODE_DISABLED}};
    for (size_t i = 0; i < ARRAY_LEN(modes); i++) {
        if (strcmp(value, modes[i].name) == 0) {
            *out = modes[i].mode;
            return true;
        }
    }
    return false;
}

// parse_measurement decodes exactly 96 hex digits; `what` names the key in the message.
static bool parse_measurement(struct parse_ctx *ctx, const char *what, const char *value,
                              uint8_t *out) {
    size_t len = strlen(value);
    if (len != 2 * policy_measurement_bytes) {
        fail(ctx, "%s: expected %d hex digits (%d bytes), got %zu characters", what,
             2 * policy_measurement_bytes, policy_measurement_bytes, len);
        return false;
    }
    uint8_t tmp[policy_measurement_bytes];
    if (core_base_hex_decode(tmp, sizeof(tmp), value) != 0) {
        fail(ctx, "%s: '%.16s...' is not hex", what, value);
        return false;
    }
    memcpy(out, tmp, sizeof(tmp));
    return true;
}

static bool resolve_path(struct parse_ctx *ctx, const struct key_row *row, const char *value,
                         char *out) {
    int n;
    if (value[0] == '/') {
        n = snprintf(out, policy_path_max_bytes, "%s", value);
    } else {
        n = snprintf(out, policy_path_max_bytes, "%s/%s", ctx->base_dir, value);
    }
    if (n < 0 || (size_t)n >= policy_path_max_bytes) {
        fail(ctx, "[%s] %s: path too long (at most %d bytes resolved)", section_names[row->section],
             row->name, policy_path_max_bytes - 1);
        return false;
    }
    return true;
}

static void set_allow(struct parse_ctx *ctx, const char *value) {
    struct policy *p = ctx->policy;
    uint8_t m[policy_measurement_bytes];
    if (!parse_measurement(ctx, "[measurement] allow", value, m)) {
        return;
    }
    for (uint32_t i = 0; i < p->measurement.allow_count; i++) {
        if (memcmp(p->measurement.allow[i], m, sizeof(m)) == 0) {
            fail(ctx, "[measurement] allow: duplicate measurement %.12s...", value);
            return;
        }
    }
    if (p->measurement.allow_count == policy_measurements_max) {
        fail(ctx, "[measurement] allow: more than %d entries", policy_measurements_max);
        return;
    }
    memcpy(p->measurement.allow[p->measurement.allow_count++], m, sizeof(m));
}

static void set_value(struct parse_ctx *ctx, const struct key_row *row, const char *value) {
    char *field = (char *)ctx->policy + row->offset;
    const char *sec = section_names[row->section];
    uint64_t v = 0;
    switch (row->type) {
    case KEY_STRING: {
        size_t len = strlen(value);
        if (len < row->min || len > row->max) {
            fail(ctx, "[%s] %s: length %zu not in %llu..%llu", sec, row->name, len,
                 (unsigned long long)row->min, (unsigned long long)row->max);
            return;
        }
        memcpy(field, value, len + 1);
        return;
    }
    case KEY_MODE:
        if (!parse_mode(value, (enum policy_mode *)(void *)field)) {
            fail(ctx, "[%s] %s: '%s' is not strict, warn or disabled", sec, row->name, value);
        }
        return;
    case KEY_BOOL:
        if (!parse_bool(value, (bool *)field)) {
            fail(ctx, "[%s] %s: '%s' is not true or false", sec, row->name, value);
        }
        return;
    case KEY_U8:
    case KEY_U32:
        if (!parse_u64(value, &v) || v < row->min || v > row->max) {
            fail(ctx, "[%s] %s: '%s' is not a number in %llu..%llu", sec, row->name, value,
                 (unsigned long long)row->min, (unsigned long long)row->max);
            return;
        }
        if (row->type == KEY_U8) {
            *(uint8_t *)field = (uint8_t)v;
        } else {
            *(uint32_t *)(void *)field = (uint32_t)v;
        }
        return;
    case KEY_ALLOW:
        set_allow(ctx, value);
        return;
    case KEY_ROOTS:
        if (value[0] == '\0') {
            fail(ctx, "[chain] roots: empty (use builtin or a PEM path)");
            return;
        }
        ctx->policy->chain.roots_builtin = strcmp(value, "builtin") == 0;
        if (ctx->policy->chain.roots_builtin) {
            ctx->policy->chain.roots_path[0] = '\0';
            return;
        }
        resolve_path(ctx, row, value, field);
        return;
    case KEY_PATH:
        if (value[0] == '\0') {
            field[0] = '\0'; // "vcek_dir =" leaves it unset
            return;
        }
        resolve_path(ctx, row, value, field);
        return;
    case KEY_CRL:
        // Fail closed: an operator who names a CRL expects revoked ASKs/VCEKs to be refused.
        // Until the verifier checks CRLs, accepting the path would silently revoke nothing.
        if (value[0] != '\0') {
            fail(ctx, "[chain] crl: CRL checking is not supported; remove the key or leave it "
                      "empty (a CRL named here would not revoke anything)");
        }
        return;
    }
    UNREACHABLE();
}

static bool is_user_char(char c) {
    return c > ' ' && c != ',' && c != 0x7f;
}

// set_role parses "<96 hex> = user1, user2".
static void set_role(struct parse_ctx *ctx, const char *name, const char *value) {
    struct policy *p = ctx->policy;
    if (p->roles.count == policy_roles_max) {
        fail(ctx, "[roles]: more than %d rows", policy_roles_max);
        return;
    }
    struct policy_role *row = &p->roles.rows[p->roles.count];
    memset(row, 0, sizeof(*row));
    if (!parse_measurement(ctx, "[roles] key", name, row->measurement)) {
        return;
    }
    for (uint32_t i = 0; i < p->roles.count; i++) {
        if (memcmp(p->roles.rows[i].measurement, row->measurement, policy_measurement_bytes) == 0) {
            fail(ctx, "[roles]: measurement %.12s... listed twice", name);
            return;
        }
    }
    const char *c = value;
    for (;;) {
        while (*c == ' ' || *c == '\t') {
            c++;
        }
        const char *start = c;
        while (is_user_char(*c)) {
            c++;
        }
        size_t len = (size_t)(c - start);
        while (*c == ' ' || *c == '\t') {
            c++;
        }
        if (len == 0 || (*c != ',' && *c != '\0')) {
            fail(ctx, "[roles]: bad user list '%s' (expected user1, user2)", value);
            return;
        }
        if (len >= policy_user_max_bytes) {
            fail(ctx, "[roles]: user name '%.*s' longer than %d bytes", (int)len, start,
                 policy_user_max_bytes - 1);
            return;
        }
        if (row->user_count == policy_role_users_max) {
            fail(ctx, "[roles]: more than %d users for one measurement", policy_role_users_max);
            return;
        }
        for (uint32_t i = 0; i < row->user_count; i++) {
            if (strlen(row->users[i]) == len && memcmp(row->users[i], start, len) == 0) {
                fail(ctx, "[roles]: user '%.*s' listed twice", (int)len, start);
                return;
            }
        }
        memcpy(row->users[row->user_count], start, len);
        row->users[row->user_count][len] = '\0';
        row->user_count++;
        if (*c == '\0') {
            break;
        }
        c++; // past ','
    }
    p->roles.count++;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    struct parse_ctx *ctx = user;
    if (ctx->failed) {
        return 0;
    }
    int sec = section_index(section);
    if (section[0] == '\0') {
        fail(ctx, "key '%s' outside any section", name);
        return 0;
    }
    if (sec < 0) {
        // check_section_header refuses unknown sections on the lines it recognises, but inih
        // also accepts a header after any isspace() byte or a UTF-8 BOM: refuse it here too.
        fail(ctx, "unknown section [%s]", section);
        return 0;
    }
    if (sec == SEC_ROLES) {
        set_role(ctx, name, value);
        return ctx->failed ? 0 : 1;
    }
    const struct key_row *row = find_row((enum rules_section)sec, name);
    if (row == NULL) {
        fail(ctx, "unknown key '%s' in [%s]", name, section);
        return 0;
    }
    uint64_t bit = 1ull << (size_t)(row - key_rows);
    if (row->type != KEY_ALLOW && (ctx->seen_keys & bit)) {
        fail(ctx, "[%s] %s set twice", section, name);
        return 0;
    }
    ctx->seen_keys |= bit;
    set_value(ctx, row, value);
    return ctx->failed ? 0 : 1;
}

// validate does the whole-file checks once every key is read.
static void validate(struct parse_ctx *ctx) {
    const struct policy *p = ctx->policy;
    ctx->line = 0;
    if (p->version[0] == '\0') {
        fail(ctx, "[policy] version is required (it is recorded in every audit record)");
        return;
    }
    if (p->measurement.mode == POLICY_MODE_STRICT && p->measurement.allow_count == 0) {
        fail(ctx, "[measurement] mode = strict but no allow = <measurement> (would deny every "
                  "client; use mode = disabled to skip the check)");
        return;
    }
    // Left out, the floors are 0 and every TCB passes: that must be said, not forgotten.
    bool floor_set = false;
    for (size_t i = 0; i < ARRAY_LEN(key_rows); i++) {
        if (key_rows[i].section == SEC_TCB && strncmp(key_rows[i].name, "min_", 4) == 0 &&
            (ctx->seen_keys & (1ull << i))) {
            floor_set = true;
        }
    }
    if (p->tcb.mode != POLICY_MODE_DISABLED && !floor_set) {
        fail(ctx, "[tcb] sets no floor (min_bootloader, min_tee, min_snp, min_microcode): every "
                  "TCB would pass; give the floors, or mode = disabled to skip the check");
        return;
    }
}

void policy_rules_defaults(struct policy *out_policy) {
    ASSERT(out_policy != NULL);
    memset(out_policy, 0, sizeof(*out_policy));
    out_policy->measurement.mode = POLICY_MODE_STRICT;
    out_policy->tcb.mode = POLICY_MODE_STRICT;
    out_policy->guest.mode = POLICY_MODE_STRICT;
    out_policy->guest.debug_allowed = false;
    out_policy->guest.smt_allowed = false;
    out_policy->guest.migrate_ma_allowed = false;
    out_policy->guest.max_vmpl = 0;
    out_policy->nonce.required = true;
    out_policy->nonce.ttl_s = 300;
    out_policy->nonce.reuse_window_s = 0;
    out_policy->chain.roots_builtin = true;
}

// parse runs inih over `text` into a scratch policy and copies it out only when valid.
static int parse(struct policy *out_policy, char *out_err, size_t err_bytes, const char *text,
                 const char *name, const char *base_dir) {
    int rc = -ENOMEM;
    struct policy *scratch = malloc(sizeof(*scratch));
    if (scratch == NULL) {
        snprintf(out_err, err_bytes, "%s: out of memory", name);
        goto out;
    }
    policy_rules_defaults(scratch);
    struct parse_ctx ctx = {
        .policy = scratch,
        .name = name,
        .base_dir = base_dir,
        .err = out_err,
        .err_bytes = err_bytes,
        .text = text,
    };
    int ini_rc = ini_parse_stream(reader, &ctx, handler, &ctx);
    if (!ctx.failed && ini_rc != 0) {
        // inih's own syntax errors (no '=', unterminated section) never reach the handler.
        ctx.line = ini_rc > 0 ? ini_rc : 0;
        fail(&ctx, "syntax error (expected [section] or key = value)");
    }
    if (!ctx.failed) {
        validate(&ctx);
    }
    if (ctx.failed) {
        rc = -EINVAL;
        goto out_free_scratch;
    }
    memcpy(out_policy, scratch, sizeof(*scratch));
    rc = 0;

out_free_scratch:
    free(scratch);
    scratch = NULL;
out:
    return rc;
}

int policy_rules_load_string(struct policy *out_policy, char *out_err, size_t err_bytes,
                             const char *text, const char *name, const char *base_dir) {
    ASSERT(out_policy != NULL);
    ASSERT(text != NULL);
    ASSERT(name != NULL);
    ASSERT(out_err != NULL || err_bytes == 0);
    if (err_bytes > 0) {
        out_err[0] = '\0';
    }
    return parse(out_policy, out_err, err_bytes, text, name, base_dir != NULL ? base_dir : ".");
}

// read_file reads all of `path` into a NUL-terminated heap buffer.
static int read_file(char **out_text, char *out_err, size_t err_bytes, const char *path) {
    int rc = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        rc = -errno;
        snprintf(out_err, err_bytes, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    char *buf = malloc(policy_file_max_bytes + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        snprintf(out_err, err_bytes, "%s: out of memory", path);
        goto out_close_file;
    }
    size_t n = fread(buf, 1, policy_file_max_bytes + 1, f);
    if (ferror(f)) {
        rc = -EIO;
        snprintf(out_err, err_bytes, "%s: read error", path);
        goto out_free_buf;
    }
    if (n > policy_file_max_bytes) {
        rc = -EINVAL;
        snprintf(out_err, err_bytes, "%s: larger than %d bytes", path, policy_file_max_bytes);
        goto out_free_buf;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        rc = -EINVAL;
        snprintf(out_err, err_bytes, "%s: contains a NUL byte", path);
        goto out_free_buf;
    }
    *out_text = buf;
    buf = NULL;
    goto out_close_file;

out_free_buf:
    free(buf);
    buf = NULL;
out_close_file:
    fclose(f);
    f = NULL;
out:
    return rc;
}

int policy_rules_load_file(struct policy *out_policy, char *out_err, size_t err_bytes,
                           const char *path) {
    ASSERT(out_policy != NULL);
    ASSERT(path != NULL);
    ASSERT(out_err != NULL || err_bytes == 0);
    char dir[PATH_MAX];
    char base[PATH_MAX];
    char *text = NULL;
    if (err_bytes > 0) {
        out_err[0] = '\0';
    }
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    // Absolute base so [chain] paths stay right if the process changes directory later.
    if (realpath(dir, base) == NULL) {
        snprintf(base, sizeof(base), "%s", dir);
    }
    if (strcmp(base, "/") == 0) {
        base[0] = '\0'; // "/" + "/" + name would give "//name"
    }
    int rc = read_file(&text, out_err, err_bytes, path);
    if (rc < 0) {
        return rc;
    }
    rc = parse(out_policy, out_err, err_bytes, text, path, base);
    free(text);
    text = NULL;
    return rc;
}
