// core_audit.c: the worker's side of the audit trail (DESIGN.md §9). Builds the AuditRecord of
// every decision and of every admitted connection's end from the connection and its decision
// entry, and hands it to the store through this worker's ring (store_audit_push: never blocks).
// Also the small per-worker statistics the API reads: latency histograms, denials by reason,
// and snapshots of live sessions.
#include <arpa/inet.h>

#include "attest.h"
#include "core_conn.h"
#include "policy.h"

const uint32_t core_hist_bounds_us[CORE_HIST_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000,
};

int core_audit_shard_init(struct core_shard *shard) {
    // A lazily backed table: pages are touched only when used. Entries are handed out fresh
    // (decision_fresh) until each was used once, then from the LIFO free list, which keeps
    // reusing the same few: nothing here touches an entry before it serves.
    shard->decisions =
        core_base_lazy_alloc((size_t)shard->conns_max * sizeof(*shard->decisions));
    shard->audit_wait = calloc(shard->conns_max, sizeof(*shard->audit_wait));
    if (shard->decisions == NULL || shard->audit_wait == NULL) {
        return -ENOMEM;
    }
    shard->decision_free = CORE_IDX_NONE;
    shard->decision_fresh = 0;
    return 0;
}

void core_audit_shard_cleanup(struct core_shard *shard) {
    core_base_lazy_free(shard->decisions, (size_t)shard->conns_max * sizeof(*shard->decisions));
    shard->decisions = NULL;
    free(shard->audit_wait);
    shard->audit_wait = NULL;
    free(shard->snap.items);
    shard->snap.items = NULL;
}

uint32_t core_decision_take(struct core_shard *shard) {
    uint32_t i;
    if (shard->decision_free != CORE_IDX_NONE) {
        i = shard->decision_free;
        shard->decision_free = shard->decisions[i].next_free;
    } else {
        // One entry per slot, and a slot holds at most one.
        ASSERT(shard->decision_fresh < shard->conns_max);
        i = shard->decision_fresh++;
    }
    struct core_decision *d = &shard->decisions[i];
    // Reset only the header; the large arrays are written before they are read (have_*).
    d->verdict = ATLS__VERDICT__VERDICT_ALLOWED;
    d->have_report = d->have_vcek = d->have_spki = d->reused = false;
    d->nonce_len = 0;
    d->disabled_sections = 0;
    d->check_count = 0;
    d->policy_version[0] = '\0';
    d->verify_ns = 0;
    return i;
}

void core_decision_give_back(struct core_shard *shard, uint32_t i) {
    shard->decisions[i].next_free = shard->decision_free;
    shard->decision_free = i;
}

struct core_decision *core_decision_get(struct core_shard *shard, struct core_conn *c) {
    if (c->decision == CORE_IDX_NONE) {
        c->decision = core_decision_take(shard);
    }
    return &shard->decisions[c->decision];
}

void core_decision_put(struct core_shard *shard, struct core_conn *c) {
    if (c->decision == CORE_IDX_NONE) {
        return;
    }
    core_decision_give_back(shard, c->decision);
    c->decision = CORE_IDX_NONE;
}

void core_hist_add(struct core_hist *h, uint64_t ns) {
    uint64_t us = ns / 1000u;
    uint32_t b = 0;
    while (b < CORE_HIST_BUCKETS - 1 && us > core_hist_bounds_us[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void core_deny_count_add(struct core_shard *shard, const char *code) {
    if (code == NULL) {
        code = "UNKNOWN";
    }
    struct core_deny_count *t = shard->counters.deny;
    for (uint32_t i = 0; i < CORE_DENY_CODES_MAX; i++) {
        const char *have = atomic_load_explicit(&t[i].code, memory_order_relaxed);
        if (have == NULL) {
            // Only this worker appends: count first, then publish the code.
            atomic_store_explicit(&t[i].n, 1, memory_order_relaxed);
            atomic_store_explicit(&t[i].code, code, memory_order_release);
            return;
        }
        if (have == code || strcmp(have, code) == 0) {
            atomic_fetch_add_explicit(&t[i].n, 1, memory_order_relaxed);
            return;
        }
    }
    // Table full (more distinct codes than exist today): count under the last entry.
    atomic_fetch_add_explicit(&t[CORE_DENY_CODES_MAX - 1].n, 1, memory_order_relaxed);
}

static void peer_text(const struct core_conn *c, char *out, size_t cap, uint32_t *out_port) {
    out[0] = '\0';
    *out_port = 0;
    if (c->peer.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c->peer;
        (void)inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)cap);
        *out_port = ntohs(a->sin_port);
    } else if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&c->peer;
        (void)inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)cap);
        *out_port = ntohs(a->sin6_port);
    }
}

// record_header fills what every record of connection `c` carries; `addr` (`cap` bytes) holds
// the client address text and must outlive the push.
static void record_header(Atls__AuditRecord *r, const struct core_shard *shard,
                          struct core_conn *c, Atls__AuditKind kind, char *addr, size_t cap) {
    r->kind = kind;
    r->time_ns = core_base_wall_ns();
    r->node_id = (char *)shard->proc->cfg.node_id;
    r->conn_id = c->conn_id;
    peer_text(c, addr, cap, &r->client_port);
    r->client_addr = addr;
    r->db_user = c->user;
    r->db_name = c->database;
}

bool core_audit_reserve(struct core_shard *shard) {
    return store_ring_free(shard->proc->store, shard->id) > shard->audit_owed;
}

void core_audit_unreserve(struct core_shard *shard, struct core_conn *c) {
    if (c->audit_owed) {
        ASSERT(shard->audit_owed > 0);
        shard->audit_owed--;
        c->audit_owed = false;
    }
}

// audit_push pushes `r` for `c`: into the slot `c` reserved at accept, or else only into a slot
// no handshake in progress has reserved (-EAGAIN when there is none).
static int audit_push(struct core_shard *shard, struct core_conn *c, uint64_t *out_seq,
                      const Atls__AuditRecord *r) {
    bool reserved = c->audit_owed;
    core_audit_unreserve(shard, c);
    if (!reserved && !core_audit_reserve(shard)) {
        return -EAGAIN; // the callers count it (audit trail busy, or a lost disconnect)
    }
    return store_audit_push(shard->proc->store, out_seq, shard->id, r);
}

static void count_push(struct core_shard *shard, int ret) {
    if (ret == 0) {
        atomic_fetch_add_explicit(&shard->counters.audit_pushed, 1, memory_order_relaxed);
    }
}

int core_audit_decision(struct core_shard *shard, struct core_conn *c, const char *close_reason,
                        uint64_t *out_seq) {
    struct store *store = shard->proc->store;
    ASSERT(store != NULL);
    const struct core_decision *d =
        c->decision != CORE_IDX_NONE ? &shard->decisions[c->decision] : NULL;
    Atls__AuditRecord r = ATLS__AUDIT_RECORD__INIT;
    char addr[64];
    record_header(&r, shard, c, ATLS__AUDIT_KIND__AUDIT_KIND_DECISION, addr, sizeof(addr));
    r.verdict = c->attest_denied ? ATLS__VERDICT__VERDICT_DENIED
                                 : (d != NULL ? (Atls__Verdict)d->verdict
                                              : ATLS__VERDICT__VERDICT_ALLOWED);
    r.reason = c->attest_denied ? c->deny_reason : (char *)"";
    if (close_reason != NULL && !c->attest_denied) {
        r.reason = (char *)close_reason;
    }
    if (c->ssl != NULL) {
        r.tls_version = (char *)SSL_get_version(c->ssl);
        const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
        r.tls_cipher = ci != NULL ? (char *)SSL_CIPHER_get_name(ci) : (char *)"";
    }
    Atls__FailedCheck checks[CORE_CHECKS_MAX + 1];
    Atls__FailedCheck *check_ptrs[CORE_CHECKS_MAX + 1];
    size_t n_checks = 0;
    bool deny_code_listed = false;
    Atls__TcbVersion tcb = ATLS__TCB_VERSION__INIT;
    char *disabled[POLICY_SECTION_COUNT];
    struct attest_claims claims;
    if (d != NULL) {
        for (uint32_t i = 0; i < d->check_count && n_checks < CORE_CHECKS_MAX; i++) {
            atls__failed_check__init(&checks[n_checks]);
            checks[n_checks].code = (char *)d->checks[i].code;
            checks[n_checks].detail = (char *)d->checks[i].detail;
            if (c->deny_code != NULL && strcmp(d->checks[i].code, c->deny_code) == 0) {
                deny_code_listed = true;
            }
            check_ptrs[n_checks] = &checks[n_checks];
            n_checks++;
        }
        r.policy_version = (char *)d->policy_version;
        if (d->have_report &&
            attest_report_parse(&claims, NULL, d->report, sizeof(d->report)) == ATTEST_OK) {
            r.report.data = (uint8_t *)d->report;
            r.report.len = sizeof(d->report);
            r.measurement.data = claims.measurement;
            r.measurement.len = sizeof(claims.measurement);
            r.chip_id.data = claims.chip_id;
            r.chip_id.len = sizeof(claims.chip_id);
            tcb.bootloader = claims.reported_tcb.bl;
            tcb.tee = claims.reported_tcb.tee;
            tcb.snp = claims.reported_tcb.snp;
            tcb.microcode = claims.reported_tcb.ucode;
            tcb.fmc = claims.reported_tcb.fmc;
            tcb.raw = claims.reported_tcb.raw;
            r.reported_tcb = &tcb;
            r.guest_svn = claims.guest_svn;
            r.guest_policy = claims.policy;
        } else if (d->have_report) {
            r.report.data = (uint8_t *)d->report; // kept as evidence even when it does not parse
            r.report.len = sizeof(d->report);
        }
        if (d->have_vcek) {
            r.vcek_sha256.data = (uint8_t *)d->vcek_sha256;
            r.vcek_sha256.len = sizeof(d->vcek_sha256);
        }
        if (d->have_spki) {
            r.spki_sha256.data = (uint8_t *)d->spki_sha256;
            r.spki_sha256.len = sizeof(d->spki_sha256);
        }
        r.nonce.data = (uint8_t *)d->nonce;
        r.nonce.len = d->nonce_len;
        r.attestation_reused = d->reused;
        for (uint32_t s = 0; s < POLICY_SECTION_COUNT; s++) {
            if (d->disabled_sections & (1u << s)) {
                disabled[r.n_sections_disabled++] =
                    (char *)policy_section_name((enum policy_section)s);
            }
        }
        r.sections_disabled = disabled;
    } else if (shard->policy == NULL) {
        r.policy_version = (char *)"mtls"; // plain mutual TLS against [tls] client_ca
    }
    if (c->attest_denied && !deny_code_listed && n_checks < CORE_CHECKS_MAX + 1) {
        atls__failed_check__init(&checks[n_checks]);
        checks[n_checks].code = (char *)(c->deny_code != NULL ? c->deny_code : "DENIED");
        checks[n_checks].detail = c->deny_reason;
        check_ptrs[n_checks] = &checks[n_checks];
        n_checks++;
    }
    r.n_failed_checks = n_checks;
    r.failed_checks = check_ptrs;
    int ret = audit_push(shard, c, out_seq, &r);
    count_push(shard, ret);
    return ret;
}

void core_audit_disconnect(struct core_shard *shard, struct core_conn *c, const char *reason) {
    Atls__AuditRecord r = ATLS__AUDIT_RECORD__INIT;
    char addr[64];
    record_header(&r, shard, c, ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT, addr, sizeof(addr));
    if (c->attested) {
        r.measurement.data = c->measurement;
        r.measurement.len = sizeof(c->measurement);
    }
    r.bytes_client_to_backend = c->side[CORE_SIDE_CLIENT].bytes_rx;
    r.bytes_backend_to_client = c->side[CORE_SIDE_CLIENT].bytes_tx;
    uint64_t now = core_base_now_ns();
    r.duration_ns = now > c->opened_ns ? now - c->opened_ns : 0;
    r.close_reason = (char *)(reason != NULL ? reason : "closed");
    r.decision_seq = c->audit_seq;
    uint64_t seq = 0;
    int ret = audit_push(shard, c, &seq, &r);
    count_push(shard, ret);
    if (ret != 0) {
        // The connection is already gone; the record cannot hold anything back. Counted and
        // logged so that a gap between decisions and disconnects is explained.
        atomic_fetch_add_explicit(&shard->counters.audit_lost, 1, memory_order_relaxed);
        LOG_WARN("worker %u: disconnect record of conn %llu not queued: %s", shard->id,
                 (unsigned long long)c->conn_id, strerror(-ret));
    }
}

void core_audit_snapshot_close(struct core_shard *shard) {
    struct core_snapshot *sn = &shard->snap;
    pthread_mutex_lock(&sn->mu);
    sn->closed = true;
    sn->count = 0;
    pthread_cond_broadcast(&sn->cv);
    pthread_mutex_unlock(&sn->mu);
}

void core_audit_snapshot_answer(struct core_shard *shard) {
    struct core_snapshot *sn = &shard->snap;
    if (!atomic_load_explicit(&sn->pending, memory_order_acquire)) {
        return;
    }
    pthread_mutex_lock(&sn->mu);
    uint32_t n = 0;
    for (uint32_t i = 0; sn->items != NULL && i < shard->conns_max; i++) {
        const struct core_conn *c = &shard->conns[i];
        if (!c->admitted || c->state == CORE_CONN_FREE || c->state == CORE_CONN_CLOSING) {
            continue;
        }
        struct core_active_item *it = &sn->items[n++];
        memset(it, 0, sizeof(*it));
        it->conn_id = c->conn_id;
        it->worker = shard->id;
        peer_text(c, it->addr, sizeof(it->addr), &it->port);
        it->have_measurement = c->attested;
        memcpy(it->measurement, c->measurement, sizeof(it->measurement));
        memcpy(it->user, c->user, sizeof(it->user));
        memcpy(it->database, c->database, sizeof(it->database));
        it->since_ns = c->admitted_wall_ns;
        it->bytes_c2b = c->side[CORE_SIDE_CLIENT].bytes_rx;
        it->bytes_b2c = c->side[CORE_SIDE_CLIENT].bytes_tx;
        it->decision_seq = c->audit_seq;
    }
    sn->count = n;
    sn->answered = sn->requested;
    atomic_store_explicit(&sn->pending, false, memory_order_relaxed);
    pthread_cond_broadcast(&sn->cv);
    pthread_mutex_unlock(&sn->mu);
}
