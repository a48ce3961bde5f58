// attest_tsm_test.cc: attest/attest_tsm.c, the configfs-tsm provider, against a fake configfs
// that behaves like the kernel's (Documentation/ABI/testing/configfs-tsm-report): mkdir creates
// an entry with its attributes, every write bumps generation, inblob must be 64 bytes, outblob
// is a report for that inblob (signed by the simulated hierarchy, as the PSP would sign it) and
// auxblob is the GHCB certificate table. Plus the real configfs ops on a plain directory.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "attest_test_util.h"

using namespace attest_test;

namespace {

const char kBase[] = "/fake/sys/kernel/config/tsm/report";




// FakeConfigfs: one configfs-tsm report directory at kBase, kernel semantics as documented.
struct FakeConfigfs {
    struct Entry {
        uint64_t generation = 0;
        std::string privlevel;
        std::vector<uint8_t> inblob;
    };
    // Knobs.
    std::string provider = "sev_guest";
    uint64_t first_generation = 7; // arbitrary: a fresh entry need not start at 0
    uint32_t privlevel_floor = 0;
    bool concurrent_writer = false; // another process writes inblob while we read outblob
    int outblob_size_delta = 0;
    bool auxblob_absent = false;
    bool auxblob_empty = false;
    std::vector<uint8_t> auxblob_override;
    std::string generation_override; // served instead of the counter when set
    int mkdir_errno = 0;
    // Observations.
    std::map<std::string, Entry> entries;
    std::set<std::string> created, removed;
    std::vector<std::string> writes; // "attr=len"

    // split maps "<kBase>/<entry>[/<attr>]" to its parts; false when outside kBase.
    static bool split(const std::string &path, std::string *entry, std::string *attr) {
        std::string base = std::string(kBase) + "/";
        if (path.compare(0, base.size(), base) != 0) {
            return false;
        }
        std::string rest = path.substr(base.size());
        size_t slash = rest.find('/');
        *entry = rest.substr(0, slash);
        *attr = slash == std::string::npos ? "" : rest.substr(slash + 1);
        return !entry->empty();
    }

    // outblob is what the PSP returns for the entry's inblob: a report with REPORT_DATA = inblob
    // and VMPL = privlevel, signed by the simulated hierarchy, whose VCEK and ASK go to auxblob.
    int make_report(const Entry &e, std::vector<uint8_t> *report, std::vector<uint8_t> *aux) {
        if (e.inblob.size() != ATTEST_REPORT_DATA_BYTES) {
            return -EINVAL; // the kernel refuses outblob without a 64-byte inblob
        }
        attest_provider_config cfg;
        attest_provider_config_init(&cfg);
        snprintf(cfg.sim_dir, sizeof(cfg.sim_dir), "%s", sim_dir().c_str());
        cfg.sim.vmpl = (uint32_t)std::stoul(e.privlevel.empty() ? "0" : e.privlevel);
        const attest_provider_ops *sim = attest_provider_find("simulated");
        void *st = nullptr;
        attest_error err{};
        if (sim->open(&st, &err, &cfg) != ATTEST_OK) {
            ADD_FAILURE() << err.msg;
            return -EIO;
        }
        attest_report_out out{};
        attest_status s = sim->get_report(st, &out, &err, e.inblob.data());
        sim->close(st);
        if (s != ATTEST_OK) {
            ADD_FAILURE() << err.msg;
            return -EIO;
        }
        report->assign(out.report, out.report + ATTEST_REPORT_BYTES);
        std::vector<uint8_t> junk_ark(64, 0xAA); // a host-supplied ARK: must be ignored
        *aux = cert_table(
            {{kGuidArk, junk_ark},
             {kGuidAsk, std::vector<uint8_t>(out.ask_der, out.ask_der + out.ask_len)},
             {kGuidVcek, std::vector<uint8_t>(out.vcek_der, out.vcek_der + out.vcek_len)}});
        return 0;
    }

    int do_mkdir(const std::string &path) {
        std::string entry, attr;
        if (!split(path, &entry, &attr) || !attr.empty()) {
            return -ENOENT;
        }
        if (mkdir_errno != 0) {
            return -mkdir_errno;
        }
        if (entries.count(entry) != 0) {
            return -EEXIST;
        }
        entries[entry].generation = first_generation;
        created.insert(entry);
        return 0;
    }

    int do_rmdir(const std::string &path) {
        std::string entry, attr;
        if (!split(path, &entry, &attr) || !attr.empty() || entries.erase(entry) == 0) {
            return -ENOENT;
        }
        removed.insert(entry);
        return 0;
    }

    int do_read(const std::string &path, uint8_t *buf, size_t cap, size_t *out_len) {
        std::string entry, attr;
        if (!split(path, &entry, &attr) || entries.count(entry) == 0) {
            return -ENOENT;
        }
        Entry &e = entries[entry];
        std::vector<uint8_t> data;
        if (attr == "provider") {
            std::string v = provider + "\n";
            data.assign(v.begin(), v.end());
        } else if (attr == "generation") {
            std::string v = generation_override.empty() ? std::to_string(e.generation) + "\n"
                                                        : generation_override;
            data.assign(v.begin(), v.end());
        } else if (attr == "outblob" || attr == "auxblob") {
            if (attr == "auxblob" && auxblob_absent) {
                return -ENOENT;
            }
            std::vector<uint8_t> report, aux;
            int rc = make_report(e, &report, &aux);
            if (rc != 0) {
                return rc;
            }
            if (attr == "outblob") {
                report.resize((size_t)((long)report.size() + outblob_size_delta), 0);
                data = report;
                if (concurrent_writer) {
                    e.generation++; // someone else's inblob write lands meanwhile
                }
            } else {
                data = auxblob_empty ? std::vector<uint8_t>{}
                                     : (auxblob_override.empty() ? aux : auxblob_override);
            }
        } else {
            return attr == "inblob" || attr == "privlevel" ? -EACCES : -ENOENT; // write-only
        }
        if (data.size() > cap) {
            return -EFBIG; // the contract of attest_tsm_fs.read
        }
        if (!data.empty()) { // an empty vector's data() may be null: not for memcpy
            memcpy(buf, data.data(), data.size());
        }
        *out_len = data.size();
        return 0;
    }

    int do_write(const std::string &path, const void *data, size_t len) {
        std::string entry, attr;
        if (!split(path, &entry, &attr) || entries.count(entry) == 0) {
            return -ENOENT;
        }
        Entry &e = entries[entry];
        writes.push_back(attr + "=" + std::to_string(len));
        const char *p = (const char *)data;
        if (attr == "inblob") {
            if (len != ATTEST_REPORT_DATA_BYTES) {
                return -EINVAL; // sev_guest takes exactly 64 bytes
            }
            e.inblob.assign((const uint8_t *)p, (const uint8_t *)p + len);
        } else if (attr == "privlevel") {
            std::string v(p, len);
            if (v.empty() || v.find_first_not_of("0123456789\n") != std::string::npos ||
                std::stoul(v) > 3 || std::stoul(v) < privlevel_floor) {
                return -EINVAL;
            }
            e.privlevel = v;
        } else {
            return -EACCES; // read-only attributes
        }
        e.generation++;
        return 0;
    }
};

int fake_mkdir(void *ctx, const char *path) {
    return static_cast<FakeConfigfs *>(ctx)->do_mkdir(path);
}
int fake_rmdir(void *ctx, const char *path) {
    return static_cast<FakeConfigfs *>(ctx)->do_rmdir(path);
}
int fake_read(void *ctx, const char *path, uint8_t *buf, size_t cap, size_t *out_len) {
    return static_cast<FakeConfigfs *>(ctx)->do_read(path, buf, cap, out_len);
}
int fake_write(void *ctx, const char *path, const void *data, size_t len) {
    return static_cast<FakeConfigfs *>(ctx)->do_write(path, data, len);
}
const attest_tsm_fs kFakeFs = {fake_mkdir, fake_rmdir, fake_read, fake_write};

struct Req {
    attest_status st;
    attest_error err;
    attest_report_out out;
};

Req request(FakeConfigfs &fs, uint32_t vmpl, const uint8_t rd[64], const char *name = "atls-1-0") {
    Req r{};
    r.st = attest_tsm_request(&r.out, &r.err, &kFakeFs, &fs, kBase, name, vmpl, rd);
    return r;
}

const auto *env = ::testing::AddGlobalTestEnvironment(new SimEnv);

void fill(uint8_t rd[64], uint8_t seed) {
    for (int i = 0; i < 64; i++) {
        rd[i] = (uint8_t)(seed + i);
    }
}

} // namespace

TEST(AttestTsm, ReportForOurInblobWithCertsFromAuxblobVerifies) {
    FakeConfigfs fs;
    uint8_t rd[64];
    fill(rd, 0x40);
    Req r = request(fs, 0, rd);
    ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
    // What reached the "kernel": privlevel, then exactly 64 bytes of inblob, nothing else.
    ASSERT_EQ(fs.writes.size(), 2u);
    EXPECT_EQ(fs.writes[0], "privlevel=1");
    EXPECT_EQ(fs.writes[1], "inblob=64");
    // outblob is our report: REPORT_DATA is what we wrote.
    EXPECT_EQ(memcmp(r.out.report + ATTEST_OFF_REPORT_DATA, rd, 64), 0);
    // auxblob gave the VCEK and ASK, never the host's ARK.
    EXPECT_GT(r.out.vcek_len, 0u);
    EXPECT_GT(r.out.ask_len, 0u);
    EXPECT_NE(r.out.ask_der[0], 0xAA);
    // The entry was created and removed.
    EXPECT_EQ(fs.created, std::set<std::string>{"atls-1-0"});
    EXPECT_EQ(fs.removed, std::set<std::string>{"atls-1-0"});
    EXPECT_TRUE(fs.entries.empty());
    // The real verifier accepts it under the simulated root, with the auxblob's VCEK and ASK.
    attest_verifier_config vc{};
    snprintf(vc.roots, sizeof(vc.roots), "%s", sim_ark().c_str());
    attest_error err{};
    attest_verifier *v = attest_verifier_new(&vc, &err);
    ASSERT_NE(v, nullptr) << err.msg;
    attest_claims c{};
    EXPECT_EQ(attest_verifier_verify_report(v, &c, &err, r.out.report, ATTEST_REPORT_BYTES,
                                            r.out.vcek_der, r.out.vcek_len, r.out.ask_der,
                                            r.out.ask_len, (int64_t)time(nullptr)),
              ATTEST_OK)
        << err.msg;
    attest_verifier_free(v);
}

TEST(AttestTsm, PrivlevelBecomesVmpl) {
    FakeConfigfs fs;
    uint8_t rd[64];
    fill(rd, 1);
    Req r = request(fs, 2, rd);
    ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
    EXPECT_EQ(attest_le32(r.out.report + ATTEST_OFF_VMPL), 2u);
}

TEST(AttestTsm, PrivlevelBelowFloorIsClearError) {
    FakeConfigfs fs;
    fs.privlevel_floor = 2;
    uint8_t rd[64];
    fill(rd, 1);
    Req r = request(fs, 0, rd);
    EXPECT_EQ(r.st, ATTEST_PROVIDER_FAILED);
    EXPECT_NE(strstr(r.err.msg, "privlevel"), nullptr) << r.err.msg;
    EXPECT_TRUE(fs.entries.empty()) << "entry left behind";
}

TEST(AttestTsm, GenerationMismatchMeansConcurrentWriter) {
    FakeConfigfs fs;
    fs.concurrent_writer = true;
    uint8_t rd[64];
    fill(rd, 9);
    Req r = request(fs, 0, rd);
    EXPECT_EQ(r.st, ATTEST_PROVIDER_FAILED);
    EXPECT_NE(strstr(r.err.msg, "written concurrently"), nullptr) << r.err.msg;
    // 7 initially, 8 after privlevel (read before inblob), 10 after inblob and the other writer.
    EXPECT_NE(strstr(r.err.msg, "generation went from 8 to 10"), nullptr) << r.err.msg;
    EXPECT_NE(strstr(r.err.msg, "retry"), nullptr) << r.err.msg;
    // No report is handed out, and the entry is gone.
    attest_report_out zero{};
    EXPECT_EQ(memcmp(&r.out, &zero, sizeof(zero)), 0);
    EXPECT_TRUE(fs.entries.empty());
}

TEST(AttestTsm, UnreadableGenerationFails) {
    FakeConfigfs fs;
    fs.generation_override = "seven\n";
    uint8_t rd[64];
    fill(rd, 9);
    Req r = request(fs, 0, rd);
    EXPECT_EQ(r.st, ATTEST_PROVIDER_FAILED);
    EXPECT_NE(strstr(r.err.msg, "generation"), nullptr) << r.err.msg;
}

TEST(AttestTsm, OtherProviderIsUnavailable) {
    FakeConfigfs fs;
    fs.provider = "tdx_guest";
    uint8_t rd[64];
    fill(rd, 3);
    Req r = request(fs, 0, rd);
    EXPECT_EQ(r.st, ATTEST_PROVIDER_UNAVAILABLE);
    EXPECT_NE(strstr(r.err.msg, "'tdx_guest', not sev_guest"), nullptr) << r.err.msg;
    EXPECT_TRUE(fs.writes.empty()) << "nothing is written to a foreign provider's entry";
    EXPECT_TRUE(fs.entries.empty());
}

TEST(AttestTsm, OutblobOfWrongSizeFails) {
    for (int delta : {-1, 1, -1184}) {
        FakeConfigfs fs;
        fs.outblob_size_delta = delta;
        uint8_t rd[64];
        fill(rd, 3);
        Req r = request(fs, 0, rd);
        EXPECT_EQ(r.st, ATTEST_PROVIDER_FAILED) << delta;
        EXPECT_NE(strstr(r.err.msg, "outblob"), nullptr) << r.err.msg;
        EXPECT_TRUE(fs.entries.empty());
    }
}

TEST(AttestTsm, EmptyOrAbsentAuxblobGivesReportWithoutCerts) {
    for (bool absent : {false, true}) {
        FakeConfigfs fs;
        fs.auxblob_empty = !absent;
        fs.auxblob_absent = absent;
        uint8_t rd[64];
        fill(rd, 5);
        Req r = request(fs, 0, rd);
        ASSERT_EQ(r.st, ATTEST_OK) << r.err.msg;
        EXPECT_EQ(r.out.vcek_len, 0u);
        EXPECT_EQ(r.out.ask_len, 0u);
        EXPECT_EQ(memcmp(r.out.report + ATTEST_OFF_REPORT_DATA, rd, 64), 0);
    }
}

TEST(AttestTsm, MalformedAuxblobFails) {
    FakeConfigfs fs;
    fs.auxblob_override = cert_table({{kGuidVcek, std::vector<uint8_t>(100, 1)}});
    put_le32(&fs.auxblob_override[20], 5000); // entry points past the table
    uint8_t rd[64];
    fill(rd, 5);
    Req r = request(fs, 0, rd);
    EXPECT_EQ(r.st, ATTEST_PROVIDER_FAILED);
    EXPECT_NE(strstr(r.err.msg, "certificate table"), nullptr) << r.err.msg;
    EXPECT_TRUE(fs.entries.empty());
}

TEST(AttestTsm, EntryCreationFailureIsClear) {
    FakeConfigfs fs;
    fs.mkdir_errno = EACCES;
    uint8_t rd[64];
    fill(rd, 5);
    Req r = request(fs, 0, rd);
    EXPECT_EQ(r.st, ATTEST_PROVIDER_FAILED);
    EXPECT_NE(strstr(r.err.msg, "cannot create report entry"), nullptr) << r.err.msg;
    EXPECT_NE(strstr(r.err.msg, kBase), nullptr) << r.err.msg;
}

// The real configfs ops on a plain directory: mkdir works but no attribute appears, as when
// configfs-tsm is absent; the provider says so and leaves nothing behind.
TEST(AttestTsm, ProviderOnPlainDirectoryFailsCleanly) {
    std::string dir =
        std::string(ATLS_BINARY_DIR) + "/tests/attest/tsm-plain-" + std::to_string(getpid());
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    attest_provider_config cfg;
    attest_provider_config_init(&cfg);
    snprintf(cfg.tsm_dir, sizeof(cfg.tsm_dir), "%s", dir.c_str());
    const attest_provider_ops *tsm = attest_provider_find("tsm");
    void *st = nullptr;
    attest_error err{};
    ASSERT_EQ(tsm->open(&st, &err, &cfg), ATTEST_OK) << err.msg;
    uint8_t rd[64];
    fill(rd, 7);
    attest_report_out out{};
    EXPECT_EQ(tsm->get_report(st, &out, &err, rd), ATTEST_PROVIDER_UNAVAILABLE);
    EXPECT_NE(strstr(err.msg, "not sev_guest"), nullptr) << err.msg;
    EXPECT_NE(strstr(err.msg, "No such file"), nullptr) << err.msg;
    tsm->close(st);
    EXPECT_EQ(rmdir(dir.c_str()), 0) << "the report entry was not removed";
}

TEST(AttestTsm, RealReadTellsExactFitFromTooLong) {
    std::string path =
        std::string(ATLS_BINARY_DIR) + "/tests/attest/tsm-attr-" + std::to_string(getpid());
    std::vector<uint8_t> buf(16);
    size_t n = 0;
    for (size_t size : {(size_t)0, (size_t)15, (size_t)16, (size_t)17}) {
        FILE *f = fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        std::vector<uint8_t> data(size, 0x5A);
        if (!data.empty()) {
            fwrite(data.data(), 1, data.size(), f);
        }
        fclose(f);
        int rc = attest_tsm_fs_real.read(nullptr, path.c_str(), buf.data(), buf.size(), &n);
        if (size <= 16) {
            EXPECT_EQ(rc, 0) << size;
            EXPECT_EQ(n, size);
        } else {
            EXPECT_EQ(rc, -EFBIG) << size;
        }
    }
    fclose(fopen(path.c_str(), "wb")); // configfs attributes are written without O_TRUNC
    EXPECT_EQ(attest_tsm_fs_real.write(nullptr, path.c_str(), "12", 2), 0);
    EXPECT_EQ(attest_tsm_fs_real.read(nullptr, path.c_str(), buf.data(), buf.size(), &n), 0);
    EXPECT_EQ(std::string((const char *)buf.data(), n), "12");
    unlink(path.c_str());
    EXPECT_EQ(attest_tsm_fs_real.read(nullptr, path.c_str(), buf.data(), buf.size(), &n), -ENOENT);
    EXPECT_EQ(attest_tsm_fs_real.write(nullptr, path.c_str(), "1", 1), -ENOENT);
}
