// atlsctl_http.c: the one HTTP/1.0 GET client of atlsctl (nonce fetching, `audit --url`): plain
// http:// to a gateway's API, bounded in time and size. Not a general HTTP client.
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "atlsctl.h"
#include "core_base.h"

#define HTTP_TIMEOUT_S 10
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

int atlsctl_http_get(const char *url, const char *accept, char **out_body, size_t *out_len) {
    char host[256], port[8], path[2048];
    *out_body = NULL;
    *out_len = 0;
    int rc = split_url(url, host, sizeof(host), port, sizeof(port), path, sizeof(path));
    if (rc != 0) {
        return rc;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "atlsctl: cannot resolve %s: %s\n", host, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = HTTP_TIMEOUT_S};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
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
    char req[2400];
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: %s\r\n\r\n",
                      path, host, accept);
    size_t cap = 64u * 1024u, got = 0;
    char *buf = malloc(cap + 1);
    ssize_t n = buf == NULL ? -1 : send(fd, req, (size_t)rl, MSG_NOSIGNAL);
    while (n >= 0) {
        if (got == cap) {
            char *nb = cap >= HTTP_BODY_MAX ? NULL : realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                n = -1;
                errno = EMSGSIZE;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        n = recv(fd, buf + got, cap - got, 0);
        if (n == 0) {
            break;
        }
        if (n > 0) {
            got += (size_t)n;
        }
    }
    close(fd);
    if (n < 0) {
        fprintf(stderr, "atlsctl: reading from %s failed: %s\n", url, strerror(errno));
        free(buf);
        return -EIO;
    }
    buf[got] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || body == NULL) {
        fprintf(stderr, "atlsctl: %s did not answer HTTP\n", url);
        free(buf);
        return -EPROTO;
    }
    body += 4;
    if (strncmp(buf + 8, " 200", 4) != 0) {
        fprintf(stderr, "atlsctl: %s answered: %.*s: %.*s\n", url, (int)strcspn(buf, "\r\n"), buf,
                (int)strcspn(body, "\r\n"), body);
        free(buf);
        return -EPROTO;
    }
    *out_len = got - (size_t)(body - buf);
    memmove(buf, body, *out_len + 1);
    *out_body = buf;
    return 0;
}
