// The build-ID index: Debian control stanzas (libapt-pkg) and the index
// file's reader on bad input. Real packages and root filesystems are in
// tests/e2e/test_index.py.
#include "agent/index/index.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "agent/index/debian.h"
#include "agent/index/package_map.h"
#include "agent/index/package_rules.h"
#include "agent/policy/parser.h"
#include "gtest/gtest.h"

namespace execmon {
namespace {

TEST(ParseControlTest, PackageVersionArchitectureAndSourceName) {
  absl::StatusOr<PackageInfo> p = ParseControl(
      "Package: libssl3\nSource: openssl (3.0.11-1~deb12u2)\n"
      "Version: 3.0.11-1~deb12u2\nArchitecture: amd64\n"
      "Description: Secure Sockets Layer toolkit\n continued line\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "libssl3");
  EXPECT_EQ(p->version, "3.0.11-1~deb12u2");
  EXPECT_EQ(p->arch, "amd64");
  EXPECT_EQ(p->source, "openssl");
}

TEST(ParseControlTest, SourceDefaultsToThePackage) {
  absl::StatusOr<PackageInfo> p =
      ParseControl("Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->source, "hello");
}

TEST(ParseControlTest, WithoutPackageOrVersionIsAnError) {
  EXPECT_EQ(ParseControl("Version: 1\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseControl("Package: x\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseControl("").ok());
}

TEST(ReadDpkgOwnersTest, RootWithoutADpkgDatabaseOwnsNothing) {
  auto owners = ReadDpkgOwners(::testing::TempDir() + "/no-such-root");
  ASSERT_TRUE(owners.ok()) << owners.status();
  EXPECT_TRUE(owners->empty());
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ReadIndexTest, RejectsWhatIsNotAnIndexOfThisVersion) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"", "empty"},
      {"not json\n", ":1: not a JSON object"},
      {"{\"hello\":1}\n", ":1: not an execmon index"},
      {"{\"execmon_index\":2}\n", ":1: index format 2, this execmon reads 1"},
      {"{\"execmon_index\":1}\n{\"build_id\":\"zz\"}\n",
       ":2: build_id: want 1-20 bytes of hex"},
      {"{\"execmon_index\":1}\n{\"build_id\":\"abc\"}\n",
       ":2: build_id: want 1-20 bytes of hex"},
      {"{\"execmon_index\":1}\n{\"build_id\":"
       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n",
       ":2: build_id: want 1-20 bytes of hex"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string path = WriteTemp("bad.idx", c.text);
    absl::StatusOr<Index> idx = ReadIndex(path);
    ASSERT_FALSE(idx.ok());
    EXPECT_TRUE(absl::StrContains(idx.status().message(), c.error))
        << idx.status();
  }
}

TEST(ReadIndexTest, WrittenIndexReadsBack) {
  Index index;
  index.sources.push_back({"deb", "x.deb"});
  IndexEntry e;
  e.build_id = std::string("\x01\x02\xab", 3);
  e.path = "/usr/bin/x \"quoted\"";
  e.size = 42;
  e.sha256 = std::string(32, '\x5a');
  e.package = {"x", "1.0-1", "amd64", "xsrc"};
  index.entries.push_back(e);
  IndexEntry bare = e;
  bare.package = {};
  index.entries.push_back(bare);
  const std::string path = ::testing::TempDir() + "/ok.idx";
  ASSERT_TRUE(WriteIndex(index, path).ok());
  absl::StatusOr<Index> back = ReadIndex(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->entries.size(), 2u);
  EXPECT_EQ(back->entries[0].build_id, e.build_id);
  EXPECT_EQ(back->entries[0].path, e.path);
  EXPECT_EQ(back->entries[0].size, 42u);
  EXPECT_EQ(back->entries[0].sha256, e.sha256);
  EXPECT_EQ(back->entries[0].package.source, "xsrc");
  EXPECT_TRUE(back->entries[1].package.name.empty());
  EXPECT_EQ(back->sources.size(), 1u);
  std::remove(path.c_str());
}

// Two JSON Lines indexes compiled into one: lookups agree with the JSON
// load, the first index wins a shared build ID, and a hostile compiled
// file is refused with what is wrong, never read out of bounds.
TEST(CompiledIndexTest, RoundTripFirstWinsAndHostileFiles) {
  Index a, b;
  IndexEntry e;
  e.build_id = std::string("\x01\x02\xab", 3);
  e.package = {"curl", "7.88.1-10", "amd64", "curl"};
  a.entries.push_back(e);
  IndexEntry shared = e;
  shared.build_id = std::string(20, '\x7f');
  shared.package = {"libc6", "2.36-9", "amd64", "glibc"};
  a.entries.push_back(shared);
  shared.package = {"libc6", "2.36-9+deb12u4", "amd64", "glibc"};
  b.entries.push_back(shared);
  IndexEntry only_b = e;
  only_b.build_id = "\x05";
  only_b.package = {"bash", "5.2.15-2", "amd64", "bash"};
  b.entries.push_back(only_b);
  const std::string dir = ::testing::TempDir();
  ASSERT_TRUE(WriteIndex(a, dir + "/a.idx").ok());
  ASSERT_TRUE(WriteIndex(b, dir + "/b.idx").ok());
  auto json = PackageMap::Load({dir + "/a.idx", dir + "/b.idx"});
  ASSERT_TRUE(json.ok()) << json.status();
  ASSERT_TRUE(json->Save(dir + "/ab.emidx").ok());
  auto compiled = PackageMap::Load({dir + "/ab.emidx"});
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_EQ(compiled->size(), 3u);
  for (const PackageMap* m : {&*json, &*compiled}) {
    auto curl = m->Find(e.build_id);
    ASSERT_TRUE(curl.has_value());
    EXPECT_EQ(curl->name, "curl");
    EXPECT_EQ(curl->version, "7.88.1-10");
    auto libc = m->Find(std::string(20, '\x7f'));
    ASSERT_TRUE(libc.has_value());
    EXPECT_EQ(libc->version, "2.36-9");  // the first index wins
    EXPECT_EQ(m->Find("\x05")->name, "bash");
    EXPECT_FALSE(m->Find("\x06").has_value());
  }
  // A compiled index beside a JSON one: still first wins, in order given.
  auto mixed = PackageMap::Load({dir + "/b.idx", dir + "/ab.emidx"});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->Find(std::string(20, '\x7f'))->version, "2.36-9+deb12u4");
  EXPECT_EQ(mixed->Find(e.build_id)->name, "curl");

  std::ifstream in(dir + "/ab.emidx", std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  const size_t entries_at = 24, packages_at = 24 + 3 * 24;
  struct Case {
    const char* name;
    std::string bytes;
    const char* error;
  };
  std::vector<Case> cases;
  cases.push_back({"truncated", good.substr(0, 20), "truncated header"});
  cases.push_back({"short", good.substr(0, good.size() - 1), "the header says"});
  std::string unsorted = good;
  std::swap_ranges(unsorted.begin() + entries_at,
                   unsorted.begin() + entries_at + 24,
                   unsorted.begin() + entries_at + 24);
  cases.push_back({"unsorted", unsorted, "entry 1: not sorted or repeated"});
  std::string bad_pkg = good;
  bad_pkg[entries_at + 21] = '\x09';
  cases.push_back({"package", bad_pkg, "entry 0: package 9 out of range"});
  std::string bad_len = good;
  bad_len[entries_at] = 21;
  cases.push_back({"idlen", bad_len, "entry 0: malformed build ID"});
  std::string bad_text = good;
  bad_text[packages_at + 4] = '\xff';
  cases.push_back({"text", bad_text, "package 0: text out of range"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = WriteTemp("bad.emidx", c.bytes);
    auto m = PackageMap::Load({path});
    ASSERT_FALSE(m.ok());
    EXPECT_TRUE(absl::StrContains(m.status().message(), c.error)) << m.status();
  }
  // Not something `index query` can read: it says what to do instead.
  auto q = ReadIndex(dir + "/ab.emidx");
  ASSERT_FALSE(q.ok());
  EXPECT_TRUE(absl::StrContains(q.status().message(), "a compiled index"));
}

std::vector<VersionClause> Range(absl::string_view text) {
  absl::StatusOr<std::vector<VersionClause>> r = ParseVersionRange(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status();
  return r.ok() ? *r : std::vector<VersionClause>{};
}

TEST(VersionRangeTest, DebianOrderThroughLibaptPkg) {
  // ~ sorts before anything, even the end; revisions compare as versions.
  EXPECT_TRUE(VersionSatisfies("1.0~rc1", Range("<< 1.0")));
  EXPECT_TRUE(
      VersionSatisfies("7.88.1-10+deb12u5", Range("<< 7.88.1-10+deb12u7")));
  EXPECT_FALSE(
      VersionSatisfies("7.88.1-10+deb12u15", Range("<< 7.88.1-10+deb12u7")));
  EXPECT_TRUE(VersionSatisfies("1:0.9", Range(">> 2.0")));  // the epoch
  EXPECT_TRUE(VersionSatisfies("2.10-3", Range(">= 2.10-3, <= 2.10-3")));
  EXPECT_TRUE(VersionSatisfies("2.10-3", Range("= 2.10-3")));
  EXPECT_FALSE(VersionSatisfies("2.10-3", Range(">> 2.10-3")));
  EXPECT_TRUE(VersionSatisfies("anything", Range("")));  // every version
}

TEST(VersionRangeTest, WhatIsNotARangeSaysWhy) {
  for (const char* bad : {"< 1.0", "1.0", "<< ", "<< x1.0", "<< 1.0-",
                          "<< :1.0", "<< 1.0, >> ", "<< 1.0 2.0"}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<std::vector<VersionClause>> r = ParseVersionRange(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace execmon
