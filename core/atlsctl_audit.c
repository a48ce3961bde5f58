// atlsctl_audit.c: `atlsctl audit list|show|verify --db DIR`: read the audit store read-only
// (safe while the gateway runs), print records as text or as the HTTP API's JSON, and verify
// the hash chain.
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include <openssl/sha.h>

#include "atlsctl.h"
#include "core_base.h"
#include "proto.h"
#include "store.h"

#define LIST_LIMIT_DEFAULT 20u

struct audit_opts {
    const char *db;
    const char *url;
    uint32_t limit;
    uint64_t since_ns;
    const char *cursor;
    bool json;
};

static void usage(FILE *out) {
    fputs("usage: atlsctl audit list   (--db DIR | --url URL) [--limit N] [--since UNIX_NS] "
          "[--cursor C] [--json]\n"
          "       atlsctl audit show   (--db DIR | --url URL) [--json] KEY\n"
          "       atlsctl audit verify (--db DIR | --url URL)\n"
          "  --db DIR  read the audit store directly (read-only; safe while the gateway runs)\n"
          "  --url URL read a running gateway's HTTP API (http://127.0.0.1:8081); verify then\n"
          "            checks that the records the API serves link up (the newest record has no\n"
          "            successor to vouch for it: --db also checks the chain index)\n"
          "  list    newest records first (KEY is the first column; --json prints the\n"
          "          AttestationList of GET /api/v1/attestations)\n"
          "  show    one record in full\n"
          "  verify  walk the hash chain: exit 0 intact, 1 naming the first altered or removed\n"
          "          record\n"
          ,
          out);
}

static void format_time(char *out, size_t cap, uint64_t ns) {
    time_t secs = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%09" PRIu64 "Z", date, ns % 1000000000u);
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v) {
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    return ev != NULL ? ev->name : "?";
}

static void print_line(const struct store_key *key, const Atls__AuditRecord *r) {
    char k[STORE_CURSOR_BYTES];
    char when[48];
    char meas[2 * STORE_MEASUREMENT_BYTES + 1] = "-";
    store_key_format(k, key);
    format_time(when, sizeof(when), r->time_ns);
    if (r->measurement.len == STORE_MEASUREMENT_BYTES) {
        core_base_hex_encode(meas, r->measurement.data, 8); // a prefix identifies it
    }
    bool decision = r->kind == ATLS__AUDIT_KIND__AUDIT_KIND_DECISION;
    printf("%s  %s  %-10s  %-15s  w%" PRIu32 "#%" PRIu64 "  %s:%" PRIu32 "  meas=%s  user=%s "
           "db=%s",
           k, when, decision ? "DECISION" : "DISCONNECT",
           decision ? enum_name(&atls__verdict__descriptor, (int)r->verdict) : "-", r->worker,
           r->seq, r->client_addr, r->client_port, meas, r->db_user, r->db_name);
    for (size_t i = 0; i < r->n_failed_checks; i++) {
        printf("%s%s", i == 0 ? "  checks=" : ",", r->failed_checks[i]->code);
    }
    if (!decision) {
        printf("  bytes=%" PRIu64 "/%" PRIu64 "  reason=%s", r->bytes_client_to_backend,
               r->bytes_backend_to_client, r->close_reason);
    }
    putchar('\n');
}

struct list_ctx {
    bool json;
    Atls__AuditRecord **recs; // unpacked with malloc (a CLI, not the data path)
    size_t n;
    size_t cap;
    size_t json_bytes;
};

static int list_fn(void *arg, const struct store_key *key, const uint8_t *value, size_t len) {
    struct list_ctx *c = arg;
    Atls__AuditRecord *r = atls__audit_record__unpack(NULL, len, value);
    if (r == NULL) {
        char k[STORE_CURSOR_BYTES];
        store_key_format(k, key);
        fprintf(stderr, "atlsctl: audit record %s does not decode (run `atlsctl audit verify`)\n",
                k);
        return -EBADMSG;
    }
    if (!c->json) {
        print_line(key, r);
        atls__audit_record__free_unpacked(r, NULL);
        return 0;
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap == 0 ? 64 : c->cap * 2;
        Atls__AuditRecord **nr = realloc(c->recs, ncap * sizeof(*nr));
        if (nr == NULL) {
            atls__audit_record__free_unpacked(r, NULL);
            return -ENOMEM;
        }
        c->recs = nr;
        c->cap = ncap;
    }
    c->recs[c->n++] = r;
    c->json_bytes += 3 * len + 4096; // hex doubles bytes; names, quotes and escapes add more
    return 0;
}

static int print_json(const ProtobufCMessage *m, size_t bound) {
    char *buf = malloc(bound);
    if (buf == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = proto_json_encode(buf, &len, bound, m);
    if (rc == 0) {
        fwrite(buf, 1, len, stdout);
        putchar('\n');
    }
    free(buf);
    return rc;
}

static int cmd_list(struct store *s, const struct audit_opts *o) {
    struct store_list_query q;
    memset(&q, 0, sizeof(q));
    q.limit = o->limit;
    q.since_ns = o->since_ns;
    if (o->cursor != NULL) {
        snprintf(q.cursor, sizeof(q.cursor), "%s", o->cursor);
    }
    char next[STORE_CURSOR_BYTES] = "";
    struct list_ctx c = {.json = o->json};
    int rc = store_query_list(s, next, &q, list_fn, &c);
    if (rc == -EINVAL) {
        fprintf(stderr, "atlsctl: bad --limit (1..%u) or --cursor\n", STORE_QUERY_LIMIT_MAX);
    } else if (rc != 0 && rc != -EBADMSG) {
        fprintf(stderr, "atlsctl: listing failed: %s\n", strerror(-rc));
    }
    if (rc == 0 && o->json) {
        Atls__AttestationList list = ATLS__ATTESTATION_LIST__INIT;
        list.n_records = c.n;
        list.records = c.recs;
        list.next_cursor = next;
        rc = print_json(&list.base, c.json_bytes + 256);
    } else if (rc == 0 && next[0] != '\0') {
        printf("next cursor: %s\n", next);
    }
    for (size_t i = 0; i < c.n; i++) {
        atls__audit_record__free_unpacked(c.recs[i], NULL);
    }
    free(c.recs);
    return rc == 0 ? 0 : 1;
}

static int cmd_show(struct store *s, const struct audit_opts *o, const char *key_text) {
    struct store_key key;
    if (store_key_parse(&key, key_text) != 0) {
        fprintf(stderr, "atlsctl: '%s' is not a record key (40 hex digits from `audit list`)\n",
                key_text);
        return 2;
    }
    uint8_t *buf = malloc(STORE_VALUE_BYTES_MAX);
    if (buf == NULL) {
        return 1;
    }
    size_t len = 0;
    int rc = store_query_get(s, buf, &len, STORE_VALUE_BYTES_MAX, &key);
    Atls__AuditRecord *r = rc == 0 ? atls__audit_record__unpack(NULL, len, buf) : NULL;
    free(buf);
    if (rc != 0 || r == NULL) {
        fprintf(stderr, "atlsctl: record %s: %s\n", key_text,
                rc == -ENOENT ? "not found"
                : rc != 0     ? strerror(-rc)
                              : "does not decode (run `atlsctl audit verify`)");
        return 1;
    }
    if (o->json) {
        rc = print_json(&r->base, 3 * len + 4096);
    } else {
        print_line(&key, r);
        char when[48];
        format_time(when, sizeof(when), r->time_ns);
        char prev[2 * STORE_SHA256_BYTES + 1] = "";
        if (r->prev_sha256.len == STORE_SHA256_BYTES) {
            core_base_hex_encode(prev, r->prev_sha256.data, STORE_SHA256_BYTES);
        }
        printf("  node %s, conn %" PRIu64 ", policy %s, global seq %" PRIu64 ", prev %s\n",
               r->node_id, r->conn_id, r->policy_version, r->global_seq, prev);
        for (size_t i = 0; i < r->n_failed_checks; i++) {
            printf("  failed %s: %s\n", r->failed_checks[i]->code, r->failed_checks[i]->detail);
        }
        if (r->reason[0] != '\0') {
            printf("  reason: %s\n", r->reason);
        }
        printf("  report: %zu bytes (use --json for all fields)\n", r->report.len);
    }
    atls__audit_record__free_unpacked(r, NULL);
    return rc == 0 ? 0 : 1;
}

static const char *status_name(enum store_verify_status st) {
    switch (st) {
    case STORE_VERIFY_OK:
        return "intact";
    case STORE_VERIFY_ALTERED:
        return "ALTERED";
    case STORE_VERIFY_REMOVED:
        return "REMOVED";
    case STORE_VERIFY_INSERTED:
        return "INSERTED";
    case STORE_VERIFY_CORRUPT:
        return "CORRUPT";
    case STORE_VERIFY_INDEX:
        return "INDEX";
    case STORE_VERIFY_EXPECT_HEAD:
        return "EXPECTED HEAD";
    }
    return "?";
}

static int cmd_verify(const struct audit_opts *o) {
    struct store_verify_result r;
    char err[STORE_ERR_BYTES] = "";
    int rc = store_audit_verify(&r, err, sizeof(err), o->db);
    if (rc != 0) {
        fprintf(stderr, "atlsctl: cannot verify %s: %s\n", o->db, err);
        return 1;
    }
    if (r.status == STORE_VERIFY_OK) {
        printf("audit chain intact: %" PRIu64 " records (global seq %" PRIu64 "..%" PRIu64 ")\n",
               r.records_checked, r.first_global_seq, r.last_global_seq);
        return 0;
    }
    printf("audit chain BROKEN (%s): %s\n", status_name(r.status), r.detail);
    if (r.bad_key_known) {
        char k[STORE_CURSOR_BYTES];
        char when[48];
        store_key_format(k, &r.bad_key);
        format_time(when, sizeof(when), r.bad_key.time_ns);
        printf("  first bad record: global seq %" PRIu64 ", key %s, time %s, worker %" PRIu32
               ", seq %" PRIu64 "\n",
               r.bad_global_seq, k, when, r.bad_key.worker, r.bad_key.seq);
    } else {
        printf("  first bad record: global seq %" PRIu64 "\n", r.bad_global_seq);
    }
    printf("  %" PRIu64 " records verified before it\n", r.records_checked);
    return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

// ---- --url: the same commands over a gateway's HTTP API ---------------------------------------

#define URL_PAGE 1000u

// list_url writes the GET /api/v1/attestations URL of one page into `url` (`cap` bytes).
static void list_url(char *url, size_t cap, const struct audit_opts *o, uint32_t limit,
                     const char *cursor, uint64_t since_ns, bool json) {
    int n = snprintf(url, cap, "%s/api/v1/attestations?limit=%u%s", o->url, limit,
                     json ? "&format=json" : "");
    if (cursor != NULL && cursor[0] != '\0' && n > 0 && (size_t)n < cap) {
        n += snprintf(url + n, cap - (size_t)n, "&cursor=%s", cursor);
    }
    if (since_ns != 0 && n > 0 && (size_t)n < cap) {
        // The API takes seconds; round down so that nothing at or after since_ns is missed.
        snprintf(url + n, cap - (size_t)n, "&since=%" PRIu64, since_ns / 1000000000u);
    }
}

// url_fetch GETs one AttestationList page (protobuf) from the API.
static Atls__AttestationList *url_fetch(const struct audit_opts *o, uint32_t limit,
                                        const char *cursor, uint64_t since_ns) {
    char url[1024];
    list_url(url, sizeof(url), o, limit, cursor, since_ns, false);
    char *body = NULL;
    size_t len = 0;
    if (atlsctl_http_get(url, "application/x-protobuf", &body, &len) != 0) {
        return NULL;
    }
    Atls__AttestationList *l = atls__attestation_list__unpack(NULL, len, (uint8_t *)body);
    free(body);
    if (l == NULL) {
        fprintf(stderr, "atlsctl: %s: the answer is not an AttestationList\n", url);
    }
    return l;
}

static struct store_key key_of(const Atls__AuditRecord *r) {
    struct store_key k = {.time_ns = r->time_ns, .worker = r->worker, .seq = r->seq};
    return k;
}

static int url_list(const struct audit_opts *o) {
    if (o->json) {
        char url[1024];
        list_url(url, sizeof(url), o, o->limit, o->cursor, o->since_ns, true);
        char *body = NULL;
        size_t len = 0;
        if (atlsctl_http_get(url, "application/json", &body, &len) != 0) {
            return 1;
        }
        fwrite(body, 1, len, stdout);
        free(body);
        return 0;
    }
    Atls__AttestationList *l = url_fetch(o, o->limit, o->cursor, o->since_ns);
    if (l == NULL) {
        return 1;
    }
    for (size_t i = 0; i < l->n_records; i++) {
        if (l->records[i]->time_ns < o->since_ns) {
            continue; // the API's since has second resolution
        }
        struct store_key k = key_of(l->records[i]);
        print_line(&k, l->records[i]);
    }
    if (l->next_cursor[0] != '\0') {
        printf("next cursor: %s\n", l->next_cursor);
    }
    atls__attestation_list__free_unpacked(l, NULL);
    return 0;
}

static int url_show(const struct audit_opts *o, const char *key_text) {
    struct store_key key;
    if (store_key_parse(&key, key_text) != 0) {
        fprintf(stderr, "atlsctl: '%s' is not a record key (40 hex digits from `audit list`)\n",
                key_text);
        return 2;
    }
    // The page just older than the key's successor starts with the key itself, if it exists.
    struct store_key after = key;
    after.seq++;
    char cursor[STORE_CURSOR_BYTES];
    store_key_format(cursor, &after);
    Atls__AttestationList *l = url_fetch(o, 1, cursor, 0);
    if (l == NULL) {
        return 1;
    }
    int rc = 1;
    if (l->n_records == 1 && l->records[0]->time_ns == key.time_ns &&
        l->records[0]->worker == key.worker && l->records[0]->seq == key.seq) {
        rc = 0;
        if (o->json) {
            size_t bound = 3 * atls__audit_record__get_packed_size(l->records[0]) + 4096;
            rc = print_json(&l->records[0]->base, bound) == 0 ? 0 : 1;
        } else {
            print_line(&key, l->records[0]);
        }
    } else {
        fprintf(stderr, "atlsctl: record %s: not found\n", key_text);
    }
    atls__attestation_list__free_unpacked(l, NULL);
    return rc;
}

// url_verify pages through every record the API serves, newest first, and checks that each
// names its predecessor: consecutive global_seq and prev_sha256 = SHA-256 of the predecessor's
// stored bytes (protobuf-c packs a record the same way the store did).
static int url_verify(const struct audit_opts *o) {
    char cursor[STORE_CURSOR_BYTES] = "";
    uint64_t checked = 0, newest = 0, oldest = 0;
    uint8_t want_digest[32];
    uint64_t want_seq = 0; // global_seq the next (older) record must have; 0 = first page
    char newer_key[STORE_CURSOR_BYTES] = "";
    int rc = 0;
    do {
        Atls__AttestationList *l = url_fetch(o, URL_PAGE, cursor, 0);
        if (l == NULL) {
            return 1;
        }
        for (size_t i = 0; i < l->n_records && rc == 0; i++) {
            const Atls__AuditRecord *r = l->records[i];
            struct store_key k = key_of(r);
            char kt[STORE_CURSOR_BYTES];
            store_key_format(kt, &k);
            size_t len = atls__audit_record__get_packed_size(r);
            uint8_t *bytes = malloc(len ? len : 1);
            if (bytes == NULL) {
                rc = 1;
                break;
            }
            atls__audit_record__pack(r, bytes);
            uint8_t digest[32];
            SHA256(bytes, len, digest);
            free(bytes);
            if (want_seq != 0 && r->global_seq != want_seq) {
                printf("audit chain BROKEN (REMOVED): record(s) with global seq %" PRIu64
                       "..%" PRIu64 " missing before %s\n",
                       r->global_seq + 1, want_seq, newer_key);
                rc = 1;
            } else if (want_seq != 0 && memcmp(digest, want_digest, sizeof(digest)) != 0) {
                printf("audit chain BROKEN (ALTERED): record %s (global seq %" PRIu64
                       ") does not match the prev_sha256 of its successor %s\n",
                       kt, r->global_seq, newer_key);
                rc = 1;
            }
            if (r->prev_sha256.len != sizeof(want_digest)) {
                printf("audit chain BROKEN (CORRUPT): record %s has no prev_sha256\n", kt);
                rc = 1;
            }
            if (rc != 0) {
                break;
            }
            memcpy(want_digest, r->prev_sha256.data, sizeof(want_digest));
            want_seq = r->global_seq - 1;
            memcpy(newer_key, kt, sizeof(kt));
            newest = newest == 0 ? r->global_seq : newest;
            oldest = r->global_seq;
            checked++;
        }
        snprintf(cursor, sizeof(cursor), "%s", l->next_cursor);
        atls__attestation_list__free_unpacked(l, NULL);
    } while (rc == 0 && cursor[0] != '\0');
    if (rc == 0) {
        printf("audit chain intact as served by %s: %" PRIu64 " records (global seq %" PRIu64
               "..%" PRIu64 ")\n",
               o->url, checked, oldest, newest);
    }
    return rc;
}

static int url_main(const struct audit_opts *o, const char *sub, int rest, char **operands) {
    if (strcmp(sub, "verify") == 0 && rest == 0) {
        return url_verify(o);
    }
    if (strcmp(sub, "list") == 0 && rest == 0) {
        return url_list(o);
    }
    if (strcmp(sub, "show") == 0 && rest == 1) {
        return url_show(o, operands[0]);
    }
    usage(stderr);
    return 2;
}

int atlsctl_audit_main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    struct audit_opts o = {.limit = LIST_LIMIT_DEFAULT};
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},     {"limit", required_argument, NULL, 'l'},
        {"since", required_argument, NULL, 's'},  {"cursor", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},         {"url", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 1;
    int ch;
    uint64_t v = 0;
    while ((ch = getopt_long(argc - 1, argv + 1, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o.db = optarg;
            break;
        case 'l':
            if (parse_u64(optarg, &v) != 0 || v < 1 || v > STORE_QUERY_LIMIT_MAX) {
                fprintf(stderr, "atlsctl: --limit must be 1..%u\n", STORE_QUERY_LIMIT_MAX);
                return 2;
            }
            o.limit = (uint32_t)v;
            break;
        case 's':
            if (parse_u64(optarg, &o.since_ns) != 0) {
                fprintf(stderr, "atlsctl: --since must be unix nanoseconds\n");
                return 2;
            }
            break;
        case 'c':
            o.cursor = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'u':
            o.url = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int rest = argc - 1 - optind; // operands after the options
    char **operands = argv + 1 + optind;
    if ((o.db == NULL) == (o.url == NULL)) {
        fprintf(stderr, "atlsctl: audit %s needs exactly one of --db DIR or --url URL\n", sub);
        return 2;
    }
    if (o.url != NULL) {
        return url_main(&o, sub, rest, operands);
    }
    if (strcmp(sub, "verify") == 0 && rest == 0) {
        return cmd_verify(&o);
    }
    bool is_list = strcmp(sub, "list") == 0 && rest == 0;
    bool is_show = strcmp(sub, "show") == 0 && rest == 1;
    if (!is_list && !is_show) {
        usage(stderr);
        return 2;
    }
    struct store *s = NULL;
    char err[STORE_ERR_BYTES] = "";
    int rc = store_open_readonly(&s, err, sizeof(err), o.db);
    if (rc != 0) {
        fprintf(stderr, "atlsctl: %s\n", err);
        return 1;
    }
    rc = is_list ? cmd_list(s, &o) : cmd_show(s, &o, operands[0]);
    store_close(s);
    return rc;
}
