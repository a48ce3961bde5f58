// atls_bench_serve.c: `atls-bench serve`, a minimal pgwire backend (trust auth, protocol 3.0) that
// answers exactly the statements atls-bench sends, at memory speed: SELECT 1; SELECT repeat('x',
// N) FROM generate_series(1, K) (streams K DataRows of N bytes); COPY ... FROM STDIN (discards
// CopyData). It lets the proxies be measured where PostgreSQL itself would be the bottleneck
// (one process per connection caps handshakes; 10,000 idle sessions). epoll, one thread.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "atls_bench.h"

#define SERVE_RX_BYTES (256u * 1024u)
#define SERVE_OUT_BYTES (16u * 1024u)
#define SERVE_ROW_BYTES_MAX (16u * 1024u * 1024u)
#define SERVE_EVENTS_MAX 256

enum sstate {
    S_STARTUP = 0,
    S_READY,
    S_COPYIN,
};

struct sconn {
    int fd;
    enum sstate st;
    uint8_t start[512]; // StartupMessage being read
    uint32_t start_len;
    struct bench_pg_parser parser;
    uint8_t out[SERVE_OUT_BYTES];
    uint32_t out_len, out_off;
    uint8_t *row;       // one DataRow message, repeated
    uint32_t row_len, row_off;
    uint64_t rows_left;
    uint64_t rows_total;
    uint64_t copy_msgs;
    bool want_out;
    bool closing;
};

static volatile sig_atomic_t g_stop;
static int g_ep = -1;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void queue(struct sconn *c, uint8_t type, const void *body, size_t len) {
    size_t n = bench_pg_put_msg(c->out, sizeof(c->out), c->out_len, type, body, len);
    if (n == 0) {
        c->closing = true; // cannot happen with the statements we answer
        return;
    }
    c->out_len = (uint32_t)n;
}

static void queue_done(struct sconn *c, const char *tag) {
    queue(c, 'C', tag, strlen(tag) + 1);
    queue(c, 'Z', "I", 1);
}

static void queue_rowdesc(struct sconn *c, const char *name, uint32_t type_oid, int16_t typlen) {
    uint8_t b[128];
    size_t at = 0;
    b[at++] = 0;
    b[at++] = 1; // one field
    size_t nl = strlen(name) + 1;
    memcpy(b + at, name, nl);
    at += nl;
    memset(b + at, 0, 6); // table oid, column number
    at += 6;
    bench_pg_put_be32(b + at, type_oid);
    at += 4;
    b[at++] = (uint8_t)((uint16_t)typlen >> 8);
    b[at++] = (uint8_t)typlen;
    bench_pg_put_be32(b + at, 0xffffffffu); // typmod -1
    at += 4;
    b[at++] = 0;
    b[at++] = 0; // text format
    queue(c, 'T', b, at);
}

static void answer_query(struct sconn *c, const char *sql) {
    unsigned long long n = 0, k = 0;
    if (strcmp(sql, "SELECT 1") == 0) {
        queue_rowdesc(c, "?column?", 23, 4);
        static const uint8_t row[] = {0, 1, 0, 0, 0, 1, '1'};
        queue(c, 'D', row, sizeof(row));
        queue_done(c, "SELECT 1");
    } else if (sscanf(sql, "SELECT repeat('x', %llu) FROM generate_series(1, %llu)", &n, &k) == 2 &&
               n > 0 && n <= SERVE_ROW_BYTES_MAX) {
        queue_rowdesc(c, "repeat", 25, -1);
        free(c->row);
        c->row_len = (uint32_t)(n + 11);
        c->row = malloc(c->row_len);
        if (c->row == NULL) {
            c->closing = true;
            return;
        }
        c->row[0] = 'D';
        bench_pg_put_be32(c->row + 1, (uint32_t)(n + 10));
        c->row[5] = 0;
        c->row[6] = 1;
        bench_pg_put_be32(c->row + 7, (uint32_t)n);
        memset(c->row + 11, 'x', n);
        c->row_off = 0;
        c->rows_left = k;
        c->rows_total = k;
    } else if (strncmp(sql, "COPY ", 5) == 0 && strstr(sql, "FROM STDIN") != NULL) {
        static const uint8_t g[] = {1, 0, 1, 0, 1}; // binary, one column, binary
        queue(c, 'G', g, sizeof(g));
        c->st = S_COPYIN;
        c->copy_msgs = 0;
    } else {
        static const char e[] = "SERROR\0C0A000\0Mstatement not supported by atls-bench serve\0";
        queue(c, 'E', e, sizeof(e));
        queue(c, 'Z', "I", 1);
    }
}

static int on_msg(void *arg, uint8_t type, const uint8_t *body, uint32_t len) {
    struct sconn *c = arg;
    if (type == 'X') {
        c->closing = true;
        return -ECANCELED;
    }
    if (c->st == S_COPYIN) {
        if (type == 'd') {
            c->copy_msgs++;
        } else if (type == 'c') {
            char tag[32];
            snprintf(tag, sizeof(tag), "COPY %llu", (unsigned long long)c->copy_msgs);
            c->st = S_READY;
            queue_done(c, tag);
        } else if (type == 'f') {
            c->st = S_READY;
            static const char e[] = "SERROR\0C57014\0MCOPY failed by the client\0";
            queue(c, 'E', e, sizeof(e));
            queue(c, 'Z', "I", 1);
        }
        return 0;
    }
    if (type == 'Q' && len > 0 && body[len - 1] == 0) {
        answer_query(c, (const char *)body);
    }
    return 0;
}

static void startup_reply(struct sconn *c) {
    static const uint8_t auth_ok[4] = {0, 0, 0, 0};
    queue(c, 'R', auth_ok, sizeof(auth_ok));
    static const char p1[] = "server_version\0" "16.0 (atls-bench serve)";
    static const char p2[] = "client_encoding\0UTF8";
    static const char p3[] = "integer_datetimes\0on";
    queue(c, 'S', p1, sizeof(p1));
    queue(c, 'S', p2, sizeof(p2));
    queue(c, 'S', p3, sizeof(p3));
    uint8_t key[8];
    bench_pg_put_be32(key, (uint32_t)getpid());
    bench_pg_put_be32(key + 4, (uint32_t)c->fd * 2654435761u);
    queue(c, 'K', key, sizeof(key));
    queue(c, 'Z', "I", 1);
    c->st = S_READY;
}

// feed_startup consumes the StartupMessage (and answers SSLRequest/GSSENCRequest with 'N').
static size_t feed_startup(struct sconn *c, const uint8_t *d, size_t len) {
    size_t at = 0;
    while (at < len && c->st == S_STARTUP) {
        if (c->start_len < 4) {
            c->start[c->start_len++] = d[at++];
            continue;
        }
        uint32_t l = bench_pg_be32(c->start);
        if (l < 8 || l > sizeof(c->start)) {
            c->closing = true;
            return len;
        }
        size_t take = l - c->start_len < len - at ? l - c->start_len : len - at;
        memcpy(c->start + c->start_len, d + at, take);
        c->start_len += (uint32_t)take;
        at += take;
        if (c->start_len == l) {
            uint32_t code = bench_pg_be32(c->start + 4);
            c->start_len = 0;
            if (code == 80877103u || code == 80877104u) {
                c->out[c->out_len++] = 'N';
            } else if (code == 196608u) {
                startup_reply(c);
            } else {
                c->closing = true;
                return len;
            }
        }
    }
    return at;
}

static void set_out_interest(struct sconn *c, bool want) {
    if (want == c->want_out) {
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

// pump writes queued control bytes, then streamed rows; returns false on a socket error.
static bool pump(struct sconn *c) {
    for (;;) {
        if (c->out_off < c->out_len) {
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
            if (n < 0) {
                break;
            }
            c->out_off += (uint32_t)n;
            continue;
        }
        c->out_off = 0;
        c->out_len = 0;
        if (c->rows_left == 0) {
            set_out_interest(c, false);
            return true;
        }
        ssize_t n = send(c->fd, c->row + c->row_off, c->row_len - c->row_off, MSG_NOSIGNAL);
        if (n < 0) {
            break;
        }
        c->row_off += (uint32_t)n;
        if (c->row_off == c->row_len) {
            c->row_off = 0;
            if (--c->rows_left == 0) {
                char tag[32];
                snprintf(tag, sizeof(tag), "SELECT %llu", (unsigned long long)c->rows_total);
                queue_done(c, tag);
            }
        }
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return false;
    }
    set_out_interest(c, true);
    return true;
}

static void sconn_free(struct sconn *c) {
    epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    bench_pg_parser_cleanup(&c->parser);
    free(c->row);
    free(c);
}

static void on_readable(struct sconn *c, uint8_t *rx) {
    for (;;) {
        ssize_t n = recv(c->fd, rx, SERVE_RX_BYTES, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->closing = true;
            return;
        }
        if (n < 0) {
            return;
        }
        size_t at = 0;
        if (c->st == S_STARTUP) {
            at = feed_startup(c, rx, (size_t)n);
        }
        if (at < (size_t)n && !c->closing &&
            bench_pg_parser_feed(&c->parser, rx + at, (size_t)n - at, on_msg, c) == -EPROTO) {
            c->closing = true;
        }
        if (c->closing || (size_t)n < SERVE_RX_BYTES) {
            return;
        }
    }
}

static int listen_on(const char *addr) {
    struct sockaddr_in sa;
    if (bench_parse_addr(&sa, addr) != 0) {
        return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
        int e = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return e;
    }
    return fd;
}

int bench_serve_main(const char *listen_addr, uint32_t conns_max) {
    int lfd = listen_on(listen_addr);
    if (lfd < 0) {
        fprintf(stderr, "atls-bench serve: cannot listen on %s: %s\n", listen_addr,
                strerror(-lfd));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev);
    uint8_t *rx = malloc(SERVE_RX_BYTES);
    uint32_t live = 0;
    printf("ready\n");
    fflush(stdout);
    struct epoll_event evs[SERVE_EVENTS_MAX];
    while (!g_stop && rx != NULL) {
        int n = epoll_wait(g_ep, evs, SERVE_EVENTS_MAX, 200);
        for (int i = 0; i < n; i++) {
            struct sconn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct sconn *nc = live < conns_max ? calloc(1, sizeof(*nc)) : NULL;
                    if (nc == NULL || bench_pg_parser_init(&nc->parser) != 0) {
                        free(nc);
                        close(fd);
                        continue;
                    }
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev);
                    live++;
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                on_readable(c, rx);
            }
            if (!c->closing && !pump(c)) {
                c->closing = true;
            }
            if (c->closing) {
                sconn_free(c);
                live--;
            }
        }
    }
    free(rx);
    close(lfd);
    close(g_ep);
    return 0;
}
