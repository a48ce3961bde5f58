// core_health.c: active backend health checks (DESIGN §8), on a thread of their own.
//
// Each backend is probed every health_interval_ms on its own schedule (a slow probe of one never
// delays another's), each probe within connect_timeout_ms: with health_check = connect, a TCP
// connect; with startup, a StartupMessage as health_user and the backend's first answer. An
// authentication request or AuthenticationOk, or an ErrorResponse other than 57P01..57P03 (a
// wrong password, an unknown role), shows a node that takes sessions; 57P01..57P03, a refused or
// unanswered connect, silence, a close, a cut or malformed answer or anything else, one that
// does not. The probe never authenticates: it ends the session at the first answer (after
// AuthenticationOk, with a Terminate). A probe that fails for a reason of this host (out of
// descriptors, memory or local ports) decides nothing.
//
// A backend marked down (by probes, or by real sessions: core_backend_mark_down) is marked up by
// the first probe it answers; a healthy one is marked down when HEALTH_FALL probes in a row fail
// (one, until a probe has seen it up). While its probes fail, its down_until stays beyond its
// next probe, so that real sessions do not probe it themselves (they still do when every backend
// is down: core_backend_pick). A result is applied only if no session changed the backend's
// state while the probe ran: that session saw the backend later than the probe did.
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "core_internal.h"

#define HEALTH_FALL 2u          // failed probes in a row that mark a healthy backend down
#define HEALTH_ANSWER_MAX 128u  // bytes of the first answer kept (a SQLSTATE comes early)
#define HEALTH_SKIP_MAX 65536u  // notice bytes a startup probe skips before it gives up
#define HEALTH_STARTUP_MAX 256u // the probe's StartupMessage
#define HEALTH_WHY_MAX 96u

enum probe_state {
    PROBE_IDLE = 0, // none running: the next starts at due_ns
    PROBE_CONNECTING,
    PROBE_SENDING,
    PROBE_READING,
    PROBE_DONE,
};

struct probe {
    int fd;
    enum probe_state state;
    bool ok;
    bool local;             // failed for a reason of this host: decides nothing
    uint64_t due_ns;        // IDLE: when the next starts
    uint64_t deadline_ns;   // running: when it fails
    uint64_t down_at_start; // the backend's down_until when it started
    uint32_t sent;
    uint32_t skip;    // bytes still to drop of a NoticeResponse or NegotiateProtocolVersion
    uint32_t skipped; // bytes dropped in all (at most HEALTH_SKIP_MAX)
    uint32_t have;
    uint8_t in[HEALTH_ANSWER_MAX];
    char why[HEALTH_WHY_MAX]; // failure; or, for an ErrorResponse that passes, its SQLSTATE
};

struct core_health {
    struct core_proc *proc;
    pthread_t thread;
    int stop_fd;                       // eventfd, written once to stop
    uint32_t fails[CORE_BACKENDS_MAX]; // failed probes in a row
    bool seen_up[CORE_BACKENDS_MAX];   // a probe found it up once
    bool warned[CORE_BACKENDS_MAX];    // "takes sessions but refused the probe's" said once
    uint64_t local_logged_ns;          // local failures: logged at most once a second
    struct probe probes[CORE_BACKENDS_MAX];
    uint8_t startup[HEALTH_STARTUP_MAX];
    uint32_t startup_len;
};

// probe_end decides `p`: up (`ok`) or down, and why ("" for a plain pass).
static void probe_end(struct probe *p, bool ok, const char *why) {
    p->ok = ok;
    p->state = PROBE_DONE;
    snprintf(p->why, sizeof(p->why), "%s", why);
}

// probe_failed decides `p` down because `what` failed with errno `e`.
static void probe_failed(struct probe *p, const char *what, int e) {
    p->ok = false;
    p->state = PROBE_DONE;
    snprintf(p->why, sizeof(p->why), "%s: %s", what, strerror(e));
}

// local_error: whether socket(2) or connect(2) failing with `e` is this host's lack (descriptors,
// memory, local ports), which says nothing about the backend.
static bool local_error(int e) {
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL ||
           e == EAGAIN;
}

// startup_build writes the probe's StartupMessage (protocol 3.0) into h->startup.
static void startup_build(struct core_health *h) {
    const struct core_config *cfg = &h->proc->cfg;
    const char *db = cfg->health_database[0] != '\0' ? cfg->health_database : cfg->health_user;
    const char *kv[] = {"user", cfg->health_user,   "database",
                        db,     "application_name", "atls-proxy health check"};
    uint32_t n = 8;
    for (size_t i = 0; i < ARRAY_LEN(kv); i++) {
        size_t l = strlen(kv[i]) + 1; // names are below CORE_NAME_MAX: the sum fits
        memcpy(h->startup + n, kv[i], l);
        n += (uint32_t)l;
    }
    h->startup[n++] = 0;
    ASSERT(n <= sizeof(h->startup));
    core_pgwire_put_be32(h->startup, n);
    core_pgwire_put_be32(h->startup + 4, CORE_PG_PROTOCOL_3_0);
    h->startup_len = n;
}

// answer_judge decides a startup probe from the first answer bytes held in p->in (`eof`: the
// backend closed after them). Leaves the probe READING while they do not yet decide it.
static void answer_judge(struct probe *p, bool eof) {
    while (p->state == PROBE_READING && p->skip == 0) {
        if (p->have < 5) {
            if (eof) {
                probe_end(p, false, "closed the session without answering");
            }
            return;
        }
        uint8_t type = p->in[0];
        uint32_t len = core_pgwire_be32(p->in + 1);
        if (len < 4 || len > (uint32_t)INT32_MAX) { // the length is an Int32 on the wire
            probe_end(p, false, "answered with a malformed message");
            return;
        }
        if (type == 'N' || type == 'v') { // a notice, or the protocol version it speaks: skip
            uint32_t whole = len + 1u;    // no wrap: len <= INT32_MAX
            if (p->skipped + whole > HEALTH_SKIP_MAX) { // no wrap: skipped <= 64 KiB
                probe_end(p, false, "answered with more than 64 KiB of notices");
                return;
            }
            p->skipped += whole;
            if (whole <= p->have) {
                memmove(p->in, p->in + whole, p->have - whole);
                p->have -= whole;
            } else {
                p->skip = whole - p->have;
                p->have = 0;
            }
            continue;
        }
        if (type == 'R') {
            if (len == 8 && p->have >= 9 && core_pgwire_be32(p->in + 5) == 0) {
                // AuthenticationOk: the session started; end it politely.
                static const uint8_t terminate[5] = {'X', 0, 0, 0, 4};
                (void)send(p->fd, terminate, sizeof(terminate), MSG_NOSIGNAL | MSG_DONTWAIT);
            }
            probe_end(p, true, "");
            return;
        }
        if (type != 'E') {
            char why[64];
            snprintf(why, sizeof(why), "answered the StartupMessage with message '%c'",
                     type >= 0x20 && type < 0x7f ? type : '?');
            probe_end(p, false, why);
            return;
        }
        uint32_t body = len - 4;
        uint32_t want = body < sizeof(p->in) - 5 ? body : (uint32_t)sizeof(p->in) - 5;
        if (p->have < 5 + want) {
            if (eof) { // a cut answer says nothing reliable of the node
                probe_end(p, false, "closed the session in the middle of its answer");
            }
            return;
        }
        char code[6];
        char refusal[48];
        core_pgwire_error_sqlstate(p->in + 5, want, code);
        if (core_pgwire_sqlstate_refuses(code, refusal)) {
            probe_end(p, false, refusal);
        } else {
            probe_end(p, true, code[0] != '\0' ? code : "an error without SQLSTATE");
        }
        return;
    }
}

// probe_recv reads what the backend sent and judges it.
static void probe_recv(struct probe *p) {
    uint8_t buf[512];
    ssize_t r = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            probe_failed(p, "receive failed", errno);
        }
        return;
    }
    uint32_t n = (uint32_t)r;
    uint32_t at = 0;
    while (p->state != PROBE_DONE) {
        uint32_t k = n - at < p->skip ? n - at : p->skip;
        p->skip -= k;
        at += k;
        uint32_t room = (uint32_t)sizeof(p->in) - p->have;
        uint32_t c = n - at < room ? n - at : room;
        memcpy(p->in + p->have, buf + at, c);
        p->have += c;
        at += c;
        // A full buffer always decides the probe or skips a message, making room again: the
        // first HEALTH_ANSWER_MAX bytes of a message that decides are all it needs.
        answer_judge(p, r == 0);
        if (at == n) {
            break;
        }
    }
    if (r == 0 && p->state != PROBE_DONE) { // closed inside a skipped message
        probe_end(p, false, "closed the session without answering");
    }
}

// probe_step advances `p` after poll reported `revents` on its socket.
static void probe_step(struct core_health *h, struct probe *p, short revents) {
    if (p->state == PROBE_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
            soerr = errno;
        }
        if (soerr != 0) {
            probe_failed(p, "connect failed", soerr);
            return;
        }
        if (h->proc->cfg.health_check == CORE_HEALTH_CONNECT) {
            probe_end(p, true, "");
            return;
        }
        p->state = PROBE_SENDING;
    }
    if (p->state == PROBE_SENDING) {
        ssize_t r = send(p->fd, h->startup + p->sent, h->startup_len - p->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            probe_failed(p, "send failed", errno);
            return;
        }
        p->sent += r > 0 ? (uint32_t)r : 0u;
        if (p->sent == h->startup_len) {
            p->state = PROBE_READING;
        }
        return;
    }
    if (p->state == PROBE_READING && (revents & (POLLIN | POLLHUP | POLLERR))) {
        probe_recv(p);
    }
}

// probe_start opens backend `i`'s probe: a non-blocking connect, judged by probe_step.
static void probe_start(struct core_health *h, uint32_t i, uint64_t now) {
    const struct core_config *cfg = &h->proc->cfg;
    struct probe *p = &h->probes[i];
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    p->state = PROBE_CONNECTING;
    p->due_ns = now + (uint64_t)cfg->health_interval_ms * 1000000ull;
    p->deadline_ns = now + (uint64_t)cfg->connect_timeout_ms * 1000000ull;
    p->down_at_start = atomic_load_explicit(&h->proc->backends[i].down_until, memory_order_relaxed);
    const struct core_addr *a = &cfg->backends[i];
    p->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        p->local = local_error(errno);
        probe_failed(p, "socket", errno);
        return;
    }
    if (connect(p->fd, (const struct sockaddr *)&a->ss, a->len) != 0 && errno != EINPROGRESS) {
        p->local = local_error(errno);
        probe_failed(p, "connect failed", errno);
    }
}

// probe_apply marks backend `i` up or down from its finished probe (see the top of the file),
// then closes the probe; the next starts at its due time.
static void probe_apply(struct core_health *h, uint32_t i) {
    struct core_proc *proc = h->proc;
    const struct core_config *cfg = &proc->cfg;
    struct probe *p = &h->probes[i];
    struct core_backend_state *b = &proc->backends[i];
    const char *name = cfg->backends[i].text;
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    p->state = PROBE_IDLE;
    if (p->local) {
        if (core_base_log_due(&h->local_logged_ns)) {
            LOG_WARN("health check of backend %s not run: %s", name, p->why);
        }
        return;
    }
    atomic_fetch_add_explicit(&b->probes, 1, memory_order_relaxed);
    uint64_t expected = p->down_at_start;
    if (p->ok) {
        h->fails[i] = 0;
        h->seen_up[i] = true;
        if (expected != 0 &&
            atomic_compare_exchange_strong_explicit(&b->down_until, &expected, 0,
                                                    memory_order_relaxed, memory_order_relaxed)) {
            LOG_INFO("backend %s answers the health check again: back in rotation", name);
        }
        if (p->why[0] != '\0' && !h->warned[i]) {
            h->warned[i] = true;
            LOG_WARN("backend %s takes sessions but refused the health check's (%s): check "
                     "[backend] health_user",
                     name, p->why);
        }
        return;
    }
    atomic_fetch_add_explicit(&b->probes_failed, 1, memory_order_relaxed);
    if (h->fails[i] < UINT32_MAX) {
        h->fails[i]++;
    }
    if (expected == 0 && h->fails[i] < HEALTH_FALL && h->seen_up[i]) {
        return;
    }
    // Out until a probe finds it up: beyond its next probe's end. Offset by its index so that
    // when every backend is down, the one core_backend_pick falls back to is not always the first.
    uint64_t now = core_base_now_ns();
    uint64_t hold =
        now + (2ull * cfg->health_interval_ms + cfg->connect_timeout_ms + i) * 1000000ull;
    if (atomic_compare_exchange_strong_explicit(&b->down_until, &expected, hold,
                                                memory_order_relaxed, memory_order_relaxed) &&
        p->down_at_start == 0) {
        LOG_WARN("backend %s: %s (%u health checks in a row): out of rotation", name, p->why,
                 h->fails[i]);
    }
}

static void *health_main(void *arg) {
    struct core_health *h = arg;
    uint32_t n = h->proc->cfg.backend_count;
    uint64_t start = core_base_now_ns();
    for (uint32_t i = 0; i < n; i++) {
        h->probes[i].fd = -1;
        h->probes[i].state = PROBE_IDLE;
        h->probes[i].due_ns = start;
    }
    for (;;) {
        uint64_t now = core_base_now_ns();
        uint64_t wake = UINT64_MAX;
        struct pollfd pfd[CORE_BACKENDS_MAX + 1];
        uint32_t of[CORE_BACKENDS_MAX];
        uint32_t k = 0;
        for (uint32_t i = 0; i < n; i++) {
            struct probe *p = &h->probes[i];
            if (p->state == PROBE_IDLE && now >= p->due_ns) {
                probe_start(h, i, now);
            }
            if (p->state != PROBE_IDLE && p->state != PROBE_DONE && now >= p->deadline_ns) {
                probe_end(p, false,
                          p->state == PROBE_CONNECTING ? "connect timed out (connect_timeout_ms)"
                                                       : "no answer within connect_timeout_ms");
            }
            if (p->state == PROBE_DONE) {
                probe_apply(h, i);
            }
            if (p->state == PROBE_IDLE) {
                wake = p->due_ns < wake ? p->due_ns : wake;
                continue;
            }
            wake = p->deadline_ns < wake ? p->deadline_ns : wake;
            short ev = p->state == PROBE_READING ? POLLIN : POLLOUT;
            pfd[k] = (struct pollfd){.fd = p->fd, .events = ev};
            of[k++] = i;
        }
        pfd[k] = (struct pollfd){.fd = h->stop_fd, .events = POLLIN};
        int ms = wake <= now ? 0 : (int)((wake - now + 999999ull) / 1000000ull);
        int r = poll(pfd, k + 1, ms);
        if (r < 0 && errno != EINTR) {
            LOG_ERROR("health checks: poll: %s; stopping them", strerror(errno));
            break; // cannot wait: stop rather than spin
        }
        if (r > 0 && pfd[k].revents != 0) {
            break; // told to stop
        }
        for (uint32_t j = 0; j < k && r > 0; j++) {
            if (pfd[j].revents != 0) {
                probe_step(h, &h->probes[of[j]], pfd[j].revents);
            }
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (h->probes[i].fd >= 0) {
            close(h->probes[i].fd);
            h->probes[i].fd = -1;
        }
    }
    return NULL;
}

int core_health_start(struct core_proc *proc, char *err, size_t err_len) {
    if (proc->cfg.health_check == CORE_HEALTH_OFF) {
        return 0;
    }
    struct core_health *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, err_len, "health checks: out of memory");
        return -ENOMEM;
    }
    h->proc = proc;
    h->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (h->stop_fd < 0) {
        int e = errno;
        snprintf(err, err_len, "health checks: eventfd: %s", strerror(e));
        free(h);
        return -e;
    }
    if (proc->cfg.health_check == CORE_HEALTH_STARTUP) {
        startup_build(h);
    }
    int e = pthread_create(&h->thread, NULL, health_main, h);
    if (e != 0) {
        snprintf(err, err_len, "health checks: cannot start a thread: %s", strerror(e));
        close(h->stop_fd);
        free(h);
        return -e;
    }
    (void)pthread_setname_np(h->thread, "atls-health");
    proc->health = h;
    return 0;
}

void core_health_stop(struct core_proc *proc) {
    struct core_health *h = proc->health;
    if (h == NULL) {
        return;
    }
    uint64_t one = 1;
    (void)!write(h->stop_fd, &one, sizeof(one));
    pthread_join(h->thread, NULL);
    close(h->stop_fd);
    free(h);
    proc->health = NULL;
}
