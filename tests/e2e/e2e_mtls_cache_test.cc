// End-to-end: the mutual-TLS verified-chain cache. A reconnecting client is accepted from the
// cache (and counted), but never past its certificate's expiry, never under a CA that a SIGHUP
// replaced, never with a certificate from another CA, and never without its private key.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/curve25519.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "harness.h"

using namespace e2e;

namespace {

const char kHits[] = "atls_client_cert_cache_hits_total";
const char kFull[] = "atls_client_cert_verifications_total";

// One worker, so that every connection meets the same cache. Each test ends with a clean stop:
// under ASan, LeakSanitizer checks the proxy at exit and a leak turns exit 0 into an abort.
struct OneWorkerProxy {
    TempDir dir;
    Proxy proxy;
    int port = 0;
    int api = 0;
    std::string client_ca; // the file [tls] client_ca names (a copy the test may replace)
};

bool StartOneWorker(OneWorkerProxy *p, const std::string &ca_file, std::string *err) {
    Certs &certs = SharedCerts();
    p->client_ca = p->dir / "client_ca.pem";
    WriteFile(p->client_ca, ReadFile(ca_file));
    p->port = FreePort();
    std::string ini =
        MtlsIni(p->port, "127.0.0.1:" + std::to_string(SharedPostgres().port()), certs);
    ini.replace(ini.find("workers = 2"), 11, "workers = 1");
    ini.replace(ini.find("client_ca = " + certs.ca), 12 + certs.ca.size(),
                "client_ca = " + p->client_ca);
    p->api = ApiPortOf(ini);
    return p->proxy.Start(p->dir.path(), ini, err);
}

// PsqlAs runs `select 1` through the gateway with the given client certificate.
CmdResult PsqlAs(int port, const std::string &crt, const std::string &key) {
    return Sh("psql -X -At 'host=127.0.0.1 port=" + std::to_string(port) +
              " sslmode=require sslcert=" + crt + " sslkey=" + key +
              " user=postgres dbname=postgres connect_timeout=10' -c 'select 1'");
}

// IssueClient writes a client certificate signed by the shared test CA, valid from a minute ago
// until `valid_s` seconds from now, with a fresh Ed25519 key, to `crt` and `key`.
bool IssueClient(long valid_s, const std::string &crt, const std::string &key) {
    Certs &certs = SharedCerts();
    bool ok = false;
    FILE *f = fopen((certs.dir + "/ca.key").c_str(), "r");
    EVP_PKEY *ca_key = f ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr) : nullptr;
    if (f) {
        fclose(f);
    }
    f = fopen(certs.ca.c_str(), "r");
    X509 *ca = f ? PEM_read_X509(f, nullptr, nullptr, nullptr) : nullptr;
    if (f) {
        fclose(f);
    }
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    EVP_PKEY *pkey = nullptr;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    uint8_t serial[8];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), nullptr);
    if (ca_key && ca && kctx && x && name && bn && EVP_PKEY_keygen_init(kctx) == 1 &&
        EVP_PKEY_keygen(kctx, &pkey) == 1 && X509_set_version(x, X509_VERSION_3) &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const uint8_t *>("short-lived"), -1, -1, 0) &&
        X509_set_subject_name(x, name) && X509_set_issuer_name(x, X509_get_subject_name(ca)) &&
        X509_gmtime_adj(X509_getm_notBefore(x), -60) &&
        X509_gmtime_adj(X509_getm_notAfter(x), valid_s) && X509_set_pubkey(x, pkey) &&
        X509_sign(x, ca_key, nullptr) > 0) {
        FILE *out = fopen(crt.c_str(), "w");
        FILE *kout = fopen(key.c_str(), "w");
        ok = out && kout && PEM_write_X509(out, x) &&
             PEM_write_PrivateKey(kout, pkey, nullptr, nullptr, 0, nullptr, nullptr);
        if (out) {
            fclose(out);
        }
        if (kout) {
            fclose(kout);
        }
        ok = ok && chmod(key.c_str(), 0600) == 0;
    }
    BN_free(bn);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(kctx);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return ok;
}

// A private key "method" that signs the CertificateVerify with a key of its own, not the one the
// certificate names: a client that holds someone else's certificate but not its key.
uint8_t g_foreign_priv[64];

enum ssl_private_key_result_t ForeignSign(SSL *, uint8_t *out, size_t *out_len, size_t max_out,
                                          uint16_t alg, const uint8_t *in, size_t in_len) {
    if (alg != SSL_SIGN_ED25519 || max_out < 64 || !ED25519_sign(out, in, in_len, g_foreign_priv)) {
        return ssl_private_key_failure;
    }
    *out_len = 64;
    return ssl_private_key_success;
}

enum ssl_private_key_result_t ForeignDecrypt(SSL *, uint8_t *, size_t *, size_t, const uint8_t *,
                                             size_t) {
    return ssl_private_key_failure;
}

enum ssl_private_key_result_t ForeignComplete(SSL *, uint8_t *, size_t *, size_t) {
    return ssl_private_key_failure;
}

const SSL_PRIVATE_KEY_METHOD kForeignKey = {ForeignSign, ForeignDecrypt, ForeignComplete};

// StartupWithoutTheKey connects by direct TLS presenting `crt` but signing with another key and
// sends a StartupMessage. Returns "admitted" when the gateway answers inside TLS, else the TLS
// error the client saw.
std::string StartupWithoutTheKey(int port, const std::string &crt) {
    uint8_t pub[32];
    ED25519_keypair(pub, g_foreign_priv);
    RawClient raw;
    if (!raw.Connect(port)) {
        return "connect failed";
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    static const uint16_t kPrefs[] = {SSL_SIGN_ED25519};
    SSL_CTX_set_verify_algorithm_prefs(ctx, kPrefs, 1);
    SSL_CTX_use_certificate_chain_file(ctx, crt.c_str());
    SSL_CTX_set_private_key_method(ctx, &kForeignKey);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, raw.fd());
    static const uint8_t kAlpn[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
    SSL_set_alpn_protos(ssl, kAlpn, sizeof(kAlpn));
    std::string result;
    std::string startup = StartupMessage("postgres", "postgres");
    char buf[64];
    if (SSL_connect(ssl) == 1 && SSL_write(ssl, startup.data(), (int)startup.size()) > 0 &&
        SSL_read(ssl, buf, sizeof(buf)) > 0) {
        result = "admitted";
    } else {
        char e[256];
        ERR_error_string_n(ERR_get_error(), e, sizeof(e));
        result = e;
    }
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return result;
}

// StartWithCachedClient starts a one-worker proxy and connects the shared client twice: its
// chain is then cached (the second connection was a hit).
void StartWithCachedClient(OneWorkerProxy *p, const Certs &certs) {
    std::string err;
    ASSERT_TRUE(StartOneWorker(p, certs.ca, &err)) << err;
    ASSERT_EQ(PsqlAs(p->port, certs.client_crt, certs.client_key).status, 0);
    ASSERT_EQ(PsqlAs(p->port, certs.client_crt, certs.client_key).status, 0);
    ASSERT_EQ(Metric(p->api, kHits), 1);
}

} // namespace

TEST(MtlsCache, ReconnectingClientIsAcceptedFromTheCacheAndCounted) {
    Certs &certs = SharedCerts();
    OneWorkerProxy p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, certs.ca, &err)) << err;
    EXPECT_EQ(Metric(p.api, kHits), 0);
    EXPECT_EQ(Metric(p.api, kFull), 0);
    for (int i = 0; i < 3; i++) {
        CmdResult r = PsqlAs(p.port, certs.client_crt, certs.client_key);
        ASSERT_EQ(r.status, 0) << r.out;
        EXPECT_EQ(r.out, "1\n");
    }
    EXPECT_EQ(Metric(p.api, kFull), 1); // the first connection verified the chain
    EXPECT_EQ(Metric(p.api, kHits), 2); // the next two found it
    EXPECT_EQ(p.proxy.Stop(SIGTERM, 15), 0);
}

TEST(MtlsCache, CertificateFromAnotherCaIsDeniedWhileAnotherIsCached) {
    Certs &certs = SharedCerts();
    OneWorkerProxy p;
    ASSERT_NO_FATAL_FAILURE(StartWithCachedClient(&p, certs)); // the client's chain is cached
    for (int i = 0; i < 2; i++) { // a second try is no hit either: denials are not cached
        CmdResult r = PsqlAs(p.port, certs.other_crt, certs.other_key);
        EXPECT_NE(r.status, 0) << r.out;
        EXPECT_NE(r.out.find("unknown ca"), std::string::npos) << r.out;
    }
    EXPECT_EQ(Metric(p.api, kHits), 1);
    EXPECT_EQ(Metric(p.api, kFull), 3);
    EXPECT_EQ(p.proxy.Stop(SIGTERM, 15), 0);
}

TEST(MtlsCache, CachedCertificateStillNeedsItsPrivateKey) {
    Certs &certs = SharedCerts();
    OneWorkerProxy p;
    ASSERT_NO_FATAL_FAILURE(StartWithCachedClient(&p, certs)); // the client's chain is cached
    std::string got = StartupWithoutTheKey(p.port, certs.client_crt);
    EXPECT_NE(got.find("DECRYPT_ERROR"), std::string::npos) << got; // bad CertificateVerify
    EXPECT_EQ(Metric(p.api, kHits), 2); // the chain was found, and still the handshake failed
    EXPECT_EQ(PsqlAs(p.port, certs.client_crt, certs.client_key).status, 0);
    EXPECT_EQ(p.proxy.Stop(SIGTERM, 15), 0);
}

TEST(MtlsCache, CachedCertificateIsDeniedOnceItExpires) {
    OneWorkerProxy p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, SharedCerts().ca, &err)) << err;
    std::string crt = p.dir / "short.crt", key = p.dir / "short.key";
    const long valid_s = 4;
    time_t issued = time(nullptr);
    ASSERT_TRUE(IssueClient(valid_s, crt, key));
    CmdResult first = PsqlAs(p.port, crt, key);
    ASSERT_EQ(first.status, 0) << first.out;
    CmdResult second = PsqlAs(p.port, crt, key);
    ASSERT_EQ(second.status, 0) << second.out;
    ASSERT_LT(time(nullptr), issued + valid_s) << "too slow to see the cached certificate valid";
    EXPECT_EQ(Metric(p.api, kHits), 1); // the second connection came from the cache
    while (time(nullptr) <= issued + valid_s) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CmdResult late = PsqlAs(p.port, crt, key);
    EXPECT_NE(late.status, 0) << late.out;
    EXPECT_NE(late.out.find("certificate expired"), std::string::npos) << late.out;
    EXPECT_EQ(Metric(p.api, kHits), 1);
    EXPECT_EQ(Metric(p.api, kFull), 2);
    // The shared certificate is unaffected.
    EXPECT_EQ(PsqlAs(p.port, SharedCerts().client_crt, SharedCerts().client_key).status, 0);
    EXPECT_EQ(p.proxy.Stop(SIGTERM, 15), 0);
}

TEST(MtlsCache, SighupWithAnotherClientCaDeniesCertificatesCachedUnderTheOldOne) {
    Certs &certs = SharedCerts();
    OneWorkerProxy p;
    ASSERT_NO_FATAL_FAILURE(StartWithCachedClient(&p, certs)); // the client's chain is cached

    WriteFile(p.client_ca, ReadFile(certs.dir + "/otherca.crt"));
    p.proxy.Signal(SIGHUP);
    // The worker has the new context once the other CA's client gets in.
    bool adopted = false;
    for (int i = 0; i < 50 && !adopted; i++) {
        adopted = PsqlAs(p.port, certs.other_crt, certs.other_key).status == 0;
        if (!adopted) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    ASSERT_TRUE(adopted) << ReadFile(p.proxy.log_path());
    long long hits = Metric(p.api, kHits);
    CmdResult r = PsqlAs(p.port, certs.client_crt, certs.client_key);
    EXPECT_NE(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("unknown ca"), std::string::npos) << r.out;
    EXPECT_EQ(Metric(p.api, kHits), hits);
    EXPECT_TRUE(p.proxy.Running());
    EXPECT_EQ(p.proxy.Stop(SIGTERM, 15), 0);
}

// A SIGHUP that replaces the client CA ends what the old CA admitted: live sessions of its
// clients get 28000 with the reason (a reload that keeps the CA ends none), and a handshake that
// began before the reload is judged by the new CA when its certificate arrives after it.
TEST(MtlsCache, SighupWithAnotherClientCaEndsSessionsAndHandshakesOfTheOldOne) {
    Certs &certs = SharedCerts();
    OneWorkerProxy p;
    std::string err;
    ASSERT_TRUE(StartOneWorker(&p, certs.ca, &err)) << err;
    RawClient live;
    ASSERT_EQ(OpenSession(&live, p.port), "");
    EXPECT_EQ(live.Query("select 'before'"), "before");
    // Wait for the worker's log line about its `n`th reload.
    auto reloaded = [&](size_t n) {
        for (int i = 0; i < 100; i++) {
            if (Count(ReadFile(p.proxy.log_path()), "TLS certificate reloaded") >= n) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    };
    p.proxy.Signal(SIGHUP); // same CA: the session goes on
    ASSERT_TRUE(reloaded(1)) << ReadFile(p.proxy.log_path());
    EXPECT_EQ(live.Query("select 'same ca'"), "same ca");

    RawClient spanning;
    ASSERT_TRUE(spanning.Connect(p.port));
    ASSERT_TRUE(spanning.BeginTls(certs.client_crt, certs.client_key, "postgresql", &err)) << err;
    ASSERT_TRUE(spanning.WaitReadable(3000)); // the server's flight: its SSL exists
    WriteFile(p.client_ca, ReadFile(certs.dir + "/otherca.crt"));
    p.proxy.Signal(SIGHUP);
    ASSERT_TRUE(reloaded(2)) << ReadFile(p.proxy.log_path());

    std::string done;
    if (spanning.FinishTls(&done)) {
        done = spanning.Startup("postgres", "postgres");
    }
    EXPECT_NE(done, "") << "a handshake begun under the old CA was admitted after the reload";

    char t = 0;
    std::string body;
    ASSERT_TRUE(live.RecvTlsMessage(&t, &body, 5000)) << "the session was not ended";
    EXPECT_EQ(t, 'E');
    std::string e = ParseError(body);
    EXPECT_EQ(e.substr(0, 5), "28000") << e;
    EXPECT_NE(e.find("session ended by the TLS reload"), std::string::npos) << e;
    EXPECT_TRUE(live.IsClosedByPeer(3000));
    EXPECT_EQ(PsqlAs(p.port, certs.other_crt, certs.other_key).status, 0);
    EXPECT_TRUE(p.proxy.Running());
    EXPECT_EQ(p.proxy.Stop(SIGTERM, 15), 0);
}
