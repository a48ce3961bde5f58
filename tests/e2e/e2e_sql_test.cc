// End-to-end: real psql and pgbench through the real proxy to a real PostgreSQL.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "harness.h"

using namespace e2e;

class SqlTest : public MtlsSuite {};

TEST_F(SqlTest, PsqlRunsSqlThroughSslRequest) {
    CmdResult r = Sh("psql -X -At '" + ConnStr(port_, *certs_) +
                      "' -c 'create table if not exists e2e_t(x int)' -c 'insert into e2e_t "
                      "values (41),(1)' -c 'select sum(x) from e2e_t' -c 'select ssl from "
                      "pg_stat_ssl where pid = pg_backend_pid()'");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("42"), std::string::npos) << r.out;
    // The backend leg is plain TCP inside the VM: PostgreSQL sees no SSL on its side.
    EXPECT_NE(r.out.find("f"), std::string::npos) << r.out;
    EXPECT_EQ(pg_->Psql("select sum(x) from e2e_t").out, "42\n");
}

TEST_F(SqlTest, DirectTlsWithAlpnWorks) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    std::string err;
    ASSERT_TRUE(c.StartTls(certs_->client_crt, certs_->client_key, "postgresql", &err)) << err;
    ASSERT_EQ(c.Startup("postgres", "postgres"), "");
    EXPECT_EQ(c.Query("select 6*7"), "42");
}

TEST_F(SqlTest, DirectTlsWithoutAlpnIsRefused) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    std::string err;
    // The handshake completes on the client side (TLS 1.3), then the proxy refuses with an
    // alert; the session never reaches the backend.
    if (c.StartTls(certs_->client_crt, certs_->client_key, "", &err)) {
        EXPECT_NE(c.Startup("postgres", "postgres"), "");
    }
    RawClient good;
    ASSERT_TRUE(good.Connect(port_));
    ASSERT_TRUE(good.StartTls(certs_->client_crt, certs_->client_key, "postgresql", &err));
    EXPECT_EQ(good.Startup("postgres", "postgres"), "");
}

TEST_F(SqlTest, PgbenchInitAndRunKeepsTpcbConsistent) {
    std::string cs = ConnStr(port_, *certs_);
    CmdResult init = Sh("pgbench -i -s 2 -q '" + cs + "'", 180);
    ASSERT_EQ(init.status, 0) << init.out;
    CmdResult run = Sh("pgbench -c 8 -j 2 -T 5 '" + cs + "'", 120);
    ASSERT_EQ(run.status, 0) << run.out;
    EXPECT_NE(run.out.find("number of failed transactions: 0"), std::string::npos) << run.out;
    CmdResult sums = pg_->Psql("select (select sum(abalance) from pgbench_accounts) = "
                               "(select sum(tbalance) from pgbench_tellers) and "
                               "(select sum(tbalance) from pgbench_tellers) = "
                               "(select sum(bbalance) from pgbench_branches) and "
                               "(select count(*) from pgbench_history) > 0");
    EXPECT_EQ(sums.out, "t\n") << sums.out;
}

TEST_F(SqlTest, Copy200MegabytesBothWaysIntact) {
    TempDir d;
    std::string in = d / "in.txt", out = d / "out.txt";
    // 2,100,000 lines of ~100 bytes, deterministic.
    CmdResult gen = Sh("awk 'BEGIN{for(i=0;i<2100000;i++) printf \"%09d-"
                        "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\\n\", i}' > '" +
                            in + "' && stat -c %s '" + in + "'",
                        120);
    ASSERT_EQ(gen.status, 0) << gen.out;
    ASSERT_GT(std::stoll(gen.out), 200000000LL);
    std::string cs = ConnStr(port_, *certs_);
    CmdResult copy = Sh("psql -X -q '" + cs +
                             "' -c 'drop table if exists e2e_copy' -c 'create table e2e_copy"
                             "(line text)' -c \"\\copy e2e_copy from '" + in + "'\"",
                         300);
    ASSERT_EQ(copy.status, 0) << copy.out;
    EXPECT_EQ(pg_->Psql("select count(*) from e2e_copy").out, "2100000\n");
    // The comparison below is about the gateway only with synchronize_seqscans = off: the
    // table is larger than a quarter of shared_buffers, so a sequential scan may start where
    // an earlier scan of it reported its position, and COPY TO then streams every row,
    // rotated. A parallel count(*) like the one above can leave that position at a late page
    // (a worker reports its last page after another reported the scan's end): a CI run failed
    // so, its output the input rotated to start at heap page 33536. A scan stopped by LIMIT
    // leaves it mid-table every time, so the session setting is tested, not luck.
    CmdResult mid = pg_->Psql("set max_parallel_workers_per_gather = 0;\n"
                              "select left(line, 9) from e2e_copy offset 1000000 limit 1");
    EXPECT_EQ(mid.out.size(), 10u) << mid.out; // a row number (where it began is the point)
    CmdResult back = Sh("psql -X -q '" + cs + "' -c 'set synchronize_seqscans = off' -c \"\\copy " +
                            "e2e_copy to '" + out + "'\"",
                        300);
    ASSERT_EQ(back.status, 0) << back.out;
    CmdResult sums = Sh("sha256sum < '" + in + "'; sha256sum < '" + out + "'", 120);
    size_t nl = sums.out.find('\n');
    ASSERT_NE(nl, std::string::npos);
    EXPECT_EQ(sums.out.substr(0, nl), sums.out.substr(nl + 1, nl)) << sums.out;
    if (sums.out.substr(0, nl) != sums.out.substr(nl + 1, nl)) {
        // Which leg broke: the table as PostgreSQL holds it, read directly (not through the
        // gateway), against what went in and what came back; and the first differing lines.
        std::string direct = d / "direct.txt";
        CmdResult dc = pg_->Psql("set synchronize_seqscans = off;\n\\copy e2e_copy to '" +
                                     direct + "'",
                                 300);
        CmdResult why = Sh("cmp '" + in + "' '" + direct + "' && echo upload intact; cmp '" +
                               direct + "' '" + out + "' && echo download intact; diff '" + in +
                               "' '" + out + "' | head -20",
                           120);
        ADD_FAILURE() << dc.out << why.out;
    }
    pg_->Psql("drop table e2e_copy");
}

TEST_F(SqlTest, CtrlCCancelsRunningQueryWithinTwoSeconds) {
    // psql sends the CancelRequest on a new plaintext connection when it gets SIGINT. That
    // connection lands on either worker (SO_REUSEPORT hashes it), so about half the cancels
    // must cross to the session's worker by IORING_OP_MSG_RING: repeat until both paths ran
    // (8 rounds at least; 8 more make a miss of the cross-worker path a 1 in 65,536 event).
    const long long routed0 = Metric(api_, "atls_cancels_routed_total");
    const long long cross0 = Metric(api_, "atls_cancels_cross_worker_total");
    ASSERT_GE(routed0, 0);
    ASSERT_GE(cross0, 0);
    int rounds = 0;
    for (; rounds < 16; rounds++) {
        if (rounds >= 8 && Metric(api_, "atls_cancels_cross_worker_total") > cross0) {
            break;
        }
        auto t0 = std::chrono::steady_clock::now();
        CmdResult r = Sh("psql -X '" + ConnStr(port_, *certs_) +
                             "' -c 'select pg_sleep(30)' & pid=$!; sleep 1; kill -INT $pid; "
                             "wait $pid",
                         40);
        double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_NE(r.out.find("canceling statement due to user request"), std::string::npos)
            << "round " << rounds << ": " << r.out;
        EXPECT_LT(secs, 3.0) << "round " << rounds; // 1 s before Ctrl-C + under 2 s to cancel
    }
    // Every cancel went through the gateway's routing, and some crossed workers.
    EXPECT_EQ(Metric(api_, "atls_cancels_routed_total") - routed0, rounds);
    EXPECT_GT(Metric(api_, "atls_cancels_cross_worker_total") - cross0, 0)
        << "no cancel crossed workers in " << rounds << " rounds";
}
