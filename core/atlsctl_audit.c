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
    bool has_expect_head; // --expect-head GSEQ:HEX (verify only)
    struct store_chain_pos expect_head;
};

static void usage(FILE *out) {
    fputs("usage: atlsctl audit list   (--db DIR | --url URL) [--limit N] [--since UNIX_NS] "
          "[--cursor C] [--json]\n"
          "       atlsctl audit show   (--db DIR | --url URL) [--json] KEY\n"
          "       atlsctl audit verify (--db DIR | --url URL) [--expect-head GSEQ:HEX]\n"
          "  --db DIR  read the audit store directly (read-only; safe while the gateway runs)\n"
          "  --url URL read a running gateway's HTTP API (http://127.0.0.1:8081)\n"
          "  list    newest records first (KEY is the first column; --json prints the\n"
          "          AttestationList of GET /api/v1/attestations)\n"
          "  show    one record in full\n"
          "  verify  walk the hash chain and print its head as `head GSEQ HEX`. Exit 0 intact,\n"
          "          1 BROKEN (naming the first altered, removed, inserted or corrupt record, or\n"
          "          bad index entry), 2 usage, 3 could not verify at all (no database, I/O\n"
          "          error, gateway unreachable, an answer cut short).\n"
          "          --db also checks the chain index, that no record sits outside the chain,\n"
          "          and that the verdict and measurement indexes match the records exactly.\n"
          "          --url checks what the API serves, in global seq order: no duplicate, no\n"
          "          gap, each prev_sha256 the digest of the record before, a zero one for\n"
          "          record 1; it holds every served record in memory (about 100 bytes each),\n"
          "          and a record written while it pages may show as a gap (run it again).\n"
          "  --expect-head GSEQ:HEX  fail (BROKEN, exit 1) unless the chain still holds record\n"
          "          GSEQ with that SHA-256: a `head` line printed by an earlier verify.\n"
          "  LIMITS: the chain has no secret and its head and anchor are in the same database.\n"
          "          Whoever can write the database can remove the newest records and rewrite\n"
          "          the head, remove the oldest and forge the retention anchor, or rewrite the\n"
          "          whole chain, and verify still says intact. Keep the printed head outside\n"
          "          the gateway's host and pass it back with --expect-head: that detects\n"
          "          removal or rewriting of records up to it (not of records after it, nor the\n"
          "          removal of a prefix that stops short of it, which looks like retention).\n"
          "          Retention deleting the pinned record also fails: pin a newer head.\n",
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

// print_head prints the verified head for the operator to keep outside the database.
static void print_head(uint64_t gseq, const uint8_t sha256[STORE_SHA256_BYTES]) {
    char hex[2 * STORE_SHA256_BYTES + 1];
    core_base_hex_encode(hex, sha256, STORE_SHA256_BYTES);
    printf("head %" PRIu64 " %s\n", gseq, hex);
}

static int cmd_verify(const struct audit_opts *o) {
    struct store_verify_result r;
    char err[STORE_ERR_BYTES] = "";
    int rc = store_audit_verify_expect_head(&r, err, sizeof(err), o->db,
                                            o->has_expect_head ? &o->expect_head : NULL);
    if (rc != 0) {
        fprintf(stderr, "atlsctl: cannot verify %s: %s\n", o->db, err);
        return 3;
    }
    if (r.status == STORE_VERIFY_OK) {
        printf("audit chain intact: %" PRIu64 " records (global seq %" PRIu64 "..%" PRIu64 ")\n",
               r.records_checked, r.first_global_seq, r.last_global_seq);
        if (r.head.global_seq != 0) {
            print_head(r.head.global_seq, r.head.sha256);
        }
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

// parse_expect_head parses GSEQ:HEX (a `head` line of verify, with a colon).
static int parse_expect_head(const char *text, struct store_chain_pos *out) {
    const char *colon = strchr(text, ':');
    char num[24];
    if (colon == NULL || (size_t)(colon - text) >= sizeof(num)) {
        return -EINVAL;
    }
    memcpy(num, text, (size_t)(colon - text));
    num[colon - text] = '\0';
    if (parse_u64(num, &out->global_seq) != 0 || out->global_seq == 0) {
        return -EINVAL;
    }
    if (strlen(colon + 1) != 2 * STORE_SHA256_BYTES) {
        return -EINVAL;
    }
    return core_base_hex_decode(out->sha256, STORE_SHA256_BYTES, colon + 1);
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

// url_fetch GETs one AttestationList page (protobuf) from the API. NULL after printing why;
// `*out_rc` (may be NULL) is then atlsctl_http_get's -errno, or -EBADMSG for an answer that is
// not an AttestationList.
static Atls__AttestationList *url_fetch(const struct audit_opts *o, int *out_rc, uint32_t limit,
                                        const char *cursor, uint64_t since_ns) {
    char url[1024];
    list_url(url, sizeof(url), o, limit, cursor, since_ns, false);
    char *body = NULL;
    size_t len = 0;
    int rc = atlsctl_http_get(url, "application/x-protobuf", &body, &len);
    if (out_rc != NULL) {
        *out_rc = rc != 0 ? rc : -EBADMSG;
    }
    if (rc != 0) {
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
    Atls__AttestationList *l = url_fetch(o, NULL, o->limit, o->cursor, o->since_ns);
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
    int rc = 0;
    if (l->unreadable > 0) {
        fprintf(stderr,
                "atlsctl: the gateway left out %" PRIu32 " stored record(s) of this page that do "
                "not decode (audit verify names them)\n",
                l->unreadable);
        rc = 1;
    }
    atls__attestation_list__free_unpacked(l, NULL);
    return rc;
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
    Atls__AttestationList *l = url_fetch(o, NULL, 1, cursor, 0);
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

// struct served is what url_verify keeps of each record the API serves (~100 bytes).
struct served {
    uint64_t gseq;
    struct store_key key;
    uint8_t prev[STORE_SHA256_BYTES];
    uint8_t digest[STORE_SHA256_BYTES]; // of the record's bytes, as the store hashed them
};

static int served_cmp(const void *a, const void *b) {
    const struct served *x = a, *y = b;
    if (x->gseq != y->gseq) {
        return x->gseq < y->gseq ? -1 : 1;
    }
    uint8_t kx[STORE_KEY_BYTES], ky[STORE_KEY_BYTES];
    store_key_encode(kx, &x->key);
    store_key_encode(ky, &y->key);
    return memcmp(kx, ky, sizeof(kx));
}

// struct served_set is every record served, in the order served until sorted.
struct served_set {
    struct served *v;
    size_t n;
    size_t cap;
    uint64_t newest_at_start; // highest global seq of the first page
};

// served_add keeps `r`. Returns 0, 1 (a record without a chain link: printed), -ENOMEM.
static int served_add(struct served_set *set, const Atls__AuditRecord *r) {
    struct served e = {.gseq = r->global_seq, .key = key_of(r)};
    if (r->prev_sha256.len != STORE_SHA256_BYTES) {
        char kt[STORE_CURSOR_BYTES];
        store_key_format(kt, &e.key);
        printf("audit chain BROKEN (CORRUPT): record %s (global seq %" PRIu64
               ") has no prev_sha256\n",
               kt, e.gseq);
        return 1;
    }
    // protobuf-c packs a record the same way the store did, so this is the stored bytes' digest.
    size_t len = atls__audit_record__get_packed_size(r);
    uint8_t *bytes = malloc(len ? len : 1);
    if (bytes == NULL) {
        return -ENOMEM;
    }
    atls__audit_record__pack(r, bytes);
    SHA256(bytes, len, e.digest);
    free(bytes);
    memcpy(e.prev, r->prev_sha256.data, STORE_SHA256_BYTES);
    if (set->n == set->cap) {
        size_t ncap = set->cap == 0 ? 1024 : set->cap * 2;
        struct served *nv = realloc(set->v, ncap * sizeof(*nv));
        if (nv == NULL) {
            return -ENOMEM;
        }
        set->v = nv;
        set->cap = ncap;
    }
    set->v[set->n++] = e;
    return 0;
}

// url_collect pages through every record the API serves into `set`. Returns 0, 1 (BROKEN:
// printed) or 3 (could not read them all: printed).
static int url_collect(const struct audit_opts *o, struct served_set *set) {
    char cursor[STORE_CURSOR_BYTES] = "";
    bool first_page = true;
    do {
        int frc = 0;
        Atls__AttestationList *l = url_fetch(o, &frc, URL_PAGE, cursor, 0);
        if (l == NULL) {
            return frc == -EINVAL ? 2 : 3;
        }
        int rc = 0;
        for (size_t i = 0; i < l->n_records && rc == 0; i++) {
            rc = served_add(set, l->records[i]);
            if (first_page && l->records[i]->global_seq > set->newest_at_start) {
                set->newest_at_start = l->records[i]->global_seq;
            }
        }
        first_page = false;
        uint32_t unreadable = l->unreadable;
        snprintf(cursor, sizeof(cursor), "%s", l->next_cursor);
        atls__attestation_list__free_unpacked(l, NULL);
        if (unreadable > 0 && rc == 0) {
            // The gateway left out stored records that do not decode: a gap that must not pass
            // for retention.
            printf("audit chain BROKEN (CORRUPT): the gateway left out %" PRIu32 " stored "
                   "record(s) that do not decode, after %zu records served; `atlsctl audit "
                   "verify --db` on its host names them\n",
                   unreadable, set->n);
            return 1;
        }
        if (rc == -ENOMEM) {
            fprintf(stderr, "atlsctl: out of memory after %zu records\n", set->n);
            return 3;
        }
        if (rc != 0) {
            return rc;
        }
    } while (cursor[0] != '\0');
    return 0;
}

// url_check_link checks served record `i` of the sorted set against the one before it (or, for
// the first, against the genesis). Returns 0 or 1 after printing why it is BROKEN.
static int url_check_link(const struct served_set *set, size_t i) {
    static const uint8_t zero[STORE_SHA256_BYTES];
    const struct served *e = &set->v[i];
    char kt[STORE_CURSOR_BYTES];
    store_key_format(kt, &e->key);
    bool first = i == 0;
    if (first) {
        // Older records may have been deleted by retention; the API does not serve the anchor,
        // so only record 1 has a predecessor known here.
        if (e->gseq == 1 && memcmp(e->prev, zero, sizeof(zero)) != 0) {
            printf("audit chain BROKEN (ALTERED): record %s claims global seq 1 but its "
                   "prev_sha256 is not the genesis (zero)\n",
                   kt);
            return 1;
        }
        return 0;
    }
    const struct served *p = &set->v[i - 1];
    char pt[STORE_CURSOR_BYTES];
    store_key_format(pt, &p->key);
    if (e->gseq == p->gseq) {
        printf("audit chain BROKEN (INSERTED): records %s and %s both claim global seq %" PRIu64
               "\n",
               pt, kt, e->gseq);
        return 1;
    }
    if (e->gseq != p->gseq + 1) {
        printf("audit chain BROKEN (REMOVED): record(s) with global seq %" PRIu64 "..%" PRIu64
               " missing between %s and %s%s\n",
               p->gseq + 1, e->gseq - 1, pt, kt,
               p->gseq + 1 > set->newest_at_start
                   ? " (newer than the walk's first page: possibly written while it paged; run "
                     "it again)"
                   : "");
        return 1;
    }
    if (memcmp(e->prev, p->digest, STORE_SHA256_BYTES) != 0) {
        printf("audit chain BROKEN (ALTERED): record %s (global seq %" PRIu64
               ") does not match the prev_sha256 of its successor %s\n",
               pt, p->gseq, kt);
        return 1;
    }
    return 0;
}

// url_check_expect checks --expect-head against the sorted set. Returns 0 or 1 (printed).
static int url_check_expect(const struct audit_opts *o, const struct served_set *set) {
    const struct store_chain_pos *e = &o->expect_head;
    struct served key = {.gseq = e->global_seq};
    size_t lo = 0, hi = set->n;
    while (lo < hi) { // the first served record at or after the pinned position
        size_t mid = lo + (hi - lo) / 2;
        if (set->v[mid].gseq < key.gseq) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    uint64_t last = set->n > 0 ? set->v[set->n - 1].gseq : 0;
    if (lo == set->n || set->v[lo].gseq != e->global_seq) {
        if (e->global_seq > last) {
            printf("audit chain BROKEN (EXPECTED HEAD): expected head record %" PRIu64
                   " is past the served head %" PRIu64 ": records were removed from the end\n",
                   e->global_seq, last);
        } else {
            printf("audit chain BROKEN (EXPECTED HEAD): expected head record %" PRIu64
                   " is not served (the first served is %" PRIu64
                   "): a prefix was removed, or retention deleted it (then pin a newer head)\n",
                   e->global_seq, set->n > 0 ? set->v[0].gseq : 0);
        }
        return 1;
    }
    if (memcmp(set->v[lo].digest, e->sha256, STORE_SHA256_BYTES) != 0) {
        printf("audit chain BROKEN (EXPECTED HEAD): record %" PRIu64
               " does not have the expected SHA-256: the chain was rewritten\n",
               e->global_seq);
        return 1;
    }
    return 0;
}

// url_verify collects every record the API serves (newest first by key, which is not the
// chain's order: global_seq is the store thread's drain order across the workers' rings), sorts
// them by global_seq, then checks the chain in that order.
static int url_verify(const struct audit_opts *o) {
    struct served_set set = {0};
    int rc = url_collect(o, &set);
    if (rc == 0) {
        qsort(set.v, set.n, sizeof(*set.v), served_cmp);
        for (size_t i = 0; i < set.n && rc == 0; i++) {
            rc = url_check_link(&set, i);
        }
    }
    if (rc == 0 && o->has_expect_head) {
        rc = url_check_expect(o, &set);
    }
    if (rc == 0) {
        printf("audit chain intact as served by %s: %zu records", o->url, set.n);
        if (set.n > 0) {
            const struct served *head = &set.v[set.n - 1];
            printf(" (global seq %" PRIu64 "..%" PRIu64 ")\n", set.v[0].gseq, head->gseq);
            if (set.v[0].gseq > 1) {
                printf("  records before global seq %" PRIu64 " are not served (retention); the "
                       "link of the first one to them is not checked\n",
                       set.v[0].gseq);
            }
            print_head(head->gseq, head->digest);
        } else {
            putchar('\n');
        }
    }
    free(set.v);
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
        {"db", required_argument, NULL, 'd'},
        {"limit", required_argument, NULL, 'l'},
        {"since", required_argument, NULL, 's'},
        {"cursor", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"url", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {"expect-head", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
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
        case 'e':
            if (parse_expect_head(optarg, &o.expect_head) != 0) {
                fprintf(stderr, "atlsctl: --expect-head must be GSEQ:HEX, a `head` line's global "
                                "seq (>= 1) and 64 hex digits\n");
                return 2;
            }
            o.has_expect_head = true;
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
    if (o.has_expect_head && strcmp(sub, "verify") != 0) {
        fprintf(stderr, "atlsctl: --expect-head is an option of audit verify\n");
        return 2;
    }
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
