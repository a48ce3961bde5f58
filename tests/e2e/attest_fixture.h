// attest_fixture.h: the attested-gateway fixture shared by the attestation and audit e2e
// suites: a real PostgreSQL, a simulated AMD hierarchy made by atlsctl, a policy, the proxy, and
// helpers that make certificates and connect with psql.
#ifndef ATLS_E2E_ATTEST_FIXTURE_H
#define ATLS_E2E_ATTEST_FIXTURE_H

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.h"

using namespace e2e;

namespace attest_fixture {

const std::string kGood(96, 'a');  // allowed measurement, may log in as postgres
const std::string kOther(96, 'b'); // allowed measurement, may log in only as "reporting"
const std::string kBad(96, 'c');   // not in policy

inline std::string Atlsctl() { return std::string(ATLS_BINARY_DIR) + "/core/atlsctl"; }

inline std::string Policy(const std::string &sim_ark, const std::string &extra_measurement = "strict",
                   uint32_t reuse_s = 0, uint32_t ttl_s = 4) {
    return "[policy]\nversion = e2e-1\n[measurement]\nmode = " + extra_measurement +
           "\nallow = " + kGood + "\nallow = " + kOther +
           "\n[tcb]\nmode = strict\nmin_bootloader = 3\nmin_tee = 0\nmin_snp = 8\n"
           "min_microcode = 115\n[guest]\nmode = strict\ndebug_allowed = false\n"
           "smt_allowed = false\nmin_guest_svn = 2\n[nonce]\nrequired = true\nttl_s = " +
           std::to_string(ttl_s) + "\nreuse_window_s = " +
           std::to_string(reuse_s) + "\n[chain]\nroots = " + sim_ark + "\n[roles]\n" + kGood +
           " = postgres\n" + kOther + " = reporting\n";
}

} // namespace attest_fixture
using namespace attest_fixture;

class AttestTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        pg_ = &SharedPostgres();
        certs_ = &SharedCerts();
        dir_ = new TempDir();
        sim_ = *dir_ / "sim";
        other_sim_ = *dir_ / "other-sim";
        // Create both simulated AMD hierarchies (the second is a root the policy does not name).
        for (const std::string &d : {sim_, other_sim_}) {
            CmdResult r = Sh(Atlsctl() + " client-cert --nonce " + std::string(64, '0') +
                                 " --provider simulated --sim-dir " + d + " --out-cert " +
                                 (*dir_ / "warm.crt") + " --out-key " + (*dir_ / "warm.key"),
                             300);
            ASSERT_EQ(r.status, 0) << r.out;
        }
        proxy_ = StartProxy(Policy(sim_ + "/ark.pem"), &port_, &api_);
        ASSERT_NE(proxy_, nullptr);
    }
    static void TearDownTestSuite() {
        delete proxy_;
        delete dir_;
    }

    // The denial tests count every connection the database logs (BackendConnections): the
    // gateway's active health checks would add theirs, so these gateways run none.
    static constexpr const char *kNoHealthChecks = "health_check = off\n";

    // `audit`: the [audit] section (default: a store in the proxy's own directory);
    // `attestation`: extra [attestation] lines; `backend`: the [backend] lines (default: the
    // shared PostgreSQL, without health checks).
    static Proxy *StartProxy(const std::string &policy, int *port, int *api,
                             const std::string &audit = "[audit]\ndir = audit\n",
                             const std::string &attestation = "",
                             const std::string &backend = "") {
        static int n = 0;
        std::string sub = *dir_ / ("p" + std::to_string(n++));
        Sh("mkdir -p " + sub);
        WriteFile(sub + "/policy.ini", policy);
        *port = FreePort();
        *api = FreePort();
        std::string ini =
            "[proxy]\nnode_id = e2e-attest\nlisten = 127.0.0.1:" + std::to_string(*port) +
            "\nworkers = 2\n[tls]\ncert = " + certs_->server_crt + "\nkey = " + certs_->server_key +
            "\n[attestation]\nrequired = true\npolicy = policy.ini\n" + attestation +
            "[backend]\n" +
            (backend.empty()
                 ? "servers = 127.0.0.1:" + std::to_string(pg_->port()) + "\n" + kNoHealthChecks
                 : backend) +
            "[api]\nlisten = 127.0.0.1:" + std::to_string(*api) + "\n" + audit;
        auto *p = new Proxy();
        std::string err;
        if (!p->Start(sub, ini, &err)) {
            ADD_FAILURE() << err;
            delete p;
            return nullptr;
        }
        return p;
    }

    // A client certificate from the simulated provider. `nonce` empty: fetch one from the API.
    static std::string MakeCert(const std::string &name, const std::string &args,
                                const std::string &nonce = "", int api = 0,
                                const std::string &sim = "") {
        std::string n = nonce.empty()
                            ? "--nonce-url http://127.0.0.1:" + std::to_string(api ? api : api_)
                            : "--nonce " + nonce;
        CmdResult r = Sh(Atlsctl() + " client-cert " + n + " --provider simulated --sim-dir " +
                         (sim.empty() ? sim_ : sim) + " --svn 2 " + args + " --out-cert " +
                         (*dir_ / (name + ".crt")) + " --out-key " + (*dir_ / (name + ".key")));
        EXPECT_EQ(r.status, 0) << r.out;
        return name;
    }

    // TlsAs connects `c` to the proxy at `port` (default: the suite's) and completes the TLS
    // handshake (ALPN postgresql) with certificate `cert` from MakeCert. "" or what failed.
    static std::string TlsAs(RawClient *c, const std::string &cert, int port = 0) {
        if (!c->Connect(port ? port : port_)) {
            return "connect failed";
        }
        std::string err;
        if (!c->StartTls(*dir_ / (cert + ".crt"), *dir_ / (cert + ".key"), "postgresql", &err)) {
            return "TLS failed: " + err;
        }
        return "";
    }

    static CmdResult Connect(const std::string &cert, const std::string &user = "postgres",
                             int port = 0) {
        return Sh("psql -X -At 'host=127.0.0.1 port=" + std::to_string(port ? port : port_) +
                  " sslmode=require sslcert=" + (*dir_ / (cert + ".crt")) + " sslkey=" +
                  (*dir_ / (cert + ".key")) + " user=" + user +
                  " dbname=postgres connect_timeout=10' -c \"select 'admitted'\"");
    }

    static size_t BackendConnections() { return Count(pg_->LogText(), "connection received"); }

    // WaitForLog waits up to `timeout_ms` until `p`'s log holds `needle` at least `n` times.
    static bool WaitForLog(Proxy *p, const std::string &needle, size_t n = 1,
                           int timeout_ms = 5000) {
        for (int waited = 0; waited <= timeout_ms; waited += 50) {
            if (Count(ReadFile(p->log_path()), needle) >= n) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    // Reload writes `policy` over `p`'s policy file, sends SIGHUP and waits until both workers
    // adopted `version` (their "policy <version> adopted" log lines).
    static bool Reload(Proxy *p, const std::string &policy, const std::string &version) {
        WriteFile(p->log_path().substr(0, p->log_path().rfind('/')) + "/policy.ini", policy);
        p->Signal(SIGHUP);
        return WaitForLog(p, ": policy " + version + " adopted", 2);
    }

    // WithVersion returns `policy` with its [policy] version set to `version`.
    static std::string WithVersion(std::string policy, const std::string &version) {
        size_t at = policy.find("version = ");
        size_t end = policy.find('\n', at);
        return policy.replace(at, end - at, "version = " + version);
    }

    // Without returns `policy` with the allow line of measurement `m` removed.
    static std::string Without(std::string policy, const std::string &m) {
        return policy.replace(policy.find("\nallow = " + m), 9 + m.size(), "");
    }

    // Metric returns the value of the unlabelled Prometheus sample `name` of the proxy whose API
    // listens on `api` (default: the shared proxy's), or -1 when it is absent.
    static long long Metric(const std::string &name, int api = 0) {
        std::string m =
            Sh("curl -s http://127.0.0.1:" + std::to_string(api ? api : api_) + "/metrics").out;
        size_t at = m.find("\n" + name + " ");
        return at == std::string::npos ? -1 : std::stoll(m.substr(at + name.size() + 2));
    }

    // RawStartup connects to the proxy at `port` (default: the shared one) like psql does (direct
    // TLS, ALPN postgresql) with the client certificate `cert` and sends a StartupMessage for
    // `user`. Returns "" when admitted, else the ErrorResponse as "SQLSTATE message".
    static std::string RawStartup(const std::string &cert, const std::string &user = "postgres",
                                  int port = 0) {
        RawClient c;
        if (!c.Connect(port ? port : port_)) {
            return "connect failed";
        }
        std::string err;
        if (!c.StartTls(*dir_ / (cert + ".crt"), *dir_ / (cert + ".key"), "postgresql", &err)) {
            return "TLS failed: " + err;
        }
        return c.Startup(user, "postgres");
    }

    // Assert the denial with `code` (DESIGN.md §7): the ErrorResponse carries SQLSTATE 28000 and
    // "attestation denied: <code>", psql prints "FATAL:  attestation denied: <code>", and the
    // backend saw no connection for either. psql cannot show the SQLSTATE of a failed connection
    // (libpq has no verbosity before it is connected), so a raw pgwire client with the same
    // certificate reads it from the ErrorResponse. A denial after the nonce was consumed
    // (ROLE_NOT_ALLOWED) would be a replay the second time: `psql_cert` then names a second
    // certificate made the same way.
    static void ExpectDenied(const std::string &cert, const std::string &code,
                             const std::string &user = "postgres",
                             const std::string &psql_cert = "") {
        size_t before = BackendConnections();
        std::string e = RawStartup(cert, user);
        EXPECT_EQ(e.rfind("28000 attestation denied: " + code, 0), 0u)
            << "want SQLSTATE 28000 and " << code << ", got: " << e;
        CmdResult r = Connect(psql_cert.empty() ? cert : psql_cert, user);
        EXPECT_NE(r.status, 0) << r.out;
        EXPECT_NE(r.out.find("FATAL:  attestation denied: " + code), std::string::npos)
            << "want " << code << ", got: " << r.out;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        EXPECT_EQ(BackendConnections(), before) << "a denied session reached the database";
    }

    inline static Postgres *pg_;
    inline static Certs *certs_;
    inline static TempDir *dir_;
    inline static Proxy *proxy_;
    inline static int port_, api_;
    inline static std::string sim_, other_sim_;
};

#endif // ATLS_E2E_ATTEST_FIXTURE_H
