// End-to-end: attestation enforced in the handshake. Real psql with certificates made by
// atlsctl's simulated SEV-SNP provider, the real proxy with a policy, a real PostgreSQL behind
// it. Every denial is asserted on psql's printed reason and on the backend never seeing it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "api.pb-c.h"
#include "attest_fixture.h"
#include "audit.pb-c.h"
#include "harness.h"

using namespace e2e;

namespace {

// GetProto returns the protobuf body of GET `path` on the API at `api` and its content type.
std::string GetProto(int api, const std::string &path, std::string *content_type) {
    TempDir d;
    std::string f = d / "body.pb";
    CmdResult r = Sh("curl -s -H 'Accept: application/x-protobuf' -o " + f +
                     " -w '%{content_type}' 'http://127.0.0.1:" + std::to_string(api) + path +
                     "'");
    *content_type = r.out;
    return ReadFile(f);
}

// NewestDecision is the newest decision record of the proxy whose API is at `api`.
struct NewestDecision {
    Atls__AttestationList *list = nullptr;
    const Atls__AuditRecord *rec = nullptr;
    explicit NewestDecision(int api) {
        std::string type;
        std::string body = GetProto(api, "/api/v1/attestations", &type);
        list = atls__attestation_list__unpack(nullptr, body.size(),
                                              reinterpret_cast<const uint8_t *>(body.data()));
        for (size_t i = 0; list != nullptr && i < list->n_records && rec == nullptr; i++) {
            if (list->records[i]->kind == ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
                rec = list->records[i];
            }
        }
    }
    ~NewestDecision() {
        if (list != nullptr) {
            atls__attestation_list__free_unpacked(list, nullptr);
        }
    }
    NewestDecision(const NewestDecision &) = delete;
    NewestDecision &operator=(const NewestDecision &) = delete;
};

std::string Hex(const ProtobufCBinaryData &b) {
    static const char *digits = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < b.len; i++) {
        s += digits[b.data[i] >> 4];
        s += digits[b.data[i] & 15];
    }
    return s;
}

} // namespace

// The API reads Accept as media ranges with q values, not by substring: a lookalike type names
// neither format (the endpoint's default answers), and the higher q wins.
TEST_F(AttestTest, ApiAcceptHeaderIsReadAsMediaRanges) {
    auto type_for = [&](const std::string &accept) {
        return Sh("curl -s -o /dev/null -H 'Accept: " + accept +
                  "' -w '%{content_type}' http://127.0.0.1:" + std::to_string(api_) +
                  "/api/v1/stats/overview")
            .out;
    };
    // /api/v1/stats/overview answers protobuf unless asked otherwise.
    EXPECT_EQ(type_for("application/jsonx"), "application/x-protobuf");
    EXPECT_EQ(type_for("application/json"), "application/json");
    EXPECT_EQ(type_for("application/x-protobuf;q=0.1, application/json"), "application/json");
    EXPECT_EQ(type_for("application/json;q=0.4, application/x-protobuf;q=0.9"),
              "application/x-protobuf");
    EXPECT_EQ(type_for("application/json;q=0, */*"), "application/x-protobuf");
}

TEST_F(AttestTest, NonceApiAnswersJsonAndProtobuf) {
    CmdResult j = Sh("curl -s -i http://127.0.0.1:" + std::to_string(api_) + "/api/v1/nonce");
    EXPECT_NE(j.out.find("Content-Type: application/json"), std::string::npos) << j.out;
    EXPECT_TRUE(std::regex_search(
        j.out, std::regex("\\{\"nonce\":\"[0-9a-f]{64}\",\"expires_in\":4,\"timestamp\":\"[0-9]+\"\\}")))
        << j.out;
    // Protobuf: decoded with the generated code (proto/api.proto NonceResponse).
    std::string type;
    std::string body = GetProto(api_, "/api/v1/nonce", &type);
    EXPECT_EQ(type, "application/x-protobuf");
    Atls__NonceResponse *n = atls__nonce_response__unpack(
        nullptr, body.size(), reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(n, nullptr) << "not a NonceResponse: " << body.size() << " bytes";
    std::string nonce = n->nonce;
    EXPECT_TRUE(std::regex_match(nonce, std::regex("[0-9a-f]{64}"))) << nonce;
    EXPECT_EQ(n->expires_in, 4u); // ttl_s of the policy
    uint64_t now = static_cast<uint64_t>(time(nullptr));
    EXPECT_LE(n->timestamp, now + 5);
    EXPECT_GE(n->timestamp + 60, now);
    atls__nonce_response__free_unpacked(n, nullptr);
    // The decoded nonce is a live one: evidence bound to it is admitted.
    MakeCert("pb-nonce", "--measurement " + kGood, nonce);
    CmdResult ok = Connect("pb-nonce");
    EXPECT_EQ(ok.out, "admitted\n") << ok.out;
    CmdResult nf = Sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                      std::to_string(api_) + "/nope");
    EXPECT_EQ(nf.out, "404");
    CmdResult post = Sh("curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:" +
                        std::to_string(api_) + "/api/v1/nonce");
    EXPECT_EQ(post.out, "405");
}

TEST_F(AttestTest, GoodEvidenceIsAdmittedAndRunsSql) {
    MakeCert("good", "--measurement " + kGood);
    CmdResult r = Connect("good");
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, "admitted\n");
}

TEST_F(AttestTest, ReplayedNonceIsDenied) {
    MakeCert("replay", "--measurement " + kGood);
    ASSERT_EQ(Connect("replay").status, 0);
    ExpectDenied("replay", "NONCE_REPLAYED");
}

// With reuse_window_s = 0 a consumed nonce is refused by the cheap check in the TLS verify
// callback: a replay never costs the gateway a full (P-384) verification.
TEST_F(AttestTest, ReplayedNonceIsDeniedBeforeTheExpensiveVerification) {
    MakeCert("replay-cheap", "--measurement " + kGood);
    long long v0 = Metric("atls_attestation_verifications_total");
    ASSERT_GE(v0, 0);
    ASSERT_EQ(Connect("replay-cheap").status, 0);
    long long v1 = Metric("atls_attestation_verifications_total");
    EXPECT_EQ(v1, v0 + 1) << "the admitted handshake is verified once";
    ExpectDenied("replay-cheap", "NONCE_REPLAYED");
    EXPECT_EQ(Metric("atls_attestation_verifications_total"), v1)
        << "a replayed nonce reached the expensive verification";
}

TEST_F(AttestTest, MeasurementNotInPolicyIsDenied) {
    MakeCert("badm", "--measurement " + kBad);
    ExpectDenied("badm", "MEASUREMENT_NOT_ALLOWED");
}

TEST_F(AttestTest, DebugPolicyIsDenied) {
    MakeCert("debug", "--measurement " + kGood + " --debug");
    ExpectDenied("debug", "DEBUG_ENABLED");
}

TEST_F(AttestTest, SmtIsDeniedWhenNotAllowed) {
    MakeCert("smt", "--measurement " + kGood + " --smt");
    ExpectDenied("smt", "SMT_ENABLED");
}

TEST_F(AttestTest, TcbBelowFloorIsDenied) {
    MakeCert("tcb", "--measurement " + kGood + " --tcb 3,0,7,115");
    ExpectDenied("tcb", "TCB_BELOW_MIN:snp");
}

TEST_F(AttestTest, GuestSvnBelowMinimumIsDenied) {
    MakeCert("svn", "--measurement " + kGood + " --svn 1");
    ExpectDenied("svn", "GUEST_SVN_BELOW_MIN");
}

TEST_F(AttestTest, NonceNeverIssuedIsDenied) {
    MakeCert("unissued", "--measurement " + kGood, std::string(64, '7'));
    ExpectDenied("unissued", "NONCE_UNKNOWN");
}

TEST_F(AttestTest, ExpiredNonceIsDenied) {
    MakeCert("expired", "--measurement " + kGood);
    std::this_thread::sleep_for(std::chrono::seconds(5)); // ttl_s = 4
    ExpectDenied("expired", "NONCE_EXPIRED");
}

TEST_F(AttestTest, UntrustedRootIsDenied) {
    MakeCert("foreign", "--measurement " + kGood, "", 0, other_sim_);
    ExpectDenied("foreign", "CHAIN_INVALID");
}

// Genuine evidence in a certificate whose key the report does not name (as if lifted from
// another client's certificate): refused by the binding check, never reaching the database.
TEST_F(AttestTest, CertificateKeyNotBoundByTheReportIsDenied) {
    MakeCert("misbound", "--measurement " + kGood + " --bind-other-key");
    ExpectDenied("misbound", "BINDING_MISMATCH");
}

TEST_F(AttestTest, CertificateWithoutEvidenceIsDenied) {
    size_t before = BackendConnections();
    CmdResult r = Sh("psql -X 'host=127.0.0.1 port=" + std::to_string(port_) +
                     " sslmode=require sslcert=" + certs_->client_crt + " sslkey=" +
                     certs_->client_key + " user=postgres dbname=postgres' -c 'select 1'");
    EXPECT_NE(r.out.find("attestation denied: EVIDENCE_MALFORMED"), std::string::npos) << r.out;
    EXPECT_EQ(BackendConnections(), before);
}

TEST_F(AttestTest, RoleMapRefusesOtherUsersBeforeTheBackend) {
    // The role is checked at the StartupMessage, after the nonce was consumed: one certificate
    // for the raw client, one for psql.
    MakeCert("role1", "--measurement " + kOther);
    MakeCert("role1-psql", "--measurement " + kOther);
    ExpectDenied("role1", "ROLE_NOT_ALLOWED", "postgres", "role1-psql");
    MakeCert("role2", "--measurement " + kGood);
    MakeCert("role2-psql", "--measurement " + kGood);
    ExpectDenied("role2", "ROLE_NOT_ALLOWED", "reporting", "role2-psql");
}

// `warn` admits a violating client and records the violation (verdict WARNED, the failed check
// in the decision record); `disabled` skips the section and the record says so.
TEST_F(AttestTest, WarnModeAdmitsAndRecordsAndDisabledSkipsAndSaysSo) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem", "warn"), &port, &api);
    ASSERT_NE(p, nullptr);
    MakeCert("warn", "--measurement " + kBad, "", api);
    CmdResult r = Connect("warn", "postgres", port);
    // [roles] still applies: kBad has no role entry, so only the measurement check is relaxed.
    EXPECT_NE(r.out.find("ROLE_NOT_ALLOWED"), std::string::npos) << r.out;
    delete p;

    auto without_roles = [](const std::string &policy) {
        return policy.substr(0, policy.find("[roles]"));
    };
    p = StartProxy(without_roles(Policy(sim_ + "/ark.pem", "warn")), &port, &api);
    ASSERT_NE(p, nullptr);
    MakeCert("warn-admitted", "--measurement " + kBad, "", api);
    size_t before = BackendConnections();
    r = Connect("warn-admitted", "postgres", port);
    EXPECT_EQ(r.out, "admitted\n") << r.out;
    EXPECT_EQ(BackendConnections(), before + 1);
    {
        NewestDecision d(api); // durable before the session started
        ASSERT_NE(d.rec, nullptr);
        EXPECT_EQ(Hex(d.rec->measurement), kBad);
        EXPECT_EQ(d.rec->verdict, ATLS__VERDICT__VERDICT_WARNED);
        ASSERT_EQ(d.rec->n_failed_checks, 1u);
        EXPECT_STREQ(d.rec->failed_checks[0]->code, "MEASUREMENT_NOT_ALLOWED");
        EXPECT_NE(std::string(d.rec->failed_checks[0]->detail).find("not in policy"),
                  std::string::npos);
        EXPECT_EQ(d.rec->n_sections_disabled, 0u);
    }
    std::string overview = Sh("curl -s 'http://127.0.0.1:" + std::to_string(api) +
                              "/api/v1/stats/overview?format=json'")
                               .out;
    EXPECT_NE(overview.find("\"warned\":\"1\""), std::string::npos) << overview;
    delete p;

    p = StartProxy(without_roles(Policy(sim_ + "/ark.pem", "disabled")), &port, &api);
    ASSERT_NE(p, nullptr);
    MakeCert("disabled", "--measurement " + kBad, "", api);
    r = Connect("disabled", "postgres", port);
    EXPECT_EQ(r.out, "admitted\n") << r.out;
    {
        NewestDecision d(api);
        ASSERT_NE(d.rec, nullptr);
        EXPECT_EQ(Hex(d.rec->measurement), kBad);
        EXPECT_EQ(d.rec->verdict, ATLS__VERDICT__VERDICT_ALLOWED);
        EXPECT_EQ(d.rec->n_failed_checks, 0u);
        ASSERT_EQ(d.rec->n_sections_disabled, 1u);
        EXPECT_STREQ(d.rec->sections_disabled[0], "measurement");
    }
    delete p;
}

TEST_F(AttestTest, ReuseWindowLetsOneCertificateOpenAPool) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem", "strict", 60), &port, &api);
    ASSERT_NE(p, nullptr);
    MakeCert("pool", "--measurement " + kGood, "", api);
    std::string cs = "host=127.0.0.1 port=" + std::to_string(port) + " sslmode=require sslcert=" +
                     (*dir_ / "pool.crt") + " sslkey=" + (*dir_ / "pool.key") +
                     " user=postgres dbname=postgres";
    CmdResult first = Sh("psql -X -At '" + cs + "' -c 'select 1'");
    ASSERT_EQ(first.status, 0) << first.out;
    CmdResult init = Sh("pgbench -i -s 1 -q '" + cs + "'", 120);
    ASSERT_EQ(init.status, 0) << init.out;
    CmdResult run = Sh("pgbench -c 8 -j 2 -T 2 -S '" + cs + "'", 60);
    EXPECT_EQ(run.status, 0) << run.out;
    EXPECT_NE(run.out.find("number of failed transactions: 0"), std::string::npos) << run.out;
    delete p;
}

// reuse_window_s > ttl_s: after the nonce's TTL its consumed slot may be reclaimed by a new issue,
// and the nonce table then says UNKNOWN. Connections of the pool must still be admitted on the
// cached verdict until the window closes. A 16-slot table makes the reclaim certain: 16 fresh
// nonces take every slot.
TEST_F(AttestTest, ReuseWindowOutlivesTheNonceTtlAndItsReclaimedSlot) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem", "strict", 60, 2), &port, &api,
                          "[audit]\ndir = audit\n", "nonce_capacity = 16\n");
    ASSERT_NE(p, nullptr);
    MakeCert("churn", "--measurement " + kGood, "", api);
    CmdResult first = Connect("churn", "postgres", port);
    ASSERT_EQ(first.out, "admitted\n") << first.out;
    std::this_thread::sleep_for(std::chrono::seconds(3)); // ttl_s = 2
    // Four nonces from each of four addresses: past 3/4 full one address gets only its share
    // (4 of a 16-slot table).
    std::string urls;
    for (int i = 0; i < 4; i++) {
        urls += " http://127.0.0.1:" + std::to_string(api) + "/api/v1/nonce";
    }
    std::string churned;
    for (int a = 1; a <= 4; a++) {
        churned += Sh("curl -s --interface 127.0.1." + std::to_string(a) +
                          " -o /dev/null -w '%{http_code}\\n'" + urls,
                      60)
                       .out;
    }
    EXPECT_EQ(Count(churned, "200\n"), 16u) << churned; // every slot now holds a new nonce
    CmdResult full = Sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                        std::to_string(api) + "/api/v1/nonce");
    EXPECT_EQ(full.out, "503") << "the table should be full of live nonces";
    size_t before = BackendConnections();
    CmdResult again = Connect("churn", "postgres", port);
    EXPECT_EQ(again.out, "admitted\n") << again.out;
    EXPECT_EQ(BackendConnections(), before + 1);
    // Fail closed: the window admits only the key and evidence it remembered.
    MakeCert("churn-unissued", "--measurement " + kGood, std::string(64, '7'));
    CmdResult unknown = Connect("churn-unissued", "postgres", port);
    EXPECT_NE(unknown.status, 0);
    EXPECT_NE(unknown.out.find("attestation denied: NONCE_UNKNOWN"), std::string::npos)
        << unknown.out;
    delete p;
}

// A reuse is admitted on the cached verdict without verifying the chain again, so the cache
// must not outlive the chain's validity: with reuse_window_s = 60 and a VCEK that expires 6 s
// from now, a connection after the VCEK's end is no longer admitted on the cached verdict; its
// nonce, consumed by the first one, is then refused (found by a review, 2026-12-07 night:
// pooled connections were admitted for the whole window).
TEST_F(AttestTest, ReuseEndsWhenTheVcekChainExpires) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem", "strict", 60, 60), &port, &api);
    ASSERT_NE(p, nullptr);
    auto t0 = std::chrono::steady_clock::now();
    MakeCert("short-vcek", "--measurement " + kGood + " --sim-vcek-validity 6", "", api);
    CmdResult first = Connect("short-vcek", "postgres", port);
    ASSERT_EQ(first.out, "admitted\n") << first.out;
    CmdResult pooled = Connect("short-vcek", "postgres", port);
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << "too slow";
    EXPECT_EQ(pooled.out, "admitted\n") << pooled.out; // within both: the cached verdict
    EXPECT_EQ(e2e::Metric(api, "atls_attestations_reused_total"), 1);
    std::this_thread::sleep_until(t0 + std::chrono::seconds(8));
    CmdResult late = Connect("short-vcek", "postgres", port);
    EXPECT_NE(late.status, 0) << late.out;
    EXPECT_NE(late.out.find("attestation denied: NONCE_REPLAYED"), std::string::npos) << late.out;
    EXPECT_EQ(e2e::Metric(api, "atls_attestations_reused_total"), 1);
    delete p;
}

TEST_F(AttestTest, SighupReloadsPolicyAndClosesSessionsItNowDenies) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem"), &port, &api);
    ASSERT_NE(p, nullptr);
    std::string policy_path = p->log_path().substr(0, p->log_path().rfind('/')) + "/policy.ini";
    auto open_session = [&](const std::string &name, const std::string &m,
                            const std::string &user, RawClient *c) {
        MakeCert(name, "--measurement " + m, "", api);
        ASSERT_EQ(TlsAs(c, name, port), "");
        ASSERT_EQ(c->Startup(user, "postgres"), "");
    };
    RawClient keep, lose;
    open_session("hup-keep", kGood, "postgres", &keep);
    // kOther may only log in as "reporting"; the database has no such role, so give the
    // session a policy that maps kOther to postgres first.
    std::string widened = Policy(sim_ + "/ark.pem");
    widened.replace(widened.find(kOther + " = reporting"), kOther.size() + 12,
                    kOther + " = postgres");
    WriteFile(policy_path, widened);
    p->Signal(SIGHUP);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    open_session("hup-lose", kOther, "postgres", &lose);
    EXPECT_EQ(lose.Query("select 'before'"), "before");

    // A broken file keeps the current policy.
    WriteFile(policy_path, "[policy]\nversion = broken\n[nope]\n");
    p->Signal(SIGHUP);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_NE(ReadFile(p->log_path()).find("policy reload failed, keeping the current policy"),
              std::string::npos);
    EXPECT_EQ(lose.Query("select 'still'"), "still");

    // Remove kOther from the allow list: its live session is closed with the reason.
    std::string narrowed = Policy(sim_ + "/ark.pem");
    narrowed.replace(narrowed.find("\nallow = " + kOther), 9 + kOther.size(), "");
    narrowed.replace(narrowed.find("version = e2e-1"), 15, "version = e2e-2");
    WriteFile(policy_path, narrowed);
    p->Signal(SIGHUP);
    char t = 0;
    std::string body;
    bool got = lose.RecvTlsMessage(&t, &body, 5000);
    ASSERT_TRUE(got);
    EXPECT_EQ(t, 'E');
    std::string e = ParseError(body);
    EXPECT_EQ(e.substr(0, 5), "28000") << e;
    EXPECT_NE(e.find("attestation revoked by policy e2e-2"), std::string::npos) << e;
    EXPECT_NE(e.find("not in policy"), std::string::npos) << e;
    EXPECT_EQ(keep.Query("select 'kept'"), "kept");
    delete p;
}

// A reload that revokes a session while a large result streams to it. pgwire allows an
// ErrorResponse only between messages: the client gets whole messages, then the ErrorResponse
// as the last one (the revoke came between messages) or just the close (it came mid-message);
// never an ErrorResponse inside a DataRow, and no backend bytes after it.
TEST_F(AttestTest, SighupRevokingAStreamingSessionNeverSplitsAMessage) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem"), &port, &api);
    ASSERT_NE(p, nullptr);
    std::string policy_path = p->log_path().substr(0, p->log_path().rfind('/')) + "/policy.ini";
    MakeCert("stream", "--measurement " + kGood, "", api);
    RawClient c;
    ASSERT_EQ(TlsAs(&c, "stream", port), "");
    ASSERT_EQ(c.Startup("postgres", "postgres"), "");
    ASSERT_TRUE(c.SendTls(QueryMessage("select repeat('x', 1000000) from generate_series(1, 64)")));
    char t = 0;
    std::string body;
    for (int i = 0; i < 5; i++) { // RowDescription and the first rows
        ASSERT_TRUE(c.RecvTlsMessage(&t, &body));
    }
    // Nothing is read meanwhile: the gateway's buffers towards the client fill mid-result.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::string narrowed = Policy(sim_ + "/ark.pem");
    narrowed.replace(narrowed.find("\nallow = " + kGood), 9 + kGood.size(), "");
    narrowed.replace(narrowed.find("version = e2e-1"), 15, "version = e2e-2");
    WriteFile(policy_path, narrowed);
    p->Signal(SIGHUP);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::string types;
    for (int i = 0; i < 100; i++) {
        t = 0;
        bool ok = c.RecvTlsMessage(&t, &body, 5000);
        if (t != 0) {
            types += t;
        }
        if (!ok) {
            break;
        }
    }
    for (char ch : types) {
        EXPECT_NE(std::string("DE").find(ch), std::string::npos)
            << "message type " << (int)(unsigned char)ch << " after " << types.size()
            << " messages: the stream was cut inside a message";
    }
    size_t e = types.find('E');
    if (e != std::string::npos) {
        EXPECT_EQ(e, types.size() - 1) << "backend bytes followed the ErrorResponse";
    }
    EXPECT_LT(types.size(), 64u) << "the revoked session got its whole result";
    delete p;
}

// A reload re-checks every attested session that was admitted under the old policy, whatever
// its state: one that finished its TLS handshake but has not sent its StartupMessage yet is
// denied when it does (the backend never sees it), and one whose backend connect is still in
// flight is closed with the reason and its connect abandoned.
TEST_F(AttestTest, SighupRechecksSessionsThatHaveNotReachedForwardYet) {
    std::string policy = Policy(sim_ + "/ark.pem");
    std::string narrowed = WithVersion(Without(policy, kGood), "e2e-2");
    {
        int port = 0, api = 0;
        std::unique_ptr<Proxy> p(StartProxy(policy, &port, &api));
        ASSERT_NE(p, nullptr);
        MakeCert("hup-startup", "--measurement " + kGood, "", api);
        RawClient c;
        ASSERT_EQ(TlsAs(&c, "hup-startup", port), "");
        // The client's side of the handshake ends before the gateway has read its Finished:
        // wait until the gateway verified the evidence (the session is in STARTUP then).
        for (int i = 0; i < 100 && Metric("atls_attestation_verifications_total", api) < 1; i++) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        ASSERT_EQ(Metric("atls_attestation_verifications_total", api), 1);
        ASSERT_TRUE(Reload(p.get(), narrowed, "e2e-2"));
        size_t before = BackendConnections();
        std::string e = c.Startup("postgres", "postgres");
        EXPECT_EQ(e.substr(0, 5), "28000") << e;
        EXPECT_NE(e.find("attestation denied: MEASUREMENT_NOT_ALLOWED: revoked by policy e2e-2"),
                  std::string::npos)
            << e;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        EXPECT_EQ(BackendConnections(), before) << "a revoked session reached the database";
    }
    {
        Blackhole hole;
        ASSERT_TRUE(hole.ok());
        int port = 0, api = 0;
        std::string backend = "servers = 127.0.0.1:" + std::to_string(hole.port()) +
                              "\nconnect_timeout_ms = 30000\n" + kNoHealthChecks;
        std::unique_ptr<Proxy> p(
            StartProxy(policy, &port, &api, "[audit]\ndir = audit\n", "", backend));
        ASSERT_NE(p, nullptr);
        MakeCert("hup-connecting", "--measurement " + kGood, "", api);
        RawClient c;
        ASSERT_EQ(TlsAs(&c, "hup-connecting", port), "");
        ASSERT_TRUE(c.SendTls(StartupMessage("postgres", "postgres")));
        // Admitted (its decision record is durable): the backend connect is now in flight.
        bool admitted = false;
        for (int i = 0; i < 100 && !admitted; i++) {
            std::string active =
                Sh("curl -s 'http://127.0.0.1:" + std::to_string(api) +
                   "/api/v1/clients/active?format=json'")
                    .out;
            admitted = active.find("\"conn_id\"") != std::string::npos;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        ASSERT_TRUE(admitted);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        ASSERT_TRUE(Reload(p.get(), narrowed, "e2e-2"));
        char t = 0;
        std::string body;
        ASSERT_TRUE(c.RecvTlsMessage(&t, &body, 5000)) << "the revoked session got no answer";
        EXPECT_EQ(t, 'E');
        std::string e = ParseError(body);
        EXPECT_EQ(e.substr(0, 5), "28000") << e;
        EXPECT_NE(e.find("attestation revoked by policy e2e-2: MEASUREMENT_NOT_ALLOWED"),
                  std::string::npos)
            << e;
        EXPECT_TRUE(c.IsClosedByPeer(5000));
        // The abandoned connect never completes: SYN retries come 1 s and 3 s after the first.
        EXPECT_FALSE(hole.AnotherConnectionArrives(3500))
            << "a revoked session reached the backend";
    }
}

// A reload that changes [chain] verifies the evidence of every live session again: a session
// whose evidence still chains (here: only vcek_dir changed) continues, one whose root is no
// longer trusted is closed with CHAIN_INVALID.
// A session past its handshake but before its StartupMessage whose evidence no longer chains
// after a reload is denied with CHAIN_INVALID, and its record keeps what the policy found at the
// handshake (here a warn-mode MEASUREMENT_NOT_ALLOWED) besides the new failure.
TEST_F(AttestTest, SighupRevokingAStartingSessionKeepsItsHandshakeFindings) {
    std::string policy = Policy(sim_ + "/ark.pem", "warn");
    policy = policy.substr(0, policy.find("[roles]"));
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(policy, &port, &api));
    ASSERT_NE(p, nullptr);
    MakeCert("hup-findings", "--measurement " + kBad, "", api);
    RawClient c;
    ASSERT_EQ(TlsAs(&c, "hup-findings", port), "");
    for (int i = 0; i < 100 && Metric("atls_attestation_verifications_total", api) < 1; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(Metric("atls_attestation_verifications_total", api), 1);
    std::string other_roots = WithVersion(policy, "e2e-2");
    other_roots.replace(other_roots.find(sim_ + "/ark.pem"), sim_.size() + 8,
                        other_sim_ + "/ark.pem");
    ASSERT_TRUE(Reload(p.get(), other_roots, "e2e-2"));
    std::string e = c.Startup("postgres", "postgres");
    EXPECT_NE(e.find("CHAIN_INVALID"), std::string::npos) << e;
    // The denial is recorded as the client is told; the API lists it once it is durable.
    for (int i = 0; i < 100 && NewestDecision(api).rec == nullptr; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    NewestDecision d(api);
    ASSERT_NE(d.rec, nullptr);
    EXPECT_EQ(d.rec->verdict, ATLS__VERDICT__VERDICT_DENIED);
    std::string codes;
    for (size_t i = 0; i < d.rec->n_failed_checks; i++) {
        codes += std::string(d.rec->failed_checks[i]->code) + " ";
    }
    EXPECT_EQ(codes, "MEASUREMENT_NOT_ALLOWED CHAIN_INVALID ");
}

TEST_F(AttestTest, SighupWithOtherRootsVerifiesLiveSessionsAgain) {
    int port = 0, api = 0;
    std::string policy = Policy(sim_ + "/ark.pem");
    std::unique_ptr<Proxy> p(StartProxy(policy, &port, &api));
    ASSERT_NE(p, nullptr);
    MakeCert("hup-roots", "--measurement " + kGood, "", api);
    RawClient c;
    ASSERT_EQ(TlsAs(&c, "hup-roots", port), "");
    ASSERT_EQ(c.Startup("postgres", "postgres"), "");
    EXPECT_EQ(c.Query("select 'before'"), "before");

    std::string vcek_dir = *dir_ / "empty-vcek";
    Sh("mkdir -p " + vcek_dir);
    std::string same_roots = WithVersion(policy, "e2e-2");
    same_roots.replace(same_roots.find("[chain]\n"), 8, "[chain]\nvcek_dir = " + vcek_dir + "\n");
    ASSERT_TRUE(Reload(p.get(), same_roots, "e2e-2"));
    EXPECT_TRUE(WaitForLog(p.get(), "(evidence verified again)", 2));
    EXPECT_EQ(c.Query("select 'still'"), "still");

    std::string other_roots = WithVersion(policy, "e2e-3");
    other_roots.replace(other_roots.find(sim_ + "/ark.pem"), sim_.size() + 8,
                        other_sim_ + "/ark.pem");
    ASSERT_TRUE(Reload(p.get(), other_roots, "e2e-3"));
    char t = 0;
    std::string body;
    ASSERT_TRUE(c.RecvTlsMessage(&t, &body, 5000)) << "the session was not closed";
    EXPECT_EQ(t, 'E');
    std::string e = ParseError(body);
    EXPECT_EQ(e.substr(0, 5), "28000") << e;
    EXPECT_NE(e.find("attestation revoked by policy e2e-3: CHAIN_INVALID"), std::string::npos)
        << e;
}

// A roots file rewritten in place (same path, other roots) is a change of trust anchors like a
// new path: at the reload live sessions are verified again and revoked when their evidence no
// longer chains, new clients of the old roots are refused and those of the new ones admitted.
// A reload that changes nothing in [chain] and keeps the file as it is verifies nothing again.
TEST_F(AttestTest, SighupWithTheRootsFileRewrittenInPlaceTrustsOnlyTheNewRoots) {
    int port = 0, api = 0;
    std::string roots = *dir_ / "inplace-roots.pem";
    ASSERT_EQ(Sh("cp " + sim_ + "/ark.pem " + roots).status, 0);
    std::string policy = Policy(roots);
    std::unique_ptr<Proxy> p(StartProxy(policy, &port, &api));
    ASSERT_NE(p, nullptr);
    MakeCert("inplace-live", "--measurement " + kGood, "", api);
    RawClient c;
    ASSERT_EQ(TlsAs(&c, "inplace-live", port), "");
    ASSERT_EQ(c.Startup("postgres", "postgres"), "");
    EXPECT_EQ(c.Query("select 'before'"), "before");

    ASSERT_TRUE(Reload(p.get(), WithVersion(policy, "e2e-2"), "e2e-2"));
    EXPECT_EQ(c.Query("select 'same roots'"), "same roots");
    EXPECT_EQ(Count(ReadFile(p->log_path()), "(evidence verified again)"), 0u);

    ASSERT_EQ(Sh("cp " + other_sim_ + "/ark.pem " + roots).status, 0);
    ASSERT_TRUE(Reload(p.get(), WithVersion(policy, "e2e-3"), "e2e-3"));
    EXPECT_TRUE(WaitForLog(p.get(), "(evidence verified again)", 2));
    char t = 0;
    std::string body;
    ASSERT_TRUE(c.RecvTlsMessage(&t, &body, 5000)) << "the session was not closed";
    EXPECT_EQ(t, 'E');
    std::string e = ParseError(body);
    EXPECT_NE(e.find("attestation revoked by policy e2e-3: CHAIN_INVALID"), std::string::npos)
        << e;
    MakeCert("inplace-old", "--measurement " + kGood, "", api);
    CmdResult old_root = Connect("inplace-old", "postgres", port);
    EXPECT_NE(old_root.status, 0) << old_root.out;
    EXPECT_NE(old_root.out.find("CHAIN_INVALID"), std::string::npos) << old_root.out;
    MakeCert("inplace-new", "--measurement " + kGood, "", api, other_sim_);
    EXPECT_EQ(Connect("inplace-new", "postgres", port).out, "admitted\n");
}

// Replaced policies are freed once no worker reads them, so reloads never run out: more than the
// CORE_POLICY_RETIRED_MAX (64) the gateway can hold at once, each one adopted by both workers.
TEST_F(AttestTest, SeventyReloadsAreAllAdopted) {
    int port = 0, api = 0;
    std::string policy = Policy(sim_ + "/ark.pem");
    std::unique_ptr<Proxy> p(StartProxy(policy, &port, &api));
    ASSERT_NE(p, nullptr);
    for (int i = 1; i <= 70; i++) {
        std::string v = "reload-" + std::to_string(i);
        ASSERT_TRUE(Reload(p.get(), WithVersion(policy, v), v)) << "reload " << i << " not adopted";
    }
    EXPECT_EQ(ReadFile(p->log_path()).find("reload refused"), std::string::npos);
    std::string overview = Sh("curl -s 'http://127.0.0.1:" + std::to_string(api) +
                              "/api/v1/stats/overview?format=json'")
                               .out;
    EXPECT_NE(overview.find("\"policy_version\":\"reload-70\""), std::string::npos) << overview;
    MakeCert("reloaded", "--measurement " + kGood, "", api);
    CmdResult r = Connect("reloaded", "postgres", port);
    EXPECT_EQ(r.out, "admitted\n") << r.out;
}

TEST_F(AttestTest, NonceApiRateLimitsOneAddress) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem"), &port, &api);
    ASSERT_NE(p, nullptr);
    // 150 requests on one keep-alive connection: the burst (64) passes, then 429s appear.
    std::string urls;
    for (int i = 0; i < 150; i++) {
        urls += " http://127.0.0.1:" + std::to_string(api) + "/api/v1/nonce";
    }
    CmdResult r = Sh("curl -s -o /dev/null -w '%{http_code}\\n'" + urls, 60);
    size_t ok = 0, limited = 0;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        ok += line == "200";
        limited += line == "429";
    }
    EXPECT_GE(ok, 64u) << r.out;
    EXPECT_GT(limited, 0u) << r.out;
    EXPECT_EQ(ok + limited, 150u) << r.out;
    delete p;
}

// atls_nonces_live counts nonces issued and not yet expired: ten nonces with a TTL of 1 s are
// gone from it two seconds later, though nobody used them.
TEST_F(AttestTest, LiveNonceGaugeFallsWhenNoncesExpire) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem", "strict", 0, 1), &port, &api);
    ASSERT_NE(p, nullptr);
    long long before = e2e::Metric(api, "atls_nonces_live");
    std::string urls;
    for (int i = 0; i < 10; i++) {
        urls += " http://127.0.0.1:" + std::to_string(api) + "/api/v1/nonce";
    }
    Sh("curl -s -o /dev/null" + urls);
    EXPECT_EQ(e2e::Metric(api, "atls_nonces_live"), before + 10);
    std::this_thread::sleep_for(std::chrono::milliseconds(2200));
    EXPECT_EQ(e2e::WaitMetric(api, "atls_nonces_live", 0, 3), 0) << "expired nonces still counted";
    delete p;
}

// The API's connections (256) cannot all be held by one address: 300 idle connections from
// 127.0.0.1 keep at most 32, and another client (127.0.0.2) still gets its nonce at once.
TEST_F(AttestTest, OneAddressCannotHoldEveryApiConnection) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem"), &port, &api);
    ASSERT_NE(p, nullptr);
    std::vector<int> held;
    for (int i = 0; i < 300; i++) {
        int fd = ConnectTcp(api);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(send(fd, "G", 1, MSG_NOSIGNAL), 1); // a request that never finishes
        held.push_back(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CmdResult other = Sh("curl -s --max-time 3 --interface 127.0.0.2 -o /dev/null -w '%{http_code}' "
                         "http://127.0.0.1:" + std::to_string(api) + "/api/v1/nonce");
    EXPECT_EQ(other.out, "200") << "another client was locked out of the nonce API";
    size_t open = 0;
    for (int fd : held) {
        pollfd pf{fd, POLLIN, 0};
        char b;
        open += poll(&pf, 1, 0) == 0 || recv(fd, &b, 1, MSG_DONTWAIT) > 0 ? 1 : 0;
        close(fd);
    }
    EXPECT_LE(open, 32u) << "connections the API kept from one address";
    delete p;
}

// DNS rebinding: a page from a name the attacker controls, re-resolved to the API's address,
// reaches the API with that name as Host. Such requests get 421 with the reason, on every path
// (the dashboard too); IP literals, localhost and the names in [api] allow_hosts are served.
TEST_F(AttestTest, ApiRefusesHostNamesItWasNotGiven) {
    int port = 0, api = 0;
    Proxy *p = StartProxy(Policy(sim_ + "/ark.pem"), &port, &api,
                          "allow_hosts = gw-1.internal, Gw-2.Internal\n[audit]\ndir = audit\n");
    ASSERT_NE(p, nullptr);
    const std::string a = std::to_string(api);
    // Code of GET `path` with the request sent to `name`, resolved to 127.0.0.1 (as a rebinding
    // resolver would).
    auto code = [&](const std::string &name, const std::string &path) {
        return Sh("curl -s -o /dev/null -w '%{http_code}' --resolve '" + name + ":" + a +
                  ":127.0.0.1' 'http://" + name + ":" + a + path + "'")
            .out;
    };
    for (const char *path : {"/", "/api/v1/nonce", "/api/v1/attestations", "/metrics", "/healthz",
                             "/api/v1/stats/overview"}) {
        EXPECT_EQ(code("rebind.example", path), "421") << path;
    }
    EXPECT_EQ(code("gw-1.internal.evil.example", "/api/v1/nonce"), "421");
    EXPECT_EQ(code("internal", "/api/v1/nonce"), "421");
    CmdResult body = Sh("curl -s --resolve 'rebind.example:" + a +
                        ":127.0.0.1' 'http://rebind.example:" + a + "/api/v1/nonce'");
    EXPECT_NE(body.out.find("[api] allow_hosts"), std::string::npos) << body.out;
    EXPECT_EQ(body.out.find("nonce\":\""), std::string::npos) << body.out;
    // Served: IP literals, localhost, the listed names (case and one trailing dot ignored).
    EXPECT_EQ(code("localhost", "/api/v1/nonce"), "200");
    EXPECT_EQ(code("gw-1.internal", "/api/v1/nonce"), "200");
    EXPECT_EQ(code("GW-2.internal.", "/"), "200");
    EXPECT_EQ(Sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" + a + "/").out, "200");
    for (const char *host : {"127.0.0.1", "[::1]:8081", "LocalHost.", "10.1.2.3:1"}) {
        EXPECT_EQ(Sh("curl -s -o /dev/null -w '%{http_code}' -H 'Host: " + std::string(host) +
                     "' http://127.0.0.1:" + a + "/api/v1/nonce")
                      .out,
                  "200")
            << host;
    }
    for (const char *host : {"[::1", "[::1]x", "::1", "[rebind.example]", "a:1:2"}) {
        EXPECT_EQ(Sh("curl -s -o /dev/null -w '%{http_code}' -H 'Host: " + std::string(host) +
                     "' http://127.0.0.1:" + a + "/api/v1/nonce")
                      .out,
                  "421")
            << host;
    }
    delete p;
}
