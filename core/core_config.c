// core_config.c: the sole inih handler. Routes (section, key) through key tables into the flat
// struct core_config, resolves paths against the config file's directory, validates.
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "core.h"
#include "core_base.h"
#include "store.h"

enum key_type {
    KEY_STR,       // plain string
    KEY_PATH,      // string, resolved against the config directory
    KEY_U32,
    KEY_U64,
    KEY_BOOL,
    KEY_LISTEN,    // repeatable host:port
    KEY_SERVERS,   // comma-separated host:port list
    KEY_ADDR,      // one host:port
    KEY_WORKERS,   // auto | N
    KEY_CHOICE,    // one of the row's choices (an enum field)
};

// A word a KEY_CHOICE key accepts, and the enum value it stands for.
struct choice {
    const char *word;
    int value;
};

struct key_row {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    size_t size; // for strings
    uint32_t min;
    uint32_t max;
    const char *help;
    const struct choice *choices; // KEY_CHOICE
    size_t choice_count;
};

#define ROW(sec, key, type, field, mn, mx, help)                                                   \
    {sec, key, type, offsetof(struct core_config, field),                                          \
     sizeof(((struct core_config *)0)->field), mn, mx, help, NULL, 0}
// A key whose value is one of `ch` (a static array of struct choice) into enum field `field`.
#define ROW_CHOICE(sec, key, field, ch, help)                                                       \
    {sec, key, KEY_CHOICE, offsetof(struct core_config, field),                                    \
     sizeof(((struct core_config *)0)->field), 0, 0, help, ch, ARRAY_LEN(ch)}

static const struct choice choices_mode[] = {{"terminate", CORE_MODE_TERMINATE},
                                             {"passthrough", CORE_MODE_PASSTHROUGH}};
static const struct choice choices_hsthread[] = {{"auto", CORE_HS_THREAD_AUTO},
                                                 {"always", CORE_HS_THREAD_ALWAYS},
                                                 {"off", CORE_HS_THREAD_OFF}};
static const struct choice choices_prio[] = {{"normal", CORE_PRIO_NORMAL},
                                             {"realtime", CORE_PRIO_REALTIME}};
static const struct choice choices_sync[] = {{"always", STORE_SYNC_ALWAYS},
                                             {"batch", STORE_SYNC_BATCH}};

static const struct choice choices_health[] = {{"connect", CORE_HEALTH_CONNECT},
                                               {"startup", CORE_HEALTH_STARTUP},
                                               {"off", CORE_HEALTH_OFF}};

static const struct key_row rows[] = {
    ROW("proxy", "node_id", KEY_STR, node_id, 0, 0, "node name in audit records and stats"),
    ROW("proxy", "listen", KEY_LISTEN, listen, 0, 0, "pgwire/TLS listener host:port, repeatable"),
    ROW_CHOICE("proxy", "mode", mode, choices_mode, "terminate | passthrough"),
    ROW("proxy", "workers", KEY_WORKERS, workers, 1, CORE_WORKERS_MAX, "auto or a count"),
    ROW("proxy", "drain_timeout_ms", KEY_U32, drain_timeout_ms, 0, 600000, "SIGTERM drain"),
    ROW("proxy", "conns_max", KEY_U32, conns_max, 16, 1000000, "connection slots per worker"),
    ROW("proxy", "handshake_timeout_ms", KEY_U32, handshake_timeout_ms, 100, 600000,
        "sniff + TLS handshake + startup deadline"),
    ROW("proxy", "idle_timeout_ms", KEY_U32, idle_timeout_ms, 0, 86400000u, "0 = none"),
    ROW_CHOICE("proxy", "handshake_thread", handshake_thread, choices_hsthread,
        "auto | always | off: TLS handshake steps on a second thread per worker, which "
        "established sessions preempt (auto: while established sessions move bytes)"),
    ROW_CHOICE("proxy", "worker_priority", worker_priority, choices_prio,
        "normal | realtime: realtime runs each worker SCHED_FIFO (needs CAP_SYS_NICE) while "
        "established sessions move bytes and it uses under 80% of its CPU, so a handshake storm "
        "or another process cannot delay them"),
    ROW("proxy", "busy_poll_us", KEY_U32, busy_poll_us, 0, CORE_BUSY_POLL_US_MAX,
        "0 = off: a worker polls for completions this long before it sleeps (for workers with a "
        "CPU of their own in a VM: saves the waker an interrupt and a VM exit per wake-up)"),
    ROW("tls", "cert", KEY_PATH, tls_cert, 0, 0, "server certificate chain (PEM)"),
    ROW("tls", "key", KEY_PATH, tls_key, 0, 0, "server private key (PEM)"),
    ROW("tls", "client_ca", KEY_PATH, tls_client_ca, 0, 0, "CA for plain mutual-TLS clients"),
    ROW("attestation", "required", KEY_BOOL, attestation_required, 0, 0, "require SNP evidence"),
    ROW("attestation", "policy", KEY_PATH, attestation_policy, 0, 0, "policy INI"),
    ROW("attestation", "nonce_capacity", KEY_U32, nonce_capacity, CORE_NONCE_CAPACITY_MIN,
        CORE_NONCE_CAPACITY_MAX, "nonce table slots (power of two): live nonces at most"),
    ROW("backend", "servers", KEY_SERVERS, backends, 0, 0, "comma-separated host:port"),
    ROW("backend", "connect_timeout_ms", KEY_U32, connect_timeout_ms, 10, 600000, ""),
    ROW("backend", "health_interval_ms", KEY_U32, health_interval_ms, 100, 600000,
        "how often each backend is probed (and a failed one retried)"),
    ROW_CHOICE("backend", "health_check", health_check, choices_health,
        "connect | startup | off: active probe of every backend each health_interval_ms; "
        "startup sends a StartupMessage as health_user and reads the answer, so that a node "
        "refusing sessions (57P01..57P03) counts as down"),
    ROW("backend", "health_user", KEY_STR, health_user, 0, 0,
        "user of the startup probe (needs no password: the probe stops at the first answer)"),
    ROW("backend", "health_database", KEY_STR, health_database, 0, 0,
        "database of the startup probe (default: health_user)"),
    ROW("api", "listen", KEY_ADDR, api_listen, 0, 0, "HTTP API host:port"),
    ROW("api", "allow_origin", KEY_STR, api_allow_origin, 0, 0,
        "origins (scheme://host:port, comma-separated) whose pages may read this API"),
    ROW("api", "allow_hosts", KEY_STR, api_allow_hosts, 0, 0,
        "names (comma-separated) accepted in the Host header besides IP literals and localhost"),
    ROW("audit", "enabled", KEY_BOOL, audit_enabled, 0, 0,
        "write the audit trail (terminate mode); false only for tests and benchmarks"),
    ROW("audit", "dir", KEY_PATH, audit.dir, 0, 0, "RocksDB directory"),
    ROW_CHOICE("audit", "sync", audit.sync, choices_sync, "always | batch"),
    ROW("audit", "retention_days", KEY_U32, audit.retention_days, 0, STORE_RETENTION_DAYS_MAX,
        "0 = no age limit"),
    ROW("audit", "retention_max_records", KEY_U64, audit.retention_max_records, 0, 0,
        "0 = no count limit"),
    ROW("audit", "ring_slots_per_worker", KEY_U32, audit.ring_slots_per_worker, STORE_RING_SLOTS_MIN,
        STORE_RING_SLOTS_MAX, "records in flight per worker (power of two)"),
    ROW("audit", "batch_max", KEY_U32, audit.batch_max, 1, STORE_BATCH_MAX_MAX,
        "records per write batch"),
    ROW("audit", "retention_interval_ms", KEY_U32, audit.retention_interval_ms,
        STORE_RETENTION_INTERVAL_MS_MIN, 86400000u, "how often retention runs"),
};

struct parse_ctx {
    struct core_config *cfg;
    char dir[CORE_PATH_MAX];
    char problem[256];
    bool failed;
    uint32_t problem_line; // the line of `problem`
    uint32_t line;         // the line inih is at (read_line counts them)
    FILE *f;
    uint32_t seen_line[ARRAY_LEN(rows)]; // where each key was set, 0: not yet
};

static void config_defaults(struct core_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->node_id, sizeof(cfg->node_id), "proxy-1");
    cfg->mode = CORE_MODE_TERMINATE;
    cfg->workers = 0;
    cfg->drain_timeout_ms = 10000;
    cfg->conns_max = 4096;
    cfg->handshake_timeout_ms = 10000;
    cfg->idle_timeout_ms = 0;
    cfg->handshake_thread = CORE_HS_THREAD_AUTO;
    cfg->worker_priority = CORE_PRIO_NORMAL;
    cfg->attestation_required = true;
    cfg->nonce_capacity = CORE_NONCE_CAPACITY_DEFAULT;
    cfg->connect_timeout_ms = 3000;
    cfg->health_check = CORE_HEALTH_CONNECT;
    cfg->health_interval_ms = 1000;
    cfg->audit_enabled = true;
    store_config_defaults(&cfg->audit);
    (void)core_config_parse_addr(&cfg->api_listen, "127.0.0.1:8081");
    cfg->api_enabled = true;
}

int core_config_parse_addr(struct core_addr *out, const char *text) {
    memset(out, 0, sizeof(*out));
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof(out->text)) {
        return -EINVAL;
    }
    memcpy(out->text, text, n + 1);
    char host[CORE_NAME_MAX];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0') {
        return -EINVAL;
    }
    size_t hlen = (size_t)(colon - text);
    if (text[0] == '[') { // [v6]:port
        if (hlen < 3 || text[hlen - 1] != ']') {
            return -EINVAL;
        }
        memcpy(host, text + 1, hlen - 2);
        host[hlen - 2] = '\0';
    } else {
        memcpy(host, text, hlen);
        host[hlen] = '\0';
    }
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port == 0 || port > 65535) {
        return -EINVAL;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) {
        return -EINVAL;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int set_problem(struct parse_ctx *pc, const char *fmt, const char *a, const char *b) {
    if (!pc->failed) {
        snprintf(pc->problem, sizeof(pc->problem), fmt, a, b);
        pc->failed = true;
        pc->problem_line = pc->line;
    }
    return 0;
}

static const char *trim(char *s) {
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
    return s;
}

// parse_u64: a decimal integer without sign, nothing after it. Returns 0 or -EINVAL.
static int parse_u64(const char *v, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    if (*v == '-' || *v == '\0') {
        return -EINVAL;
    }
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -EINVAL;
    }
    *out = x;
    return 0;
}

static int parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out) {
    uint64_t x = 0;
    if (parse_u64(v, &x) != 0 || x < min || x > max) {
        return -EINVAL;
    }
    *out = (uint32_t)x;
    return 0;
}

static int apply_row(struct parse_ctx *pc, const struct key_row *row, const char *value) {
    struct core_config *cfg = pc->cfg;
    uint8_t *field = (uint8_t *)cfg + row->offset;
    switch (row->type) {
    case KEY_STR:
        if (strlen(value) >= row->size) {
            return set_problem(pc, "value of '%s' is too long%s", row->name, "");
        }
        memcpy(field, value, strlen(value) + 1);
        return 1;
    case KEY_PATH: {
        char path[CORE_PATH_MAX * 2];
        if (value[0] == '\0') {
            ((char *)field)[0] = '\0';
            return 1;
        }
        if (value[0] == '/') {
            snprintf(path, sizeof(path), "%s", value);
        } else {
            snprintf(path, sizeof(path), "%s/%s", pc->dir, value);
        }
        if (strlen(path) >= row->size) {
            return set_problem(pc, "path of '%s' is too long%s", row->name, "");
        }
        memcpy(field, path, strlen(path) + 1);
        return 1;
    }
    case KEY_U32: {
        uint32_t x;
        if (parse_u32(value, row->min, row->max, &x) != 0) {
            char range[64];
            snprintf(range, sizeof(range), "%u..%u", row->min, row->max);
            return set_problem(pc, "'%s' must be an integer in %s", row->name, range);
        }
        memcpy(field, &x, sizeof(x));
        return 1;
    }
    case KEY_U64: {
        uint64_t x;
        if (parse_u64(value, &x) != 0) {
            return set_problem(pc, "'%s' must be a non-negative integer, not '%s'", row->name,
                               value);
        }
        memcpy(field, &x, sizeof(x));
        return 1;
    }
    case KEY_BOOL: {
        bool b;
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0) {
            b = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                   strcmp(value, "0") == 0) {
            b = false;
        } else {
            return set_problem(pc, "'%s' must be true or false, not '%s'", row->name, value);
        }
        memcpy(field, &b, sizeof(b));
        return 1;
    }
    case KEY_LISTEN:
        if (cfg->listen_count >= CORE_LISTEN_MAX) {
            return set_problem(pc, "too many '%s' lines (max 8)%s", row->name, "");
        }
        if (core_config_parse_addr(&cfg->listen[cfg->listen_count], value) != 0) {
            return set_problem(pc, "bad address '%s' (want host:port with port 1..65535)%s",
                               value, "");
        }
        cfg->listen_count++;
        return 1;
    case KEY_ADDR:
        if (value[0] == '\0' || strcmp(value, "off") == 0) {
            cfg->api_enabled = false;
            return 1;
        }
        if (core_config_parse_addr((struct core_addr *)field, value) != 0) {
            return set_problem(pc, "bad address '%s' (want host:port with port 1..65535)%s",
                               value, "");
        }
        cfg->api_enabled = true;
        return 1;
    case KEY_SERVERS: {
        char copy[CORE_PATH_MAX];
        if (strlen(value) >= sizeof(copy)) {
            return set_problem(pc, "'%s' is too long%s", row->name, "");
        }
        memcpy(copy, value, strlen(value) + 1);
        uint32_t before = cfg->backend_count; // repeatable: each line adds its servers
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
             tok = strtok_r(NULL, ",", &save)) {
            const char *t = trim(tok);
            if (cfg->backend_count >= CORE_BACKENDS_MAX) {
                return set_problem(pc, "too many servers (max 16)%s%s", "", "");
            }
            if (core_config_parse_addr(&cfg->backends[cfg->backend_count], t) != 0) {
                return set_problem(pc, "bad backend address '%s' (want host:port)%s", t, "");
            }
            cfg->backend_count++;
        }
        if (cfg->backend_count == before) {
            return set_problem(pc, "'%s' lists no server%s", row->name, "");
        }
        return 1;
    }
    case KEY_WORKERS:
        if (strcmp(value, "auto") == 0) {
            cfg->workers = 0;
            return 1;
        }
        if (parse_u32(value, row->min, row->max, &cfg->workers) != 0) {
            return set_problem(pc, "workers must be auto or 1..64, not '%s'%s", value, "");
        }
        return 1;
    case KEY_CHOICE: {
        for (size_t i = 0; i < row->choice_count; i++) {
            if (strcmp(value, row->choices[i].word) == 0) {
                ASSERT(row->size == sizeof(int)); // an enum field
                memcpy(field, &row->choices[i].value, sizeof(int));
                return 1;
            }
        }
        // "<key> must be a, b or c, not '<value>'"
        char want[128];
        int n = snprintf(want, sizeof(want), "%s must be ", row->name);
        for (size_t i = 0; i < row->choice_count && n > 0 && (size_t)n < sizeof(want); i++) {
            const char *sep = i == 0 ? "" : i + 1 == row->choice_count ? " or " : ", ";
            n += snprintf(want + n, sizeof(want) - (size_t)n, "%s%s", sep, row->choices[i].word);
        }
        return set_problem(pc, "%s, not '%s'", want, value);
    }
    }
    UNREACHABLE();
}

static bool is_known_section(const char *section) {
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        if (strcmp(rows[i].section, section) == 0) {
            return true;
        }
    }
    return false;
}

// read_line is inih's line reader (fgets-like, `num` = its line buffer): it counts lines, so
// every problem names its line, and it reports what inih itself would get wrong: a line longer
// than its buffer (which inih would split into two lines, the second a made-up key) and a
// section no key follows (inih calls the handler only for keys).
static char *read_line(char *str, int num, void *stream) {
    struct parse_ctx *pc = stream;
    if (fgets(str, num, pc->f) == NULL) {
        return NULL;
    }
    pc->line++;
    size_t n = strlen(str);
    int ch = n == (size_t)num - 1 && str[n - 1] != '\n' ? fgetc(pc->f) : '\n';
    if (ch != '\n' && ch != EOF) {
        size_t total = n + 1;
        while ((ch = fgetc(pc->f)) != EOF && ch != '\n') {
            total++;
        }
        char sizes[64];
        snprintf(sizes, sizeof(sizes), "%zu bytes, at most %d", total, num - 1);
        (void)set_problem(pc, "line too long (%s)%s", sizes, "");
        str[0] = '\0'; // the rest of the file is still read, for inih's sake
        return str;
    }
    const char *p = str;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    const char *end = *p == '[' ? strchr(p, ']') : NULL;
    if (end != NULL) {
        char section[CORE_NAME_MAX];
        size_t len = (size_t)(end - p - 1);
        if (len >= sizeof(section)) {
            len = sizeof(section) - 1;
        }
        memcpy(section, p + 1, len);
        section[len] = '\0';
        if (!is_known_section(section)) {
            (void)set_problem(pc, "unknown section [%s]%s", section, "");
        }
    }
    return str;
}

// repeatable: keys that may be given more than once (each line adds to the list).
static bool repeatable(const struct key_row *row) {
    return row->type == KEY_LISTEN || row->type == KEY_SERVERS;
}

static int on_key(void *user, const char *section, const char *name, const char *value) {
    struct parse_ctx *pc = user;
    if (pc->failed) {
        return 1; // keep the first problem
    }
    bool known_section = false;
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        if (strcmp(rows[i].section, section) != 0) {
            continue;
        }
        known_section = true;
        if (strcmp(rows[i].name, name) == 0) {
            if (pc->seen_line[i] != 0 && !repeatable(&rows[i])) {
                char first[32];
                snprintf(first, sizeof(first), "%u", pc->seen_line[i]);
                return set_problem(pc, "'%s' is set twice (first on line %s)", name, first);
            }
            pc->seen_line[i] = pc->line;
            return apply_row(pc, &rows[i], value);
        }
    }
    if (!known_section) {
        return set_problem(pc, "unknown section [%s]%s", section, "");
    }
    return set_problem(pc, "unknown key '%s' in [%s]", name, section);
}

// find_key_line returns the line of `key` in `[section]` of the config file (Debian's inih
// does not pass line numbers to the handler), or 0.
static uint32_t find_key_line(const char *cfg_path, const char *section, const char *key) {
    FILE *f = fopen(cfg_path, "r");
    if (f == NULL) {
        return 0;
    }
    char line[1024];
    char cur[CORE_NAME_MAX] = "";
    uint32_t n = 0;
    uint32_t found = 0;
    while (found == 0 && fgets(line, sizeof(line), f) != NULL) {
        n++;
        const char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '[') {
            const char *end = strchr(p, ']');
            size_t len = end ? (size_t)(end - p - 1) : 0;
            if (len < sizeof(cur)) {
                memcpy(cur, p + 1, len);
                cur[len] = '\0';
            }
            continue;
        }
        size_t klen = strlen(key);
        if (strcmp(cur, section) == 0 && strncmp(p, key, klen) == 0 &&
            (p[klen] == ' ' || p[klen] == '\t' || p[klen] == '=')) {
            found = n;
        }
    }
    fclose(f);
    return found;
}

static int check_readable(char *err, size_t err_len, const char *cfg_path, uint32_t line,
                          const char *what, const char *path) {
    if (path[0] == '\0') {
        return 0;
    }
    if (access(path, R_OK) != 0) {
        snprintf(err, err_len, "%s:%u: cannot read %s '%s': %s", cfg_path, line, what, path,
                 strerror(errno));
        return -EINVAL;
    }
    return 0;
}

static int validate(const struct core_config *cfg, char *err, size_t err_len) {
    const char *p = cfg->path;
    if (cfg->listen_count == 0) {
        snprintf(err, err_len, "%s: [proxy] listen is required", p);
        return -EINVAL;
    }
    if (cfg->backend_count == 0) {
        snprintf(err, err_len, "%s: [backend] servers is required", p);
        return -EINVAL;
    }
    if (cfg->health_check == CORE_HEALTH_STARTUP && cfg->health_user[0] == '\0') {
        snprintf(err, err_len, "%s:%u: [backend] health_check = startup needs health_user", p,
                 find_key_line(p, "backend", "health_check"));
        return -EINVAL;
    }
    if (cfg->mode == CORE_MODE_TERMINATE) {
        if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0') {
            snprintf(err, err_len, "%s: [tls] cert and key are required in terminate mode", p);
            return -EINVAL;
        }
        if (!cfg->attestation_required && cfg->tls_client_ca[0] == '\0') {
            snprintf(err, err_len,
                     "%s: [attestation] required = false needs [tls] client_ca (clients would "
                     "otherwise be unauthenticated)",
                     p);
            return -EINVAL;
        }
        if (cfg->attestation_required && cfg->attestation_policy[0] == '\0') {
            snprintf(err, err_len, "%s: [attestation] required = true needs a policy file", p);
            return -EINVAL;
        }
        if ((cfg->nonce_capacity & (cfg->nonce_capacity - 1)) != 0) {
            snprintf(err, err_len, "%s:%u: [attestation] nonce_capacity: %u is not a power of two",
                     p, find_key_line(p, "attestation", "nonce_capacity"), cfg->nonce_capacity);
            return -EINVAL;
        }
    }
    uint32_t required_line = find_key_line(p, "attestation", "required");
    if (cfg->mode == CORE_MODE_PASSTHROUGH && cfg->attestation_required && required_line != 0) {
        // Passthrough never sees the client's certificate: a config that asks for attestation
        // there must not start and silently forward unattested clients.
        snprintf(err, err_len,
                 "%s:%u: [attestation] required = true cannot be enforced in passthrough mode "
                 "(TLS goes through to the backend untouched); use mode = terminate",
                 p, required_line);
        return -EINVAL;
    }
    if (cfg->mode == CORE_MODE_TERMINATE && cfg->audit_enabled) {
        char why[256];
        if (store_config_validate(why, sizeof(why), &cfg->audit) != 0) {
            // The reason names the key ("[audit] KEY: ..."): point at its line.
            char key[CORE_NAME_MAX] = "";
            const char *k = strncmp(why, "[audit] ", 8) == 0 ? why + 8 : "";
            size_t kl = strcspn(k, ":");
            if (kl < sizeof(key)) {
                memcpy(key, k, kl);
                key[kl] = '\0';
            }
            uint32_t line = key[0] != '\0' ? find_key_line(p, "audit", key) : 0;
            if (line > 0) {
                snprintf(err, err_len, "%s:%u: %s", p, line, why);
            } else {
                snprintf(err, err_len, "%s: %s", p, why);
            }
            return -EINVAL;
        }
    }
    int ret = check_readable(err, err_len, p, cfg->line_tls_cert, "[tls] cert", cfg->tls_cert);
    if (ret == 0) {
        ret = check_readable(err, err_len, p, cfg->line_tls_key, "[tls] key", cfg->tls_key);
    }
    if (ret == 0) {
        ret = check_readable(err, err_len, p, cfg->line_tls_client_ca, "[tls] client_ca",
                             cfg->tls_client_ca);
    }
    if (ret == 0) {
        ret = check_readable(err, err_len, p, cfg->line_attestation_policy,
                             "[attestation] policy", cfg->attestation_policy);
    }
    return ret;
}

int core_config_load(struct core_config *out_cfg, char *err, size_t err_len, const char *path) {
    ASSERT(out_cfg != NULL && err != NULL && path != NULL);
    config_defaults(out_cfg);
    if (strlen(path) >= sizeof(out_cfg->path)) {
        snprintf(err, err_len, "config path too long");
        return -EINVAL;
    }
    snprintf(out_cfg->path, sizeof(out_cfg->path), "%s", path);
    struct parse_ctx pc;
    memset(&pc, 0, sizeof(pc));
    pc.cfg = out_cfg;
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(pc.dir, sizeof(pc.dir), ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) {
            n = 1;
        }
        if (n >= sizeof(pc.dir)) {
            snprintf(err, err_len, "config path too long");
            return -EINVAL;
        }
        memcpy(pc.dir, path, n);
        pc.dir[n] = '\0';
    }
    pc.f = fopen(path, "r");
    if (pc.f == NULL) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
        return -ENOENT;
    }
    int line = ini_parse_stream(read_line, &pc, on_key, &pc);
    fclose(pc.f);
    if (line == -2) {
        snprintf(err, err_len, "%s: out of memory while parsing", path);
        return -ENOMEM;
    }
    // The earlier of our first problem and inih's first syntax error.
    if (pc.failed && (line <= 0 || pc.problem_line <= (uint32_t)line)) {
        snprintf(err, err_len, "%s:%u: %s", path, pc.problem_line, pc.problem);
        return -EINVAL;
    }
    if (line > 0) {
        snprintf(err, err_len, "%s:%d: syntax error (want 'key = value' or '[section]')", path,
                 line);
        return -EINVAL;
    }
    out_cfg->line_tls_cert = find_key_line(path, "tls", "cert");
    out_cfg->line_tls_key = find_key_line(path, "tls", "key");
    out_cfg->line_tls_client_ca = find_key_line(path, "tls", "client_ca");
    out_cfg->line_attestation_policy = find_key_line(path, "attestation", "policy");
    out_cfg->line_audit_dir = find_key_line(path, "audit", "dir");
    return validate(out_cfg, err, err_len);
}
