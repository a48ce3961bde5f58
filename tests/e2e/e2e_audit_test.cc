// End-to-end: the audit trail and the stats API. Real attested connections (psql and raw
// clients with simulated-provider certificates) through the real proxy write real RocksDB
// records; the test reads them back through the HTTP API in both encodings (protobuf decoded
// with the generated code), through atlsctl, and after kill -9.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <thread>

#include <rocksdb/c.h>

#include "api.pb-c.h"
#include "attest_fixture.h"
#include "audit.pb-c.h"
#include "core_base.h"
#include "proto.h"
#include "store.h"

namespace {

std::string Get(int api, const std::string &path, const std::string &extra = "") {
    return Sh("curl -s " + extra + " 'http://127.0.0.1:" + std::to_string(api) + path + "'").out;
}

int Status(int api, const std::string &path, const std::string &extra = "") {
    return std::stoi(Sh("curl -s -o /dev/null -w '%{http_code}' " + extra + " 'http://127.0.0.1:" +
                        std::to_string(api) + path + "'")
                         .out);
}

// The protobuf body of `path` (default encoding) as bytes.
std::string GetProto(int api, const std::string &path) {
    TempDir d;
    std::string f = d / "body.pb";
    CmdResult r = Sh("curl -s -o " + f + " -w '%{content_type}' 'http://127.0.0.1:" +
                     std::to_string(api) + path + "'");
    EXPECT_EQ(r.out, "application/x-protobuf") << path;
    return ReadFile(f);
}

std::string Hex(const ProtobufCBinaryData &b) {
    static const char *d = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < b.len; i++) {
        s += d[b.data[i] >> 4];
        s += d[b.data[i] & 15];
    }
    return s;
}

// Wait until `pred` holds (records become visible once durable), up to 5 s.
template <class F> bool Eventually(F pred) {
    for (int i = 0; i < 100; i++) {
        if (pred()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

struct Records {
    Atls__AttestationList *list = nullptr;
    ~Records() {
        if (list != nullptr) {
            atls__attestation_list__free_unpacked(list, nullptr);
        }
    }
};

bool Fetch(int api, const std::string &query, Records *out) {
    std::string body = GetProto(api, "/api/v1/attestations" + query);
    out->list = atls__attestation_list__unpack(nullptr, body.size(),
                                               reinterpret_cast<const uint8_t *>(body.data()));
    return out->list != nullptr;
}

// TamperRecord flips one byte in the middle of the stored record named by `key_hex` (the key
// printed by `atlsctl audit list`), as an attacker with write access to the files would, or
// with `garble` makes its first bytes no protobuf at all (a damaged disk). Returns "" or what
// failed.
std::string TamperRecord(const std::string &dir, const std::string &key_hex, bool garble = false) {
    std::string key;
    for (size_t i = 0; i + 1 < key_hex.size(); i += 2) {
        key += static_cast<char>(std::stoi(key_hex.substr(i, 2), nullptr, 16));
    }
    char *err = nullptr;
    rocksdb_options_t *opts = rocksdb_options_create();
    size_t ncf = 0;
    char **names = rocksdb_list_column_families(opts, dir.c_str(), &ncf, &err);
    if (err != nullptr) {
        std::string e = err;
        rocksdb_free(err);
        rocksdb_options_destroy(opts);
        return e;
    }
    std::vector<const rocksdb_options_t *> cf_opts(ncf, opts);
    std::vector<rocksdb_column_family_handle_t *> cfs(ncf);
    rocksdb_t *db = rocksdb_open_column_families(opts, dir.c_str(), static_cast<int>(ncf),
                                                 const_cast<const char **>(names), cf_opts.data(),
                                                 cfs.data(), &err);
    std::string result;
    if (err != nullptr) {
        result = err;
        rocksdb_free(err);
    } else {
        size_t i_default = 0;
        for (size_t i = 0; i < ncf; i++) {
            if (std::string(names[i]) == "default") {
                i_default = i;
            }
        }
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        size_t vlen = 0;
        char *v = rocksdb_get_cf(db, ro, cfs[i_default], key.data(), key.size(), &vlen, &err);
        if (v == nullptr) {
            result = err != nullptr ? err : "record not found";
        } else {
            if (garble) {
                memset(v, 0xff, vlen < 8 ? vlen : 8); // field 0x1fffffff of wire type 7: invalid
            } else {
                v[vlen / 2] ^= 0x01;
            }
            rocksdb_put_cf(db, wo, cfs[i_default], key.data(), key.size(), v, vlen, &err);
            if (err != nullptr) {
                result = err;
            }
            rocksdb_free(v);
        }
        rocksdb_readoptions_destroy(ro);
        rocksdb_writeoptions_destroy(wo);
        for (auto *cf : cfs) {
            rocksdb_column_family_handle_destroy(cf);
        }
        rocksdb_close(db);
    }
    rocksdb_list_column_families_destroy(names, ncf);
    rocksdb_options_destroy(opts);
    return result;
}

} // namespace

class AuditTest : public AttestTest {
  protected:
    // Assert the client with certificate `cert` is denied by the proxy at `port`.
    static void ExpectDeniedAt(int port, const std::string &cert) {
        CmdResult r = Connect(cert, "postgres", port);
        EXPECT_NE(r.status, 0) << r.out;
        EXPECT_NE(r.out.find("attestation denied"), std::string::npos) << r.out;
    }
    // Open `live`, an admitted session as postgres with a fresh certificate `cert` of the allowed
    // measurement, through the proxy at `port` (nonce from `api`). Empty, or what went wrong.
    static std::string OpenLive(RawClient *live, const std::string &cert, int port, int api) {
        MakeCert(cert, "--measurement " + kGood, "", api);
        std::string e = TlsAs(live, cert, port);
        return e.empty() ? live->Startup("postgres", "postgres") : e;
    }
};

TEST_F(AuditTest, RealConnectionsAppearInOrderWithTheirEvidenceInBothEncodings) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    MakeCert("au-good", "--measurement " + kGood, "", api);
    CmdResult ok = Connect("au-good", "postgres", port);
    ASSERT_EQ(ok.status, 0) << ok.out;
    MakeCert("au-bad", "--measurement " + kBad, "", api);
    CmdResult bad = Connect("au-bad", "postgres", port);
    ASSERT_NE(bad.status, 0);

    Records r;
    ASSERT_TRUE(Eventually([&] {
        Records t;
        return Fetch(api, "", &t) && t.list->n_records >= 3;
    }));
    ASSERT_TRUE(Fetch(api, "", &r));
    ASSERT_EQ(r.list->n_records, 3u);
    // Newest first: the denial, then the admitted session's disconnect, then its decision.
    Atls__AuditRecord *denied = r.list->records[0], *disc = r.list->records[1],
                      *admit = r.list->records[2];
    EXPECT_EQ(denied->kind, ATLS__AUDIT_KIND__AUDIT_KIND_DECISION);
    EXPECT_EQ(denied->verdict, ATLS__VERDICT__VERDICT_DENIED);
    EXPECT_EQ(Hex(denied->measurement), kBad);
    ASSERT_GE(denied->n_failed_checks, 1u);
    EXPECT_STREQ(denied->failed_checks[0]->code, "MEASUREMENT_NOT_ALLOWED");
    EXPECT_NE(std::string(denied->reason).find("attestation denied: MEASUREMENT_NOT_ALLOWED"),
              std::string::npos)
        << denied->reason;
    EXPECT_EQ(denied->report.len, 1184u);

    EXPECT_EQ(admit->kind, ATLS__AUDIT_KIND__AUDIT_KIND_DECISION);
    EXPECT_EQ(admit->verdict, ATLS__VERDICT__VERDICT_ALLOWED);
    EXPECT_EQ(Hex(admit->measurement), kGood);
    EXPECT_EQ(admit->report.len, 1184u);
    EXPECT_EQ(admit->chip_id.len, 64u);
    EXPECT_EQ(admit->vcek_sha256.len, 32u);
    EXPECT_EQ(admit->spki_sha256.len, 32u);
    EXPECT_EQ(admit->nonce.len, 32u);
    EXPECT_EQ(admit->guest_svn, 2u);
    ASSERT_NE(admit->reported_tcb, nullptr);
    EXPECT_GE(admit->reported_tcb->snp, 8u);
    EXPECT_STREQ(admit->policy_version, "e2e-1");
    EXPECT_STREQ(admit->db_user, "postgres");
    EXPECT_STREQ(admit->db_name, "postgres");
    EXPECT_STREQ(admit->node_id, "e2e-attest");
    EXPECT_STREQ(admit->client_addr, "127.0.0.1");
    EXPECT_STREQ(admit->tls_version, "TLSv1.3");
    EXPECT_EQ(admit->n_failed_checks, 0u);

    EXPECT_EQ(disc->kind, ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT);
    EXPECT_EQ(disc->conn_id, admit->conn_id);
    EXPECT_EQ(disc->decision_seq, admit->seq);
    EXPECT_GT(disc->bytes_client_to_backend, 0u);
    EXPECT_GT(disc->bytes_backend_to_client, 0u);
    EXPECT_GT(disc->duration_ns, 0u);
    EXPECT_STRNE(disc->close_reason, "");
    // The chain: consecutive global positions, each naming the one before.
    EXPECT_EQ(disc->global_seq, admit->global_seq + 1);
    EXPECT_EQ(denied->global_seq, disc->global_seq + 1);
    EXPECT_EQ(denied->prev_sha256.len, 32u);
    EXPECT_LT(admit->time_ns, disc->time_ns);
    EXPECT_LE(disc->time_ns, denied->time_ns);

    // JSON: the same records, same fields, same order.
    std::string json = Get(api, "/api/v1/attestations?format=json");
    std::regex seq_re("\"global_seq\":\"([0-9]+)\"");
    std::vector<uint64_t> seqs;
    for (auto it = std::sregex_iterator(json.begin(), json.end(), seq_re);
         it != std::sregex_iterator(); ++it) {
        seqs.push_back(std::stoull((*it)[1]));
    }
    EXPECT_EQ(seqs, (std::vector<uint64_t>{denied->global_seq, disc->global_seq,
                                           admit->global_seq}))
        << json;
    EXPECT_NE(json.find("\"verdict\":\"VERDICT_DENIED\""), std::string::npos);
    EXPECT_NE(json.find("\"measurement\":\"" + kGood + "\""), std::string::npos);
    EXPECT_NE(json.find("\"report\":\"" + Hex(admit->report) + "\""), std::string::npos);
    EXPECT_EQ(Get(api, "/api/v1/attestations", "-H 'Accept: application/json'"), json);

    // atlsctl reads the same trail through the API and from the database.
    std::string url = "http://127.0.0.1:" + std::to_string(api);
    std::string db = p->log_path().substr(0, p->log_path().rfind('/')) + "/audit";
    CmdResult vu = Sh(Atlsctl() + " audit verify --url " + url);
    EXPECT_EQ(vu.status, 0) << vu.out;
    EXPECT_NE(vu.out.find("3 records"), std::string::npos) << vu.out;
    CmdResult lu = Sh(Atlsctl() + " audit list --url " + url);
    EXPECT_EQ(lu.status, 0) << lu.out;
    std::string admit_key = lu.out.substr(lu.out.rfind('\n', lu.out.size() - 2) + 1, 40);
    EXPECT_NE(lu.out.find("VERDICT_DENIED"), std::string::npos) << lu.out;
    CmdResult lj = Sh(Atlsctl() + " audit list --url " + url + " --json");
    EXPECT_EQ(lj.status, 0) << lj.out;
    EXPECT_EQ(lj.out, json); // the API's own JSON page, passed through
    CmdResult su = Sh(Atlsctl() + " audit show --url " + url + " --json " + admit_key);
    EXPECT_EQ(su.status, 0) << su.out;
    EXPECT_NE(su.out.find("\"global_seq\":\"" + std::to_string(admit->global_seq) + "\""),
              std::string::npos)
        << su.out;
    CmdResult vd = Sh(Atlsctl() + " audit verify --db " + db);
    EXPECT_EQ(vd.status, 0) << vd.out;

    // Alter one byte of the admitted session's record: verify names that record.
    ASSERT_EQ(p->Stop(SIGTERM, 20), 0);
    std::string tamper = TamperRecord(db, admit_key);
    ASSERT_EQ(tamper, "") << tamper;
    CmdResult bad_v = Sh(Atlsctl() + " audit verify --db " + db);
    EXPECT_EQ(bad_v.status, 1) << bad_v.out;
    EXPECT_NE(bad_v.out.find("ALTERED"), std::string::npos) << bad_v.out;
    EXPECT_NE(bad_v.out.find(admit_key), std::string::npos) << bad_v.out;
}

// A stored record that no longer decodes (a damaged disk) is left out of the pages whose range
// holds it, which say so (`unreadable`), and the rest of the page is served: it failed the whole
// page with 500 before (found by a review of the API, 2026-12-07 night). `audit verify` still
// names the record, through the API as from the database.
TEST_F(AuditTest, AnUndecodableRecordIsLeftOutAndCountedNotA500) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    for (int i = 0; i < 3; i++) {
        ExpectDeniedAt(port, MakeCert("ur-" + std::to_string(i), "--measurement " + kBad, "", api));
    }
    ASSERT_TRUE(Eventually([&] {
        Records t;
        return Fetch(api, "?limit=10", &t) && t.list->n_records == 3;
    }));
    std::string url = "http://127.0.0.1:" + std::to_string(api);
    CmdResult lu = Sh(Atlsctl() + " audit list --url " + url);
    ASSERT_EQ(lu.status, 0) << lu.out;
    size_t second = lu.out.find('\n', lu.out.find('\n') + 1) + 1; // the middle record's line
    std::string key = lu.out.substr(second, 40);
    std::string db = p->log_path().substr(0, p->log_path().rfind('/')) + "/audit";
    ASSERT_EQ(p->Stop(SIGTERM, 20), 0);
    ASSERT_EQ(TamperRecord(db, key, true), "");
    p.reset(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api, "[audit]\ndir = " + db + "\n"));
    ASSERT_NE(p, nullptr);
    Records page;
    ASSERT_TRUE(Fetch(api, "?limit=10", &page));
    EXPECT_EQ(page.list->n_records, 2u);
    EXPECT_EQ(page.list->unreadable, 1u);
    std::string json = Get(api, "/api/v1/attestations?format=json");
    EXPECT_NE(json.find("\"unreadable\":1"), std::string::npos) << json.substr(0, 300);
    std::string denied = GetProto(api, "/api/v1/clients/denied");
    Atls__DeniedClients *dc = atls__denied_clients__unpack(
        nullptr, denied.size(), reinterpret_cast<const uint8_t *>(denied.data()));
    ASSERT_NE(dc, nullptr);
    EXPECT_EQ(dc->n_records, 2u);
    EXPECT_EQ(dc->unreadable, 1u);
    atls__denied_clients__free_unpacked(dc, nullptr);
    url = "http://127.0.0.1:" + std::to_string(api);
    CmdResult lu2 = Sh(Atlsctl() + " audit list --url " + url);
    EXPECT_EQ(lu2.status, 1) << lu2.out; // it lists the other two, and says what it left out
    EXPECT_NE(lu2.out.find("left out 1 stored record"), std::string::npos) << lu2.out;
    CmdResult vu = Sh(Atlsctl() + " audit verify --url " + url);
    EXPECT_EQ(vu.status, 1) << vu.out; // not taken for retention
    EXPECT_NE(vu.out.find("BROKEN (CORRUPT)"), std::string::npos) << vu.out;
    ASSERT_EQ(p->Stop(SIGTERM, 20), 0);
    CmdResult vd = Sh(Atlsctl() + " audit verify --db " + db);
    EXPECT_EQ(vd.status, 1) << vd.out;
    EXPECT_NE(vd.out.find(key), std::string::npos) << vd.out;
}

TEST_F(AuditTest, PaginationSinceAndCursorWalkEveryRecordOnce) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    uint64_t t0 = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    for (int i = 0; i < 5; i++) { // five denials: five records
        ExpectDeniedAt(port, MakeCert("pg-" + std::to_string(i), "--measurement " + kBad, "", api));
    }
    ASSERT_TRUE(Eventually([&] {
        Records t;
        return Fetch(api, "?limit=10", &t) && t.list->n_records == 5;
    }));
    std::vector<uint64_t> seen;
    std::string cursor;
    int pages = 0;
    do {
        Records r;
        ASSERT_TRUE(Fetch(api, "?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor), &r));
        ASSERT_LE(r.list->n_records, 2u);
        for (size_t i = 0; i < r.list->n_records; i++) {
            seen.push_back(r.list->records[i]->global_seq);
        }
        cursor = r.list->next_cursor;
        pages++;
    } while (!cursor.empty() && pages < 10);
    EXPECT_EQ(seen, (std::vector<uint64_t>{5, 4, 3, 2, 1}));
    EXPECT_EQ(pages, 3);

    Records all, future, rfc;
    ASSERT_TRUE(Fetch(api, "?since=" + std::to_string(t0 - 1), &all));
    EXPECT_EQ(all.list->n_records, 5u);
    ASSERT_TRUE(Fetch(api, "?since=" + std::to_string(t0 + 3600), &future));
    EXPECT_EQ(future.list->n_records, 0u);
    ASSERT_TRUE(Fetch(api, "?since=2001-01-01T00:00:00Z", &rfc));
    EXPECT_EQ(rfc.list->n_records, 5u);

    Records recent;
    std::string body = GetProto(api, "/api/v1/attestations/recent?limit=2");
    recent.list = atls__attestation_list__unpack(nullptr, body.size(),
                                                 reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(recent.list, nullptr);
    ASSERT_EQ(recent.list->n_records, 2u);
    EXPECT_EQ(recent.list->records[0]->global_seq, 5u);
}

TEST_F(AuditTest, BadParametersAnswer400WithAReason) {
    const std::string base = "/api/v1/attestations";
    for (const char *q : {"?limit=0", "?limit=abc", "?limit=1001", "?limit=-1", "?since=yesterday",
                          "?since=18446744074", "?since=2600-01-01T00:00:00Z",
                          "?since=2026-13-01T00:00:00Z", "?since=2026-01-01T00:00:00+02:00",
                          "?cursor=zz", "?cursor=" "0123", "?bogus=1", "?format=xml",
                          // found by a review of the API (2026-12-07 night): a name without a
                          // value was taken as absent, and a day the month lacks rolled over
                          "?limit", "?since", "?cursor", "?limit&format=json",
                          "?since=2026-02-31T00:00:00Z", "?since=2025-02-29T00:00:00Z",
                          "?since=2026-04-31T12:00:00Z"}) {
        EXPECT_EQ(Status(api_, base + q), 400) << q;
    }
    EXPECT_EQ(Status(api_, base + "?since=2024-02-29T00:00:00Z"), 200); // a leap day
    EXPECT_EQ(Status(api_, base + "?since=2026-12-31T23:59:60Z"), 200); // a leap second
    std::string why = Get(api_, base + "?limit=abc&format=json");
    EXPECT_NE(why.find("\"status\":400"), std::string::npos) << why;
    EXPECT_NE(why.find("limit must be an integer in 1..1000"), std::string::npos) << why;
    EXPECT_NE(Get(api_, base + "?bogus=1&format=json").find("unknown query parameter 'bogus'"),
              std::string::npos);
    EXPECT_EQ(Status(api_, "/api/v1/clients/denied?limit=0"), 400);
    EXPECT_EQ(Status(api_, "/api/v1/stats/overview?limit=5"), 400);
    EXPECT_EQ(Status(api_, "/api/v1/nope"), 404);
    EXPECT_EQ(Status(api_, "/api/v1/attestations", "-X POST"), 405);
    EXPECT_EQ(Status(api_, "/api/v1/attestations", "-X DELETE"), 405);
    // Oversized requests are refused before the handler: a 40 KB header, a 40 KB URL.
    EXPECT_GE(Status(api_, "/api/v1/attestations", "-H 'X-Big: " + std::string(40000, 'a') + "'"),
              400);
    EXPECT_GE(Status(api_, "/api/v1/attestations?limit=" + std::string(40000, '1')), 400);
    // And the API still answers afterwards.
    EXPECT_EQ(Status(api_, "/api/v1/stats/overview"), 200);
}

// Every request gets an HTTP answer, never a dropped connection: an unknown path with a query
// (404), a request with a body (405 for other methods, 413 for GET; the answer waits for the
// body to be read), and a 405 names the methods (Allow). A HEAD of the nonce endpoint would
// issue a nonce nobody receives: 405 (found by a review of the API, 2026-12-07 night: curl got
// "Empty reply from server" for the first three, and HEADs filled the nonce table).
TEST_F(AuditTest, EveryRequestGetsAnAnswerAndHeadIssuesNoNonce) {
    EXPECT_EQ(Status(api_, "/nope?x=1"), 404);
    EXPECT_EQ(Status(api_, "/api/v1/nope?format=json&limit=3"), 404);
    EXPECT_EQ(Status(api_, "/nope?format=xml"), 400);
    EXPECT_EQ(Status(api_, "/api/v1/nonce", "-X POST -d abc"), 405);
    EXPECT_EQ(Status(api_, "/api/v1/stats/overview", "-X GET -d abc"), 413);
    EXPECT_EQ(Status(api_, "/api/v1/stats/overview",
                     "-X PUT --data-binary " + std::string(1, '@') + "/proc/self/exe"),
              405);
    std::string headers =
        Sh("curl -s -D - -o /dev/null -X DELETE 'http://127.0.0.1:" + std::to_string(api_) +
           "/api/v1/attestations'")
            .out;
    EXPECT_NE(headers.find("Allow: GET, HEAD"), std::string::npos) << headers;
    long long live = e2e::Metric(api_, "atls_nonces_live");
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(Status(api_, "/api/v1/nonce", "-I"), 405);
    }
    headers = Sh("curl -s -I 'http://127.0.0.1:" + std::to_string(api_) + "/api/v1/nonce'").out;
    EXPECT_NE(headers.find("Allow: GET\r\n"), std::string::npos) << headers;
    EXPECT_EQ(e2e::Metric(api_, "atls_nonces_live"), live);
    EXPECT_EQ(Status(api_, "/api/v1/stats/overview", "-I"), 200);
    EXPECT_EQ(Status(api_, "/api/v1/nonce"), 200);
}

// Answers queued for clients that do not read them are bounded (64 MiB all together): past
// that a large answer is refused with 503, small ones are still given, and the room comes back
// when those clients go. Found by a review of the API (2026-12-07 night): 256 unread pages of
// 1,000 JSON records held ~750 MB in the gateway's own process.
TEST_F(AuditTest, UnreadLargeAnswersAreBoundedAndSmallOnesStillServed) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    MakeCert("held", "--measurement " + kGood, std::string(64, 'd')); // a nonce never issued
    for (int i = 0; i < 1000; i++) {
        RawClient c; // each handshake is denied and recorded with its evidence
        ASSERT_EQ(TlsAs(&c, "held", port), "");
    }
    const std::string page = "/api/v1/attestations?limit=1000&format=json";
    std::string one;
    ASSERT_TRUE(Eventually([&] {
        one = Get(api, page);
        return Count(one, "\"global_seq\"") >= 1000;
    })) << Count(one, "\"global_seq\"");
    ASSERT_GT(one.size(), 16384u);
    // Enough clients asking for the page and never reading (a 4 KiB receive buffer) to hold
    // more than the bound, at most 30 from one address (the API allows 32 per address).
    int n = (int)(64u * 1024u * 1024u / one.size()) + 2;
    std::vector<int> fds;
    const std::string rq = "GET " + page + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i / 30));
        ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&src), sizeof(src)), 0);
        sockaddr_in dst{};
        dst.sin_family = AF_INET;
        dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        dst.sin_port = htons((uint16_t)api);
        ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&dst), sizeof(dst)), 0);
        ASSERT_EQ(send(fd, rq.data(), rq.size(), MSG_NOSIGNAL), (ssize_t)rq.size());
    }
    EXPECT_TRUE(Eventually([&] { return Status(api, page) == 503; }))
        << n << " unread pages of " << one.size() << " bytes";
    EXPECT_EQ(Status(api, "/api/v1/stats/overview"), 200);
    EXPECT_EQ(Status(api, "/api/v1/attestations?limit=1&format=json"), 200);
    for (int fd : fds) {
        close(fd);
    }
    EXPECT_TRUE(Eventually([&] { return Status(api, page) == 200; }));
}

// After SIGTERM a worker without sessions stops while another drains its own: /clients/active
// answers at once (a stopped worker holds no session) and lists the live one. Found by a review
// of the API (2026-12-07 night): each request waited 1 s for every stopped worker, and a /readyz
// behind it as long, just when a load balancer watches it.
TEST_F(AuditTest, ActiveClientsAnswersAtOnceWhileAWorkerHasStopped) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    RawClient live;
    ASSERT_EQ(OpenLive(&live, "drain-live", port, api), "");
    p->Signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500)); // the idle worker stops
    for (int i = 0; i < 3; i++) {
        auto t0 = std::chrono::steady_clock::now();
        std::string body = Get(api, "/api/v1/clients/active?format=json");
        double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_LT(took, 0.5) << "waited for a stopped worker";
        EXPECT_NE(body.find("\"db_user\":\"postgres\""), std::string::npos) << body;
    }
    EXPECT_EQ(live.Query("select 'still here'"), "still here");
    live.SendTls(std::string("X\0\0\0\4", 5)); // Terminate: the drain ends
    EXPECT_EQ(p->Stop(0, 15), 0);
}

// A StartupMessage whose user or database name is not UTF-8 is refused before the backend with
// the reason (CockroachDB's identifiers are UTF-8), and its record shows the name with the
// invalid bytes as \xNN: audit records and API answers (JSON and protobuf strings) are always
// UTF-8. A valid non-ASCII name passes the parser (the policy's role map then refuses it).
TEST_F(AuditTest, NamesThatAreNotUtf8AreRefusedAndRecordedEscaped) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    // Startup as `user`/`db` on a new attested connection (its own nonce): "" or "SQLSTATE
    // message".
    auto startup = [&](const std::string &user, const std::string &db) {
        MakeCert("au-utf8", "--measurement " + kGood, "", api);
        RawClient c;
        EXPECT_EQ(TlsAs(&c, "au-utf8", port), "");
        return c.Startup(user, db);
    };
    size_t backend_before = BackendConnections();
    EXPECT_EQ(startup("bad\xff" "name", "postgres"), "08P01 user name is not valid UTF-8");
    EXPECT_EQ(startup("postgres", "db\xc3(\xed\xa0\x80"),
              "08P01 database name is not valid UTF-8");
    EXPECT_EQ(BackendConnections(), backend_before) << "a refused name reached the backend";
    std::string pg = startup("caf\xc3\xa9", "postgres"); // valid: on to the role check
    EXPECT_NE(pg.find("28000"), std::string::npos) << pg;
    EXPECT_NE(pg.find("caf\xc3\xa9"), std::string::npos) << pg;

    Records r;
    ASSERT_TRUE(Eventually([&] {
        Records t;
        return Fetch(api, "", &t) && t.list->n_records >= 3;
    }));
    ASSERT_TRUE(Fetch(api, "", &r));
    std::multiset<std::string> users, dbs, reasons;
    for (size_t i = 0; i < r.list->n_records; i++) {
        const Atls__AuditRecord *rec = r.list->records[i];
        users.insert(rec->db_user);
        dbs.insert(rec->db_name);
        std::string user = rec->db_user;
        if (user != "postgres" || std::string(rec->db_name) != "postgres") {
            reasons.insert(user + " " + rec->reason);
        }
        EXPECT_TRUE(core_base_utf8_valid(reinterpret_cast<const uint8_t *>(rec->db_user),
                                     strlen(rec->db_user)));
        EXPECT_TRUE(core_base_utf8_valid(reinterpret_cast<const uint8_t *>(rec->db_name),
                                     strlen(rec->db_name)));
    }
    EXPECT_GE(users.count("bad\\xffname"), 1u);
    EXPECT_GE(dbs.count("db\\xc3(\\xed\\xa0\\x80"), 1u);
    EXPECT_GE(users.count("caf\xc3\xa9"), 1u);
    // Each refusal is recorded with the reason the client was given.
    EXPECT_EQ(reasons.count("bad\\xffname user name is not valid UTF-8"), 1u);
    EXPECT_EQ(reasons.count("postgres database name is not valid UTF-8"), 1u);
    for (const std::string &why : reasons) {
        EXPECT_EQ(why.find("closed before startup"), std::string::npos) << why;
    }
    std::string json = Get(api, "/api/v1/attestations?format=json");
    EXPECT_TRUE(core_base_utf8_valid(reinterpret_cast<const uint8_t *>(json.data()), json.size()));
    EXPECT_NE(json.find("\"db_user\":\"bad\\\\xffname\""), std::string::npos) << json;
}

// A connection admitted on a reused attestation (reuse_window_s) is recorded with the findings
// and verdict of the policy, as the first one was: under [measurement] mode = warn both records
// are WARNED with MEASUREMENT_NOT_ALLOWED, and both count as warned.
TEST_F(AuditTest, ReusedAttestationIsRecordedWithTheSameFindings) {
    int port = 0, api = 0;
    std::string policy = Policy(sim_ + "/ark.pem", "warn", 60);
    policy = policy.substr(0, policy.find("[roles]")); // kBad may log in
    std::unique_ptr<Proxy> p(StartProxy(policy, &port, &api));
    ASSERT_NE(p, nullptr);
    MakeCert("au-reuse", "--measurement " + kBad, "", api);
    for (int i = 0; i < 2; i++) {
        CmdResult r = Connect("au-reuse", "postgres", port);
        ASSERT_EQ(r.out, "admitted\n") << r.out;
    }
    Records r;
    ASSERT_TRUE(Eventually([&] {
        Records t;
        return Fetch(api, "", &t) && t.list->n_records >= 4;
    }));
    ASSERT_TRUE(Fetch(api, "", &r));
    int decisions = 0, reused = 0;
    for (size_t i = 0; i < r.list->n_records; i++) {
        const Atls__AuditRecord *rec = r.list->records[i];
        if (rec->kind != ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
            continue;
        }
        decisions++;
        reused += rec->attestation_reused ? 1 : 0;
        EXPECT_EQ(rec->verdict, ATLS__VERDICT__VERDICT_WARNED) << "reused: " << rec->attestation_reused;
        ASSERT_EQ(rec->n_failed_checks, 1u) << "reused: " << rec->attestation_reused;
        EXPECT_STREQ(rec->failed_checks[0]->code, "MEASUREMENT_NOT_ALLOWED");
    }
    EXPECT_EQ(decisions, 2);
    EXPECT_EQ(reused, 1);
    std::string metrics = Sh("curl -s http://127.0.0.1:" + std::to_string(api) + "/metrics").out;
    EXPECT_NE(metrics.find("atls_decisions_total{result=\"warned\"} 2"), std::string::npos)
        << metrics;
}

// /api/v1/stats/measurements lists at most 4096 measurements and says when more are on record:
// a trail holding 4101 (written here through the store, as a gateway would have) is answered
// with 4096 and truncated = true. The one measurement with an admitted decision is among them,
// though it is the greatest: denied handshakes can record any measurement a client makes up, and
// by bytes alone 4100 of them pushed it out (found by a review of the API, 2026-12-07 night).
TEST_F(AuditTest, MeasurementStatsSayWhenTheyAreTruncatedAndKeepAdmittedOnes) {
    std::string dir = *dir_ / "many-measurements";
    {
        struct store_config cfg;
        store_config_defaults(&cfg);
        snprintf(cfg.dir, sizeof(cfg.dir), "%s", dir.c_str());
        struct store *s = nullptr;
        char err[256];
        ASSERT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
        uint8_t meas[48] = {0};
        uint64_t last = 0;
        for (uint32_t i = 0; i < 4100; i++) {
            Atls__AuditRecord r = ATLS__AUDIT_RECORD__INIT;
            r.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DECISION;
            r.time_ns = 1700000000000000000ull + i;
            r.verdict = ATLS__VERDICT__VERDICT_DENIED;
            meas[0] = static_cast<uint8_t>(i >> 8);
            meas[1] = static_cast<uint8_t>(i);
            r.measurement = {sizeof(meas), meas};
            int rc;
            while ((rc = store_audit_push(s, &last, 0, &r)) == -EAGAIN) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            ASSERT_EQ(rc, 0);
        }
        Atls__AuditRecord r = ATLS__AUDIT_RECORD__INIT;
        r.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DECISION;
        r.time_ns = 1700000000000000000ull + 4100;
        r.verdict = ATLS__VERDICT__VERDICT_ALLOWED;
        memset(meas, 0xff, sizeof(meas));
        r.measurement = {sizeof(meas), meas};
        int rc;
        while ((rc = store_audit_push(s, &last, 0, &r)) == -EAGAIN) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ASSERT_EQ(rc, 0);
        store_close(s); // writes everything pushed
    }
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(
        StartProxy(Policy(sim_ + "/ark.pem"), &port, &api, "[audit]\ndir = " + dir + "\n"));
    ASSERT_NE(p, nullptr);
    std::string body = GetProto(api, "/api/v1/stats/measurements");
    Atls__MeasurementStats *ms = atls__measurement_stats__unpack(
        nullptr, body.size(), reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(ms, nullptr);
    EXPECT_TRUE(ms->truncated);
    ASSERT_EQ(ms->n_measurements, 4096u);
    EXPECT_EQ(ms->total, 4096u);
    // The admitted one is listed (last: the answer is in measurement order), with its count.
    EXPECT_EQ(Hex(ms->measurements[4095]->measurement), std::string(96, 'f'));
    EXPECT_EQ(ms->measurements[4095]->allowed, 1u);
    for (size_t i = 1; i < ms->n_measurements; i++) {
        ASSERT_LT(Hex(ms->measurements[i - 1]->measurement), Hex(ms->measurements[i]->measurement));
    }
    atls__measurement_stats__free_unpacked(ms, nullptr);
    std::string json = Get(api, "/api/v1/stats/measurements?format=json");
    EXPECT_NE(json.find("\"truncated\":true"), std::string::npos) << json.substr(0, 200);
}

// /api/v1/clients/active?limit=N lists N of more live sessions and says so (truncated).
TEST_F(AuditTest, ActiveClientsSaysWhenItListsFewerThanAreLive) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    RawClient first, second;
    ASSERT_EQ(OpenLive(&first, "ac-1", port, api), "");
    ASSERT_EQ(OpenLive(&second, "ac-2", port, api), "");
    std::string body = GetProto(api, "/api/v1/clients/active?limit=1");
    Atls__ActiveClients *ac = atls__active_clients__unpack(
        nullptr, body.size(), reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(ac, nullptr);
    EXPECT_EQ(ac->n_clients, 1u);
    EXPECT_TRUE(ac->truncated);
    EXPECT_FALSE(ac->partial);
    atls__active_clients__free_unpacked(ac, nullptr);
    EXPECT_NE(Get(api, "/api/v1/clients/active?limit=1&format=json").find("\"truncated\":true"),
              std::string::npos);
    for (const char *all : {"/api/v1/clients/active?limit=2", "/api/v1/clients/active"}) {
        body = GetProto(api, all);
        ac = atls__active_clients__unpack(nullptr, body.size(),
                                          reinterpret_cast<const uint8_t *>(body.data()));
        ASSERT_NE(ac, nullptr) << all;
        EXPECT_EQ(ac->n_clients, 2u) << all;
        EXPECT_FALSE(ac->truncated) << all;
        atls__active_clients__free_unpacked(ac, nullptr);
    }
}

TEST_F(AuditTest, StatsEndpointsReflectLiveAndDeniedClients) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api));
    ASSERT_NE(p, nullptr);
    RawClient live;
    ASSERT_EQ(OpenLive(&live, "st-live", port, api), "");
    EXPECT_EQ(live.Query("select 'live'"), "live");
    ExpectDeniedAt(port, MakeCert("st-bad", "--measurement " + kBad, "", api));
    ExpectDeniedAt(port, MakeCert("st-nonce", "--measurement " + kGood, std::string(64, 'e')));

    std::string body = GetProto(api, "/api/v1/clients/active");
    Atls__ActiveClients *ac = atls__active_clients__unpack(
        nullptr, body.size(), reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(ac, nullptr);
    ASSERT_EQ(ac->n_clients, 1u);
    EXPECT_EQ(Hex(ac->clients[0]->measurement), kGood);
    EXPECT_STREQ(ac->clients[0]->db_user, "postgres");
    EXPECT_GT(ac->clients[0]->bytes_client_to_backend, 0u);
    EXPECT_GT(ac->clients[0]->since_ns, 0u);
    EXPECT_FALSE(ac->truncated);
    EXPECT_FALSE(ac->partial);
    atls__active_clients__free_unpacked(ac, nullptr);
    EXPECT_NE(Get(api, "/api/v1/clients/active?format=json").find("\"db_user\":\"postgres\""),
              std::string::npos);

    ASSERT_TRUE(Eventually([&] {
        std::string d = Get(api, "/api/v1/clients/denied?format=json");
        return d.find("NONCE_UNKNOWN") != std::string::npos &&
               d.find("MEASUREMENT_NOT_ALLOWED") != std::string::npos;
    }));
    body = GetProto(api, "/api/v1/clients/denied");
    Atls__DeniedClients *dc = atls__denied_clients__unpack(
        nullptr, body.size(), reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(dc, nullptr);
    ASSERT_EQ(dc->n_records, 2u);
    EXPECT_STREQ(dc->records[0]->failed_checks[0]->code, "NONCE_UNKNOWN");
    EXPECT_STREQ(dc->records[1]->failed_checks[0]->code, "MEASUREMENT_NOT_ALLOWED");
    atls__denied_clients__free_unpacked(dc, nullptr);

    body = GetProto(api, "/api/v1/stats/measurements");
    Atls__MeasurementStats *ms = atls__measurement_stats__unpack(
        nullptr, body.size(), reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(ms, nullptr);
    std::map<std::string, std::pair<uint64_t, uint64_t>> by; // measurement -> allowed, denied
    for (size_t i = 0; i < ms->n_measurements; i++) {
        by[Hex(ms->measurements[i]->measurement)] = {ms->measurements[i]->allowed,
                                                     ms->measurements[i]->denied};
    }
    EXPECT_FALSE(ms->truncated);
    atls__measurement_stats__free_unpacked(ms, nullptr);
    EXPECT_EQ(by[kGood], std::make_pair(uint64_t{1}, uint64_t{1})); // live + bad nonce
    EXPECT_EQ(by[kBad], std::make_pair(uint64_t{0}, uint64_t{1}));

    body = GetProto(api, "/api/v1/stats/overview");
    Atls__StatsOverview *ov = atls__stats_overview__unpack(
        nullptr, body.size(), reinterpret_cast<const uint8_t *>(body.data()));
    ASSERT_NE(ov, nullptr);
    EXPECT_EQ(ov->allowed, 1u);
    EXPECT_EQ(ov->denied, 2u);
    EXPECT_EQ(ov->workers, 2u);
    EXPECT_TRUE(ov->store_healthy);
    EXPECT_STREQ(ov->policy_version, "e2e-1");
    EXPECT_STREQ(ov->node_id, "e2e-attest");
    atls__stats_overview__free_unpacked(ov, nullptr);

    std::string m = Get(api, "/metrics");
    EXPECT_NE(m.find("atls_denials_total{reason=\"MEASUREMENT_NOT_ALLOWED\"} 1"), std::string::npos)
        << m;
    EXPECT_NE(m.find("atls_denials_total{reason=\"NONCE_UNKNOWN\"} 1"), std::string::npos);
    EXPECT_NE(m.find("atls_decisions_total{result=\"allowed\"} 1"), std::string::npos);
    EXPECT_NE(m.find("atls_handshake_seconds_count 3"), std::string::npos) << m;
    EXPECT_NE(m.find("atls_attestation_verify_seconds_bucket{le=\"+Inf\"} 3"), std::string::npos);
    EXPECT_NE(m.find("atls_audit_queue_depth 0"), std::string::npos);
    EXPECT_NE(m.find("atls_nonces_live"), std::string::npos);
    EXPECT_NE(Get(api, "/readyz?format=json").find("\"ready\":true"), std::string::npos);
    // The dashboard page: embedded, self-contained, framed by nobody.
    std::string page = Get(api, "/", "-i");
    EXPECT_NE(page.find("Content-Type: text/html"), std::string::npos) << page.substr(0, 400);
    EXPECT_NE(page.find("Content-Security-Policy: default-src 'none'"), std::string::npos);
    EXPECT_NE(page.find("frame-ancestors 'none'"), std::string::npos);
    EXPECT_NE(page.find("<html"), std::string::npos);
}

TEST_F(AuditTest, KillNineLosesNoRecordOfAnAdmittedConnection) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(
        StartProxy(Policy(sim_ + "/ark.pem", "strict", 60), &port, &api,
                   "[audit]\ndir = audit\nsync = always\n"));
    ASSERT_NE(p, nullptr);
    std::string audit_dir = p->log_path().substr(0, p->log_path().rfind('/')) + "/audit";
    // One certificate, a pool of sessions within the reuse window: each is admitted, so each
    // must have its durable decision record the moment it can run SQL.
    MakeCert("k9", "--measurement " + kGood, "", api);
    const int kSessions = 12;
    std::vector<std::unique_ptr<RawClient>> live;
    for (int i = 0; i < kSessions; i++) {
        auto c = std::make_unique<RawClient>();
        ASSERT_EQ(TlsAs(c.get(), "k9", port), "");
        ASSERT_EQ(c->Startup("postgres", "postgres"), "");
        ASSERT_EQ(c->Query("select " + std::to_string(i)), std::to_string(i));
        live.push_back(std::move(c));
    }
    ASSERT_EQ(p->Stop(SIGKILL, 10), 128 + SIGKILL);
    CmdResult list =
        Sh(Atlsctl() + " audit list --db " + audit_dir + " --limit 1000 --json");
    ASSERT_EQ(list.status, 0) << list.out;
    EXPECT_EQ(Count(list.out, "\"verdict\":\"VERDICT_ALLOWED\""), size_t{kSessions}) << list.out.substr(0, 2000);
    CmdResult v = Sh(Atlsctl() + " audit verify --db " + audit_dir);
    EXPECT_EQ(v.status, 0) << v.out;
}

TEST_F(AuditTest, FullDiskRefusesSessionsAndKeepsWhatWasWritten) {
    TempDir mnt;
    // 3 MiB: less than RocksDB preallocates for its MANIFEST (4 MiB) and WAL (1.1 x the 4 MiB
    // write buffer). Where a preallocation fits, writes go on into the reserved space after the
    // disk is full (durably, so still within the promise) until it is used up; on this small
    // disk neither fits and the first write after the fill fails, as on any exhausted disk.
    if (mount("tmpfs", mnt.path().c_str(), "tmpfs", 0, "size=3m") != 0) {
        GTEST_SKIP() << "cannot mount a tmpfs to fill (needs root): " << strerror(errno);
    }
    struct Unmount {
        std::string p;
        ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
    } unmount{mnt.path()};
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api,
                                        "[audit]\ndir = " + (mnt / "audit") + "\n"));
    ASSERT_NE(p, nullptr);
    MakeCert("df-1", "--measurement " + kGood, "", api);
    ASSERT_EQ(Connect("df-1", "postgres", port).status, 0);
    // Fill the file system.
    Sh("dd if=/dev/zero of=" + (mnt / "fill") + " bs=1M count=64 2>&1");
    size_t before = BackendConnections();
    // The next admission cannot be recorded: refused (fail closed), with the reason.
    CmdResult r;
    for (int i = 0; i < 3; i++) {
        MakeCert("df-2", "--measurement " + kGood, "", api);
        r = Connect("df-2", "postgres", port);
        if (r.status != 0) {
            break;
        }
    }
    EXPECT_NE(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("audit trail"), std::string::npos) << r.out;
    EXPECT_EQ(Status(api, "/readyz"), 503);
    EXPECT_NE(Get(api, "/readyz?format=json").find("audit store failed"), std::string::npos);
    // Make room again: the store stays failed (sticky) until restart, so still refused.
    Sh("rm -f " + (mnt / "fill"));
    MakeCert("df-3", "--measurement " + kGood, "", api);
    EXPECT_NE(Connect("df-3", "postgres", port).status, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // Only the sessions recorded before the disk filled reached the database.
    EXPECT_LE(BackendConnections(), before + 1); // +1: a session admitted just before the failure
    // What was written before is intact.
    ASSERT_EQ(p->Stop(SIGTERM, 20), 0);
    CmdResult v = Sh(Atlsctl() + " audit verify --db " + (mnt / "audit"));
    EXPECT_EQ(v.status, 0) << v.out;
    CmdResult list = Sh(Atlsctl() + " audit list --db " + (mnt / "audit") + " --json");
    EXPECT_NE(list.out.find("VERDICT_ALLOWED"), std::string::npos) << list.out.substr(0, 500);
}

// The audit ring between a worker and the store holds 2 records here, while 60 denied clients
// connect at once. Every decision must be recorded (DESIGN §2: when the ring is full, new
// handshakes are refused, never decided unrecorded): each client is either denied with its
// record written, or refused before its handshake; no denial is lost.
TEST_F(AuditTest, FullAuditRingRefusesHandshakesAndLosesNoDecision) {
    int port = 0, api = 0;
    std::unique_ptr<Proxy> p(StartProxy(Policy(sim_ + "/ark.pem"), &port, &api,
                                        "[audit]\ndir = audit\nring_slots_per_worker = 2\n"));
    ASSERT_NE(p, nullptr);
    // A denied client leaves its nonce unused: one certificate serves every attempt.
    MakeCert("ring-bad", "--measurement " + kBad, "", api);
    std::string cmd = "psql -X -At 'host=127.0.0.1 port=" + std::to_string(port) +
                      " sslmode=require sslcert=" + (*dir_ / "ring-bad.crt") +
                      " sslkey=" + (*dir_ / "ring-bad.key") +
                      " user=postgres dbname=postgres connect_timeout=10' -c 'select 1'";
    std::string out = *dir_ / "ring-out";
    Sh("rm -f " + out + "; for i in $(seq 60); do (" + cmd + " >/dev/null 2>>" + out +
           ".$i; echo >>" + out + ".$i) & done; wait; cat " + out + ".* > " + out,
       120);
    std::string all = ReadFile(out);
    size_t denied = Count(all, "attestation denied");
    EXPECT_GT(denied, 0u) << all.substr(0, 2000);
    EXPECT_EQ(e2e::Metric(api, "atls_audit_lost_total"), 0) << "denial records were lost";
    long long decisions = -1;
    for (int i = 0; i < 50; i++) { // written by the store thread shortly after
        decisions = e2e::Metric(api, "atls_audit_records_written_total");
        if (decisions >= (long long)denied) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(decisions, (long long)denied) << "written records vs denied clients";
    fprintf(stderr, "denied %zu of 60, refused before the handshake %lld\n", denied,
            e2e::Metric(api, "atls_connections_refused_audit_busy_total"));
}

TEST_F(AuditTest, UnwritableAuditDirectoryStopsTheGatewayAtStart) {
    TempDir d;
    Sh("mkdir -p " + (d / "ro") + " && chmod 555 " + (d / "ro"));
    if (getuid() == 0) {
        // root ignores directory permissions: use a path under a regular file instead.
        Sh("touch " + (d / "file"));
    }
    std::string dir = getuid() == 0 ? d / "file/audit" : d / "ro/audit";
    WriteFile(d / "policy.ini", Policy(sim_ + "/ark.pem"));
    std::string ini = "[proxy]\nlisten = 127.0.0.1:" + std::to_string(FreePort()) +
                      "\n[tls]\ncert = " + certs_->server_crt + "\nkey = " + certs_->server_key +
                      "\n[attestation]\npolicy = policy.ini\n[backend]\nservers = 127.0.0.1:" +
                      std::to_string(pg_->port()) + "\n[api]\nlisten = 127.0.0.1:" +
                      std::to_string(FreePort()) + "\n[audit]\ndir = " + dir + "\n";
    WriteFile(d / "proxy.ini", ini);
    CmdResult run = Sh(ProxyBinary() + " --config " + (d / "proxy.ini") + " 2>&1");
    EXPECT_EQ(run.status, 2) << run.out;
    EXPECT_NE(run.out.find("audit"), std::string::npos) << run.out;
    CmdResult check = Sh(ProxyBinary() + " --check-config " + (d / "proxy.ini") + " 2>&1");
    EXPECT_EQ(check.status, 2) << check.out;
    EXPECT_NE(check.out.find("[audit] dir"), std::string::npos) << check.out;
}
