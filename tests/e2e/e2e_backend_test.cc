// End-to-end: backend failures give the client 08006, several backends balance by least
// connections, a dead one is skipped until it answers again, and a backend killed mid-session
// ends only that session with an error.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "harness.h"

using namespace e2e;
using Clock = std::chrono::steady_clock;

namespace {

double SecondsSince(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

const std::string kTerminate("X\0\0\0\4", 5);

// SlammingBackend listens on a free loopback port and closes every connection it accepts at
// once, without a byte (a port something else owns, a node that shuts its sessions on arrival),
// or, given `reply`, after reading the StartupMessage and sending `reply` (an ErrorResponse);
// with `split` > 0, its first `split` bytes, then the rest 100 ms later.
class SlammingBackend {
  public:
    explicit SlammingBackend(std::string reply = "", size_t split = 0)
        : reply_(std::move(reply)), split_(split) {
        lfd_ = ListenLoopback(64, &port_);
        ok_ = lfd_ >= 0;
        if (ok_) {
            thread_ = std::thread([this] {
                while (!stop_) {
                    pollfd p{lfd_, POLLIN, 0};
                    if (poll(&p, 1, 100) > 0) {
                        int c = accept(lfd_, nullptr, nullptr);
                        if (c >= 0) {
                            accepted_++;
                            if (!reply_.empty()) {
                                pollfd q{c, POLLIN, 0};
                                char buf[512];
                                if (poll(&q, 1, 2000) > 0 && recv(c, buf, sizeof(buf), 0) > 0) {
                                    size_t at = 0;
                                    if (split_ > 0 && split_ < reply_.size()) {
                                        (void)send(c, reply_.data(), split_, MSG_NOSIGNAL);
                                        std::this_thread::sleep_for(std::chrono::milliseconds(100));
                                        at = split_;
                                    }
                                    (void)send(c, reply_.data() + at, reply_.size() - at,
                                               MSG_NOSIGNAL);
                                }
                            }
                            close(c);
                        }
                    }
                }
            });
        }
    }
    ~SlammingBackend() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        close(lfd_);
    }
    bool ok() const { return ok_; }
    int port() const { return port_; }
    int accepted() const { return accepted_; }

  private:
    std::string reply_;
    size_t split_ = 0;
    int lfd_ = -1, port_ = 0;
    bool ok_ = false;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread thread_;
};

// ErrorResponse with FATAL severity, SQLSTATE `code` and message `msg`.
std::string ErrorResponse(const std::string &code, const std::string &msg) {
    std::string body = std::string("SFATAL") + '\0' + "VFATAL" + '\0' + "C" + code + '\0' + "M" +
                       msg + '\0' + '\0';
    uint32_t len = static_cast<uint32_t>(body.size() + 4);
    std::string m = "E";
    for (int s = 24; s >= 0; s -= 8) {
        m += static_cast<char>((len >> s) & 0xff);
    }
    return m + body;
}

// CountingRelay listens on 127.0.0.1:`port`, counts the connections it accepts and relays each
// to `target_host`:`target`: a backend whose connection attempts the test can count.
class CountingRelay {
  public:
    CountingRelay(int port, int target, const char *target_host = "127.0.0.1")
        : target_(target), target_host_(target_host) {
        lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        ok_ = bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0 &&
              listen(lfd_, 64) == 0;
        if (ok_) {
            accept_thread_ = std::thread([this] { AcceptLoop(); });
        }
    }
    ~CountingRelay() {
        stop_ = true;
        if (accept_thread_.joinable()) {
            accept_thread_.join();
        }
        std::lock_guard<std::mutex> lock(mu_);
        for (std::thread &t : pipes_) {
            t.join();
        }
        close(lfd_);
    }
    bool ok() const { return ok_; }
    int accepted() const { return accepted_; }

  private:
    void AcceptLoop() {
        while (!stop_) {
            pollfd p{lfd_, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0) {
                continue;
            }
            int c = accept(lfd_, nullptr, nullptr);
            if (c < 0) {
                continue;
            }
            accepted_++;
            int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            inet_pton(AF_INET, target_host_, &a.sin_addr);
            a.sin_port = htons((uint16_t)target_);
            if (connect(b, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0) {
                close(b);
                close(c);
                continue;
            }
            std::lock_guard<std::mutex> lock(mu_);
            pipes_.emplace_back([this, c, b] { Pipe(c, b); });
        }
    }
    void Pipe(int x, int y) {
        char buf[16384];
        bool open = true;
        while (open && !stop_) {
            pollfd p[2] = {{x, POLLIN, 0}, {y, POLLIN, 0}};
            if (poll(p, 2, 100) <= 0) {
                continue;
            }
            for (int i = 0; i < 2 && open; i++) {
                if (p[i].revents == 0) {
                    continue;
                }
                ssize_t n = read(p[i].fd, buf, sizeof(buf));
                open = n > 0 && send(p[i ^ 1].fd, buf, (size_t)n, MSG_NOSIGNAL) == n;
            }
        }
        close(x);
        close(y);
    }
    int lfd_ = -1;
    int target_;
    const char *target_host_;
    bool ok_ = false;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread accept_thread_;
    std::mutex mu_;
    std::vector<std::thread> pipes_;
};

} // namespace

class BackendTest : public ::testing::Test {
  protected:
    // StartProxy starts a gateway in front of `backends`; `health_ms` > 0 replaces MtlsIni's
    // health_interval_ms. `health` are [backend] lines for the active health checks: by
    // default none run, so that only sessions judge the backends (the passive tests count
    // every connection a backend receives).
    // `connect_ms` > 0 replaces MtlsIni's connect_timeout_ms (1 s).
    void StartProxy(const std::string &backends, int health_ms = 0,
                    const std::string &health = "health_check = off\n", int connect_ms = 0) {
        dir_ = std::make_unique<TempDir>();
        port_ = FreePort();
        std::string ini = MtlsIni(port_, backends, SharedCerts(), "", health);
        auto replace = [&](const std::string &key, int value) {
            std::string line = key + " = ";
            size_t at = ini.find(line);
            ASSERT_NE(at, std::string::npos);
            size_t end = ini.find('\n', at);
            ini.replace(at, end - at, line + std::to_string(value));
        };
        if (health_ms > 0) {
            replace("health_interval_ms", health_ms);
        }
        if (connect_ms > 0) {
            replace("connect_timeout_ms", connect_ms);
        }
        api_ = ApiPortOf(ini);
        std::string err;
        ASSERT_TRUE(proxy_.Start(dir_->path(), ini, &err)) << err;
    }
    // StartProxyBeforePostgres starts a gateway whose first backend is 127.0.0.1:`first_port`
    // and whose second is the shared PostgreSQL.
    void StartProxyBeforePostgres(int first_port, int health_ms,
                                  const std::string &health = "health_check = off\n") {
        StartProxy("127.0.0.1:" + std::to_string(first_port) +
                       ", 127.0.0.1:" + std::to_string(SharedPostgres().port()),
                   health_ms, health);
    }
    std::unique_ptr<TempDir> dir_;
    Proxy proxy_;
    int port_ = 0;
    int api_ = 0;
};

TEST_F(BackendTest, BackendDownGives08006NotAHang) {
    int dead = FreePort(); // nothing listens there
    StartProxy("127.0.0.1:" + std::to_string(dead));
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    ASSERT_TRUE(c.SendPlain(SslRequest()));
    ASSERT_EQ(c.RecvPlain(1), "S");
    std::string err;
    ASSERT_TRUE(c.StartTls(SharedCerts().client_crt, SharedCerts().client_key, "", &err));
    std::string e = c.Startup("postgres", "postgres");
    EXPECT_EQ(e.substr(0, 5), "08006") << e;
    EXPECT_NE(e.find("could not connect to the database"), std::string::npos) << e;
    CmdResult r = Sh("psql -X '" + ConnStr(port_, SharedCerts()) + "' -c 'select 1'", 20);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("could not connect to the database"), std::string::npos) << r.out;
    // The audit trail says why each admitted session ended: its disconnect record carries the
    // reason the client was given, not a generic one.
    const std::string want = "\"close_reason\":\"could not connect to the database: backend "
                             "127.0.0.1:" + std::to_string(dead);
    std::string list;
    for (int i = 0; i < 50 && Count(list, want) < 2; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        list = Sh("curl -s 'http://127.0.0.1:" + std::to_string(api_) +
                  "/api/v1/attestations?format=json'")
                   .out;
    }
    EXPECT_EQ(Count(list, want), 2u) << list;
}

// The handshake deadline (handshake_timeout_ms from accept) still runs while the backend is
// being connected; when it passes first (here a backend dropping SYNs, with a connect timeout
// longer than the deadline), the client is told why, never closed silently.
TEST_F(BackendTest, HandshakeDeadlineWhileConnectingGives08006) {
    Blackhole hole;
    ASSERT_TRUE(hole.ok());
    dir_ = std::make_unique<TempDir>();
    port_ = FreePort();
    std::string ini = MtlsIni(port_, "127.0.0.1:" + std::to_string(hole.port()), SharedCerts());
    const std::string key = "connect_timeout_ms = 1000\n";
    size_t at = ini.find(key);
    ASSERT_NE(at, std::string::npos);
    ini.replace(at, key.size(), "connect_timeout_ms = 20000\n");
    api_ = ApiPortOf(ini);
    std::string err;
    ASSERT_TRUE(proxy_.Start(dir_->path(), ini, &err)) << err;
    auto t0 = std::chrono::steady_clock::now();
    RawClient c;
    std::string e = OpenSession(&c, port_);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(e.substr(0, 5), "08006") << e;
    EXPECT_NE(e.find("could not connect to the database"), std::string::npos) << e;
    EXPECT_LT(took, 3.0 + 1.5) << "not cut at the handshake deadline (3 s)";
    EXPECT_EQ(WaitMetric(api_, "atls_connections_active", 0, 5), 0); // the connect was cancelled
}

// A backend that accepts connections and closes them without a byte (a node shutting down, a
// port something else owns) fails sessions as they start, not on connect. Such a session, of
// which the client has seen nothing yet, is started again on the other backend, and the node
// is skipped for health_interval_ms like a backend whose connect failed: least connections
// alone would send it every new session (its count drops back to 0 at once).
TEST_F(BackendTest, BackendClosingNewSessionsWithoutAByteIsSkippedAndTheSessionRetried) {
    SlammingBackend slam;
    ASSERT_TRUE(slam.ok());
    const int health_ms = 2000;
    StartProxyBeforePostgres(slam.port(), health_ms);
    auto t0 = Clock::now();
    for (int i = 0; i < 10; i++) {
        RawClient c;
        std::string e = OpenSession(&c, port_);
        EXPECT_EQ(e, "") << "session " << i;
        if (e.empty()) {
            EXPECT_EQ(c.Query("select 1"), "1");
            c.SendTls(kTerminate);
        }
    }
    double secs = SecondsSince(t0);
    // The first session meets it; then at most one per interval.
    EXPECT_GE(slam.accepted(), 1);
    EXPECT_LE(slam.accepted(), (int)(secs * 1000 / health_ms) + 1)
        << slam.accepted() << " of 10 in " << secs << " s";
    EXPECT_GE(Metric(api_, "atls_backend_errors_total"), 1);
    EXPECT_EQ(Metric(api_, "atls_backend_session_retries_total"), slam.accepted());
}

// SessionsThrough opens `n` sessions one after another through the gateway at `port`, expecting
// each either to start or to fail with exactly `want_error`; returns how many failed.
static int SessionsThrough(int port, int n, const std::string &want_error) {
    int failed = 0;
    for (int i = 0; i < n; i++) {
        RawClient c;
        std::string e = OpenSession(&c, port);
        if (!e.empty()) {
            EXPECT_EQ(e, want_error);
            failed++;
        } else {
            c.SendTls(kTerminate);
        }
    }
    return failed;
}

// A node that refuses new sessions with 57P01 (CockroachDB draining: "server is not accepting
// clients"; PostgreSQL shutting down) is skipped for health_interval_ms like a dead one, and
// the session it refused is started on the other backend: the client never sees the refusal.
TEST_F(BackendTest, BackendRefusingNewSessionsWith57P01IsSkippedAndTheSessionRetried) {
    SlammingBackend refusing(ErrorResponse("57P01", "the server is not accepting clients"));
    ASSERT_TRUE(refusing.ok());
    const int health_ms = 2000;
    StartProxyBeforePostgres(refusing.port(), health_ms);
    auto t0 = Clock::now();
    EXPECT_EQ(SessionsThrough(port_, 10, ""), 0);
    double secs = SecondsSince(t0);
    EXPECT_GE(refusing.accepted(), 1);
    EXPECT_LE(refusing.accepted(), (int)(secs * 1000 / health_ms) + 1)
        << refusing.accepted() << " of 10 in " << secs << " s";
    EXPECT_EQ(Metric(api_, "atls_backend_session_retries_total"), refusing.accepted());
}

// A refusal whose SQLSTATE arrives in a later segment than its first bytes is held until it is
// read whole, and retried all the same.
TEST_F(BackendTest, RefusalArrivingInPiecesIsRetried) {
    for (size_t split : {1u, 5u, 12u}) {
        SlammingBackend refusing(ErrorResponse("57P01", "the server is not accepting clients"),
                                 split);
        ASSERT_TRUE(refusing.ok());
        StartProxyBeforePostgres(refusing.port(), 60000);
        EXPECT_EQ(SessionsThrough(port_, 2, ""), 0) << "split at " << split;
        EXPECT_EQ(refusing.accepted(), 1) << "split at " << split;
        EXPECT_EQ(Metric(api_, "atls_backend_session_retries_total"), 1) << "split at " << split;
        proxy_.Stop();
    }
}

// With no other backend to try, the refusal reaches the client as the node sent it. With two
// nodes refusing, each is tried once and the client gets the last one's error.
TEST_F(BackendTest, RefusalReachesTheClientWhenNoOtherBackendCanTakeTheSession) {
    const std::string want = "57P03 the database system is starting up";
    SlammingBackend a(ErrorResponse("57P03", "the database system is starting up"));
    SlammingBackend b(ErrorResponse("57P03", "the database system is starting up"));
    ASSERT_TRUE(a.ok() && b.ok());
    StartProxy("127.0.0.1:" + std::to_string(a.port()));
    EXPECT_EQ(SessionsThrough(port_, 1, want), 1);
    EXPECT_EQ(a.accepted(), 1);
    proxy_.Stop();
    StartProxy("127.0.0.1:" + std::to_string(a.port()) + ", 127.0.0.1:" + std::to_string(b.port()),
               60000);
    EXPECT_EQ(SessionsThrough(port_, 1, want), 1);
    EXPECT_EQ(a.accepted(), 2);
    EXPECT_EQ(b.accepted(), 1);
    EXPECT_EQ(Metric(api_, "atls_backend_session_retries_total"), 1);
    EXPECT_EQ(Metric(api_, "atls_backend_errors_total"), 2);
}

// Once the client has been sent anything of the session (here AuthenticationOk), a refusal is
// the session's own end: it is forwarded, never replayed on another backend.
TEST_F(BackendTest, RefusalAfterTheClientSawTheSessionIsNotRetried) {
    const std::string auth_ok("R\0\0\0\x08\0\0\0\0", 9);
    SlammingBackend refusing(auth_ok + ErrorResponse("57P01", "terminating connection"));
    ASSERT_TRUE(refusing.ok());
    StartProxyBeforePostgres(refusing.port(), 60000);
    EXPECT_EQ(SessionsThrough(port_, 1, "57P01 terminating connection"), 1);
    EXPECT_EQ(Metric(api_, "atls_backend_session_retries_total"), 0);
    // Still judged by its SQLSTATE: the node is skipped from then on.
    EXPECT_EQ(SessionsThrough(port_, 3, ""), 0);
    EXPECT_EQ(refusing.accepted(), 1);
}

// A node answering another error (28P01, a wrong password) is not blamed: it stays in the
// rotation, and least connections keeps sending new sessions to it.
TEST_F(BackendTest, BackendAnsweringAnAuthenticationErrorIsNotSkipped) {
    SlammingBackend refusing(ErrorResponse("28P01", "password authentication failed"));
    ASSERT_TRUE(refusing.ok());
    StartProxyBeforePostgres(refusing.port(), 2000);
    EXPECT_EQ(SessionsThrough(port_, 5, "28P01 password authentication failed"), 5);
    EXPECT_EQ(refusing.accepted(), 5);
}

TEST_F(BackendTest, DeadBackendIsSkippedUntilItAnswersAgain) {
    Postgres &pg = SharedPostgres();
    const int health_ms = 1000;
    int dead = FreePort(); // nothing listens there yet
    StartProxyBeforePostgres(dead, health_ms);
    // Sessions one after another for three health intervals. The dead backend is first in the
    // list and has no connections, so least connections alone would pick it for every one;
    // each attempt is a counted backend error.
    auto t0 = Clock::now();
    int sessions = 0;
    while (SecondsSince(t0) < 3.0 * health_ms / 1000) {
        RawClient c;
        ASSERT_EQ(OpenSession(&c, port_), "") << "session " << sessions;
        ASSERT_EQ(c.Query("select 1"), "1");
        c.SendTls(kTerminate);
        sessions++;
    }
    double secs = SecondsSince(t0);
    long long attempts = Metric(api_, "atls_backend_errors_total");
    EXPECT_GE(attempts, 1);
    // At most one attempt per interval (plus the first), never one per session.
    EXPECT_LE(attempts, (long long)(secs * 1000 / health_ms) + 2)
        << sessions << " sessions in " << secs << " s";
    EXPECT_GE(sessions, 10); // enough sessions that the bound above means something

    // It answers again: within about one interval, new sessions reach it.
    CountingRelay relay(dead, pg.port());
    ASSERT_TRUE(relay.ok());
    long long attempts_before = Metric(api_, "atls_backend_errors_total");
    auto t1 = Clock::now();
    std::string via_relay;
    while (relay.accepted() == 0 && SecondsSince(t1) < health_ms / 1000.0 + 3) {
        RawClient c;
        ASSERT_EQ(OpenSession(&c, port_), "");
        if (relay.accepted() > 0) {
            via_relay = c.Query("select 'via the revived backend'");
        }
        c.SendTls(kTerminate);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_GT(relay.accepted(), 0) << "no session reached the backend that came back";
    EXPECT_EQ(via_relay, "via the revived backend");
    EXPECT_LT(SecondsSince(t1), health_ms / 1000.0 + 1.5);
    // Back in the rotation: held sessions spread over both backends, none fails.
    std::vector<std::unique_ptr<RawClient>> held;
    int relayed_before = relay.accepted();
    for (int i = 0; i < 4; i++) {
        held.push_back(std::make_unique<RawClient>());
        ASSERT_EQ(OpenSession(held.back().get(), port_), "");
    }
    EXPECT_GE(relay.accepted() - relayed_before, 1);
    EXPECT_EQ(Metric(api_, "atls_backend_errors_total"), attempts_before);
}

TEST_F(BackendTest, DeadBackendIsProbedByOneSessionAtATime) {
    // A backend whose connects hang (dropped SYNs) costs the session that probes it
    // connect_timeout_ms (1 s in MtlsIni). While one probes, the other sessions must skip it,
    // even though it has the fewest connections.
    Blackhole hole;
    ASSERT_TRUE(hole.ok());
    const int health_ms = 1500;
    StartProxyBeforePostgres(hole.port(), health_ms);
    {
        RawClient first; // marks it down: waits out the connect timeout, then fails over
        ASSERT_EQ(OpenSession(&first, port_), "");
    }
    ASSERT_EQ(Metric(api_, "atls_backend_errors_total"), 1);
    std::atomic<int> sessions{0}, slow{0}, failed{0};
    auto t0 = Clock::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; i++) {
        clients.emplace_back([&] {
            while (SecondsSince(t0) < 6.0) {
                auto s0 = Clock::now();
                RawClient c;
                if (OpenSession(&c, port_) != "") {
                    failed++;
                    continue;
                }
                c.SendTls(kTerminate);
                sessions++;
                if (SecondsSince(s0) > 0.8) {
                    slow++; // this one probed the dead backend
                }
            }
        });
    }
    for (std::thread &t : clients) {
        t.join();
    }
    double secs = SecondsSince(t0);
    long long probes = Metric(api_, "atls_backend_errors_total") - 1;
    EXPECT_EQ(failed, 0);
    // One probe per interval (a probe takes 1 s, then the backend is skipped for 1.5 s): about
    // 2 in 6 s. Without the claim every client would probe it each time it is due (about 8).
    EXPECT_LE(probes, (long long)(secs * 1000 / health_ms) + 1)
        << sessions << " sessions, " << slow << " slow, in " << secs << " s";
    EXPECT_LE(slow, probes + 1);
    EXPECT_GE(sessions, 20);
}

TEST_F(BackendTest, LeastConnectionsSpreadsSessions) {
    Postgres &pg = SharedPostgres();
    // The same server reached through two loopback addresses counts as two backends; the
    // session's inet_server_addr() tells which one it went through.
    StartProxy("127.0.0.1:" + std::to_string(pg.port()) + ", 127.0.0.2:" +
               std::to_string(pg.port()));
    std::vector<std::unique_ptr<RawClient>> on_first, on_second;
    for (int i = 0; i < 4; i++) {
        auto c = std::make_unique<RawClient>();
        ASSERT_EQ(OpenSession(c.get(), port_), "");
        std::string addr = c->Query("select host(inet_server_addr())");
        ASSERT_TRUE(addr == "127.0.0.1" || addr == "127.0.0.2") << addr;
        (addr == "127.0.0.1" ? on_first : on_second).push_back(std::move(c));
    }
    ASSERT_EQ(on_first.size(), 2u);
    ASSERT_EQ(on_second.size(), 2u);
    // Empty the first backend. Round robin would now send one new session to each backend;
    // least connections sends both to the first (0 connections against 2).
    for (auto &c : on_first) {
        c->SendTls(kTerminate);
    }
    on_first.clear();
    ASSERT_EQ(WaitMetric(api_, "atls_connections_active", 2, 10), 2);
    for (int i = 0; i < 2; i++) {
        auto c = std::make_unique<RawClient>();
        ASSERT_EQ(OpenSession(c.get(), port_), "");
        EXPECT_EQ(c->Query("select host(inet_server_addr())"), "127.0.0.1") << "new session " << i;
        on_first.push_back(std::move(c));
    }
}

TEST_F(BackendTest, BackendKilledMidSessionEndsOnlyThatSession) {
    // Two PostgreSQL servers: SIGKILL of a backend process makes its postmaster end every
    // session of that server (crash recovery), so the survivor must live on the other one.
    Postgres &pg = SharedPostgres();
    Postgres other;
    std::string err;
    ASSERT_TRUE(other.Start(&err)) << err;
    StartProxy("127.0.0.1:" + std::to_string(pg.port()) + ", 127.0.0.1:" +
               std::to_string(other.port()));
    auto a = std::make_unique<RawClient>();
    auto b = std::make_unique<RawClient>();
    ASSERT_EQ(OpenSession(a.get(), port_), "");
    ASSERT_EQ(OpenSession(b.get(), port_), "");
    // Least connections put one session on each server.
    std::string port_a = a->Query("select inet_server_port()");
    std::string port_b = b->Query("select inet_server_port()");
    ASSERT_NE(port_a, port_b);
    RawClient &victim = port_a == std::to_string(other.port()) ? *a : *b;
    RawClient &survivor = &victim == a.get() ? *b : *a;
    std::string pid = victim.Query("select pg_backend_pid()");
    ASSERT_GT(atoi(pid.c_str()), 0) << pid;
    ASSERT_TRUE(victim.SendTls(QueryMessage("select pg_sleep(30)")));
    std::string running;
    for (int i = 0; i < 50 && running != "1\n"; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        running = other.Psql("select count(*) from pg_stat_activity where pid = " + pid +
                             " and query like '%pg_sleep%' and state = 'active'")
                      .out;
    }
    ASSERT_EQ(running, "1\n");
    ASSERT_EQ(kill(atoi(pid.c_str()), SIGKILL), 0);

    // The victim gets an ErrorResponse (08006: its backend is gone), then the close.
    auto t0 = Clock::now();
    char t = 0;
    std::string body;
    ASSERT_TRUE(victim.RecvTlsMessage(&t, &body, 5000)) << "closed without an error";
    EXPECT_EQ(t, 'E');
    EXPECT_EQ(ParseError(body).substr(0, 6), "08006 ") << ParseError(body);
    EXPECT_NE(ParseError(body).find("closed the session unexpectedly"), std::string::npos)
        << ParseError(body);
    EXPECT_FALSE(victim.RecvTlsMessage(&t, &body, 5000)) << "still open: " << t;
    EXPECT_LT(SecondsSince(t0), 3.0);
    // The other session goes on, and the victim's slot is free.
    EXPECT_EQ(survivor.Query("select 'alive'"), "alive");
    EXPECT_EQ(WaitMetric(api_, "atls_connections_active", 1, 10), 1);
    survivor.SendTls(kTerminate);
    EXPECT_EQ(WaitMetric(api_, "atls_connections_active", 0, 10), 0);
    EXPECT_TRUE(proxy_.Running());
    // New sessions are served (the killed server may still be recovering: retry).
    std::string got;
    for (auto deadline = Clock::now() + std::chrono::seconds(15);
         got != "2\n" && Clock::now() < deadline;) {
        got = Sh("psql -X -At '" + ConnStr(port_, SharedCerts()) + "' -c 'select 2'").out;
        if (got != "2\n") {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
    EXPECT_EQ(got, "2\n");
}

// pgwire message `type` with body `body`.
static std::string PgMessage(char type, const std::string &body) {
    uint32_t len = static_cast<uint32_t>(body.size() + 4);
    std::string m(1, type);
    for (int s = 24; s >= 0; s -= 8) {
        m += static_cast<char>((len >> s) & 0xff);
    }
    return m + body;
}

// A client that sends its query and then close_notify (and its FIN) has only stopped sending: it
// still gets the whole answer, then the gateway's close_notify, with no error added; the
// backend's session ends (it reads the half-close) and the slot is freed. Before, the gateway
// closed at the client's close_notify and the answer was lost.
TEST_F(BackendTest, ClientHalfCloseStillGetsTheWholeAnswer) {
    Postgres &pg = SharedPostgres();
    StartProxy("127.0.0.1:" + std::to_string(pg.port()));
    RawClient c;
    ASSERT_EQ(OpenSession(&c, port_), "");
    ASSERT_EQ(c.Query("set application_name = 'half-close'"), "");
    // ~4 MB of rows: more than one buffer's worth must still reach the client.
    std::string q = "select g, repeat('x', 2000) from generate_series(1, 2000) g";
    ASSERT_TRUE(c.SendTls(PgMessage('Q', q + '\0')));
    ASSERT_TRUE(c.SendCloseNotify());
    c.ShutWrite();
    int rows = 0;
    char t = 0;
    std::string body;
    std::string error;
    bool ready = false;
    while (!ready && c.RecvTlsMessage(&t, &body, 10000)) {
        if (t == 'D') {
            rows++;
        } else if (t == 'E') {
            error = ParseError(body);
        } else if (t == 'Z') {
            ready = true;
        }
    }
    EXPECT_TRUE(ready) << rows << " rows before the end";
    EXPECT_EQ(rows, 2000);
    EXPECT_EQ(error, "");
    // Then the end: the gateway's close_notify (no ErrorResponse before it).
    EXPECT_FALSE(c.RecvTlsMessage(&t, &body, 5000)) << "a message after the answer: " << t;
    EXPECT_EQ(WaitMetric(api_, "atls_connections_active", 0, 10), 0);
    std::string left;
    for (int i = 0; i < 50; i++) {
        left = pg.Psql("select count(*) from pg_stat_activity where application_name = "
                       "'half-close'")
                   .out;
        if (left == "0\n") {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(left, "0\n") << "the backend session outlived the client";
}

// After its half-close the client is still watched: a reset ends the session at once, even
// while the backend is busy and would not close for a long time. Before, nothing watched it,
// and with no idle timeout the session, its slot and its backend connection stayed for good.
TEST_F(BackendTest, ClientResetAfterItsHalfCloseEndsTheSession) {
    Postgres &pg = SharedPostgres();
    StartProxy("127.0.0.1:" + std::to_string(pg.port()));
    for (bool fin : {true, false}) { // close_notify then FIN then RST, and without the FIN
        RawClient c;
        ASSERT_EQ(OpenSession(&c, port_), "");
        ASSERT_TRUE(c.SendTls(PgMessage('Q', std::string("select pg_sleep(20)") + '\0')));
        ASSERT_TRUE(c.SendCloseNotify());
        if (fin) {
            c.ShutWrite();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        ASSERT_EQ(Metric(api_, "atls_connections_active"), 1) << "fin " << fin;
        c.Reset();
        EXPECT_EQ(WaitMetric(api_, "atls_connections_active", 0, 5), 0)
            << "the half-closed session outlived its client (fin " << fin << ")";
    }
}

// ScriptedBackend serves one session on a free loopback port: it reads the StartupMessage and
// answers AuthenticationOk and ReadyForQuery, reads one message (a Query), sends `answer`, then
// closes (FIN).
class ScriptedBackend {
  public:
    explicit ScriptedBackend(std::string answer) : answer_(std::move(answer)) {
        lfd_ = ListenLoopback(4, &port_);
        ok_ = lfd_ >= 0;
        if (ok_) {
            thread_ = std::thread([this] { Serve(); });
        }
    }
    ~ScriptedBackend() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        close(lfd_);
    }
    bool ok() const {
        return ok_;
    }
    int port() const {
        return port_;
    }

  private:
    // ReadSome waits up to 5 s for bytes on `fd`; false on EOF, error or timeout.
    bool ReadSome(int fd) {
        pollfd p{fd, POLLIN, 0};
        char buf[4096];
        return !stop_ && poll(&p, 1, 5000) > 0 && recv(fd, buf, sizeof(buf), 0) > 0;
    }
    void Serve() {
        pollfd p{lfd_, POLLIN, 0};
        while (!stop_ && poll(&p, 1, 100) <= 0) {
        }
        int c = stop_ ? -1 : accept(lfd_, nullptr, nullptr);
        if (c < 0) {
            return;
        }
        std::string hello = PgMessage('R', std::string(4, '\0')) + PgMessage('Z', "I");
        if (ReadSome(c) && send(c, hello.data(), hello.size(), MSG_NOSIGNAL) > 0 && ReadSome(c)) {
            (void)send(c, answer_.data(), answer_.size(), MSG_NOSIGNAL);
        }
        close(c);
    }
    std::string answer_;
    int lfd_ = -1, port_ = 0;
    bool ok_ = false;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// A backend that goes away mid-answer after the client's half-close is still a backend lost:
// the client gets what it sent, then 08006, not a clean end. Only a backend closing when idle
// (after ReadyForQuery) ends a half-closed session cleanly.
TEST_F(BackendTest, BackendLostAfterTheClientsHalfCloseStillGives08006) {
    std::string row_desc =
        PgMessage('T', std::string("\0\1", 2) + "x" + '\0' + std::string(18, '\0'));
    std::string row = PgMessage('D', std::string("\0\1\0\0\0\1", 6) + "1");
    ScriptedBackend be(row_desc + row); // no CommandComplete, no ReadyForQuery: then the close
    ASSERT_TRUE(be.ok());
    StartProxy("127.0.0.1:" + std::to_string(be.port()));
    RawClient c;
    ASSERT_EQ(OpenSession(&c, port_), "");
    ASSERT_TRUE(c.SendTls(PgMessage('Q', std::string("select 1") + '\0')));
    ASSERT_TRUE(c.SendCloseNotify());
    c.ShutWrite();
    std::string types;
    std::string error;
    char t = 0;
    std::string body;
    while (c.RecvTlsMessage(&t, &body, 5000)) {
        types += t;
        if (t == 'E') {
            error = ParseError(body);
        }
    }
    EXPECT_EQ(types, "TDE");
    EXPECT_EQ(error.substr(0, 5), "08006") << error;
    EXPECT_EQ(WaitMetric(api_, "atls_connections_active", 0, 5), 0);
}

TEST_F(BackendTest, BackendEndingTheSessionWithAnErrorGetsNoSecondError) {
    // pg_terminate_backend: the backend sends its own FATAL (57P01) and closes; the gateway
    // passes it on and adds nothing (its 08006 is only for a backend lost without a word).
    Postgres &pg = SharedPostgres();
    StartProxy("127.0.0.1:" + std::to_string(pg.port()));
    RawClient victim;
    ASSERT_EQ(OpenSession(&victim, port_), "");
    std::string pid = victim.Query("select pg_backend_pid()");
    ASSERT_FALSE(pid.empty());
    EXPECT_EQ(pg.Psql("select pg_terminate_backend(" + pid + ")").out, "t\n");
    char t = 0;
    std::string body;
    ASSERT_TRUE(victim.RecvTlsMessage(&t, &body, 5000));
    EXPECT_EQ(t, 'E');
    EXPECT_EQ(ParseError(body).substr(0, 5), "57P01") << ParseError(body);
    EXPECT_FALSE(victim.RecvTlsMessage(&t, &body, 5000)) << "a second message: " << t;
    EXPECT_EQ(WaitMetric(api_, "atls_connections_active", 0, 10), 0);
    CmdResult ok = Sh("psql -X -At '" + ConnStr(port_, SharedCerts()) + "' -c 'select 2'");
    EXPECT_EQ(ok.out, "2\n") << ok.out;
}

// ---------------------------------------------------------------------------------------------
// Active health checks ([backend] health_check)

// BackendMetric is the line name of metric `family` for the backend 127.0.0.1:`port`.
static std::string BackendMetric(const std::string &family, int port) {
    return family + "{backend=\"127.0.0.1:" + std::to_string(port) + "\"}";
}

// With health_check = connect, a backend nobody listens on is taken out of rotation by the
// checks alone, before any session meets it; sessions then never try it (with checks off, one
// session an interval does: DeadBackendIsSkippedUntilItAnswersAgain). When it listens again the
// checks put it back, again without a session, and new sessions reach it.
TEST_F(BackendTest, ConnectCheckTakesADeadBackendOutAndBackWithoutASessionMeetingIt) {
    Postgres &pg = SharedPostgres();
    int dead = FreePort();
    StartProxyBeforePostgres(dead, 300, "health_check = connect\n");
    ASSERT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", dead), 0, 5), 0);
    // One failed check is enough for a backend no check has seen up yet.
    EXPECT_GE(Metric(api_, BackendMetric("atls_backend_health_checks_failed_total", dead)), 1);
    EXPECT_EQ(Metric(api_, BackendMetric("atls_backend_up", pg.port())), 1);
    EXPECT_EQ(Metric(api_, BackendMetric("atls_backend_health_checks_failed_total", pg.port())), 0);
    auto t0 = Clock::now();
    int sessions = 0;
    while (SecondsSince(t0) < 1.5) { // five check intervals
        RawClient c;
        ASSERT_EQ(OpenSession(&c, port_), "") << "session " << sessions;
        ASSERT_EQ(c.Query("select 1"), "1");
        c.SendTls(kTerminate);
        sessions++;
    }
    EXPECT_GE(sessions, 5);
    EXPECT_EQ(Metric(api_, "atls_backend_errors_total"), 0) << "a session met the dead backend";
    EXPECT_EQ(Metric(api_, "atls_backend_session_retries_total"), 0);

    // It answers again (through 127.0.0.2, so that a session can tell where it went).
    CountingRelay relay(dead, pg.port(), "127.0.0.2");
    ASSERT_TRUE(relay.ok());
    EXPECT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", dead), 1, 3), 1);
    EXPECT_GE(relay.accepted(), 1); // the check that found it
    // Least connections sends the next session to it (0 connections against 1 held).
    RawClient held;
    ASSERT_EQ(OpenSession(&held, port_), "");
    RawClient next;
    ASSERT_EQ(OpenSession(&next, port_), "");
    std::set<std::string> via = {held.Query("select host(inet_server_addr())"),
                                 next.Query("select host(inet_server_addr())")};
    EXPECT_EQ(via.count("127.0.0.2"), 1u) << "no session reached the revived backend";
    EXPECT_EQ(Metric(api_, "atls_backend_errors_total"), 0);
}

// A node that accepts connections but refuses every session with 57P03 (starting up) looks
// healthy to a connect check; health_check = startup reads its answer and takes it out, so no
// session is sent there to be refused and retried.
TEST_F(BackendTest, StartupCheckTakesOutANodeThatRefusesSessions) {
    SlammingBackend refusing(ErrorResponse("57P03", "the database system is starting up"));
    ASSERT_TRUE(refusing.ok());
    StartProxyBeforePostgres(refusing.port(), 300,
                             "health_check = startup\nhealth_user = postgres\n");
    ASSERT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", refusing.port()), 0, 5), 0);
    EXPECT_EQ(SessionsThrough(port_, 10, ""), 0);
    EXPECT_EQ(Metric(api_, "atls_backend_session_retries_total"), 0);
    EXPECT_EQ(Metric(api_, "atls_backend_errors_total"), 0);
    std::string log = ReadFile(proxy_.log_path());
    EXPECT_NE(log.find("refuses new sessions (57P03)"), std::string::npos) << log;
}

// The connect check cannot see such a node (the session retry still hides it from clients).
TEST_F(BackendTest, ConnectCheckKeepsANodeThatRefusesSessionsInRotation) {
    SlammingBackend refusing(ErrorResponse("57P03", "the database system is starting up"));
    ASSERT_TRUE(refusing.ok());
    const std::string checks = BackendMetric("atls_backend_health_checks_total", refusing.port());
    StartProxyBeforePostgres(refusing.port(), 300, "health_check = connect\n");
    auto t0 = Clock::now();
    while (Metric(api_, checks) < 3 && SecondsSince(t0) < 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GE(Metric(api_, checks), 3);
    EXPECT_EQ(
        Metric(api_, BackendMetric("atls_backend_health_checks_failed_total", refusing.port())), 0);
}

// Startup checks against real PostgreSQL as an existing role pass, every one; a node that
// answers the check's session with another error (here: no such role) takes sessions, so it
// stays in rotation, and the gateway says once that health_user is wrong there.
TEST_F(BackendTest, StartupCheckPassesOnPostgresAndOnANodeThatRejectsTheRole) {
    Postgres &pg = SharedPostgres();
    SlammingBackend rejecting(ErrorResponse("28000", "role \"postgres\" does not exist"));
    ASSERT_TRUE(rejecting.ok());
    StartProxy("127.0.0.1:" + std::to_string(rejecting.port()) +
                   ", 127.0.0.1:" + std::to_string(pg.port()),
               200, "health_check = startup\nhealth_user = postgres\n");
    const std::string checks = BackendMetric("atls_backend_health_checks_total", pg.port());
    auto t0 = Clock::now();
    while (Metric(api_, checks) < 4 && SecondsSince(t0) < 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GE(Metric(api_, checks), 4);
    for (int port : {pg.port(), rejecting.port()}) {
        EXPECT_EQ(Metric(api_, BackendMetric("atls_backend_health_checks_failed_total", port)), 0)
            << port;
        EXPECT_EQ(Metric(api_, BackendMetric("atls_backend_up", port)), 1) << port;
    }
    std::string log = ReadFile(proxy_.log_path());
    EXPECT_NE(log.find("takes sessions but refused the health check's (28000)"), std::string::npos)
        << log;
    size_t first = log.find("check [backend] health_user");
    EXPECT_EQ(log.find("check [backend] health_user", first + 1), std::string::npos)
        << "said more than once";
}

// A node whose connects hang (dropped SYNs) and one that takes connections but never answers
// are both taken out by startup checks within connect_timeout_ms (1 s here) a check.
TEST_F(BackendTest, StartupCheckTakesOutSilentAndUnreachableNodes) {
    Postgres &pg = SharedPostgres();
    Blackhole hole;
    ASSERT_TRUE(hole.ok());
    SilentBackend silent;
    ASSERT_TRUE(silent.ok());
    StartProxy("127.0.0.1:" + std::to_string(hole.port()) + ", 127.0.0.1:" +
                   std::to_string(silent.port()) + ", 127.0.0.1:" + std::to_string(pg.port()),
               300, "health_check = startup\nhealth_user = postgres\n");
    EXPECT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", hole.port()), 0, 6), 0);
    EXPECT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", silent.port()), 0, 6), 0);
    EXPECT_EQ(Metric(api_, BackendMetric("atls_backend_up", pg.port())), 1);
    EXPECT_EQ(SessionsThrough(port_, 5, ""), 0);
    EXPECT_EQ(Metric(api_, "atls_backend_errors_total"), 0);
    std::string log = ReadFile(proxy_.log_path());
    EXPECT_NE(log.find("connect timed out"), std::string::npos) << log;
    EXPECT_NE(log.find("no answer within connect_timeout_ms"), std::string::npos) << log;
}

// Bad health check settings end in a clear error at load, with the line.
TEST(BackendConfig, HealthCheckSettingsAreValidated) {
    TempDir d;
    Certs &c = SharedCerts();
    auto ini = [&](const std::string &backend_lines) {
        return "[proxy]\nlisten = 127.0.0.1:" + std::to_string(FreePort()) +
               "\n[tls]\ncert = " + c.server_crt + "\nkey = " + c.server_key +
               "\nclient_ca = " + c.ca +
               "\n[attestation]\nrequired = false\n[backend]\nservers = 127.0.0.1:1\n" +
               backend_lines + "[audit]\nenabled = false\n";
    };
    WriteFile(d / "proxy.ini", ini("health_check = startup\n"));
    CmdResult r = Sh(ProxyBinary() + " --check-config " + (d / "proxy.ini") + " 2>&1");
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.out.find("proxy.ini:11: [backend] health_check = startup needs health_user"),
              std::string::npos)
        << r.out;
    WriteFile(d / "proxy.ini", ini("health_check = sometimes\n"));
    r = Sh(ProxyBinary() + " --check-config " + (d / "proxy.ini") + " 2>&1");
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.out.find("proxy.ini:11:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sometimes"), std::string::npos) << r.out;
    WriteFile(d / "proxy.ini", ini("health_check = startup\nhealth_user = app\n"));
    r = Sh(ProxyBinary() + " --check-config " + (d / "proxy.ini") + " 2>&1");
    EXPECT_EQ(r.status, 0) << r.out;
}

// Startup checks read past notices (also split across segments) to the answer that decides, and
// take out a node whose answer is malformed (a length of 0xffffffff, once a busy loop of the
// check thread) or cut short by a close, without ever stalling: checks keep running and the
// gateway stops at once.
TEST_F(BackendTest, StartupCheckReadsNoticesAndRejectsMalformedOrCutAnswers) {
    Postgres &pg = SharedPostgres();
    const std::string notice =
        PgMessage('N', std::string("SNOTICE") + '\0' + "C00000" + '\0' + "Mwelcome" + '\0' + '\0');
    const std::string auth_ok = PgMessage('R', std::string("\0\0\0\0", 4));
    SlammingBackend chatty(notice + notice + auth_ok, 3);                    // up
    SlammingBackend huge(std::string("N\xff\xff\xff\xff", 5) + "xyz");       // malformed
    SlammingBackend cut(ErrorResponse("57P03", "starting up").substr(0, 9)); // cut
    ASSERT_TRUE(chatty.ok() && huge.ok() && cut.ok());
    StartProxy("127.0.0.1:" + std::to_string(chatty.port()) + ", 127.0.0.1:" +
                   std::to_string(huge.port()) + ", 127.0.0.1:" + std::to_string(cut.port()) +
                   ", 127.0.0.1:" + std::to_string(pg.port()),
               200, "health_check = startup\nhealth_user = postgres\n");
    EXPECT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", huge.port()), 0, 5), 0);
    EXPECT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", cut.port()), 0, 5), 0);
    const std::string huge_checks = BackendMetric("atls_backend_health_checks_total", huge.port());
    long long before = Metric(api_, huge_checks);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    EXPECT_GE(Metric(api_, huge_checks), before + 2) << "the checks stalled";
    EXPECT_EQ(Metric(api_, BackendMetric("atls_backend_up", chatty.port())), 1);
    EXPECT_EQ(Metric(api_, BackendMetric("atls_backend_health_checks_failed_total", chatty.port())),
              0);
    std::string log = ReadFile(proxy_.log_path());
    EXPECT_NE(log.find("answered with a malformed message"), std::string::npos) << log;
    EXPECT_NE(log.find("closed the session in the middle of its answer"), std::string::npos) << log;
    auto t0 = Clock::now();
    EXPECT_EQ(proxy_.Stop(15, 10), 0);
    EXPECT_LT(SecondsSince(t0), 3.0);
}

// A backend that was up goes out only after two failed checks in a row, and is found on its own
// schedule: a sibling whose checks hang for connect_timeout_ms (3 s) does not hold it up.
TEST_F(BackendTest, BackendDyingIsTakenOutAfterTwoFailedChecksWhateverItsSiblingsDo) {
    Postgres &pg = SharedPostgres();
    Blackhole hole;
    ASSERT_TRUE(hole.ok());
    int port = FreePort();
    auto relay = std::make_unique<CountingRelay>(port, pg.port());
    ASSERT_TRUE(relay->ok());
    StartProxy("127.0.0.1:" + std::to_string(port) + ", 127.0.0.1:" + std::to_string(hole.port()) +
                   ", 127.0.0.1:" + std::to_string(pg.port()),
               200, "health_check = connect\n", 3000);
    const std::string up = BackendMetric("atls_backend_up", port);
    const std::string failed = BackendMetric("atls_backend_health_checks_failed_total", port);
    const std::string checks = BackendMetric("atls_backend_health_checks_total", port);
    auto t0 = Clock::now();
    while (Metric(api_, checks) < 2 && SecondsSince(t0) < 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(Metric(api_, up), 1);
    relay.reset(); // the backend dies
    auto t1 = Clock::now();
    long long f = 0;
    while ((f = Metric(api_, failed)) < 1 && SecondsSince(t1) < 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_GE(f, 1);
    long long u = Metric(api_, up);
    if (Metric(api_, failed) == 1) { // read between its first and second failed check
        EXPECT_EQ(u, 1) << "out after one failed check";
    }
    EXPECT_EQ(WaitMetric(api_, up, 0, 3), 0);
    // Two checks 200 ms apart (plus the scrapes' own time), not two of the sibling's 3 s rounds.
    EXPECT_LT(SecondsSince(t1), 2.0);
    EXPECT_EQ(WaitMetric(api_, BackendMetric("atls_backend_up", hole.port()), 0, 5), 0);
}
