// End-to-end: [proxy] handshake_thread. With `auto` the worker hands its handshake steps to the
// handshake thread only while an established session moves bytes; with `always` every step goes
// there; with `off` there is no thread. Whatever runs the steps, clients connect, run SQL and
// fail cleanly, and the gateway keeps serving.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <functional>
#include <thread>

#include "harness.h"

using namespace e2e;

namespace {

const char kOffloaded[] = "atls_handshake_steps_offloaded_total";
const char kOk[] = "atls_handshakes_ok_total";
const char kFailed[] = "atls_handshakes_failed_total";
const char kRaised[] = "atls_handshake_thread_raised_total";
const char kInFlight[] = "atls_handshake_steps_in_flight";
const char kActive[] = "atls_connections_active";
const char kTimeouts[] = "atls_timeouts_total";

struct OneWorker {
    TempDir dir;
    Proxy proxy;
    int port = 0;
    int api = 0;
};

// Start one worker (so the session and the new clients share it) with handshake_thread = mode,
// MtlsIni's handshake timeout unless `hs_timeout_ms` is given, when `crt` is given that server
// certificate and key, and `proxy_extra` ([proxy] lines) added.
bool StartOneWorker(OneWorker *p, const std::string &mode, std::string *err,
                    const std::string &hs_timeout_ms = "", const std::string &crt = "",
                    const std::string &key = "", const std::string &proxy_extra = "") {
    p->port = FreePort();
    const Certs &certs = SharedCerts();
    std::string ini = MtlsIni(p->port, "127.0.0.1:" + std::to_string(SharedPostgres().port()),
                              certs, "handshake_thread = " + mode + "\n" + proxy_extra);
    ini.replace(ini.find("workers = 2"), 11, "workers = 1");
    if (!hs_timeout_ms.empty()) {
        const std::string line = "handshake_timeout_ms = ";
        size_t at = ini.find(line) + line.size();
        ini.replace(at, ini.find('\n', at) - at, hs_timeout_ms);
    }
    if (!crt.empty()) {
        ini.replace(ini.find(certs.server_crt), certs.server_crt.size(), crt);
        ini.replace(ini.find(certs.server_key), certs.server_key.size(), key);
    }
    p->api = ApiPortOf(ini);
    return p->proxy.Start(p->dir.path(), ini, err);
}

// The task id of the gateway's thread called `name` (/proc/<pid>/task/*/comm), or -1.
pid_t ThreadId(pid_t pid, const std::string &name) {
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR *d = opendir(dir.c_str());
    if (d == nullptr) {
        return -1;
    }
    pid_t found = -1;
    while (dirent *e = readdir(d)) {
        if (e->d_name[0] != '.') {
            std::string comm = ReadFile(dir + "/" + e->d_name + "/comm");
            while (!comm.empty() && comm.back() == '\n') {
                comm.pop_back();
            }
            if (comm == name) {
                found = (pid_t)std::stoi(e->d_name);
            }
        }
    }
    closedir(d);
    return found;
}

bool HasThread(pid_t pid, const std::string &name) { return ThreadId(pid, name) > 0; }

// Freeze stops one thread of the gateway, and only that one (a ptrace stop holds the one task
// traced), until Thaw: a handshake thread that never gets the CPU, for as long as a test needs.
class Freeze {
  public:
    ~Freeze() { Thaw(); }
    // "" once `tid` is stopped; otherwise why not ("EPERM: ..." when ptrace is not allowed).
    std::string Stop(pid_t tid) {
        if (tid <= 0) {
            return "no such thread";
        }
        if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
            return std::string(errno == EPERM ? "EPERM: " : "") + "PTRACE_SEIZE: " +
                   strerror(errno);
        }
        tid_ = tid;
        int st = 0;
        if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 ||
            waitpid(tid, &st, __WALL) != tid || !WIFSTOPPED(st)) {
            return std::string("the thread did not stop: ") + strerror(errno);
        }
        return "";
    }
    void Thaw() {
        if (tid_ > 0) {
            ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
            tid_ = -1;
        }
    }

  private:
    pid_t tid_ = -1;
};

// Read `c` until the gateway closes it (EOF or RST) or `timeout_ms` passes; true when closed.
bool ReadToClose(RawClient *c, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        if (!c->WaitReadable(100)) {
            continue;
        }
        char buf[4096];
        ssize_t n = recv(c->fd(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            return true;
        }
    }
    return false;
}

// Poll `done` every 20 ms until it holds (true) or `timeout_s` passes (false).
bool WaitUntil(double timeout_s, const std::function<bool()> &done) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds((long)(timeout_s * 1000));
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

// Wait until the gateway's log holds `text`.
bool WaitLog(const Proxy &proxy, const std::string &text, double timeout_s) {
    return WaitUntil(timeout_s,
                     [&] { return ReadFile(proxy.log_path()).find(text) != std::string::npos; });
}

// Three new clients, each while `busy` (when given) has just run a query.
void ThreeClients(int port, RawClient *busy) {
    for (int i = 0; i < 3; i++) {
        if (busy != nullptr) {
            ASSERT_EQ(busy->Query("select 7"), "7");
        }
        CmdResult r = Psql42(port);
        ASSERT_EQ(r.status, 0) << r.out;
        ASSERT_EQ(r.out, "42\n");
    }
}

// An established session: open, then old enough (1 s) that its bytes count as established.
void OpenEstablished(RawClient *s, int port) {
    ASSERT_EQ(OpenSession(s, port), "");
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
}

TEST(HandshakeThread, AutoHandsStepsOverOnlyWhileAnEstablishedSessionMovesBytes) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "auto", &err)) << err;
    EXPECT_TRUE(HasThread(p.proxy.pid(), "atls-hs0"));
    // New clients alone: the worker runs their steps itself.
    ASSERT_NO_FATAL_FAILURE(ThreeClients(p.port, nullptr));
    EXPECT_EQ(Metric(p.api, kOffloaded), 0);
    RawClient s;
    ASSERT_NO_FATAL_FAILURE(OpenEstablished(&s, p.port));
    ASSERT_NO_FATAL_FAILURE(ThreeClients(p.port, &s));
    // Each of the three: at least the ClientHello step and the client Finished step.
    EXPECT_GE(Metric(p.api, kOffloaded), 6);
    EXPECT_EQ(s.Query("select 8"), "8");
    EXPECT_EQ(Metric(p.api, kOk), 7);
    EXPECT_EQ(Metric(p.api, kFailed), 0);
    s.Close();
    EXPECT_EQ(p.proxy.Stop(), 0);
}

TEST(HandshakeThread, OffHasNoThreadAndRunsEveryStepOnTheWorker) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "off", &err)) << err;
    EXPECT_FALSE(HasThread(p.proxy.pid(), "atls-hs0"));
    RawClient s;
    ASSERT_NO_FATAL_FAILURE(OpenEstablished(&s, p.port));
    ASSERT_NO_FATAL_FAILURE(ThreeClients(p.port, &s));
    EXPECT_EQ(Metric(p.api, kOffloaded), 0);
    EXPECT_EQ(Metric(p.api, kOk), 4);
    s.Close();
    EXPECT_EQ(p.proxy.Stop(), 0);
}

TEST(HandshakeThread, AlwaysHandsEveryStepOver) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "always", &err)) << err;
    ASSERT_NO_FATAL_FAILURE(ThreeClients(p.port, nullptr));
    EXPECT_GE(Metric(p.api, kOffloaded), 6);
    EXPECT_EQ(Metric(p.api, kOk), 3);
    EXPECT_EQ(p.proxy.Stop(), 0);
}

// The thread runs at SCHED_IDLE: a process that keeps the worker's CPU busy would starve it.
// A step that waited 20 ms raises it to normal priority, and the clients get through.
TEST(HandshakeThread, AStarvedThreadIsRaisedAndHandshakesComplete) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "always", &err)) << err;
    // The worker's CPU: the handshake thread inherited the worker's pinning.
    pid_t hs = ThreadId(p.proxy.pid(), "atls-hs0");
    ASSERT_GT(hs, 0);
    CmdResult cpu = Sh("taskset -pc " + std::to_string(hs) + " | sed 's/.*: //'");
    ASSERT_EQ(cpu.status, 0) << cpu.out;
    std::string cpus = cpu.out.substr(0, cpu.out.find('\n'));
    ASSERT_EQ(cpus.find_first_not_of("0123456789"), std::string::npos) << "one CPU: " << cpu.out;
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    pid_t hog = fork();
    if (hog == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(std::stoi(cpus), &set);
        sched_setaffinity(0, sizeof(set), &set);
        sched_yield(); // now running on that CPU
        char one = 1;
        (void)!write(ready[1], &one, 1);
        for (volatile unsigned long i = 0;; i++) {
        }
    }
    ASSERT_GT(hog, 0);
    close(ready[1]);
    char got = 0;
    ASSERT_EQ(read(ready[0], &got, 1), 1); // the hog spins on the worker's CPU
    close(ready[0]);
    // A thread that slept a while starts with scheduler credit and may get through at once;
    // clients keep coming (at most 30) until one of their steps has waited long enough.
    std::vector<CmdResult> results;
    for (int i = 0; i < 30 && (i < 3 || Metric(p.api, kRaised) < 1); i++) {
        results.push_back(Psql42(p.port));
    }
    kill(hog, SIGKILL);
    waitpid(hog, nullptr, 0);
    for (const CmdResult &r : results) {
        EXPECT_EQ(r.status, 0) << r.out;
        EXPECT_EQ(r.out, "42\n");
    }
    EXPECT_GE(Metric(p.api, kRaised), 1);
    EXPECT_EQ(p.proxy.Stop(), 0);
}

TEST(HandshakeThread, UnknownModeIsAConfigError) {
    TempDir dir;
    Proxy proxy;
    int port = FreePort();
    std::string ini = MtlsIni(port, "127.0.0.1:" + std::to_string(SharedPostgres().port()),
                              SharedCerts(), "handshake_thread = sometimes\n");
    std::string err;
    EXPECT_FALSE(proxy.Start(dir.path(), ini, &err));
    std::string log = ReadFile(proxy.log_path());
    EXPECT_NE(log.find("handshake_thread must be auto, always or off, not 'sometimes'"),
              std::string::npos)
        << log;
}

// Bad input on the thread: a client that stops mid-handshake, one that sends garbage where its
// ClientHello belongs, and one that closes right after its ClientHello's first bytes. Each ends
// as a failed handshake; the session beside them and later clients are unaffected.
TEST(HandshakeThread, BrokenHandshakesOnTheThreadFailCleanly) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "always", &err)) << err;
    RawClient s;
    ASSERT_EQ(OpenSession(&s, p.port), "");
    {
        RawClient garbage;
        ASSERT_TRUE(garbage.Connect(p.port));
        ASSERT_TRUE(garbage.SendPlain(SslRequest()));
        ASSERT_EQ(garbage.RecvPlain(1), "S");
        // A ClientHello record whose 4-byte body cannot hold a ClientHello.
        ASSERT_TRUE(garbage.SendPlain(
            std::string("\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00", 13)));
        std::string alert = garbage.RecvPlain(64);
        ASSERT_FALSE(alert.empty());
        EXPECT_EQ(alert[0], '\x15'); // a TLS alert record, then the close
        EXPECT_TRUE(garbage.IsClosedByPeer());
    }
    {
        RawClient cut;
        ASSERT_TRUE(cut.Connect(p.port));
        ASSERT_TRUE(cut.SendPlain(SslRequest()));
        ASSERT_EQ(cut.RecvPlain(1), "S");
        ASSERT_TRUE(cut.SendPlain(std::string("\x16\x03\x01\x02\x00\x01", 6))); // then gone
    }
    EXPECT_EQ(WaitMetric(p.api, kFailed, 2, 5.0), 2);
    EXPECT_EQ(s.Query("select 9"), "9");
    ExpectPsql42(p.port);
    s.Close();
    EXPECT_EQ(p.proxy.Stop(), 0);
}

// A close that arrives while the connection's step is at the thread waits for the step (the
// thread holds the SSL and the decision): the slot is freed once the step is back. Two closes
// land there: a client's RST, and a handshake timeout.
TEST(HandshakeThread, ACloseWhileTheStepIsAwayWaitsForTheStep) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "always", &err, "1000")) << err;
    Freeze frozen; // destroyed before p: the gateway is never left with a stopped thread
    std::string why = frozen.Stop(ThreadId(p.proxy.pid(), "atls-hs0"));
    if (why.rfind("EPERM", 0) == 0) {
        GTEST_SKIP() << "cannot stop the handshake thread: " << why;
    }
    ASSERT_EQ(why, "");
    const Certs &certs = SharedCerts();
    RawClient reset, slow;
    for (RawClient *c : {&reset, &slow}) {
        ASSERT_TRUE(c->Connect(p.port));
        ASSERT_TRUE(c->BeginTls(certs.client_crt, certs.client_key, "postgresql", &err)) << err;
    }
    ASSERT_EQ(WaitMetric(p.api, kInFlight, 2, 5.0), 2); // both ClientHello steps are away
    reset.Reset();
    // `slow` times out meanwhile (so does `reset`, whose slot still waits with its deadline).
    ASSERT_GE(WaitMetric(p.api, kTimeouts, 2, 5.0), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(Metric(p.api, kActive), 2); // both slots are held while their steps are away
    EXPECT_EQ(Metric(p.api, kInFlight), 2);
    EXPECT_FALSE(slow.WaitReadable(0));
    frozen.Thaw();
    EXPECT_EQ(WaitMetric(p.api, kActive, 0, 5.0), 0);
    EXPECT_EQ(Metric(p.api, kInFlight), 0);
    EXPECT_TRUE(ReadToClose(&slow, 5000));
    EXPECT_EQ(Metric(p.api, kOk), 0);
    ExpectPsql42(p.port);
    EXPECT_EQ(p.proxy.Stop(), 0);
}

// A reload (here SIGHUP with a new certificate) that reaches the worker while a step is at the
// thread waits for it, so the thread never runs with a context, client-chain cache or policy the
// worker is replacing. Meanwhile no new step starts; once the step is back, the reload applies
// and the client that waited gets the new certificate.
TEST(HandshakeThread, AReloadWhileAStepIsAwayWaitsForTheStep) {
    OneWorker p;
    std::string crt = p.dir / "server.crt", key = p.dir / "server.key";
    const Certs &certs = SharedCerts();
    ASSERT_TRUE(SharedCerts().IssueServer("before-reload", crt, key));
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "always", &err, "", crt, key)) << err;
    Freeze frozen;
    RawClient a;
    ASSERT_TRUE(a.Connect(p.port));
    ASSERT_TRUE(a.BeginTls(certs.client_crt, certs.client_key, "postgresql", &err)) << err;
    ASSERT_TRUE(a.WaitReadable(5000)); // the server's flight: the ClientHello step is back
    std::string why = frozen.Stop(ThreadId(p.proxy.pid(), "atls-hs0"));
    if (why.rfind("EPERM", 0) == 0) {
        GTEST_SKIP() << "cannot stop the handshake thread: " << why;
    }
    ASSERT_EQ(why, "");
    ASSERT_TRUE(a.FinishTls(&err)) << err; // the client's certificate and Finished
    ASSERT_EQ(WaitMetric(p.api, kInFlight, 1, 5.0), 1); // ... whose step is away
    ASSERT_TRUE(SharedCerts().IssueServer("after-reload", crt, key));
    p.proxy.Signal(SIGHUP);
    ASSERT_TRUE(WaitLog(p.proxy, "reloaded certificate", 5.0)) << ReadFile(p.proxy.log_path());
    RawClient b; // arrives while the reload waits
    ASSERT_TRUE(b.Connect(p.port));
    ASSERT_TRUE(b.BeginTls(certs.client_crt, certs.client_key, "postgresql", &err)) << err;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_EQ(ReadFile(p.proxy.log_path()).find("worker 0: TLS certificate reloaded"),
              std::string::npos);
    EXPECT_EQ(Metric(p.api, kInFlight), 1); // b's first step has not started
    EXPECT_FALSE(b.WaitReadable(0));
    frozen.Thaw();
    EXPECT_EQ(a.Startup("postgres", "postgres"), "");
    EXPECT_NE(a.PeerSubject().find("before-reload"), std::string::npos) << a.PeerSubject();
    EXPECT_EQ(a.Query("select 5"), "5");
    EXPECT_TRUE(WaitLog(p.proxy, "worker 0: TLS certificate reloaded", 5.0));
    ASSERT_TRUE(b.FinishTls(&err)) << err;
    EXPECT_NE(b.PeerSubject().find("after-reload"), std::string::npos) << b.PeerSubject();
    EXPECT_EQ(b.Startup("postgres", "postgres"), "");
    a.Close();
    b.Close();
    EXPECT_EQ(p.proxy.Stop(), 0);
}

// [proxy] worker_priority = realtime: the worker runs SCHED_FIFO 1 while established sessions
// move bytes (so a woken worker preempts whatever else runs on its CPU) and at normal priority
// otherwise; its handshake thread stays at SCHED_IDLE (it must not inherit the worker's class).
const char kRealtime[] = "atls_workers_realtime";
const char kRtDropped[] = "atls_worker_realtime_dropped_total";

TEST(WorkerPriority, RealtimeWhileEstablishedSessionsMoveBytesNormalOtherwise) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "SCHED_FIFO needs CAP_SYS_NICE: run as root";
    }
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "always", &err, "", "", "", "worker_priority = realtime\n"))
        << err;
    pid_t w = ThreadId(p.proxy.pid(), "atls-w0");
    pid_t hs = ThreadId(p.proxy.pid(), "atls-hs0");
    ASSERT_GT(w, 0);
    ASSERT_GT(hs, 0);
    // No session yet: nothing to protect, normal priority.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(sched_getscheduler(w), SCHED_OTHER);
    EXPECT_EQ(Metric(p.api, kRealtime), 0);
    EXPECT_EQ(ReadFile(p.proxy.log_path()).find("refused"), std::string::npos);
    // An established session (older than 1 s) that keeps querying: the worker goes real-time.
    RawClient s;
    ASSERT_NO_FATAL_FAILURE(OpenEstablished(&s, p.port));
    bool fifo = false;
    for (int i = 0; i < 300 && !fifo; i++) {
        ASSERT_EQ(s.Query("select 1"), "1");
        fifo = sched_getscheduler(w) == SCHED_FIFO;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(fifo) << "the worker never ran SCHED_FIFO while the session moved bytes";
    sched_param sp{};
    ASSERT_EQ(sched_getparam(w, &sp), 0);
    EXPECT_EQ(sp.sched_priority, 1);
    EXPECT_EQ(Metric(p.api, kRealtime), 1);
    EXPECT_EQ(sched_getscheduler(hs), SCHED_IDLE);
    EXPECT_EQ(sched_getscheduler(p.proxy.pid()), SCHED_OTHER); // the main thread: untouched
    // New clients meanwhile are served as usual. (Their handshakes can keep a slow build's
    // worker above 80% of its CPU for a window, a busy drop: counted here, not judged.)
    ASSERT_NO_FATAL_FAILURE(ThreeClients(p.port, &s));
    EXPECT_EQ(Metric(p.api, kOk), 4);
    long long dropped = Metric(p.api, kRtDropped);
    // The session goes quiet: back to normal priority (not counted as a busy drop). The worker
    // switches, then updates the gauge: on a loaded machine a reader can come in between.
    EXPECT_TRUE(WaitUntil(
        3.0, [&] { return sched_getscheduler(w) == SCHED_OTHER && Metric(p.api, kRealtime) == 0; }))
        << "still " << sched_getscheduler(w) << ", gauge " << Metric(p.api, kRealtime);
    EXPECT_EQ(Metric(p.api, kRtDropped), dropped);
    EXPECT_EQ(s.Query("select 8"), "8");
    s.Close();
    EXPECT_EQ(p.proxy.Stop(), 0);
}

TEST(WorkerPriority, NormalIsTheDefault) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "auto", &err)) << err;
    pid_t w = ThreadId(p.proxy.pid(), "atls-w0");
    ASSERT_GT(w, 0);
    EXPECT_EQ(sched_getscheduler(w), SCHED_OTHER);
    EXPECT_EQ(Metric(p.api, kRealtime), 0);
    EXPECT_EQ(p.proxy.Stop(), 0);
}

// Without CAP_SYS_NICE (a service manager that grants none) realtime is refused: the gateway
// says why and how to grant it, and serves at normal priority.
TEST(WorkerPriority, RefusedRealtimeRunsAtNormalPriorityAndSaysWhy) {
    OneWorker p;
    p.proxy.without_sys_nice = true;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "auto", &err, "", "", "", "worker_priority = realtime\n"))
        << err;
    pid_t w = ThreadId(p.proxy.pid(), "atls-w0");
    ASSERT_GT(w, 0);
    EXPECT_EQ(sched_getscheduler(w), SCHED_OTHER);
    EXPECT_EQ(Metric(p.api, kRealtime), 0);
    std::string log = ReadFile(p.proxy.log_path());
    EXPECT_NE(log.find("worker 0: worker_priority = realtime refused"), std::string::npos) << log;
    EXPECT_NE(log.find("grant CAP_SYS_NICE"), std::string::npos) << log;
    ExpectPsql42(p.port);
    EXPECT_EQ(p.proxy.Stop(), 0);
}

TEST(WorkerPriority, UnknownValueIsAConfigError) {
    TempDir dir;
    Proxy proxy;
    std::string ini = MtlsIni(FreePort(), "127.0.0.1:" + std::to_string(SharedPostgres().port()),
                              SharedCerts(), "worker_priority = urgent\n");
    std::string err;
    EXPECT_FALSE(proxy.Start(dir.path(), ini, &err));
    std::string log = ReadFile(proxy.log_path());
    EXPECT_NE(log.find("worker_priority must be normal or realtime, not 'urgent'"),
              std::string::npos)
        << log;
}

const char kPollHits[] = "atls_busy_poll_hits_total";
const char kPollMisses[] = "atls_busy_poll_misses_total";
const char kPollUs[] = "atls_busy_poll_microseconds_total";

// [proxy] busy_poll_us: the worker polls before it sleeps and serves sessions and new clients
// as usual; polls that found work (the session's next query, a send's completion) and polls
// that ran out both show in /metrics.
TEST(BusyPoll, AWorkerPollsBeforeSleepingAndServesAsUsual) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "auto", &err, "", "", "", "busy_poll_us = 200\n")) << err;
    RawClient s;
    ASSERT_NO_FATAL_FAILURE(OpenEstablished(&s, p.port));
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(s.Query("select 1"), "1");
    }
    ASSERT_NO_FATAL_FAILURE(ThreeClients(p.port, &s));
    ExpectPsql42(p.port);
    // Published on the worker's 50 ms tick.
    EXPECT_TRUE(WaitUntil(2.0, [&] { return Metric(p.api, kPollHits) > 0; }));
    EXPECT_TRUE(WaitUntil(2.0, [&] { return Metric(p.api, kPollMisses) > 0; }));
    EXPECT_GT(Metric(p.api, kPollUs), 0);
    s.Close();
    EXPECT_EQ(p.proxy.Stop(), 0);
}

// An idle worker with the longest poll does not spin: it polls once per wake-up (its 50 ms tick)
// and sleeps in between, so it uses a few percent of its CPU at most, not all of it.
TEST(BusyPoll, AnIdleWorkerSleepsBetweenPolls) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "auto", &err, "", "", "", "busy_poll_us = 1000\n")) << err;
    pid_t w = ThreadId(p.proxy.pid(), "atls-w0");
    ASSERT_GT(w, 0);
    ExpectPsql42(p.port);
    long long before = CpuTicks(p.proxy.pid(), w);
    ASSERT_GE(before, 0);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    long long used = CpuTicks(p.proxy.pid(), w) - before;
    long long hz = sysconf(_SC_CLK_TCK);
    EXPECT_LT(used, hz * 2 / 5) << used << " ticks of " << hz * 2 << " in 2 s"; // < 20%
    EXPECT_GT(Metric(p.api, kPollMisses), 0);
    EXPECT_EQ(p.proxy.Stop(), 0);
}

TEST(BusyPoll, OffByDefault) {
    OneWorker p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, "auto", &err)) << err;
    ExpectPsql42(p.port);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(Metric(p.api, kPollHits), 0);
    EXPECT_EQ(Metric(p.api, kPollMisses), 0);
    EXPECT_EQ(p.proxy.Stop(), 0);
}

} // namespace
