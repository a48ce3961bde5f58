// core_attest.c: attestation enforcement in the connection lifecycle (DESIGN.md §3).
// Cheap checks run in the TLS verify callback; the full verification, policy evaluation and the
// atomic nonce consume run once SSL_do_handshake() returned 1 (key possession proven). A denial
// is delivered after the StartupMessage as a pgwire ErrorResponse (SQLSTATE 28000) whose line
// psql prints, and nothing reaches the backend.
#include <time.h>

#include <openssl/sha.h>

#include "core_conn.h"
#include "attest.h"
#include "policy.h"
#include "audit.pb-c.h"

static void deny(struct core_conn *c, const char *code, const char *detail) {
    if (c->attest_denied) {
        return; // keep the first reason
    }
    c->attest_denied = true;
    c->deny_code = code;
    // A reason longer than the buffer is cut: it is a one-line message for a person.
    if (snprintf(c->deny_reason, sizeof(c->deny_reason), "attestation denied: %s: %s", code,
                 detail) < 0) {
        c->deny_reason[0] = '\0';
    }
}

static const uint8_t *peer_leaf(const SSL *ssl, size_t *out_len) {
    const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(ssl);
    if (chain == NULL || sk_CRYPTO_BUFFER_num(chain) < 1) {
        return NULL;
    }
    const CRYPTO_BUFFER *leaf = sk_CRYPTO_BUFFER_value(chain, 0);
    *out_len = CRYPTO_BUFFER_len(leaf);
    return CRYPTO_BUFFER_data(leaf);
}

static void keep_evidence(struct core_decision *d, const struct attest_evidence *ev);

// read_evidence parses the evidence of `c`'s client certificate into the shard scratch and
// checks the key binding. Returns NULL, or the stable code of what failed with the reason in
// `err`. `d` (may be NULL) receives a copy of the evidence once it parses, bound or not.
static const char *read_evidence(struct core_shard *shard, struct core_conn *c,
                                 struct core_decision *d, struct attest_error *err) {
    memset(err, 0, sizeof(*err));
    size_t len = 0;
    const uint8_t *der = peer_leaf(c->ssl, &len);
    if (der == NULL) {
        snprintf(err->msg, sizeof(err->msg), "no client certificate");
        return "EVIDENCE_MISSING";
    }
    if (attest_evidence_from_cert(shard->evidence, err, der, len) != ATTEST_OK) {
        return attest_status_code(err->status);
    }
    if (d != NULL) {
        keep_evidence(d, shard->evidence);
    }
    if (attest_evidence_check_binding(shard->evidence, err) != ATTEST_OK) {
        return attest_status_code(err->status);
    }
    return NULL;
}

// load_evidence is read_evidence that denies `c` on failure.
static bool load_evidence(struct core_shard *shard, struct core_conn *c, struct core_decision *d) {
    struct attest_error err;
    const char *code = read_evidence(shard, c, d, &err);
    if (code != NULL) {
        deny(c, code, err.msg);
        return false;
    }
    return true;
}

static const char *nonce_peek_code(enum policy_nonce_peek_result r) {
    switch (r) {
    case POLICY_NONCE_PEEK_VALID:
        return NULL;
    case POLICY_NONCE_PEEK_UNKNOWN:
        return "NONCE_UNKNOWN";
    case POLICY_NONCE_PEEK_EXPIRED:
        return "NONCE_EXPIRED";
    case POLICY_NONCE_PEEK_CONSUMED:
        return "NONCE_REPLAYED";
    }
    return "NONCE_UNKNOWN";
}

static const char *nonce_consume_code(enum policy_nonce_consume_result r) {
    switch (r) {
    case POLICY_NONCE_CONSUME_OK:
        return NULL;
    case POLICY_NONCE_CONSUME_UNKNOWN:
        return "NONCE_UNKNOWN";
    case POLICY_NONCE_CONSUME_EXPIRED:
        return "NONCE_EXPIRED";
    case POLICY_NONCE_CONSUME_REPLAYED:
        return "NONCE_REPLAYED";
    }
    return "NONCE_UNKNOWN";
}

static const char *nonce_detail(const char *code) {
    if (strcmp(code, "NONCE_REPLAYED") == 0) {
        return "this nonce was already used; fetch a new one from GET /api/v1/nonce";
    }
    if (strcmp(code, "NONCE_EXPIRED") == 0) {
        return "the nonce expired; fetch a new one from GET /api/v1/nonce";
    }
    return "the nonce was not issued by this gateway; fetch one from GET /api/v1/nonce";
}

// evidence_hash is the reuse-cache key of the evidence: SHA-256(nonce || report).
static void evidence_hash(uint8_t out[SHA256_DIGEST_LENGTH], const struct attest_evidence *ev) {
    SHA256_CTX sh;
    SHA256_Init(&sh);
    SHA256_Update(&sh, ev->nonce, ev->nonce_len);
    SHA256_Update(&sh, ev->report, sizeof(ev->report));
    SHA256_Final(out, &sh);
}

// reuse_applies: an ALLOW verdict for exactly this certificate key and evidence (nonce and
// report) was remembered under the current policy and its window is still open (DESIGN.md §6).
static bool reuse_applies(const struct core_shard *shard, const struct attest_evidence *ev,
                          const uint8_t ev_hash[SHA256_DIGEST_LENGTH], uint64_t now) {
    const struct policy *pol = shard->policy;
    return pol->nonce.required && pol->nonce.reuse_window_s > 0 && ev->has_spki &&
           policy_reuse_is_allowed(shard->proc->reuse, ev->spki_sha256, ev_hash,
                                   shard->policy_ref->epoch, now);
}

void core_attest_on_verify(struct core_shard *shard, struct core_conn *c) {
    const struct policy *pol = shard->policy;
    if (!load_evidence(shard, c, NULL)) {
        return;
    }
    if (!pol->nonce.required) {
        return;
    }
    const struct attest_evidence *ev = shard->evidence;
    uint64_t now = core_base_now_ns();
    const char *code =
        nonce_peek_code(policy_nonce_peek(shard->proc->nonces, ev->nonce, ev->nonce_len, now));
    if (code == NULL) {
        return; // fresh: verified and consumed after the handshake
    }
    // Not fresh. A pooled handshake of a key admitted within the reuse window presents a nonce
    // that was consumed, and once the nonce's TTL passed (reuse_window_s may exceed ttl_s) its
    // slot may be reclaimed and refilled, so the table answers UNKNOWN or EXPIRED for it: the
    // reuse cache decides, whatever the table says. Anything else is denied here, before the
    // expensive verification (a replayed nonce never costs a P-384 verify). The cached verdict
    // is only a hint now: it is checked again after the handshake, with the key proven.
    uint8_t ev_hash[SHA256_DIGEST_LENGTH];
    evidence_hash(ev_hash, ev);
    if (!reuse_applies(shard, ev, ev_hash, now)) {
        deny(c, code, nonce_detail(code));
    }
}

static void fill_policy_input(struct policy_input *in, const struct attest_claims *cl) {
    memset(in, 0, sizeof(*in));
    memcpy(in->measurement, cl->measurement, sizeof(in->measurement));
    in->guest_svn = cl->guest_svn;
    in->guest_policy = cl->policy;
    in->vmpl = cl->vmpl;
    in->reported_tcb.bootloader = cl->reported_tcb.bl;
    in->reported_tcb.tee = cl->reported_tcb.tee;
    in->reported_tcb.snp = cl->reported_tcb.snp;
    in->reported_tcb.microcode = cl->reported_tcb.ucode;
    in->reported_tcb.fmc = cl->reported_tcb.fmc;
    in->is_turin = cl->product == ATTEST_PRODUCT_TURIN;
    in->platform_info = cl->platform_info;
}

// keep_evidence copies what the audit record needs out of the shard scratch.
static void keep_evidence(struct core_decision *d, const struct attest_evidence *ev) {
    memcpy(d->report, ev->report, sizeof(d->report));
    d->have_report = true;
    if (ev->vcek_len > 0) {
        SHA256(ev->vcek_der, ev->vcek_len, d->vcek_sha256);
        d->have_vcek = true;
    }
    if (ev->has_spki) {
        memcpy(d->spki_sha256, ev->spki_sha256, sizeof(d->spki_sha256));
        d->have_spki = true;
    }
    d->nonce_len = ev->nonce_len <= sizeof(d->nonce) ? (uint32_t)ev->nonce_len : 0;
    memcpy(d->nonce, ev->nonce, d->nonce_len);
}

static void keep_result(struct core_decision *d, const struct policy_result *res) {
    d->disabled_sections = res->disabled_sections;
    d->check_count = 0;
    for (uint32_t i = 0; i < res->check_count && i < CORE_CHECKS_MAX; i++) {
        d->checks[i].code = policy_check_code_name(res->checks[i].code);
        d->checks[i].is_warning = res->checks[i].is_warning;
        snprintf(d->checks[i].detail, sizeof(d->checks[i].detail), "%s", res->checks[i].detail);
        d->check_count++;
    }
}

static void verify_evidence(struct core_shard *shard, struct core_conn *c,
                            struct core_decision *d);

// denial_code names a denying policy result by its first denying check (warn-mode findings do
// not name a denial).
static const char *denial_code(const struct policy_result *res) {
    for (uint32_t i = 0; i < res->check_count; i++) {
        if (!res->checks[i].is_warning) {
            return policy_check_code_name(res->checks[i].code);
        }
    }
    return "POLICY_DENIED";
}

void core_attest_after_handshake(struct core_shard *shard, struct core_conn *c) {
    struct core_decision *d = core_decision_get(shard, c);
    snprintf(d->policy_version, sizeof(d->policy_version), "%s", shard->policy->version);
    uint64_t t0 = core_base_now_ns();
    verify_evidence(shard, c, d);
    d->verify_ns = core_base_now_ns() - t0;
    core_hist_add(&shard->counters.verify_hist, d->verify_ns);
}

static void verify_evidence(struct core_shard *shard, struct core_conn *c,
                            struct core_decision *d) {
    struct core_proc *proc = shard->proc;
    const struct policy *pol = shard->policy;
    // Denied already by the cheap checks: load anyway (a second denial keeps the first
    // reason) so that the audit record carries whatever evidence parses.
    bool denied_early = c->attest_denied;
    if (!load_evidence(shard, c, d) || denied_early) {
        return;
    }
    const struct attest_evidence *ev = shard->evidence;
    uint64_t now = core_base_now_ns();
    uint8_t ev_hash[SHA256_DIGEST_LENGTH];
    evidence_hash(ev_hash, ev);
    if (reuse_applies(shard, ev, ev_hash, now)) {
        // Same key, same evidence, within the window: the cached verdict stands; this
        // handshake proved possession of the key again.
        struct attest_claims seen;
        if (attest_report_parse(&seen, NULL, ev->report, sizeof(ev->report)) != ATTEST_OK) {
            deny(c, "REPORT_MALFORMED", "the attestation report does not parse");
            return;
        }
        fill_policy_input(&c->claims, &seen);
        // The policy judges these claims again (cheap; no signature), so the record carries the
        // same findings, warn-mode ones included, and the same verdict as the first admission.
        struct policy_result res;
        enum policy_verdict verdict = policy_evaluate(pol, &res, &c->claims);
        keep_result(d, &res);
        d->reused = true;
        if (verdict != POLICY_VERDICT_ALLOW) {
            // The same claims under the same policy allowed before: fail closed all the same.
            char why[CORE_DENY_REASON_MAX];
            policy_result_format(why, sizeof(why), &res);
            deny(c, denial_code(&res), why);
            return;
        }
        memcpy(c->measurement, seen.measurement, sizeof(c->measurement));
        c->attested = true;
        d->verdict =
            res.check_count > 0 ? ATLS__VERDICT__VERDICT_WARNED : ATLS__VERDICT__VERDICT_ALLOWED;
        atomic_fetch_add_explicit(&shard->counters.attest_reused, 1, memory_order_relaxed);
        return;
    }
    if (shard->verifier == NULL) {
        // The trust anchors of the current policy could not be loaded on this worker: fail closed.
        deny(c, "CHAIN_INVALID", "the gateway could not load the trust anchors of its policy");
        return;
    }
    struct attest_claims claims;
    struct attest_error err;
    memset(&err, 0, sizeof(err));
    atomic_fetch_add_explicit(&shard->counters.verifications, 1, memory_order_relaxed);
    if (attest_verifier_verify_evidence(shard->verifier, &claims, &err, ev, (int64_t)time(NULL)) !=
        ATTEST_OK) {
        deny(c, attest_status_code(err.status), err.msg);
        return;
    }
    struct policy_input in;
    fill_policy_input(&in, &claims);
    struct policy_result res;
    enum policy_verdict verdict = policy_evaluate(pol, &res, &in);
    keep_result(d, &res);
    if (verdict != POLICY_VERDICT_ALLOW) {
        char why[CORE_DENY_REASON_MAX];
        policy_result_format(why, sizeof(why), &res);
        deny(c, denial_code(&res), why);
        return;
    }
    if (pol->nonce.required) {
        const char *code =
            nonce_consume_code(policy_nonce_consume(proc->nonces, ev->nonce, ev->nonce_len, now));
        if (code != NULL) {
            deny(c, code, nonce_detail(code));
            return;
        }
        // The cached verdict ends with the window, or with the chain's validity if that comes
        // first: a reuse is not verified again, so it must not outlive the certificates.
        uint64_t window_s = pol->nonce.reuse_window_s;
        int64_t valid_s = window_s > 0 ? claims.chain_not_after - (int64_t)time(NULL) : 0;
        if (valid_s > 0) {
            if ((uint64_t)valid_s < window_s) {
                window_s = (uint64_t)valid_s;
            }
            policy_reuse_remember(proc->reuse, ev->spki_sha256, ev_hash, shard->policy_ref->epoch,
                                  now + window_s * 1000000000ull, now);
        }
    }
    memcpy(c->measurement, claims.measurement, sizeof(c->measurement));
    c->claims = in;
    c->attested = true;
    d->verdict = res.check_count > 0 ? ATLS__VERDICT__VERDICT_WARNED : ATLS__VERDICT__VERDICT_ALLOWED;
    atomic_fetch_add_explicit(&shard->counters.attest_ok, 1, memory_order_relaxed);
}

bool core_attest_role_check(struct core_shard *shard, struct core_conn *c) {
    if (!c->attested) {
        return false;
    }
    if (policy_role_is_allowed(shard->policy, c->measurement, c->user)) {
        return true;
    }
    char hex[2 * 48 + 1];
    core_base_hex_encode(hex, c->measurement, sizeof(c->measurement));
    char detail[CORE_DENY_REASON_MAX];
    snprintf(detail, sizeof(detail), "measurement %.12s... may not log in as user \"%s\"", hex,
             c->user);
    deny(c, "ROLE_NOT_ALLOWED", detail);
    return false;
}

// verifier_config fills the attestation verifier's settings from the policy's [chain].
static int verifier_config(struct attest_verifier_config *out, char *err, size_t err_len,
                           const struct policy *pol, const char *policy_path) {
    memset(out, 0, sizeof(*out));
    const char *roots = pol->chain.roots_builtin ? "builtin" : pol->chain.roots_path;
    if (strlen(roots) >= sizeof(out->roots) || strlen(pol->chain.vcek_dir) >= sizeof(out->vcek_dir)) {
        snprintf(err, err_len, "%s: [chain] path too long", policy_path);
        return -ENAMETOOLONG;
    }
    memcpy(out->roots, roots, strlen(roots) + 1);
    memcpy(out->vcek_dir, pol->chain.vcek_dir, strlen(pol->chain.vcek_dir) + 1);
    return 0;
}

static struct attest_verifier *verifier_new(char *err, size_t err_len, const struct policy *pol,
                                            const char *policy_path) {
    struct attest_verifier_config vc;
    if (verifier_config(&vc, err, err_len, pol, policy_path) != 0) {
        return NULL;
    }
    struct attest_error aerr;
    memset(&aerr, 0, sizeof(aerr));
    struct attest_verifier *v = attest_verifier_new(&vc, &aerr);
    if (v == NULL) {
        snprintf(err, err_len, "%s: attestation roots: %s", policy_path, aerr.msg);
    }
    return v;
}

int core_attest_check_roots(struct core_policy *p, char *err, size_t err_len,
                            const char *policy_path) {
    struct attest_verifier *v = verifier_new(err, err_len, &p->policy, policy_path);
    if (v == NULL) {
        return -EINVAL;
    }
    attest_verifier_trust_sha256(v, p->trust_sha256);
    attest_verifier_free(v);
    return 0;
}

// adopt makes `p` this worker's policy. The main thread may free older policies once the
// adopted epoch is published, so the caller must not read an older one after this.
static void adopt(struct core_shard *shard, const struct core_policy *p) {
    ASSERT(shard->policy_ref == NULL || p->epoch > shard->policy_ref->epoch);
    shard->policy_ref = p;
    shard->policy = &p->policy;
    atomic_store_explicit(&shard->policy_epoch_adopted, p->epoch, memory_order_release);
}

int core_attest_shard_init(struct core_shard *shard, char *err, size_t err_len) {
    // Before the worker thread starts: the main thread is the only one publishing policies.
    adopt(shard, atomic_load(&shard->proc->policy));
    struct attest_verifier *v =
        verifier_new(err, err_len, shard->policy, shard->proc->cfg.attestation_policy);
    if (v == NULL) {
        return -EINVAL;
    }
    attest_verifier_free(shard->verifier);
    shard->verifier = v;
    if (shard->evidence != NULL) {
        return 0;
    }
    shard->evidence = calloc(1, sizeof(struct attest_evidence));
    if (shard->evidence == NULL) {
        return -ENOMEM;
    }
    return 0;
}

void core_attest_shard_cleanup(struct core_shard *shard) {
    attest_verifier_free(shard->verifier);
    shard->verifier = NULL;
    free(shard->evidence);
    shard->evidence = NULL;
}

// same_chain reports whether the worker's verifier serves `next` as it is: same [chain]
// settings and the same trust anchors (a roots file rewritten in place keeps its path but
// changes the digest the main thread took when it loaded `next`). A worker left without a
// verifier by an earlier reload builds one again.
static bool same_chain(const struct core_shard *shard, const struct core_policy *next) {
    const struct policy *a = shard->policy;
    const struct policy *b = &next->policy;
    if (shard->verifier == NULL || a->chain.roots_builtin != b->chain.roots_builtin ||
        strcmp(a->chain.roots_path, b->chain.roots_path) != 0 ||
        strcmp(a->chain.vcek_dir, b->chain.vcek_dir) != 0) {
        return false;
    }
    uint8_t mine[32];
    attest_verifier_trust_sha256(shard->verifier, mine);
    return memcmp(mine, next->trust_sha256, sizeof(mine)) == 0;
}

// recheck judges live session `c` again under `next` (DESIGN.md §7: "re-checked against the new
// policy from their stored evidence"). With `chain_changed` the evidence of the certificate the
// session presented (BoringSSL keeps the peer certificate for the life of the SSL) is verified
// again with the worker's new verifier, so a change of [chain] roots or vcek_dir revokes the
// sessions whose evidence no longer chains to a trusted root (the roots file rewritten in place
// counts as a change). Returns NULL when the session may
// continue, else the stable code of the first failure, with the reason in `why`; `*out_judged`
// says whether `next` judged the claims (a session whose evidence no longer verifies is not
// judged), and then `out_res` holds its result.
static const char *recheck(struct core_shard *shard, struct core_conn *c, const struct policy *next,
                           bool chain_changed, struct policy_result *out_res, bool *out_judged,
                           char *why, size_t why_len) {
    memset(out_res, 0, sizeof(*out_res));
    *out_judged = false;
    struct policy_input in = c->claims;
    if (chain_changed) {
        if (shard->verifier == NULL) {
            snprintf(why, why_len, "the gateway could not load the trust anchors of its policy");
            return "CHAIN_INVALID";
        }
        struct attest_error err;
        const char *code = read_evidence(shard, c, NULL, &err);
        struct attest_claims claims;
        if (code == NULL) {
            atomic_fetch_add_explicit(&shard->counters.verifications, 1, memory_order_relaxed);
            if (attest_verifier_verify_evidence(shard->verifier, &claims, &err, shard->evidence,
                                                (int64_t)time(NULL)) != ATTEST_OK) {
                code = attest_status_code(err.status);
            }
        }
        if (code != NULL) {
            snprintf(why, why_len, "%s", err.msg);
            return code;
        }
        fill_policy_input(&in, &claims);
    }
    *out_judged = true;
    if (policy_evaluate(next, out_res, &in) != POLICY_VERDICT_ALLOW) {
        policy_result_format(why, why_len, out_res);
        return denial_code(out_res);
    }
    // Before the StartupMessage the user is not known yet: step_startup applies [roles] of the
    // policy in force when it arrives.
    if (c->state != CORE_CONN_STARTUP && !policy_role_is_allowed(next, c->measurement, c->user)) {
        snprintf(why, why_len, "measurement may not log in as user \"%s\"", c->user);
        return "ROLE_NOT_ALLOWED";
    }
    return NULL;
}

// is_rechecked: attested sessions from the end of their handshake (the verdict was reached under
// the policy of that moment) to their close. Sessions still in the handshake are judged later,
// under the new policy; denied ones are on their way out already.
static bool is_rechecked(const struct core_conn *c) {
    if (!c->attested || c->attest_denied) {
        return false;
    }
    switch (c->state) {
    case CORE_CONN_STARTUP:
    case CORE_CONN_AUDIT_WAIT:
    case CORE_CONN_CONNECTING:
    case CORE_CONN_FORWARD:
        return true;
    case CORE_CONN_FREE:
    case CORE_CONN_SNIFF:
    case CORE_CONN_HANDSHAKE:
    case CORE_CONN_CANCEL_OUT:
    case CORE_CONN_PASSTHROUGH:
    case CORE_CONN_CLOSING:
        return false;
    }
    return false;
}

void core_attest_policy_changed(struct core_shard *shard,
                                void (*on_revoked)(struct core_shard *, struct core_conn *,
                                                   const char *reason)) {
    const struct core_policy *next_ref = atomic_load(&shard->proc->policy);
    if (next_ref == NULL || next_ref == shard->policy_ref) {
        return;
    }
    const struct policy *next = &next_ref->policy;
    // Compared before adopting: once adopted, the previous policy may be freed at any time.
    bool chain_changed = !same_chain(shard, next_ref);
    adopt(shard, next_ref);
    if (chain_changed) {
        char err[256];
        struct attest_verifier *v = verifier_new(err, sizeof(err), next,
                                                 shard->proc->cfg.attestation_policy);
        if (v == NULL) {
            // The main thread loaded these roots before publishing, so this is a file changed
            // in between. Fail closed: no verifier, every verification under it is denied.
            LOG_ERROR("worker %u: %s; attested handshakes are refused until a reload succeeds",
                      shard->id, err);
        }
        attest_verifier_free(shard->verifier);
        shard->verifier = v;
    }
    // WARNING: with a [chain] change every live session costs one full verification here (a
    // P-384 verify, plus the chain once per distinct VCEK), on this worker's loop. Reloads that
    // change the roots are rare; the loop stalls for well under a second per thousand sessions.
    uint32_t rechecked = 0;
    uint32_t revoked = 0;
    for (uint32_t i = 0; i < shard->conns_max; i++) {
        struct core_conn *c = &shard->conns[i];
        if (!is_rechecked(c)) {
            continue;
        }
        rechecked++;
        struct policy_result res;
        bool judged = false;
        char why[CORE_DENY_REASON_MAX];
        const char *code = recheck(shard, c, next, chain_changed, &res, &judged, why, sizeof(why));
        if (code == NULL) {
            continue;
        }
        revoked++;
        char reason[CORE_DENY_REASON_MAX + 64];
        if (c->state == CORE_CONN_STARTUP) {
            // Not admitted yet (no decision record): denied like any handshake, with a DENIED
            // decision record, once its StartupMessage arrives (or at its timeout).
            if (c->decision != CORE_IDX_NONE) {
                struct core_decision *d = &shard->decisions[c->decision];
                snprintf(d->policy_version, sizeof(d->policy_version), "%s", next->version);
                if (judged) {
                    keep_result(d, &res); // else the findings of the handshake stay
                }
            }
            if (snprintf(reason, sizeof(reason), "revoked by policy %s: %s", next->version, why) <
                0) {
                reason[0] = '\0';
            }
            deny(c, code, reason);
            continue;
        }
        if (snprintf(reason, sizeof(reason), "attestation revoked by policy %s: %s: %s",
                     next->version, code, why) < 0) {
            reason[0] = '\0';
        }
        on_revoked(shard, c, reason);
    }
    LOG_INFO("worker %u: policy %s adopted, %u live sessions re-checked%s, %u revoked", shard->id,
             next->version, rechecked, chain_changed ? " (evidence verified again)" : "", revoked);
}
