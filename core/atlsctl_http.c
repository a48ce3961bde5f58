// atlsctl_http.c: the one HTTP/1.0 GET client of atlsctl (nonce fetching, `audit --url`): plain
// http:// to a gateway's API, bounded in time and size. Not a general HTTP client.
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "atlsctl.h"
#include "core_base.h"

#define HTTP_TIMEOUT_S 10 // the whole request: connect, send, and the answer to its last byte
#define HTTP_BODY_MAX (256u * 1024u * 1024u)

// split_url parses http://host[:port][/path?query] into its parts.
static int split_url(const char *url, char *host, size_t host_cap, char *port, size_t port_cap,
                     char *path, size_t path_cap) {
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "atlsctl: only http:// URLs are supported: %s\n", url);
        return -EINVAL;
    }
    const char *h = url + 7;
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl >= host_cap) {
        fprintf(stderr, "atlsctl: bad URL host: %s\n", url);
        return -EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    const char *rest = h + hl;
    snprintf(port, port_cap, "80");
    if (*rest == ':') {
        size_t pl = strcspn(rest + 1, "/");
        if (pl == 0 || pl >= port_cap) {
            fprintf(stderr, "atlsctl: bad URL port: %s\n", url);
            return -EINVAL;
        }
        memcpy(port, rest + 1, pl);
        port[pl] = '\0';
        rest += 1 + pl;
    }
    if (strlen(rest) >= path_cap) {
        fprintf(stderr, "atlsctl: URL too long: %s\n", url);
        return -EINVAL;
    }
    snprintf(path, path_cap, "%s", *rest == '\0' ? "/" : rest);
    return 0;
}

// ms_left returns the milliseconds left until `deadline_ns` (CLOCK_MONOTONIC), 0 once past.
static int ms_left(uint64_t deadline_ns) {
    uint64_t now = core_base_now_ns();
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now) / 1000000u) + 1;
}

// header_value finds header `name` (case-insensitive) among the header lines `hdr` (`len`
// bytes, status line first) and returns its value, or NULL. The value ends at "\r\n".
static const char *header_value(const char *hdr, size_t len, const char *name) {
    size_t nl = strlen(name);
    const char *end = hdr + len;
    for (const char *line = hdr; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (eol == NULL) {
            eol = end;
        }
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            return v;
        }
        line = eol + 2;
    }
    return NULL;
}

// connect_to connects a socket to host:port within `deadline_ns`. Returns the fd or -errno
// after printing the reason.
static int connect_to(const char *host, const char *port, uint64_t deadline_ns) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "atlsctl: cannot resolve %s: %s\n", host, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // SO_SNDTIMEO bounds a blocking connect on Linux, and the request's one send.
    int left = ms_left(deadline_ns);
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "atlsctl: cannot connect to %s:%s: %s (is the gateway running?)\n", host,
                port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return -ECONNREFUSED;
    }
    freeaddrinfo(ai);
    return fd;
}

// read_all reads until the peer closes, into a malloc'd buffer with a NUL after `*out_got`
// bytes, within `deadline_ns` and HTTP_BODY_MAX. Returns 0 or -errno (not printed).
static int read_all(int fd, char **out_buf, size_t *out_got, uint64_t deadline_ns) {
    size_t cap = 64u * 1024u, got = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    for (;;) {
        if (got == cap) {
            char *nb = cap >= HTTP_BODY_MAX ? NULL : realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                rc = -EMSGSIZE;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = ms_left(deadline_ns);
        int prc = left == 0 ? 0 : poll(&p, 1, left);
        if (prc == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        ssize_t n = prc < 0 ? -1 : recv(fd, buf + got, cap - got, 0);
        if (n == 0) {
            break;
        }
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *out_buf = buf;
    *out_got = got;
    return 0;
}

int atlsctl_http_get(const char *url, const char *accept, char **out_body, size_t *out_len) {
    char host[256], port[8], path[2048];
    *out_body = NULL;
    *out_len = 0;
    int rc = split_url(url, host, sizeof(host), port, sizeof(port), path, sizeof(path));
    if (rc != 0) {
        return rc;
    }
    uint64_t deadline_ns = core_base_now_ns() + (uint64_t)HTTP_TIMEOUT_S * 1000000000u;
    int fd = connect_to(host, port, deadline_ns);
    if (fd < 0) {
        return fd;
    }
    char req[2400];
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: %s\r\n\r\n", path,
                      host, accept);
    char *buf = NULL;
    size_t got = 0;
    if (send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
        rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
    } else {
        rc = read_all(fd, &buf, &got, deadline_ns);
    }
    close(fd);
    if (rc == -ETIMEDOUT) {
        fprintf(stderr, "atlsctl: %s: no complete answer within %d s\n", url, HTTP_TIMEOUT_S);
        return -ETIMEDOUT;
    }
    if (rc != 0) {
        fprintf(stderr, "atlsctl: reading from %s failed: %s\n", url, strerror(-rc));
        return -EIO;
    }
    char *body = memmem(buf, got, "\r\n\r\n", 4);
    if (strncmp(buf, "HTTP/1.", 7) != 0 || body == NULL) {
        fprintf(stderr, "atlsctl: %s did not answer HTTP\n", url);
        free(buf);
        return -EPROTO;
    }
    size_t hdr_len = (size_t)(body - buf);
    body += 4;
    size_t body_len = got - (size_t)(body - buf);
    if (strncmp(buf + 8, " 200", 4) != 0) {
        fprintf(stderr, "atlsctl: %s answered: %.*s: %.*s\n", url, (int)strcspn(buf, "\r\n"), buf,
                (int)strcspn(body, "\r\n"), body);
        free(buf);
        return -EPROTO;
    }
    if (header_value(buf, hdr_len, "Transfer-Encoding") != NULL) {
        fprintf(stderr, "atlsctl: %s: a Transfer-Encoding is not supported (HTTP/1.0 asked)\n",
                url);
        free(buf);
        return -EPROTO;
    }
    // Without a Content-Length the body ends when the server closes (HTTP/1.0); with one, a
    // body cut short (the connection closed early) must not pass for a whole, shorter answer.
    const char *cl = header_value(buf, hdr_len, "Content-Length");
    if (cl != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long want = strtoull(cl, &end, 10);
        if (errno != 0 || end == cl || (*end != '\r' && *end != '\0') || *cl == '-') {
            fprintf(stderr, "atlsctl: %s: bad Content-Length\n", url);
            free(buf);
            return -EPROTO;
        }
        if (want != body_len) {
            fprintf(stderr,
                    "atlsctl: %s: the answer's body is %zu bytes but its Content-Length is %llu "
                    "(cut short?)\n",
                    url, body_len, want);
            free(buf);
            return -EIO;
        }
    }
    *out_len = body_len;
    memmove(buf, body, body_len + 1);
    *out_body = buf;
    return 0;
}
