// End-to-end: every bad client gets a clear error and the gateway keeps serving good ones.
#include <gtest/gtest.h>

#include "harness.h"

using namespace e2e;

class RejectTest : public MtlsSuite {
  protected:
    void TearDown() override {
        // After every bad client, a good one is still served.
        CmdResult r = Sh("psql -X -At '" + ConnStr(port_, *certs_) + "' -c 'select 7*6'");
        EXPECT_EQ(r.status, 0) << r.out;
        EXPECT_EQ(r.out, "42\n");
        EXPECT_TRUE(proxy_->Running());
    }
};

static std::string ReadErrorResponse(RawClient &c) {
    std::string got = c.RecvPlain(4096);
    if (got.size() < 5 || got[0] != 'E') {
        return "no ErrorResponse: '" + got + "'";
    }
    return ParseError(got.substr(5));
}

TEST_F(RejectTest, PlaintextStartupGetsErrorResponse08P01) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    ASSERT_TRUE(c.SendPlain(StartupMessage("postgres", "postgres")));
    std::string e = ReadErrorResponse(c);
    EXPECT_EQ(e.substr(0, 6), "08P01 ") << e;
    EXPECT_NE(e.find("requires TLS"), std::string::npos) << e;
    EXPECT_TRUE(c.IsClosedByPeer());
}

TEST_F(RejectTest, PsqlWithoutTlsSeesTheReason) {
    CmdResult r = Sh("psql -X 'host=127.0.0.1 port=" + std::to_string(port_) +
                      " sslmode=disable user=postgres dbname=postgres' -c 'select 1'");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("this server requires TLS"), std::string::npos) << r.out;
}

TEST_F(RejectTest, GarbageBytesGetErrorAndClose) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    ASSERT_TRUE(c.SendPlain("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string e = ReadErrorResponse(c);
    EXPECT_EQ(e.substr(0, 5), "08P01") << e;
    EXPECT_TRUE(c.IsClosedByPeer());
}

TEST_F(RejectTest, BytesAfterSslRequestAreAProtocolViolation) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    // SSLRequest plus injected plaintext in the same segment: no 'S', just a close.
    ASSERT_TRUE(c.SendPlain(SslRequest() + StartupMessage("postgres", "postgres")));
    EXPECT_TRUE(c.IsClosedByPeer());
}

TEST_F(RejectTest, GssEncRequestGetsNThenSslWorks) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    ASSERT_TRUE(c.SendPlain(GssEncRequest()));
    EXPECT_EQ(c.RecvPlain(1), "N");
    ASSERT_TRUE(c.SendPlain(SslRequest()));
    EXPECT_EQ(c.RecvPlain(1), "S");
    std::string err;
    ASSERT_TRUE(c.StartTls(certs_->client_crt, certs_->client_key, "", &err)) << err;
    ASSERT_EQ(c.Startup("postgres", "postgres"), "");
    EXPECT_EQ(c.Query("select 1"), "1");
}

TEST_F(RejectTest, Tls12ClientGetsProtocolVersionAlert) {
    CmdResult r = Sh("echo | openssl s_client -connect 127.0.0.1:" + std::to_string(port_) +
                      " -tls1_2 -cert " + certs_->client_crt + " -key " + certs_->client_key +
                      " 2>&1");
    EXPECT_NE(r.out.find("alert protocol version"), std::string::npos) << r.out;
}

TEST_F(RejectTest, ClientWithoutCertificateIsRefused) {
    CmdResult r = Sh("psql -X 'host=127.0.0.1 port=" + std::to_string(port_) +
                      " sslmode=require user=postgres dbname=postgres' -c 'select 1'");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("certificate required"), std::string::npos) << r.out;
}

TEST_F(RejectTest, CertificateFromAnotherCaIsRefused) {
    CmdResult r = Sh("psql -X 'host=127.0.0.1 port=" + std::to_string(port_) +
                      " sslmode=require sslcert=" + certs_->other_crt + " sslkey=" +
                      certs_->other_key + " user=postgres dbname=postgres' -c 'select 1'");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("unknown ca"), std::string::npos) << r.out;
}

TEST_F(RejectTest, MalformedStartupInsideTlsGetsError) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    ASSERT_TRUE(c.SendPlain(SslRequest()));
    ASSERT_EQ(c.RecvPlain(1), "S");
    std::string err;
    ASSERT_TRUE(c.StartTls(certs_->client_crt, certs_->client_key, "", &err)) << err;
    ASSERT_TRUE(c.SendTls(StartupMessage("postgres", "postgres", 0x00020000)));
    char t;
    std::string body;
    ASSERT_TRUE(c.RecvTlsMessage(&t, &body));
    EXPECT_EQ(t, 'E');
    EXPECT_EQ(ParseError(body).substr(0, 5), "08P01");
}

TEST_F(RejectTest, SilentClientTimesOutDuringHandshake) {
    RawClient c;
    ASSERT_TRUE(c.Connect(port_));
    // handshake_timeout_ms = 3000 in the test config.
    EXPECT_TRUE(c.IsClosedByPeer(6000));
}
