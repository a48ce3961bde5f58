// End-to-end: backend failures give the client 08006, several backends balance by least
// connections, a dead one is skipped, and a backend killed mid-session ends only that session.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "harness.h"

using namespace e2e;

class BackendTest : public ::testing::Test {
  protected:
    void StartProxy(const std::string &backends) {
        dir_ = std::make_unique<TempDir>();
        port_ = FreePort();
        std::string err;
        ASSERT_TRUE(proxy_.Start(dir_->path(), MtlsIni(port_, backends, SharedCerts()), &err))
            << err;
    }
    std::unique_ptr<TempDir> dir_;
    Proxy proxy_;
    int port_ = 0;
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
}

TEST_F(BackendTest, DeadBackendIsSkipped) {
    Postgres &pg = SharedPostgres();
    int dead = FreePort();
    StartProxy("127.0.0.1:" + std::to_string(dead) + ", 127.0.0.1:" + std::to_string(pg.port()));
    for (int i = 0; i < 6; i++) {
        CmdResult r = Sh("psql -X -At '" + ConnStr(port_, SharedCerts()) + "' -c 'select 1'");
        EXPECT_EQ(r.status, 0) << r.out;
    }
}

TEST_F(BackendTest, LeastConnectionsSpreadsSessions) {
    Postgres &pg = SharedPostgres();
    // The same server reached through two loopback addresses counts as two backends.
    StartProxy("127.0.0.1:" + std::to_string(pg.port()) + ", 127.0.0.2:" +
               std::to_string(pg.port()));
    std::vector<std::unique_ptr<RawClient>> held;
    int on_first = 0, on_second = 0;
    for (int i = 0; i < 6; i++) {
        auto c = std::make_unique<RawClient>();
        ASSERT_EQ(OpenSession(c.get(), port_), "");
        std::string addr = c->Query("select host(inet_server_addr())");
        if (addr == "127.0.0.1") {
            on_first++;
        } else if (addr == "127.0.0.2") {
            on_second++;
        }
        held.push_back(std::move(c)); // keep sessions open so the counts matter
    }
    EXPECT_EQ(on_first, 3);
    EXPECT_EQ(on_second, 3);
}

TEST_F(BackendTest, BackendKilledMidSessionEndsOnlyThatSession) {
    Postgres &pg = SharedPostgres();
    StartProxy("127.0.0.1:" + std::to_string(pg.port()));
    RawClient victim;
    ASSERT_EQ(OpenSession(&victim, port_), "");
    std::string pid = victim.Query("select pg_backend_pid()");
    ASSERT_FALSE(pid.empty());
    EXPECT_EQ(pg.Psql("select pg_terminate_backend(" + pid + ")").out, "t\n");
    // The client gets the backend's FATAL (57P01) or a close, never a hang.
    std::string r = victim.Query("select 1");
    EXPECT_TRUE(r.find("57P01") != std::string::npos || r == "connection closed") << r;
    CmdResult ok = Sh("psql -X -At '" + ConnStr(port_, SharedCerts()) + "' -c 'select 2'");
    EXPECT_EQ(ok.out, "2\n") << ok.out;
}
