// harness.h: end-to-end test harness: temp dirs, a real PostgreSQL on loopback, certificates
// made with the openssl CLI, the real atls-proxy binary, shell commands, and a raw pgwire/TLS
// client on BoringSSL for byte-level checks.
#pragma once

#include <openssl/ssl.h>
#include <sys/types.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace e2e {

struct CmdResult {
    int status = -1; // exit code, or 128+signal
    std::string out; // stdout and stderr together
};

// Run `cmd` under /bin/sh with a timeout (seconds); output captured.
CmdResult Sh(const std::string &cmd, int timeout_s = 60);

// A free TCP port on 127.0.0.1 (bound then released).
int FreePort();

std::string ReadFile(const std::string &path);
// CpuTicks: utime + stime, in clock ticks, of process `pid` or, with `tid`, of its thread `tid`
// (/proc/<pid>[/task/<tid>]/stat); -1 when it is gone.
long long CpuTicks(pid_t pid, pid_t tid = 0);
// Count returns how many times `needle` occurs in `text`.
size_t Count(const std::string &text, const std::string &needle);
void WriteFile(const std::string &path, const std::string &data);

// A temporary directory removed at destruction; world-readable so the postgres user can use it.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    const std::string &path() const { return path_; }
    std::string operator/(const std::string &name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

// A real PostgreSQL server (initdb in a temp dir, loopback only, trust auth). When running as
// root it runs as the `postgres` user.
class Postgres {
  public:
    Postgres();
    ~Postgres();
    bool Start(std::string *err);
    void Stop();
    int port() const { return port_; }
    // psql against the server directly (no proxy).
    CmdResult Psql(const std::string &sql, int timeout_s = 60) const;
    // The server log (log_connections is on: one "connection received" line per connection).
    std::string LogText() const;

  private:
    TempDir dir_;
    int port_ = 0;
    bool running_ = false;
};

// CA, server and client certificates (Ed25519), plus a client signed by another CA.
struct Certs {
    explicit Certs(const std::string &dir);
    std::string dir, ca, server_crt, server_key, client_crt, client_key, other_crt, other_key;
    bool ok = false;
    // Issue a fresh server certificate with subject CN=`cn` into `crt`/`key`.
    bool IssueServer(const std::string &cn, const std::string &crt, const std::string &key);
};

// The real atls-proxy binary with a generated config.
class Proxy {
  public:
    ~Proxy();
    // Write `ini` to `dir`/proxy.ini, start the binary, wait for its "ready" line. `nofile` > 0
    // starts it with that RLIMIT_NOFILE from its first instruction and none of the test's
    // descriptors (lowering the limit of a running proxy does not work: io_uring captures it
    // when the multishot accept is prepared).
    bool Start(const std::string &dir, const std::string &ini, std::string *err,
               unsigned long nofile = 0);
    // Signal and wait for exit (up to `timeout_s`); returns the exit status or -1 on timeout.
    int Stop(int sig = 15, int timeout_s = 20);
    void Signal(int sig);
    bool Running();
    pid_t pid() const { return pid_; }
    std::string log_path() const { return log_; }
    // Set before Start: the proxy starts without CAP_SYS_NICE (dropped from the bounding,
    // inheritable and ambient sets before exec), as under a service manager that grants none.
    bool without_sys_nice = false;

  private:
    pid_t pid_ = -1;
    std::string log_;
};

std::string ProxyBinary();

// Connection string for psql/pgbench through the proxy at `port` with the given client cert.
std::string ConnStr(int port, const Certs &c, const std::string &extra = "");

// ConnectTcp connects to 127.0.0.1:`port` (non-blocking: the connect may still be in progress);
// the descriptor, or -1.
int ConnectTcp(int port, bool nonblocking = false);

// ListenLoopback listens on a free 127.0.0.1 port with `backlog`, close-on-exec (a gateway
// started afterwards must not inherit it and keep the port open). The descriptor, its port in
// `*port`; -1 on failure.
int ListenLoopback(int backlog, int *port);

// SilentBackend listens on a free loopback port, accepts every connection and never says a word
// (a hung backend); it counts what it accepted.
class SilentBackend {
  public:
    SilentBackend();
    ~SilentBackend();
    SilentBackend(const SilentBackend &) = delete;
    SilentBackend &operator=(const SilentBackend &) = delete;
    bool ok() const {
        return fd_ >= 0;
    }
    int port() const {
        return port_;
    }
    int accepted() const {
        return accepted_;
    }

  private:
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::vector<int> held_;
    std::thread thread_;
};

// Blackhole listens on a free loopback port with a full accept queue and never accepts: the
// kernel drops every further SYN, so a connect there stays in flight until the connecting side
// gives up (a host that is down, or a firewall that drops), e.g. the gateway's
// connect_timeout_ms.
class Blackhole {
  public:
    Blackhole();
    ~Blackhole();
    Blackhole(const Blackhole &) = delete;
    Blackhole &operator=(const Blackhole &) = delete;
    bool ok() const { return ok_; }
    int port() const { return port_; }
    // Accept the filler, then report whether any other connection arrives within `ms`.
    bool AnotherConnectionArrives(int ms);

  private:
    int fd_ = -1, filler_ = -1, port_ = 0;
    bool ok_ = false;
};

// A raw client: plain TCP, then optionally TLS via BoringSSL with a client certificate.
class RawClient {
  public:
    ~RawClient();
    // Close the connection (what the destructor does), so a test can close before it stops.
    void Close();
    bool Connect(int port);
    bool SendPlain(const std::string &bytes);
    // Read up to `max` bytes, waiting up to `timeout_ms` for the first. "" on EOF/timeout.
    std::string RecvPlain(size_t max, int timeout_ms = 3000);
    bool IsClosedByPeer(int timeout_ms = 3000);
    // TLS handshake over the existing socket. `alpn` empty = offer none.
    bool StartTls(const std::string &cert, const std::string &key, const std::string &alpn,
                  std::string *err);
    // The same handshake in two halves: BeginTls sends the ClientHello and returns (the socket
    // stays non-blocking until FinishTls), FinishTls reads the server's flight and sends the
    // client's. Between them a test can act while the server holds the handshake.
    bool BeginTls(const std::string &cert, const std::string &key, const std::string &alpn,
                  std::string *err);
    bool FinishTls(std::string *err, int timeout_ms = 5000);
    // Whether bytes (or EOF) arrive within `timeout_ms`; nothing is read.
    bool WaitReadable(int timeout_ms);
    // Close with a RST instead of a FIN.
    void Reset();
    bool SendTls(const std::string &bytes);
    // Send close_notify (SSL_shutdown): no more from us; reading goes on (a TLS half-close).
    bool SendCloseNotify();
    // Shut the TCP write side too (after SendCloseNotify: the client's FIN).
    void ShutWrite();
    // Read one pgwire message (type + body) inside TLS. Returns false on EOF/error.
    bool RecvTlsMessage(char *type, std::string *body, int timeout_ms = 5000);
    // StartupMessage for `user`/`db`, then read until ReadyForQuery or ErrorResponse.
    // Returns "" on ReadyForQuery, else the ErrorResponse's SQLSTATE + " " + message.
    std::string Startup(const std::string &user, const std::string &db);
    // Simple query; returns the first column of the first DataRow, or "ERROR <state> <msg>".
    std::string Query(const std::string &sql);
    std::string PeerSubject();
    int fd() const { return fd_; }

  private:
    bool NewSsl(const std::string &cert, const std::string &key, const std::string &alpn,
                std::string *err);
    int fd_ = -1;
    SSL_CTX *ctx_ = nullptr;
    SSL *ssl_ = nullptr;
};

// OpenSession connects `c` to the proxy at `port` by direct TLS (ALPN postgresql) with the
// shared client certificate and completes startup as postgres. Returns "" or what failed.
std::string OpenSession(RawClient *c, int port);

// Build pgwire messages.
std::string StartupMessage(const std::string &user, const std::string &db,
                           uint32_t version = 196608);
std::string SslRequest();
// A simple-query message, to start a query without waiting for its answer.
std::string QueryMessage(const std::string &sql);
std::string GssEncRequest();
// Parse an ErrorResponse body into "SQLSTATE message".
std::string ParseError(const std::string &body);

// The shared PostgreSQL for one test binary, started once.
Postgres &SharedPostgres();
Certs &SharedCerts();

// ApiPortOf returns the [api] listen port of a config written by MtlsIni (0 when it has none).
int ApiPortOf(const std::string &ini);
// Metric returns one unlabelled counter or gauge from /metrics of the gateway whose API listens
// on `api_port`; -1 when the gateway does not answer or has no such metric.
long long Metric(int api_port, const std::string &name);
// WaitMetric polls Metric until it equals `want` or `timeout_s` passes; returns the last value.
long long WaitMetric(int api_port, const std::string &name, long long want, double timeout_s);

// A mutual-TLS proxy in front of the shared PostgreSQL, for suites that share one proxy.
struct ProxyEnv {
    TempDir dir;
    Proxy proxy;
    int port = 0;
    int api = 0; // its HTTP API port (/metrics)
};
// StartMtlsProxyEnv starts it (extra [proxy] lines in `extra_proxy`); nullptr on failure with
// the reason in `err`.
ProxyEnv *StartMtlsProxyEnv(std::string *err, const std::string &extra_proxy = "");

}  // namespace e2e

#include <gtest/gtest.h>

namespace e2e {

// Psql42: a stock psql through the gateway at `port` with the shared client certificate runs
// `select 6*7`. ExpectPsql42: it succeeds and prints 42.
CmdResult Psql42(int port);
void ExpectPsql42(int port);

// MtlsSuite: a GoogleTest fixture whose suite shares one mutual-TLS proxy (port_, proxy_) in
// front of the shared PostgreSQL (pg_) with the shared certificates (certs_).
class MtlsSuite : public ::testing::Test {
  protected:
    static void SetUpTestSuite();
    static void TearDownTestSuite();
    static Postgres *pg_;
    static Certs *certs_;
    static ProxyEnv *env_;
    static Proxy *proxy_;
    static int port_;
    static int api_;
};

// Passthrough config for `listen_port` in front of the backend at 127.0.0.1:`backend_port`, with
// `workers` workers and the HTTP API at `api_port` (0: none).
std::string PassthroughIni(int listen_port, int backend_port, int workers, int api_port = 0);

// Minimal terminate-mode mTLS config for `listen_port` in front of `backends`; `extra_proxy`
// lines go to [proxy] and replace the defaults for the keys they set (node_id, workers,
// conns_max, handshake_timeout_ms); `extra_backend` lines go to [backend] (health_check, say).
std::string MtlsIni(int listen_port, const std::string &backends, const Certs &c,
                    const std::string &extra_proxy = "", const std::string &extra_backend = "");

} // namespace e2e
