// harness.cc: implementation of the end-to-end harness (see harness.h).
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

namespace e2e {

static bool IsRoot() { return geteuid() == 0; }

CmdResult Sh(const std::string &cmd, int timeout_s) {
    CmdResult r;
    std::string full = "timeout -k 5 " + std::to_string(timeout_s) + " /bin/sh -c '" ;
    std::string escaped;
    for (char ch : cmd) {
        if (ch == '\'') {
            escaped += "'\\''";
        } else {
            escaped += ch;
        }
    }
    full += escaped + "' 2>&1";
    FILE *p = popen(full.c_str(), "r");
    if (p == nullptr) {
        return r;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
        r.out.append(buf, n);
    }
    int st = pclose(p);
    if (WIFEXITED(st)) {
        r.status = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        r.status = 128 + WTERMSIG(st);
    }
    return r;
}

// FreePort hands out a loopback port for a listener that a test starts later. A port the
// kernel picked (bind to port 0) can be taken before that listener binds it: every outgoing
// connection of the tests running alongside gets its local port from the same ephemeral range
// (a CI run failed so: "[api] listen 127.0.0.1:54247: cannot bind"). So the ports come from
// kPortLo..kPortHi-1, below the ephemeral range (32768-60999 by default) and below bench/run.sh's
// ports (27400 up); a port handed out stays locked (flock on kPortLockDir/<port>) until this
// process exits, so concurrent test processes never hand out the same one; and one that cannot
// be bound now is skipped.
namespace {
constexpr int kPortLo = 20000;
constexpr int kPortHi = 27400;
constexpr const char *kPortLockDir = "/tmp/atls-e2e-ports";

bool Bindable(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}
} // namespace

int FreePort() {
    static std::mutex mu;
    static int next = -1;
    std::lock_guard<std::mutex> lock(mu);
    if (next < 0) {
        (void)mkdir(kPortLockDir, 0777);
        (void)chmod(kPortLockDir, 01777); // any user's tests may lock ports here (if it is ours)
        next = kPortLo + static_cast<int>(std::random_device{}() % (kPortHi - kPortLo));
    }
    for (int tries = 0; tries < kPortHi - kPortLo; tries++) {
        int port = next;
        next = next + 1 == kPortHi ? kPortLo : next + 1;
        std::string path = std::string(kPortLockDir) + "/" + std::to_string(port);
        int lfd = open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
        if (lfd < 0) {
            continue;
        }
        if (flock(lfd, LOCK_EX | LOCK_NB) != 0 || !Bindable(port)) {
            close(lfd);
            continue;
        }
        return port; // lfd stays open: the lock lasts as long as this process
    }
    ADD_FAILURE() << "no free port in " << kPortLo << "-" << kPortHi - 1;
    return -1;
}

int ConnectTcp(int port, bool nonblocking) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int r = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a));
    if (r != 0 && !(nonblocking && errno == EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

int ListenLoopback(int backlog, int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), len) != 0 ||
        listen(fd, backlog) != 0 || getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

SilentBackend::SilentBackend() {
    fd_ = ListenLoopback(64, &port_);
    if (fd_ < 0) {
        return;
    }
    thread_ = std::thread([this] {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 100) > 0) {
                int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    held_.push_back(c); // read nothing, answer nothing
                    accepted_++;
                }
            }
        }
    });
}

SilentBackend::~SilentBackend() {
    stop_ = true;
    if (thread_.joinable()) {
        thread_.join();
    }
    for (int c : held_) {
        close(c);
    }
    if (fd_ >= 0) {
        close(fd_);
    }
}

Blackhole::Blackhole() {
    fd_ = ListenLoopback(0, &port_);
    // Backlog 0 queues one connection; this filler takes it.
    filler_ = fd_ >= 0 ? ConnectTcp(port_) : -1;
    ok_ = filler_ >= 0;
}

Blackhole::~Blackhole() {
    close(filler_);
    close(fd_);
}

bool Blackhole::AnotherConnectionArrives(int ms) {
    int f = accept(fd_, nullptr, nullptr);
    if (f >= 0) {
        close(f);
    }
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

size_t Count(const std::string &text, const std::string &needle) {
    size_t n = 0;
    for (size_t at = 0; (at = text.find(needle, at)) != std::string::npos; at++) {
        n++;
    }
    return n;
}

std::string ReadFile(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

long long CpuTicks(pid_t pid, pid_t tid) {
    std::string path = "/proc/" + std::to_string(pid);
    if (tid > 0) {
        path += "/task/" + std::to_string(tid);
    }
    std::string st = ReadFile(path + "/stat");
    size_t at = st.rfind(')'); // comm may hold spaces; the fields after it are fixed
    if (at == std::string::npos) {
        return -1;
    }
    std::istringstream in(st.substr(at + 2));
    std::string f;
    long long ticks = 0;
    for (int i = 3; i <= 15 && in >> f; i++) {
        if (i == 14 || i == 15) { // utime, stime (stat(5) field numbers; state is field 3)
            ticks += std::stoll(f);
        }
    }
    return ticks;
}

void WriteFile(const std::string &path, const std::string &data) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << data;
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/atls-e2e-XXXXXX";
    char *p = mkdtemp(tmpl);
    path_ = p ? p : "/tmp";
    chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
    if (path_.rfind("/tmp/atls-e2e-", 0) == 0 && getenv("ATLS_KEEP_TMP") == nullptr) {
        Sh("rm -rf '" + path_ + "'", 60);
    }
}

static std::string PgBin(const std::string &tool) {
    CmdResult r = Sh("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1");
    std::string dir = r.out.substr(0, r.out.find('\n'));
    return dir + "/" + tool;
}

static std::string AsPostgres(const std::string &cmd) {
    return IsRoot() ? "runuser -u postgres -- " + cmd : cmd;
}

Postgres::Postgres() {}

Postgres::~Postgres() { Stop(); }

bool Postgres::Start(std::string *err) {
    std::string data = dir_ / "data";
    mkdir(data.c_str(), 0700);
    if (IsRoot()) {
        Sh("chown -R postgres '" + dir_.path() + "'");
    }
    CmdResult r = Sh(AsPostgres(PgBin("initdb") + " -D '" + data +
                                 "' -A trust -U postgres --no-sync"),
                      120);
    if (r.status != 0) {
        *err = "initdb failed: " + r.out;
        return false;
    }
    WriteFile(data + "/postgresql.auto.conf",
              "listen_addresses = '127.0.0.1,127.0.0.2'\nunix_socket_directories = '" +
                  dir_.path() + "'\nfsync = off\nmax_connections = 200\n"
                  "log_connections = on\n");
    if (IsRoot()) {
        Sh("chown postgres '" + data + "/postgresql.auto.conf'");
    }
    for (int attempt = 0; attempt < 3 && !running_; attempt++) {
        port_ = FreePort();
        r = Sh(AsPostgres(PgBin("pg_ctl") + " -D '" + data + "' -o '-p " +
                           std::to_string(port_) + "' -l '" + data + "/log' -w -t 60 start"),
                90);
        running_ = (r.status == 0);
    }
    if (!running_) {
        *err = "pg_ctl start failed: " + r.out + ReadFile(data + "/log");
    }
    return running_;
}

std::string Postgres::LogText() const { return ReadFile(dir_ / "data/log"); }

void Postgres::Stop() {
    if (running_) {
        Sh(AsPostgres(PgBin("pg_ctl") + " -D '" + (dir_ / "data") + "' -m immediate -w stop"),
            60);
        running_ = false;
    }
}

CmdResult Postgres::Psql(const std::string &sql, int timeout_s) const {
    std::string f = dir_ / ("q" + std::to_string(rand()) + ".sql");
    WriteFile(f, sql);
    CmdResult r = Sh("psql -X -q -At -v ON_ERROR_STOP=1 'host=127.0.0.1 port=" +
                          std::to_string(port_) + " user=postgres dbname=postgres' -f '" + f +
                          "'",
                      timeout_s);
    unlink(f.c_str());
    return r;
}

Certs::Certs(const std::string &d) : dir(d) {
    ca = dir + "/ca.crt";
    server_crt = dir + "/server.crt";
    server_key = dir + "/server.key";
    client_crt = dir + "/client.crt";
    client_key = dir + "/client.key";
    other_crt = dir + "/other.crt";
    other_key = dir + "/other.key";
    std::string s =
        "cd '" + dir + "' && "
        "openssl req -x509 -newkey ed25519 -keyout ca.key -out ca.crt -days 2 -nodes "
        "-subj /CN=atls-test-ca && "
        "openssl req -x509 -newkey ed25519 -keyout otherca.key -out otherca.crt -days 2 -nodes "
        "-subj /CN=someone-else && "
        "openssl req -newkey ed25519 -keyout client.key -out client.csr -nodes -subj /CN=client "
        "&& openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out client.crt -days 2 && "
        "openssl req -newkey ed25519 -keyout other.key -out other.csr -nodes -subj /CN=intruder "
        "&& openssl x509 -req -in other.csr -CA otherca.crt -CAkey otherca.key -CAcreateserial "
        "-out other.crt -days 2 && chmod 600 *.key";
    CmdResult r = Sh(s);
    ok = r.status == 0 && IssueServer("atls-test-server", server_crt, server_key);
}

bool Certs::IssueServer(const std::string &cn, const std::string &crt, const std::string &key) {
    std::string s = "cd '" + dir + "' && openssl req -newkey ed25519 -keyout '" + key +
                    ".tmp' -out srv.csr -nodes -subj /CN=" + cn +
                    " && openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-out '" +
                    crt + ".tmp' -days 2 && chmod 600 '" + key + ".tmp' && mv '" + key +
                    ".tmp' '" + key + "' && mv '" + crt + ".tmp' '" + crt + "'";
    return Sh(s).status == 0;
}

std::string ProxyBinary() { return std::string(ATLS_BINARY_DIR) + "/core/atls-proxy"; }

Proxy::~Proxy() {
    if (pid_ > 0) {
        Stop(SIGKILL, 5);
    }
}

// In a forked child before exec: CAP_SYS_NICE out of the bounding, inheritable and ambient
// sets, so the program it execs (even as root) does not get it.
static bool DropSysNice() {
    if (prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0 ||
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
        return false;
    }
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capget, &hdr, data) != 0) {
        return false;
    }
    data[CAP_TO_INDEX(CAP_SYS_NICE)].inheritable &= ~CAP_TO_MASK(CAP_SYS_NICE);
    data[CAP_TO_INDEX(CAP_SYS_NICE)].effective &= ~CAP_TO_MASK(CAP_SYS_NICE);
    data[CAP_TO_INDEX(CAP_SYS_NICE)].permitted &= ~CAP_TO_MASK(CAP_SYS_NICE);
    return syscall(SYS_capset, &hdr, data) == 0;
}

bool Proxy::Start(const std::string &dir, const std::string &ini, std::string *err,
                  unsigned long nofile) {
    std::string cfg = dir + "/proxy.ini";
    // ATLS_E2E_HANDSHAKE_THREAD (auto | always | off) sets [proxy] handshake_thread in every
    // config that does not set it: CI runs the suites once with every handshake step on the
    // handshake thread.
    std::string text = ini;
    const char *hs_mode = getenv("ATLS_E2E_HANDSHAKE_THREAD");
    size_t proxy_at = text.find("[proxy]\n");
    if (hs_mode != nullptr && *hs_mode != '\0' && proxy_at != std::string::npos &&
        text.find("handshake_thread") == std::string::npos) {
        text.insert(proxy_at + 8, std::string("handshake_thread = ") + hs_mode + "\n");
    }
    WriteFile(cfg, text);
    log_ = dir + "/proxy.log";
    int pfd[2];
    if (pipe(pfd) != 0) {
        return false;
    }
    pid_ = fork();
    if (pid_ == 0) {
        dup2(pfd[1], 1);
        int lfd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(lfd, 2);
        close(pfd[0]);
        if (nofile > 0) {
            for (int fd = 3; fd < 1024; fd++) {
                close(fd); // descriptors of the test process would count against the limit
            }
            rlimit rl{nofile, nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (without_sys_nice && !DropSysNice()) {
            _exit(126);
        }
        execl(ProxyBinary().c_str(), "atls-proxy", "--config", cfg.c_str(), (char *)nullptr);
        _exit(127);
    }
    close(pfd[1]);
    std::string got;
    pollfd p{pfd[0], POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got.find("ready") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
        if (poll(&p, 1, 200) > 0) {
            char buf[256];
            ssize_t n = read(pfd[0], buf, sizeof(buf));
            if (n <= 0) {
                break;
            }
            got.append(buf, (size_t)n);
        }
    }
    close(pfd[0]);
    if (got.find("ready") == std::string::npos) {
        *err = "proxy did not become ready: " + ReadFile(log_);
        Stop(SIGKILL, 5);
        return false;
    }
    return true;
}

void Proxy::Signal(int sig) {
    if (pid_ > 0) {
        kill(pid_, sig);
    }
}

bool Proxy::Running() {
    if (pid_ <= 0) {
        return false;
    }
    int st;
    return waitpid(pid_, &st, WNOHANG) == 0;
}

int Proxy::Stop(int sig, int timeout_s) {
    if (pid_ <= 0) {
        return -1;
    }
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
        int st;
        pid_t w = waitpid(pid_, &st, WNOHANG);
        if (w == pid_) {
            pid_ = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    int st;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return -1;
}

std::string ConnStr(int port, const Certs &c, const std::string &extra) {
    return "host=127.0.0.1 port=" + std::to_string(port) + " sslmode=require sslcert=" +
           c.client_crt + " sslkey=" + c.client_key +
           " user=postgres dbname=postgres connect_timeout=10 " + extra;
}

CmdResult Psql42(int port) {
    return Sh("psql -X -At '" + ConnStr(port, SharedCerts()) + "' -c 'select 6*7'", 30);
}

void ExpectPsql42(int port) {
    CmdResult r = Psql42(port);
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, "42\n");
}

static void PutBe32(std::string *s, uint32_t v) {
    s->push_back((char)(v >> 24));
    s->push_back((char)(v >> 16));
    s->push_back((char)(v >> 8));
    s->push_back((char)v);
}

static uint32_t Be32(const char *p) {
    const auto *u = reinterpret_cast<const uint8_t *>(p);
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

std::string StartupMessage(const std::string &user, const std::string &db, uint32_t version) {
    std::string body;
    PutBe32(&body, version);
    body += "user";
    body.push_back('\0');
    body += user;
    body.push_back('\0');
    body += "database";
    body.push_back('\0');
    body += db;
    body.push_back('\0');
    body.push_back('\0');
    std::string msg;
    PutBe32(&msg, (uint32_t)body.size() + 4);
    return msg + body;
}

std::string QueryMessage(const std::string &sql) {
    std::string m = "Q";
    PutBe32(&m, (uint32_t)sql.size() + 5);
    return m + sql + std::string(1, '\0');
}

std::string SslRequest() {
    std::string m;
    PutBe32(&m, 8);
    PutBe32(&m, 80877103);
    return m;
}

std::string GssEncRequest() {
    std::string m;
    PutBe32(&m, 8);
    PutBe32(&m, 80877104);
    return m;
}

std::string ParseError(const std::string &body) {
    std::string code, msg;
    size_t i = 0;
    while (i < body.size() && body[i] != '\0') {
        char tag = body[i++];
        size_t end = body.find('\0', i);
        if (end == std::string::npos) {
            break;
        }
        std::string v = body.substr(i, end - i);
        if (tag == 'C') {
            code = v;
        } else if (tag == 'M') {
            msg = v;
        }
        i = end + 1;
    }
    return code + " " + msg;
}

RawClient::~RawClient() { Close(); }

void RawClient::Close() {
    if (ssl_ != nullptr) {
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    if (ctx_ != nullptr) {
        SSL_CTX_free(ctx_);
        ctx_ = nullptr;
    }
    if (fd_ >= 0) {
        close(fd_);
        fd_ = -1;
    }
}

bool RawClient::Connect(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0;
}

bool RawClient::SendPlain(const std::string &bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == (ssize_t)bytes.size();
}

std::string RawClient::RecvPlain(size_t max, int timeout_ms) {
    if (!WaitReadable(timeout_ms)) {
        return "";
    }
    std::string out(max, '\0');
    ssize_t n = recv(fd_, &out[0], max, 0);
    out.resize(n > 0 ? (size_t)n : 0);
    return out;
}

bool RawClient::IsClosedByPeer(int timeout_ms) {
    if (!WaitReadable(timeout_ms)) {
        return false;
    }
    char c;
    ssize_t n = recv(fd_, &c, 1, MSG_PEEK);
    return n <= 0;
}

bool RawClient::NewSsl(const std::string &cert, const std::string &key, const std::string &alpn,
                       std::string *err) {
    ctx_ = SSL_CTX_new(TLS_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    // BoringSSL clients do not accept Ed25519 server signatures unless asked to.
    static const uint16_t kPrefs[] = {SSL_SIGN_ED25519, SSL_SIGN_ECDSA_SECP256R1_SHA256,
                                      SSL_SIGN_RSA_PSS_RSAE_SHA256};
    SSL_CTX_set_verify_algorithm_prefs(ctx_, kPrefs, 3);
    if (!cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) != 1) {
            *err = "cannot load client cert";
            return false;
        }
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (!alpn.empty()) {
        std::string wire(1, (char)alpn.size());
        wire += alpn;
        SSL_set_alpn_protos(ssl_, reinterpret_cast<const uint8_t *>(wire.data()), wire.size());
    }
    return true;
}

static std::string TlsError() {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    return buf;
}

bool RawClient::StartTls(const std::string &cert, const std::string &key, const std::string &alpn,
                         std::string *err) {
    if (!NewSsl(cert, key, alpn, err)) {
        return false;
    }
    if (SSL_connect(ssl_) != 1) {
        *err = TlsError();
        return false;
    }
    return true;
}

bool RawClient::BeginTls(const std::string &cert, const std::string &key, const std::string &alpn,
                         std::string *err) {
    if (!NewSsl(cert, key, alpn, err)) {
        return false;
    }
    int flags = fcntl(fd_, F_GETFL);
    fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
    // Until FinishTls the SSL reads from an empty memory BIO, not the socket: a fast server's
    // flight stays in the socket, and the handshake stops after the ClientHello however quickly
    // the server answers.
    SSL_set0_rbio(ssl_, BIO_new(BIO_s_mem()));
    int r = SSL_connect(ssl_);
    if (r == 1 || SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
        *err = r == 1 ? "handshake done at the first flight" : TlsError();
        return false;
    }
    BIO *sock = SSL_get_wbio(ssl_);
    BIO_up_ref(sock);
    SSL_set0_rbio(ssl_, sock); // frees the memory BIO
    return true; // the ClientHello is sent; the client waits for the server's flight
}

bool RawClient::WaitReadable(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
}

bool RawClient::FinishTls(std::string *err, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        int r = SSL_connect(ssl_);
        if (r == 1) {
            int flags = fcntl(fd_, F_GETFL);
            fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
            return true;
        }
        if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
            *err = TlsError();
            return false;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !WaitReadable((int)left.count())) {
            *err = "timed out waiting for the server's flight";
            return false;
        }
    }
}

void RawClient::Reset() {
    if (fd_ >= 0) {
        linger l{1, 0}; // close sends a RST
        setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    Close();
}

bool RawClient::SendTls(const std::string &bytes) {
    return SSL_write(ssl_, bytes.data(), (int)bytes.size()) == (int)bytes.size();
}

bool RawClient::SendCloseNotify() {
    return SSL_shutdown(ssl_) >= 0;
}

void RawClient::ShutWrite() {
    (void)shutdown(fd_, SHUT_WR);
}

static bool ReadFull(SSL *ssl, char *out, size_t n) {
    size_t got = 0;
    while (got < n) {
        int r = SSL_read(ssl, out + got, (int)(n - got));
        if (r <= 0) {
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

bool RawClient::RecvTlsMessage(char *type, std::string *body, int timeout_ms) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char hdr[5];
    if (!ReadFull(ssl_, hdr, 5)) {
        return false;
    }
    *type = hdr[0];
    uint32_t len = Be32(hdr + 1);
    if (len < 4 || len > (64u << 20)) {
        return false;
    }
    body->assign(len - 4, '\0');
    return len == 4 || ReadFull(ssl_, &(*body)[0], len - 4);
}

std::string RawClient::Startup(const std::string &user, const std::string &db) {
    if (!SendTls(StartupMessage(user, db))) {
        return "send failed";
    }
    for (int i = 0; i < 100; i++) {
        char t;
        std::string body;
        if (!RecvTlsMessage(&t, &body)) {
            return "connection closed";
        }
        if (t == 'E') {
            return ParseError(body);
        }
        if (t == 'Z') {
            return "";
        }
    }
    return "no ReadyForQuery";
}

std::string RawClient::Query(const std::string &sql) {
    std::string m = "Q";
    PutBe32(&m, (uint32_t)sql.size() + 5);
    m += sql;
    m.push_back('\0');
    if (!SendTls(m)) {
        return "send failed";
    }
    std::string first;
    bool have = false;
    for (int i = 0; i < 1000; i++) {
        char t;
        std::string body;
        if (!RecvTlsMessage(&t, &body)) {
            return "connection closed";
        }
        if (t == 'E') {
            first = "ERROR " + ParseError(body);
            have = true;
        } else if (t == 'D' && !have && body.size() >= 6) {
            uint32_t len = Be32(body.data() + 2);
            first = body.substr(6, len);
            have = true;
        } else if (t == 'Z') {
            return first;
        }
    }
    return first;
}

std::string RawClient::PeerSubject() {
    X509 *x = SSL_get_peer_certificate(ssl_);
    if (x == nullptr) {
        return "";
    }
    char buf[256];
    X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
    X509_free(x);
    return buf;
}

std::string OpenSession(RawClient *c, int port) {
    if (!c->Connect(port)) {
        return "connect failed";
    }
    std::string err;
    if (!c->StartTls(SharedCerts().client_crt, SharedCerts().client_key, "postgresql", &err)) {
        return "TLS: " + err;
    }
    return c->Startup("postgres", "postgres");
}

static Postgres *g_pg = nullptr;
static Certs *g_certs = nullptr;
static TempDir *g_dir = nullptr;

Postgres &SharedPostgres() {
    if (g_pg == nullptr) {
        g_pg = new Postgres();
        std::string err;
        if (!g_pg->Start(&err)) {
            fprintf(stderr, "cannot start PostgreSQL: %s\n", err.c_str());
            abort();
        }
        atexit([] {
            delete g_pg;
            g_pg = nullptr;
        });
    }
    return *g_pg;
}

Certs &SharedCerts() {
    if (g_certs == nullptr) {
        g_dir = new TempDir();
        g_certs = new Certs(g_dir->path());
        if (!g_certs->ok) {
            fprintf(stderr, "cannot create test certificates\n");
            abort();
        }
    }
    return *g_certs;
}

int ApiPortOf(const std::string &ini) {
    const std::string key = "[api]\nlisten = 127.0.0.1:";
    size_t at = ini.find(key);
    return at == std::string::npos ? 0 : atoi(ini.c_str() + at + key.size());
}

long long Metric(int api_port, const std::string &name) {
    CmdResult r = Sh("curl -s --max-time 5 http://127.0.0.1:" + std::to_string(api_port) +
                     "/metrics");
    std::string line = "\n" + name + " ";
    size_t at = r.out.find(line);
    if (r.status != 0 || at == std::string::npos) {
        return -1;
    }
    return atoll(r.out.c_str() + at + line.size());
}

long long WaitMetric(int api_port, const std::string &name, long long want, double timeout_s) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds((long long)(timeout_s * 1000));
    long long v = Metric(api_port, name);
    while (v != want && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        v = Metric(api_port, name);
    }
    return v;
}

ProxyEnv *StartMtlsProxyEnv(std::string *err, const std::string &extra_proxy) {
    auto *env = new ProxyEnv();
    env->port = FreePort();
    std::string ini = MtlsIni(env->port, "127.0.0.1:" + std::to_string(SharedPostgres().port()),
                              SharedCerts(), extra_proxy);
    env->api = ApiPortOf(ini);
    if (!env->proxy.Start(env->dir.path(), ini, err)) {
        delete env;
        return nullptr;
    }
    return env;
}

Postgres *MtlsSuite::pg_;
Certs *MtlsSuite::certs_;
ProxyEnv *MtlsSuite::env_;
Proxy *MtlsSuite::proxy_;
int MtlsSuite::port_;
int MtlsSuite::api_;

void MtlsSuite::SetUpTestSuite() {
    pg_ = &SharedPostgres();
    certs_ = &SharedCerts();
    std::string err;
    env_ = StartMtlsProxyEnv(&err);
    ASSERT_NE(env_, nullptr) << err;
    port_ = env_->port;
    api_ = env_->api;
    proxy_ = &env_->proxy;
}

void MtlsSuite::TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
}

std::string PassthroughIni(int listen_port, int backend_port, int workers, int api_port) {
    return "[proxy]\nlisten = 127.0.0.1:" + std::to_string(listen_port) +
           "\nmode = passthrough\nworkers = " + std::to_string(workers) +
           "\n[backend]\nservers = 127.0.0.1:" + std::to_string(backend_port) + "\n" +
           (api_port > 0 ? "[api]\nlisten = 127.0.0.1:" + std::to_string(api_port) + "\n" : "");
}

std::string MtlsIni(int listen_port, const std::string &backends, const Certs &c,
                    const std::string &extra_proxy, const std::string &extra_backend) {
    // A key may be set once: `extra_proxy` replaces the defaults it names.
    std::string proxy;
    for (const char *line : {"node_id = e2e", "workers = 2", "conns_max = 256",
                             "handshake_timeout_ms = 3000"}) {
        std::string key = std::string(line).substr(0, std::string(line).find(' '));
        if (("\n" + extra_proxy).find("\n" + key + " ") == std::string::npos) {
            proxy += std::string(line) + "\n";
        }
    }
    return "[proxy]\n" + proxy + "listen = 127.0.0.1:" + std::to_string(listen_port) + "\n" +
           extra_proxy + "[tls]\ncert = " + c.server_crt + "\nkey = " + c.server_key +
           "\nclient_ca = " + c.ca +
           "\n[attestation]\nrequired = false\n[backend]\nservers = " + backends +
           "\nconnect_timeout_ms = 1000\nhealth_interval_ms = 500\n" + extra_backend +
           "[api]\nlisten = "
           "127.0.0.1:" +
           std::to_string(FreePort()) + "\n[audit]\ndir = audit\n";
}

} // namespace e2e
