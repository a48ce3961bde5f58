// End-to-end: SIGTERM drain, SIGHUP certificate reload, bad configuration, passthrough mode.
#include <gtest/gtest.h>

#include <sched.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "harness.h"

using namespace e2e;

TEST(Lifecycle, SigtermDrainsLiveSessionsAndExitsZero) {
    Postgres &pg = SharedPostgres();
    TempDir d;
    int port = FreePort();
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(),
                        MtlsIni(port, "127.0.0.1:" + std::to_string(pg.port()), SharedCerts(),
                                "drain_timeout_ms = 8000\n"),
                        &err))
        << err;
    RawClient c;
    ASSERT_EQ(OpenSession(&c, port), "");
    p.Signal(SIGTERM);
    // New connections are refused while draining. Each worker closes its own
    // listener when it sees the drain event, so under load a connection may
    // still land on a listener that has not closed yet: poll until refused.
    bool refused = false;
    for (int i = 0; i < 50 && !refused; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        RawClient late;
        refused = !late.Connect(port) || late.IsClosedByPeer(500);
    }
    EXPECT_TRUE(refused);
    // ...but the live session keeps working until it ends.
    EXPECT_EQ(c.Query("select 'still here'"), "still here");
    EXPECT_TRUE(p.Running());
    c.SendTls(std::string("X\0\0\0\4", 5)); // Terminate
    EXPECT_EQ(p.Stop(0 /* just wait */, 15), 0);
}

TEST(Lifecycle, DrainDeadlineClosesStragglers) {
    Postgres &pg = SharedPostgres();
    TempDir d;
    int port = FreePort();
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(),
                        MtlsIni(port, "127.0.0.1:" + std::to_string(pg.port()), SharedCerts(),
                                "drain_timeout_ms = 500\n"),
                        &err));
    RawClient c;
    ASSERT_EQ(OpenSession(&c, port), "");
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(p.Stop(SIGTERM, 10), 0);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(secs, 3.0);
}

TEST(Lifecycle, SighupReloadsCertificateWithoutDroppingSessions) {
    Postgres &pg = SharedPostgres();
    Certs &certs = SharedCerts();
    TempDir d;
    std::string crt = d / "server.crt", key = d / "server.key";
    ASSERT_TRUE(certs.IssueServer("before-reload", crt, key));
    int port = FreePort();
    std::string ini = MtlsIni(port, "127.0.0.1:" + std::to_string(pg.port()), certs);
    ini.replace(ini.find(certs.server_crt), certs.server_crt.size(), crt);
    ini.replace(ini.find(certs.server_key), certs.server_key.size(), key);
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(), ini, &err)) << err;
    RawClient old;
    ASSERT_EQ(OpenSession(&old, port), "");
    EXPECT_NE(old.PeerSubject().find("before-reload"), std::string::npos);

    ASSERT_TRUE(certs.IssueServer("after-reload", crt, key));
    p.Signal(SIGHUP);
    std::string subject;
    for (int i = 0; i < 50 && subject.find("after-reload") == std::string::npos; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        RawClient fresh;
        ASSERT_TRUE(fresh.Connect(port));
        ASSERT_TRUE(fresh.StartTls(certs.client_crt, certs.client_key, "postgresql", &err));
        subject = fresh.PeerSubject();
    }
    EXPECT_NE(subject.find("after-reload"), std::string::npos) << subject;
    EXPECT_EQ(old.Query("select 'survived'"), "survived");
    EXPECT_EQ(p.Stop(SIGTERM, 15), 0);
}

TEST(Lifecycle, BadConfigExitsTwoNamingFileAndLine) {
    TempDir d;
    Certs &certs = SharedCerts();
    struct Case {
        std::string ini, expect;
    } cases[] = {
        {"[proxy]\nlisten = 127.0.0.1:99999\n", "proxy.ini:2: bad address '127.0.0.1:99999'"},
        {"[proxy]\nlisten = 127.0.0.1:5000\nbogus = 1\n", "proxy.ini:3: unknown key 'bogus'"},
        {"[nope]\nx = 1\n", "proxy.ini:1: unknown section [nope]"},
        {"[proxy]\nlisten = 127.0.0.1:5000\n[nope]\n", "proxy.ini:3: unknown section [nope]"},
        {"[proxy]\nworkers = 1\nworkers = 2\n", "proxy.ini:3: 'workers' is set twice (first on line 2)"},
        // inih reads at most 199 bytes a line; it used to split a longer one into a made-up key.
        {"[proxy]\nnode_id = " + std::string(300, 'n') + "\nworkers = 1\n",
         "proxy.ini:2: line too long (310 bytes, at most 199)"},
        {"[backend]\nservers = " + std::string(16 * 16, ' ') + "127.0.0.1:1\n",
         "proxy.ini:2: line too long"},
        {"[proxy]\nworkers = many\n", "proxy.ini:2: workers must be auto or 1..64"},
        {"[proxy]\nlisten = 127.0.0.1:5000\n[tls]\ncert = " + certs.server_crt +
             "\nkey = /nonexistent/server.key\nclient_ca = " + certs.ca +
             "\n[attestation]\nrequired = false\n[backend]\nservers = 127.0.0.1:1\n",
         "proxy.ini:5: cannot read [tls] key '/nonexistent/server.key'"},
        {"[proxy]\nlisten = 127.0.0.1:5000\n[tls]\ncert = " + certs.server_crt + "\nkey = " +
             certs.ca + "\nclient_ca = " + certs.ca +
             "\n[attestation]\nrequired = false\n[backend]\nservers = 127.0.0.1:1\n",
         "proxy.ini:5: [tls] key"},
        {"[proxy]\nlisten = 127.0.0.1:5000\n[tls]\ncert = " + certs.server_crt + "\nkey = " +
             certs.client_key + "\nclient_ca = " + certs.ca +
             "\n[attestation]\nrequired = false\n[backend]\nservers = 127.0.0.1:1\n",
         "proxy.ini:5: [tls] key '" + certs.client_key + "' does not match cert"},
        {"[proxy]\nlisten = 127.0.0.1:5000\n[tls]\ncert = " + certs.server_crt + "\nkey = " +
             certs.server_key + "\nclient_ca = " + certs.server_key +
             "\n[attestation]\nrequired = false\n[backend]\nservers = 127.0.0.1:1\n",
         "proxy.ini:6: [tls] client_ca '" + certs.server_key + "': not a PEM CA bundle"},
        // Passthrough never sees the client's certificate: asking for attestation there fails.
        {"[proxy]\nlisten = 127.0.0.1:5000\nmode = passthrough\n[attestation]\nrequired = true\n"
         "[backend]\nservers = 127.0.0.1:1\n",
         "proxy.ini:5: [attestation] required = true cannot be enforced in passthrough mode"},
    };
    for (const Case &c : cases) {
        WriteFile(d / "proxy.ini", c.ini);
        CmdResult r = Sh(ProxyBinary() + " --config " + (d / "proxy.ini"));
        EXPECT_EQ(r.status, 2) << c.ini << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << "want: " << c.expect << "\ngot: "
                                                            << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out; // one line
    }
    // servers adds up over its lines (16 at most in all); a line may hold up to 199 bytes.
    std::string good = "[proxy]\nlisten = 127.0.0.1:5000\n[tls]\ncert = " + certs.server_crt +
                       "\nkey = " + certs.server_key + "\nclient_ca = " + certs.ca +
                       "\n[attestation]\nrequired = false\n[audit]\nenabled = false\n[backend]\n";
    std::string eight, nine;
    for (int i = 1; i <= 8; i++) {
        eight += std::string(i > 1 ? ", " : "") + "10.0.0." + std::to_string(i) + ":26257";
        nine += std::string(i > 1 ? ", " : "") + "10.0.1." + std::to_string(i) + ":26257";
    }
    WriteFile(d / "proxy.ini", good + "servers = " + eight + "\nservers = " + eight + "\n");
    CmdResult sixteen = Sh(ProxyBinary() + " --check-config " + (d / "proxy.ini"));
    EXPECT_EQ(sixteen.status, 0) << sixteen.out;
    WriteFile(d / "proxy.ini",
              good + "servers = " + eight + "\nservers = " + nine + ", 10.0.2.1:26257\n");
    CmdResult seventeen = Sh(ProxyBinary() + " --check-config " + (d / "proxy.ini"));
    EXPECT_EQ(seventeen.status, 2);
    EXPECT_NE(seventeen.out.find("proxy.ini:13: too many servers (max 16)"), std::string::npos)
        << seventeen.out;
    CmdResult missing = Sh(ProxyBinary() + " --config " + (d / "absent.ini"));
    EXPECT_EQ(missing.status, 2);
    EXPECT_NE(missing.out.find("absent.ini: cannot open"), std::string::npos) << missing.out;
    CmdResult check = Sh(ProxyBinary() + " --check-config " + (d / "proxy.ini"));
    EXPECT_EQ(check.status, 2);
}

TEST(Lifecycle, PassthroughForwardsBytesUntouched) {
    Postgres &pg = SharedPostgres();
    TempDir d;
    int port = FreePort();
    Proxy p;
    std::string err;
    int api = FreePort();
    ASSERT_TRUE(p.Start(d.path(), PassthroughIni(port, pg.port(), 2, api), &err)) << err;
    EXPECT_EQ(Metric(api, "atls_bytes_backend_to_client_total"), 0);
    // The client speaks to PostgreSQL itself (here without TLS): the proxy sees only bytes.
    std::string cs = "host=127.0.0.1 port=" + std::to_string(port) +
                     " sslmode=disable user=postgres dbname=postgres";
    CmdResult r = Sh("psql -X -At '" + cs + "' -c 'select 40+2'");
    EXPECT_EQ(r.out, "42\n") << r.out;
    CmdResult big = Sh("psql -X -At '" + cs +
                        "' -c \"select md5(string_agg(md5(i::text), '')) from "
                        "generate_series(1,300000) i\" -c \"select count(*) from (select "
                        "repeat('x', 1000) from generate_series(1,50000)) s\"",
                        120);
    CmdResult direct = pg.Psql("select md5(string_agg(md5(i::text), '')) from "
                               "generate_series(1,300000) i");
    EXPECT_EQ(big.out.substr(0, 33), direct.out.substr(0, 33)) << big.out;
    EXPECT_NE(big.out.find("50000"), std::string::npos) << big.out;
    // Spliced bytes count in the per-worker byte counters like relayed ones: 2,000 rows of
    // 1,000 bytes come back, and the queries went out.
    CmdResult rows = Sh("psql -X -At '" + cs + "' -c \"select repeat('y', 1000) from "
                        "generate_series(1,2000)\" | wc -l");
    EXPECT_EQ(rows.out, "2000\n") << rows.out;
    EXPECT_GE(Metric(api, "atls_bytes_backend_to_client_total"), 2000 * 1000);
    EXPECT_GE(Metric(api, "atls_bytes_client_to_backend_total"), 100);
    EXPECT_EQ(p.Stop(SIGTERM, 15), 0);
}

// ReadUntilReady reads plain pgwire bytes from `c` up to an idle ReadyForQuery, adding their
// count to `*total`; false when nothing comes for `wait_ms`, or after 30 s.
bool ReadUntilReady(RawClient *c, size_t *total, int wait_ms = 5000) {
    const std::string kReady("Z\0\0\0\5I", 6);
    std::string tail;
    auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
        std::string b = c->RecvPlain(1 << 20, wait_ms);
        if (b.empty()) {
            return false;
        }
        *total += b.size();
        tail = (tail + b).substr(tail.size() + b.size() > 16 ? tail.size() + b.size() - 16 : 0);
        if (tail.size() >= kReady.size() &&
            tail.compare(tail.size() - kReady.size(), kReady.size(), kReady) == 0) {
            return true;
        }
    }
    return false;
}

// A client that stops reading while a large result comes (its socket fills, the splice to it
// waits for POLLOUT) and asks nothing meanwhile (its own poll waits for POLLIN) gets the rest
// once it reads again, both ways: a 64 MB result, then a 64 MB COPY FROM STDIN.
TEST(Lifecycle, PassthroughResumesAfterTheClientStopsReading) {
    Postgres &pg = SharedPostgres();
    TempDir d;
    int port = FreePort();
    int api = FreePort();
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(), PassthroughIni(port, pg.port(), 1, api), &err)) << err;
    RawClient c;
    ASSERT_TRUE(c.Connect(port));
    timeval send_limit{10, 0}; // a stalled upload fails the send instead of hanging the test
    ASSERT_EQ(setsockopt(c.fd(), SOL_SOCKET, SO_SNDTIMEO, &send_limit, sizeof(send_limit)), 0);
    ASSERT_TRUE(c.SendPlain(StartupMessage("postgres", "postgres")));
    size_t got = 0;
    ASSERT_TRUE(ReadUntilReady(&c, &got)) << "no ReadyForQuery after startup";
    // Uploads go into a table whose trigger drops every row (PostgreSQL parses, stores nothing).
    ASSERT_TRUE(c.SendPlain(QueryMessage(
        "create function pg_temp.drop_row() returns trigger language plpgsql as "
        "$$ begin return null; end $$; create temp table sink (b text); create trigger drop_all "
        "before insert on sink for each row execute function pg_temp.drop_row()")));
    ASSERT_TRUE(ReadUntilReady(&c, &got));
    std::string row(1000000 - 1, 'y');
    row += '\n';
    std::string data = "d";
    data += std::string{(char)((row.size() + 4) >> 24), (char)((row.size() + 4) >> 16),
                        (char)((row.size() + 4) >> 8), (char)(row.size() + 4)};
    data += row;
    // Three rounds: the end of a transfer is where bytes could be left behind (in the pipe,
    // with nothing more coming from their sender), and where it ends varies from run to run.
    for (int round = 0; round < 3; round++) {
        SCOPED_TRACE("round " + std::to_string(round));
        ASSERT_TRUE(
            c.SendPlain(QueryMessage("select repeat('x', 1000000) from generate_series(1, 64)")));
        std::this_thread::sleep_for(std::chrono::milliseconds(300)); // the result fills the sockets
        got = 0;
        ASSERT_TRUE(ReadUntilReady(&c, &got)) << "result stalled after " << got << " bytes";
        EXPECT_GT(got, 64u * 1000000u);
        // Upload: a COPY of 64 MB while the client reads nothing until it is done.
        ASSERT_TRUE(c.SendPlain(QueryMessage("copy sink from stdin")));
        std::string response = c.RecvPlain(64, 5000);
        ASSERT_EQ(response.substr(0, 1), "G") << "no CopyInResponse";
        for (int i = 0; i < 64; i++) {
            ASSERT_TRUE(c.SendPlain(data)) << "send stalled at row " << i;
        }
        ASSERT_TRUE(c.SendPlain(std::string("c\0\0\0\4", 5)));
        long long c2b_before = Metric(api, "atls_bytes_client_to_backend_total");
        got = 0;
        // PostgreSQL answers once it has parsed all 64 MB: under a sanitizer build and a
        // loaded machine that can take seconds.
        ASSERT_TRUE(ReadUntilReady(&c, &got, 20000))
            << "COPY stalled; the gateway had read " << c2b_before << " bytes from the client "
            << "when CopyDone was sent, " << Metric(api, "atls_bytes_client_to_backend_total")
            << " now";
    }
    c.Close();
    EXPECT_EQ(p.Stop(SIGTERM, 15), 0);
}

TEST(Lifecycle, SigintStopsTheGatewayEvenWhenStartedWithSigintIgnored) {
    // A shell starting a job in the background sets SIGINT to "ignore"; the gateway must still
    // drain and exit on Ctrl-C's signal.
    Postgres &pg = SharedPostgres();
    TempDir d;
    Proxy p;
    std::string err;
    struct sigaction ign {}, old{};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGINT, &ign, &old); // inherited through fork and exec
    bool started = p.Start(
        d.path(), MtlsIni(FreePort(), "127.0.0.1:" + std::to_string(pg.port()), SharedCerts()),
        &err);
    sigaction(SIGINT, &old, nullptr);
    ASSERT_TRUE(started) << err;
    EXPECT_EQ(p.Stop(SIGINT, 10), 0);
}

TEST(Lifecycle, WorkersStayInsideTheCpuSetTheyWereStartedWith) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        GTEST_SKIP() << "needs two CPUs to give the gateway a set that excludes CPU 0";
    }
    Postgres &pg = SharedPostgres();
    TempDir d;
    Proxy p;
    std::string err;
    cpu_set_t only1, old;
    CPU_ZERO(&only1);
    CPU_SET(1, &only1);
    ASSERT_EQ(sched_getaffinity(0, sizeof(old), &old), 0);
    ASSERT_EQ(sched_setaffinity(0, sizeof(only1), &only1), 0); // inherited by the child
    bool started = p.Start(
        d.path(), MtlsIni(FreePort(), "127.0.0.1:" + std::to_string(pg.port()), SharedCerts()),
        &err);
    sched_setaffinity(0, sizeof(old), &old);
    ASSERT_TRUE(started) << err;
    // Every thread (two workers included: MtlsIni sets workers = 2) may run only on CPU 1.
    CmdResult r = Sh("grep -h Cpus_allowed_list /proc/" + std::to_string(p.pid()) +
                     "/task/*/status | sort | uniq -c");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(Count(r.out, "\n"), 1u) << r.out;
    EXPECT_NE(r.out.find("Cpus_allowed_list:\t1\n"), std::string::npos) << r.out;
}

TEST(Lifecycle, WorkersAutoCountsTheCpusOfTheSetItWasStartedWith) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        GTEST_SKIP() << "needs two online CPUs for a one-CPU set to differ from the online count";
    }
    Postgres &pg = SharedPostgres();
    TempDir d;
    std::string ini = MtlsIni(FreePort(), "127.0.0.1:" + std::to_string(pg.port()), SharedCerts());
    size_t at = ini.find("workers = 2\n");
    ASSERT_NE(at, std::string::npos);
    ini.replace(at, 11, "workers = auto");
    Proxy p;
    std::string err;
    cpu_set_t only0, old;
    CPU_ZERO(&only0);
    CPU_SET(0, &only0);
    ASSERT_EQ(sched_getaffinity(0, sizeof(old), &old), 0);
    ASSERT_EQ(sched_setaffinity(0, sizeof(only0), &only0), 0); // as `taskset -c 0` would
    bool started = p.Start(d.path(), ini, &err);
    sched_setaffinity(0, sizeof(old), &old);
    ASSERT_TRUE(started) << err;
    // The start line names the worker count ("atls-proxy e2e: 1 workers, listening on ...").
    EXPECT_NE(ReadFile(p.log_path()).find("e2e: 1 workers,"), std::string::npos)
        << ReadFile(p.log_path());
}

// A session ended by the gateway (here its idle timeout) whose client has stopped reading cannot
// take the ErrorResponse: it is closed all the same, CORE_CLOSE_FLUSH_NS (10 s) later, and its
// PostgreSQL session goes with it. Before, nothing bounded that wait: the slot, both sockets
// and the database session were held until the gateway stopped.
TEST(Lifecycle, SessionEndingWhileItsClientStopsReadingIsClosedWithinTheFlushDeadline) {
    Postgres &pg = SharedPostgres();
    TempDir d;
    int port = FreePort();
    std::string ini = MtlsIni(port, "127.0.0.1:" + std::to_string(pg.port()), SharedCerts(),
                              "idle_timeout_ms = 1000\n");
    int api = ApiPortOf(ini);
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(), ini, &err)) << err;
    RawClient c;
    ASSERT_EQ(OpenSession(&c, port), "");
    int small = 4096;
    setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    const std::string marker = "flush-deadline-probe";
    ASSERT_TRUE(c.SendTls(QueryMessage("select '" + marker +
                                       "', repeat('x', 1000) from generate_series(1, 1000000)")));
    auto t0 = std::chrono::steady_clock::now();
    // Never read: the gateway stalls on the client, PostgreSQL on the gateway; the idle
    // timeout fires after 1 s and its 57P05 cannot be sent.
    long long active = 1;
    double took = 0;
    while (active != 0 && took < 20.0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        active = Metric(api, "atls_connections_active");
        took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    EXPECT_EQ(active, 0) << "the session still holds its slot after " << took << " s";
    EXPECT_GE(took, 10.0) << "closed before the flush deadline";
    EXPECT_LT(took, 16.0);
    std::string count;
    for (int i = 0; i < 40; i++) {
        count = pg.Psql("select count(*) from pg_stat_activity where query like '%" + marker +
                        "%' and pid <> pg_backend_pid()")
                    .out;
        if (count == "0\n") {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    EXPECT_EQ(count, "0\n") << "the database session outlived the gateway's";
    EXPECT_TRUE(p.Running());
}

// Connection slots and decision entries are touched only when they first serve: a gateway with
// 200,000 slots (about 4.4 KB each with its decision entry) holds little memory until
// connections arrive. Before, start-up wrote a free-list link into every entry and mimalloc's
// calloc zeroed both tables, which made them resident (928 MB here).
TEST(Lifecycle, UnusedConnectionSlotsHoldNoMemory) {
    Postgres &pg = SharedPostgres();
    TempDir d;
    int port = FreePort();
    std::string ini = MtlsIni(port, "127.0.0.1:" + std::to_string(pg.port()), SharedCerts(),
                              "workers = 1\nconns_max = 200000\n");
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(), ini, &err)) << err;
    ExpectPsql42(port); // the slots work: a session goes through
    std::string status = ReadFile("/proc/" + std::to_string(p.pid()) + "/status");
    size_t at = status.find("VmRSS:");
    ASSERT_NE(at, std::string::npos);
    long rss_kb = std::stol(status.substr(at + 6));
    EXPECT_LT(rss_kb, 150 * 1024) << "resident memory with 200,000 unused slots";
    EXPECT_EQ(p.Stop(SIGTERM, 15), 0);
}

TEST(Lifecycle, IdleTimeoutEndsAnIdleSessionWith57P05ButNotABusyOne) {
    Postgres &pg = SharedPostgres();
    TempDir d;
    int port = FreePort();
    std::string ini = MtlsIni(port, "127.0.0.1:" + std::to_string(pg.port()), SharedCerts(),
                              "idle_timeout_ms = 1000\n");
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(), ini, &err)) << err;
    RawClient idle, busy;
    ASSERT_EQ(OpenSession(&idle, port), "");
    ASSERT_EQ(OpenSession(&busy, port), "");
    // Three idle periods: the busy session asks something every 200 ms and is never cut...
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3000);
    int asked = 0;
    while (std::chrono::steady_clock::now() < until) {
        ASSERT_EQ(busy.Query("select " + std::to_string(asked)), std::to_string(asked))
            << "busy session cut after " << asked << " queries";
        asked++;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    // ...while the idle one got a FATAL 57P05 (what psql prints) and was closed.
    char t = 0;
    std::string body;
    ASSERT_TRUE(idle.RecvTlsMessage(&t, &body, 2000)) << "idle session: no message";
    EXPECT_EQ(t, 'E');
    EXPECT_EQ(ParseError(body), "57P05 terminating connection due to idle timeout");
    EXPECT_FALSE(idle.RecvTlsMessage(&t, &body, 2000)) << "idle session still open: " << t;
    EXPECT_EQ(Metric(ApiPortOf(ini), "atls_timeouts_total"), 1);
    EXPECT_EQ(busy.Query("select 'still busy'"), "still busy");
}

TEST(Lifecycle, BadConfigUnreadableKeyExitsTwoNamingTheKey) {
    TempDir d;
    Certs &certs = SharedCerts();
    std::string key = d / "server.key";
    ASSERT_EQ(Sh("cp '" + certs.server_key + "' '" + key + "' && chmod 000 '" + key + "'").status,
              0);
    WriteFile(d / "proxy.ini", "[proxy]\nlisten = 127.0.0.1:5000\n[tls]\ncert = " +
                                   certs.server_crt + "\nkey = " + key + "\nclient_ca = " +
                                   certs.ca + "\n[attestation]\nrequired = false\n[backend]\n"
                                   "servers = 127.0.0.1:1\n");
    std::string run = ProxyBinary() + " --config " + (d / "proxy.ini");
    if (geteuid() == 0) {
        // Root reads a mode-000 file; an unprivileged user (as a deployment runs the gateway)
        // does not. Without a way to become one, the case cannot be shown.
        if (Sh("setpriv --reuid=nobody --regid=nogroup --clear-groups true").status != 0) {
            GTEST_SKIP() << "running as root, which can read a mode-000 key, and cannot switch "
                            "to the nobody user with setpriv";
        }
        run = "setpriv --reuid=nobody --regid=nogroup --clear-groups " + run;
    }
    CmdResult r = Sh(run);
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.out.find("proxy.ini:5: cannot read [tls] key '" + key + "': Permission denied"),
              std::string::npos)
        << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out; // one line
}

// A gateway that cannot bind its API port exits 2 naming the address, after stopping the
// workers it had started (listening already) and closing its audit store, so that the next
// start on the same directory works.
TEST(Lifecycle, ApiPortTakenExitsTwoAndTheNextStartUsesTheSameAuditStore) {
    TempDir d;
    Postgres &pg = SharedPostgres(); // first: a server started later would inherit `taken`
    int api = 0;
    int taken = ListenLoopback(4, &api);
    ASSERT_GE(taken, 0);
    int port = FreePort();
    std::string ini = MtlsIni(port, "127.0.0.1:" + std::to_string(pg.port()), SharedCerts());
    const std::string key = "[api]\nlisten = 127.0.0.1:";
    size_t at = ini.find(key);
    ASSERT_NE(at, std::string::npos);
    size_t end = ini.find('\n', at + key.size());
    ini.replace(at + key.size(), end - at - key.size(), std::to_string(api));
    WriteFile(d / "proxy.ini", ini);
    auto t0 = std::chrono::steady_clock::now();
    CmdResult r =
        Sh("cd " + d.path() + " && timeout 30 " + ProxyBinary() + " --config proxy.ini 2>&1");
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.out.find("[api] listen 127.0.0.1:" + std::to_string(api) + ": cannot bind"),
              std::string::npos)
        << r.out;
    EXPECT_LT(secs, 10.0) << r.out;
    close(taken);
    Proxy p;
    std::string err;
    ASSERT_TRUE(p.Start(d.path(), ini, &err)) << err;
    CmdResult q = Sh("psql -X -At '" + ConnStr(port, SharedCerts()) + "' -c 'select 7'");
    EXPECT_EQ(q.out, "7\n") << q.out;
    EXPECT_EQ(p.Stop(), 0);
}
