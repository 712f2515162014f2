// Tests of the JSON event writer (agent/event/json_writer.h) against the
// contract in docs/events.md. Output is parsed back with RapidJSON (with
// UTF-8 validation: JSON exchanged between systems must be UTF-8, RFC 8259
// section 8.1) and checked field by field, name and type.
#include "agent/event/json_writer.h"

#include <sys/wait.h>

#include <csignal>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "agent/event/event.h"
#include "agent/process/process_table.h"
#include "bpf/execmon_abi.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"

namespace execmon {
namespace {

using rapidjson::Document;
using rapidjson::Value;

// 2026-01-02T03:04:05.123456789Z as Unix nanoseconds (`date -u -d
// @1767323045`).
constexpr int64_t kRealNs = 1767323045123456789;
constexpr char kRealText[] = "2026-01-02T03:04:05.123456789Z";
constexpr uint64_t kKtime = 81234567890;

// ---------------------------------------------------------------- helpers

void ExpectNoDuplicateKeys(const Value& v, const std::string& where) {
  if (v.IsObject()) {
    std::set<std::string> names;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      std::string name(it->name.GetString(), it->name.GetStringLength());
      EXPECT_TRUE(names.insert(name).second)
          << "duplicate key " << where << "." << name;
      ExpectNoDuplicateKeys(it->value, where + "." + name);
    }
  } else if (v.IsArray()) {
    for (const Value& e : v.GetArray()) ExpectNoDuplicateKeys(e, where + "[]");
  }
}

// Parses one event line with UTF-8 validation.
Document Parse(absl::string_view json) {
  EXPECT_EQ(json.find('\n'), std::string::npos) << "not one line: " << json;
  Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
  EXPECT_FALSE(d.HasParseError())
      << rapidjson::GetParseError_En(d.GetParseError()) << " at offset "
      << d.GetErrorOffset() << " in: " << json;
  if (d.HasParseError()) {
    d.SetObject();
  } else {
    EXPECT_TRUE(d.IsObject());
    ExpectNoDuplicateKeys(d, "");
  }
  return d;
}

const Value& Null() {
  static const Value kNull;
  return kNull;
}

const Value& Get(const Value& obj, const char* key) {
  if (!obj.IsObject()) {
    ADD_FAILURE() << "not an object looking up " << key;
    return Null();
  }
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) {
    ADD_FAILURE() << "missing key " << key;
    return Null();
  }
  return it->value;
}

bool Has(const Value& obj, const char* key) {
  return obj.IsObject() && obj.HasMember(key);
}

std::string Str(const Value& v) {
  if (!v.IsString()) return "<not a string>";
  return std::string(v.GetString(), v.GetStringLength());
}

#define EXPECT_JSON_UINT(obj, key, want)                           \
  do {                                                             \
    const Value& v_ = Get(obj, key);                               \
    ASSERT_TRUE(v_.IsUint64()) << key << " is not an int";         \
    EXPECT_EQ(v_.GetUint64(), static_cast<uint64_t>(want)) << key; \
  } while (0)

#define EXPECT_JSON_STR(obj, key, want)                      \
  do {                                                       \
    const Value& v_ = Get(obj, key);                         \
    ASSERT_TRUE(v_.IsString()) << key << " is not a string"; \
    EXPECT_EQ(Str(v_), std::string(want)) << key;            \
  } while (0)

#define EXPECT_JSON_BOOL(obj, key, want)                     \
  do {                                                       \
    const Value& v_ = Get(obj, key);                         \
    ASSERT_TRUE(v_.IsBool()) << key << " is not a bool";     \
    EXPECT_EQ(v_.GetBool(), static_cast<bool>(want)) << key; \
  } while (0)

#define EXPECT_JSON_NULL(obj, key)                                \
  do {                                                            \
    ASSERT_TRUE(Has(obj, key)) << "missing key " << key;          \
    EXPECT_TRUE(Get(obj, key).IsNull()) << key << " is not null"; \
  } while (0)

std::vector<std::string> Strings(const Value& arr) {
  std::vector<std::string> out;
  if (!arr.IsArray()) {
    ADD_FAILURE() << "not an array";
    return out;
  }
  for (const Value& v : arr.GetArray()) {
    EXPECT_TRUE(v.IsString());
    out.push_back(Str(v));
  }
  return out;
}

JsonWriter Writer() {
  JsonWriter w("node-a");
  w.set_boot_to_real_ns(kRealNs - static_cast<int64_t>(kKtime));
  return w;
}

BuildId Known(const std::string& bytes, BuildIdSource source) {
  BuildId b;
  b.bytes = bytes;
  b.source = source;
  return b;
}

BuildId Failed(uint8_t error, BuildIdSource source) {
  BuildId b;
  b.error = error;
  b.source = source;
  return b;
}

ExecEvent SampleExec() {
  ExecEvent e;
  e.ktime_ns = kKtime;
  e.pid = 4242;
  e.tid = 4243;
  e.ppid = 4200;
  e.uid = 1;
  e.gid = 2;
  e.euid = 3;
  e.egid = 4;
  e.loginuid = 1000;
  e.flags = EM_F_CACHED;
  e.mnt_ns = 4026531841u;
  e.pid_ns = 4026531836u;
  e.argc = 3;
  e.cgroup_id = 7231;
  e.start_ns = kKtime - 1000;
  e.resolved_ns = kKtime + 34000;
  e.exe.ino = 1835221;
  e.exe.ctime_sec = 1763869261;
  e.exe.ctime_nsec = 114935522;
  e.exe.dev = 253u << 20 | 0u;
  e.exe.size = 16008;
  e.exe_nlink = 1;
  e.exe_mode = 0100755;
  e.build_id = Known(std::string("\x0e\x0e\x0e\x0e\x00\x00\x00\x08", 8),
                     BuildIdSource::kTaskWork);
  e.comm = "hello_pie8";
  e.filename = "./hello_pie8";
  e.binary = "/work/bin/hello_pie8";
  e.cwd = "/work/bin";
  e.args = {"./hello_pie8", "arg one", "two"};
  return e;
}

ProcessInfo Self(const ExecEvent& e) {
  ProcessInfo p;
  p.pid = e.pid;
  p.ppid = e.ppid;
  p.exec_id = "5f0c1a2b:81234567890:4242";
  p.parent_exec_id = "5f0c1a2b:80111111111:4200";
  p.binary = e.binary;
  p.build_id = e.build_id;
  p.cgroup_id = e.cgroup_id;
  return p;
}

ProcessInfo Parent() {
  ProcessInfo p;
  p.pid = 4200;
  p.exec_id = "5f0c1a2b:80111111111:4200";
  p.binary = "/usr/bin/bash";
  p.build_id = Known("\x3a\x8b\xc3\xb5", BuildIdSource::kCache);
  return p;
}

// Renders an exec event and returns its parsed "process" object's document.
Document ExecDoc(const ExecEvent& e) {
  return Parse(Writer().Exec(e, Self(e), nullptr));
}

// ---------------------------------------------------------------- time

TEST(JsonWriterTimeTest, WallTimeIsRfc3339WithNineFractionalDigits) {
  EXPECT_EQ(Writer().WallTime(kKtime), kRealText);
}

TEST(JsonWriterTimeTest, WallTimeKeepsTrailingZeros) {
  JsonWriter w("n");
  w.set_boot_to_real_ns(1767323045000000000 - 5);
  EXPECT_EQ(w.WallTime(5), "2026-01-02T03:04:05.000000000Z");
  EXPECT_EQ(w.WallTime(6), "2026-01-02T03:04:05.000000001Z");
  EXPECT_EQ(w.WallTime(5 + 100000000), "2026-01-02T03:04:05.100000000Z");
}

TEST(JsonWriterTimeTest, WallTimeAppliesOffset) {
  JsonWriter w("n");
  EXPECT_EQ(w.boot_to_real_ns(), 0);
  EXPECT_EQ(w.WallTime(0), "1970-01-01T00:00:00.000000000Z");
  w.set_boot_to_real_ns(kRealNs);
  EXPECT_EQ(w.boot_to_real_ns(), kRealNs);
  EXPECT_EQ(w.WallTime(0), kRealText);
  EXPECT_EQ(w.WallTime(3600LL * 1000000000), "2026-01-02T04:04:05.123456789Z");
}

// The writer keeps the last seconds it formatted: going back and forth
// between seconds, days and years must never reuse the wrong one.
TEST(JsonWriterTimeTest, WallTimeAcrossSecondsDaysAndYears) {
  JsonWriter w("n");
  w.set_boot_to_real_ns(kRealNs);
  const uint64_t s = 1000000000;
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(w.WallTime(0), kRealText);
    EXPECT_EQ(w.WallTime(s), "2026-01-02T03:04:06.123456789Z");
    EXPECT_EQ(w.WallTime(2 * s), "2026-01-02T03:04:07.123456789Z");
    EXPECT_EQ(w.WallTime(0), kRealText);
    EXPECT_EQ(w.WallTime(86400 * s - 876543211),
              "2026-01-03T03:04:04.246913578Z");
    EXPECT_EQ(w.WallTime(365 * 86400 * s), "2027-01-02T03:04:05.123456789Z");
    EXPECT_EQ(w.WallTime(s - 123456790), "2026-01-02T03:04:05.999999999Z");
    EXPECT_EQ(w.WallTime(s - 123456789), "2026-01-02T03:04:06.000000000Z");
  }
  // Before 1970 (a clock set far back): floor to the second before.
  JsonWriter old("n");
  old.set_boot_to_real_ns(-1);
  EXPECT_EQ(old.WallTime(0), "1969-12-31T23:59:59.999999999Z");
}

// ---------------------------------------------------------------- exec

TEST(JsonWriterExecTest, CommonFields) {
  Document d = ExecDoc(SampleExec());
  EXPECT_JSON_UINT(d, "schema", 1);
  EXPECT_JSON_STR(d, "type", "exec");
  EXPECT_JSON_STR(d, "time", kRealText);
  EXPECT_JSON_STR(d, "node", "node-a");
  ASSERT_TRUE(Get(d, "process").IsObject());
}

TEST(JsonWriterExecTest, EveryContractFieldWithItsType) {
  Document d = ExecDoc(SampleExec());
  const Value& p = Get(d, "process");
  EXPECT_JSON_UINT(p, "pid", 4242);
  EXPECT_JSON_UINT(p, "tid", 4243);
  EXPECT_JSON_UINT(p, "ppid", 4200);
  EXPECT_JSON_UINT(p, "uid", 1);
  EXPECT_JSON_UINT(p, "gid", 2);
  EXPECT_JSON_UINT(p, "euid", 3);
  EXPECT_JSON_UINT(p, "egid", 4);
  EXPECT_JSON_UINT(p, "loginuid", 1000);
  EXPECT_JSON_STR(p, "comm", "hello_pie8");
  EXPECT_JSON_STR(p, "exec_id", "5f0c1a2b:81234567890:4242");
  EXPECT_JSON_STR(p, "parent_exec_id", "5f0c1a2b:80111111111:4200");
  EXPECT_JSON_STR(p, "filename", "./hello_pie8");
  EXPECT_JSON_STR(p, "binary", "/work/bin/hello_pie8");
  EXPECT_EQ(Strings(Get(p, "args")),
            (std::vector<std::string>{"./hello_pie8", "arg one", "two"}));
  EXPECT_JSON_UINT(p, "argc", 3);
  EXPECT_JSON_BOOL(p, "args_truncated", false);
  EXPECT_JSON_STR(p, "cwd", "/work/bin");
  EXPECT_JSON_UINT(p, "cgroup_id", 7231);
  EXPECT_JSON_UINT(p, "mnt_ns", 4026531841u);
  EXPECT_JSON_UINT(p, "pid_ns", 4026531836u);
  EXPECT_JSON_STR(p, "start_time", "2026-01-02T03:04:05.123455789Z");
  EXPECT_JSON_UINT(p, "ktime_ns", kKtime);
  const Value& exe = Get(p, "exe");
  ASSERT_TRUE(exe.IsObject());
  EXPECT_JSON_UINT(exe, "dev", 64768);  // 253:0 as st_dev
  EXPECT_JSON_UINT(exe, "inode", 1835221);
  ASSERT_TRUE(Get(exe, "ctime_ns").IsInt64());
  EXPECT_EQ(Get(exe, "ctime_ns").GetInt64(), 1763869261114935522);
  EXPECT_JSON_UINT(exe, "size", 16008);
  EXPECT_JSON_UINT(exe, "nlink", 1);
  EXPECT_JSON_UINT(exe, "mode", 0100755);
  EXPECT_JSON_STR(p, "build_id", "0e0e0e0e00000008");
  EXPECT_JSON_STR(p, "build_id_source", "task_work");
  EXPECT_JSON_NULL(p, "build_id_error");
  EXPECT_JSON_UINT(p, "build_id_resolved_ns", kKtime + 34000);
  EXPECT_JSON_BOOL(p, "build_id_late", false);
  EXPECT_JSON_BOOL(p, "build_id_cached", true);
  EXPECT_JSON_BOOL(p, "fileless", false);
  EXPECT_JSON_BOOL(p, "memfd", false);
  EXPECT_FALSE(Has(p, "script"));
  EXPECT_FALSE(Has(p, "truncated"));
  EXPECT_FALSE(Has(d, "parent"));
}

TEST(JsonWriterExecTest, ParentObjectWhenParentKnown) {
  ExecEvent e = SampleExec();
  ProcessInfo parent = Parent();
  Document d = Parse(Writer().Exec(e, Self(e), &parent));
  const Value& p = Get(d, "parent");
  ASSERT_TRUE(p.IsObject());
  EXPECT_JSON_UINT(p, "pid", 4200);
  EXPECT_JSON_STR(p, "exec_id", "5f0c1a2b:80111111111:4200");
  EXPECT_JSON_STR(p, "binary", "/usr/bin/bash");
  EXPECT_JSON_STR(p, "build_id", "3a8bc3b5");
}

TEST(JsonWriterExecTest, ParentBuildIdNullWhenUnknown) {
  ExecEvent e = SampleExec();
  ProcessInfo parent = Parent();
  parent.build_id = Failed(EM_BID_ERR_NOT_ELF, BuildIdSource::kTaskWork);
  Document d = Parse(Writer().Exec(e, Self(e), &parent));
  EXPECT_JSON_NULL(Get(d, "parent"), "build_id");
}

TEST(JsonWriterExecTest, BuildIdIsLowercaseHex) {
  ExecEvent e = SampleExec();
  e.build_id = Known("\xAB\xCD\xEF\x01\x9F", BuildIdSource::kCache);
  Document d = ExecDoc(e);
  EXPECT_JSON_STR(Get(d, "process"), "build_id", "abcdef019f");
  EXPECT_JSON_STR(Get(d, "process"), "build_id_source", "cache");
}

TEST(JsonWriterExecTest, UnknownBuildIdIsNullWithErrorName) {
  for (uint8_t err = EM_BID_ERR_PENDING; err < EM_BID_ERR_MAX; ++err) {
    SCOPED_TRACE(testing::Message() << "error " << static_cast<int>(err));
    ExecEvent e = SampleExec();
    e.build_id = Failed(err, BuildIdSource::kTaskWork);
    Document d = ExecDoc(e);
    const Value& p = Get(d, "process");
    EXPECT_JSON_NULL(p, "build_id");
    EXPECT_JSON_STR(p, "build_id_error", BuildIdErrorName(err));
    EXPECT_NE(Str(Get(p, "build_id_error")), "");
  }
}

TEST(JsonWriterExecTest, NoNoteErrorName) {
  ExecEvent e = SampleExec();
  e.build_id = Failed(EM_BID_ERR_NO_NOTE, BuildIdSource::kTaskWork);
  Document d = ExecDoc(e);
  EXPECT_JSON_STR(Get(d, "process"), "build_id_error", "no_note");
  EXPECT_JSON_STR(Get(d, "process"), "build_id_source", "task_work");
}

TEST(JsonWriterExecTest, LoginuidNullWhenUnset) {
  ExecEvent e = SampleExec();
  e.loginuid = UINT32_MAX;
  Document d = ExecDoc(e);
  EXPECT_JSON_NULL(Get(d, "process"), "loginuid");
}

TEST(JsonWriterExecTest, LoginuidZeroIsAnInt) {
  ExecEvent e = SampleExec();
  e.loginuid = 0;
  Document d = ExecDoc(e);
  EXPECT_JSON_UINT(Get(d, "process"), "loginuid", 0);
}

TEST(JsonWriterExecTest, ParentExecIdNullWhenUnknown) {
  ExecEvent e = SampleExec();
  ProcessInfo self = Self(e);
  self.parent_exec_id.clear();
  Document d = Parse(Writer().Exec(e, self, nullptr));
  EXPECT_JSON_NULL(Get(d, "process"), "parent_exec_id");
}

TEST(JsonWriterExecTest, ResolvedNsAbsentWhenZero) {
  ExecEvent e = SampleExec();
  e.resolved_ns = 0;
  EXPECT_FALSE(Has(Get(ExecDoc(e), "process"), "build_id_resolved_ns"));
}

TEST(JsonWriterExecTest, IteratorSourceIsLate) {
  ExecEvent e = SampleExec();
  e.build_id.source = BuildIdSource::kIterator;
  Document d = ExecDoc(e);
  EXPECT_JSON_BOOL(Get(d, "process"), "build_id_late", true);
  EXPECT_JSON_STR(Get(d, "process"), "build_id_source", "iterator");
}

TEST(JsonWriterExecTest, CachedOnlyWithTheCachedFlag) {
  ExecEvent e = SampleExec();
  e.flags = 0;
  EXPECT_JSON_BOOL(Get(ExecDoc(e), "process"), "build_id_cached", false);
  e.flags = EM_F_CACHED;
  EXPECT_JSON_BOOL(Get(ExecDoc(e), "process"), "build_id_cached", true);
  // A late (iterator) resolution never caches.
  e.flags = 0;
  e.build_id.source = BuildIdSource::kIterator;
  EXPECT_JSON_BOOL(Get(ExecDoc(e), "process"), "build_id_cached", false);
}

TEST(JsonWriterExecTest, SourceNoneIsNotCached) {
  ExecEvent e = SampleExec();
  e.build_id = Failed(EM_BID_ERR_PENDING, BuildIdSource::kNone);
  Document d = ExecDoc(e);
  EXPECT_JSON_BOOL(Get(d, "process"), "build_id_cached", false);
  EXPECT_JSON_STR(Get(d, "process"), "build_id_source", "none");
}

TEST(JsonWriterExecTest, ArgsTruncatedFlag) {
  ExecEvent e = SampleExec();
  e.flags = EM_F_ARGS_TRUNC;
  e.argc = 5000;
  Document d = ExecDoc(e);
  const Value& p = Get(d, "process");
  EXPECT_JSON_BOOL(p, "args_truncated", true);
  EXPECT_JSON_UINT(p, "argc", 5000);
  // args are not a path field: "truncated" does not list them.
  EXPECT_FALSE(Has(p, "truncated"));
}

TEST(JsonWriterExecTest, ScriptObjectOnlyWithScriptFlag) {
  ExecEvent e = SampleExec();
  e.filename = "./run.sh";
  e.binary = "/usr/bin/bash";
  EXPECT_FALSE(Has(Get(ExecDoc(e), "process"), "script"));

  // Other flags do not bring it in.
  e.flags = ~static_cast<uint32_t>(EM_F_SCRIPT);
  EXPECT_FALSE(Has(Get(ExecDoc(e), "process"), "script"));

  e.flags = EM_F_SCRIPT;
  Document d = ExecDoc(e);
  const Value& s = Get(Get(d, "process"), "script");
  ASSERT_TRUE(s.IsObject());
  EXPECT_JSON_STR(s, "path", "./run.sh");
  EXPECT_JSON_STR(s, "interpreter", "/usr/bin/bash");
  EXPECT_JSON_STR(Get(d, "process"), "binary", "/usr/bin/bash");
}

TEST(JsonWriterExecTest, TruncatedListsExactlyTheTruncatedPaths) {
  struct Case {
    uint32_t flags;
    std::vector<std::string> want;
  };
  const std::vector<Case> cases = {
      {EM_F_FILENAME_TRUNC, {"filename"}},
      {EM_F_BINARY_TRUNC, {"binary"}},
      {EM_F_CWD_TRUNC, {"cwd"}},
      {EM_F_FILENAME_TRUNC | EM_F_BINARY_TRUNC, {"filename", "binary"}},
      {EM_F_FILENAME_TRUNC | EM_F_CWD_TRUNC, {"filename", "cwd"}},
      {EM_F_BINARY_TRUNC | EM_F_CWD_TRUNC, {"binary", "cwd"}},
      {EM_F_FILENAME_TRUNC | EM_F_BINARY_TRUNC | EM_F_CWD_TRUNC,
       {"filename", "binary", "cwd"}},
      {EM_F_CWD_TRUNC | EM_F_ARGS_TRUNC | EM_F_SCRIPT, {"cwd"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "flags " << c.flags);
    ExecEvent e = SampleExec();
    e.flags = c.flags;
    Document d = ExecDoc(e);
    const Value& p = Get(d, "process");
    ASSERT_TRUE(Has(p, "truncated"));
    EXPECT_EQ(Strings(Get(p, "truncated")), c.want);
  }
}

TEST(JsonWriterExecTest, NoTruncatedArrayWithoutPathTruncation) {
  ExecEvent e = SampleExec();
  e.flags = EM_F_ARGS_TRUNC | EM_F_SCRIPT | EM_F_EXE_UNLINKED | EM_F_EXECFD |
            EM_F_CACHED;
  EXPECT_FALSE(Has(Get(ExecDoc(e), "process"), "truncated"));
}

TEST(JsonWriterExecTest, MemfdOnlyForFilelessMemfdBinary) {
  struct Case {
    uint32_t flags;
    const char* binary;
    bool fileless;
    bool memfd;
  };
  const Case cases[] = {
      {EM_F_EXE_UNLINKED, "/memfd:payload", true, true},
      {EM_F_EXE_UNLINKED, "/memfd:", true, true},
      {EM_F_EXE_UNLINKED | EM_F_EXECFD, "/memfd:x (deleted)", true, true},
      {0, "/memfd:payload", false, false},  // a real file of that name
      {EM_F_EXE_UNLINKED, "/tmp/deleted", true, false},
      {EM_F_EXE_UNLINKED, "/tmp/memfd:x", true, false},
      {EM_F_EXE_UNLINKED, "memfd:x", true, false},
      {EM_F_EXE_UNLINKED, "/memfd", true, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.binary);
    ExecEvent e = SampleExec();
    e.flags = c.flags;
    e.binary = c.binary;
    Document d = ExecDoc(e);
    EXPECT_JSON_BOOL(Get(d, "process"), "fileless", c.fileless);
    EXPECT_JSON_BOOL(Get(d, "process"), "memfd", c.memfd);
  }
}

TEST(JsonWriterExecTest, LargeIdsStayExactIntegers) {
  ExecEvent e = SampleExec();
  e.cgroup_id = UINT64_MAX;
  e.mnt_ns = UINT32_MAX;
  e.exe.ino = (1ULL << 63) + 1;
  e.exe.ctime_sec = -2;  // a file with a pre-1970 ctime
  e.exe.ctime_nsec = 500;
  Document d = ExecDoc(e);
  const Value& p = Get(d, "process");
  EXPECT_JSON_UINT(p, "cgroup_id", UINT64_MAX);
  EXPECT_JSON_UINT(p, "mnt_ns", UINT32_MAX);
  EXPECT_JSON_UINT(Get(p, "exe"), "inode", (1ULL << 63) + 1);
  ASSERT_TRUE(Get(Get(p, "exe"), "ctime_ns").IsInt64());
  EXPECT_EQ(Get(Get(p, "exe"), "ctime_ns").GetInt64(), -1999999500);
}

// ---------------------------------------------------------------- escaping

TEST(JsonWriterStringTest, SpecialCharactersRoundTrip) {
  ExecEvent e = SampleExec();
  e.args = {
      "say \"hi\"",
      "C:\\path\\",
      "two\nlines\r\n",
      "tab\there",
      std::string("ctl\x01\x1f\x7f", 6),
      std::string("nul\0inside", 10),
      "",
      "</script>",
  };
  e.filename = "/tmp/a\"b\\c\nd";
  e.cwd = "/home/\xC3\xA9t\xC3\xA9";
  e.comm = "\xE6\x97\xA5\xE6\x9C\xAC";
  std::string json(Writer().Exec(e, Self(e), nullptr));
  Document d = Parse(json);
  const Value& p = Get(d, "process");
  EXPECT_EQ(Strings(Get(p, "args")), e.args);
  EXPECT_JSON_STR(p, "filename", e.filename);
  EXPECT_JSON_STR(p, "cwd", e.cwd);
  EXPECT_JSON_STR(p, "comm", e.comm);
}

TEST(JsonWriterStringTest, ValidNonAsciiUtf8RoundTrips) {
  ExecEvent e = SampleExec();
  e.args = {
      "h\xC3\xA9llo",               // 2-byte
      "\xE2\x9C\x93 \xE6\x97\xA5",  // 3-byte
      "\xF0\x9F\x98\x80",           // 4-byte (U+1F600)
      "\xEF\xBF\xBF",               // U+FFFF
      "\xF4\x8F\xBF\xBF",           // U+10FFFF
  };
  Document d = ExecDoc(e);
  EXPECT_EQ(Strings(Get(Get(d, "process"), "args")), e.args);
}

// Strings are copied whole when no byte needs escaping, eight bytes at a
// time; every special byte at every position of every length up to 24 must
// still be escaped (or replaced) and survive the round trip.
TEST(JsonWriterStringTest, SpecialByteAtEveryPositionRoundTrips) {
  const std::vector<std::string> specials = {"\"",       "\\",
                                             "\n",       std::string(1, '\0'),
                                             "\x01",     "\x1f",
                                             "\x7f",  // DEL needs no escaping
                                             "\xC3\xA9", "\xF0\x9F\x98\x80",
                                             " ",        "~"};
  ExecEvent e = SampleExec();
  e.args.clear();
  for (size_t len = 0; len <= 24; ++len) {
    for (size_t pos = 0; pos <= len; ++pos) {
      for (const std::string& sp : specials) {
        std::string a(len, 'x');
        a.insert(pos, sp);
        e.args.push_back(a);
      }
    }
  }
  Document d = Parse(Writer().Exec(e, Self(e), nullptr));
  EXPECT_EQ(Strings(Get(Get(d, "process"), "args")), e.args);
  // Invalid UTF-8 after a long plain prefix is still replaced.
  e.args = {std::string(17, 'y') + "\xFF"};
  Document bad = Parse(Writer().Exec(e, Self(e), nullptr));
  EXPECT_EQ(Strings(Get(Get(bad, "process"), "args")),
            std::vector<std::string>{std::string(17, 'y') + "\xEF\xBF\xBD"});
}

std::vector<std::string> InvalidUtf8Args() {
  return {
      "a\xFF"
      "b",                 // byte never valid in UTF-8
      "\xC3",              // cut 2-byte sequence
      "\xC0\xAF",          // overlong '/'
      "\xED\xA0\x80",      // UTF-16 surrogate half
      "\x80",              // lone continuation byte
      "\xF5\x80\x80\x80",  // beyond U+10FFFF
  };
}

TEST(JsonWriterStringTest, InvalidUtf8BytesBecomeReplacementCharacters) {
  // Each byte of an invalid sequence becomes U+FFFD; valid text around it,
  // and the rest of the document, are untouched.
  const std::string kFffd = "\xEF\xBF\xBD";
  ExecEvent e = SampleExec();
  e.args = InvalidUtf8Args();
  e.args.push_back("quote\" and \\ and \n");
  e.args.push_back("caf\xC3\xA9 \xF0\x9F\x98\x80");  // valid: kept as is
  std::string json(Writer().Exec(e, Self(e), nullptr));
  EXPECT_EQ(json.find('\n'), std::string::npos);
  Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
  ASSERT_FALSE(d.HasParseError())
      << rapidjson::GetParseError_En(d.GetParseError());
  const Value& p = Get(d, "process");
  std::vector<std::string> want = {
      "a" + kFffd + "b",
      kFffd,
      kFffd + kFffd,
      kFffd + kFffd + kFffd,
      kFffd,
      kFffd + kFffd + kFffd + kFffd,
      "quote\" and \\ and \n",
      "caf\xC3\xA9 \xF0\x9F\x98\x80",
  };
  EXPECT_EQ(Strings(Get(p, "args")), want);
  EXPECT_JSON_UINT(p, "pid", 4242);
  EXPECT_JSON_STR(p, "binary", "/work/bin/hello_pie8");
  EXPECT_JSON_BOOL(p, "memfd", false);
}

TEST(JsonWriterStringTest, InvalidUtf8InArgsProducesValidUtf8) {
  // JSON must be UTF-8 (RFC 8259 8.1): invalid bytes in argv, paths or
  // comm become U+FFFD rather than raw bytes.
  for (const std::string& arg : InvalidUtf8Args()) {
    SCOPED_TRACE(testing::PrintToString(arg));
    ExecEvent e = SampleExec();
    e.args = {"prog", arg};
    Document d = Parse(Writer().Exec(e, Self(e), nullptr));
    EXPECT_EQ(Strings(Get(Get(d, "process"), "args")).size(), 2u);
  }
}

// Issue 11: two different invalid byte strings render identically after
// U+FFFD replacement; "invalid_utf8" names each such field with its exact
// bytes (base64) so a consumer can tell them apart.
TEST(JsonWriterStringTest, InvalidUtf8FieldsAreListedWithTheirExactBytes) {
  ExecEvent e = SampleExec();
  e.filename = std::string("/tmp/") + "\xFF";
  e.cwd = std::string("/tmp/") + "\xFE";
  e.args = {"prog", "ok", std::string("\xC0\xAF")};
  Document d = Parse(Writer().Exec(e, Self(e), nullptr));
  const Value& p = Get(d, "process");
  EXPECT_JSON_STR(p, "filename", "/tmp/\xEF\xBF\xBD");
  EXPECT_JSON_STR(p, "cwd", "/tmp/\xEF\xBF\xBD");  // same text, other bytes
  const Value& raw = Get(p, "invalid_utf8");
  ASSERT_TRUE(raw.IsObject());
  EXPECT_EQ(raw.MemberCount(), 3u);
  std::string bytes;
  ASSERT_TRUE(absl::Base64Unescape(Get(raw, "filename").GetString(), &bytes));
  EXPECT_EQ(bytes, e.filename);
  ASSERT_TRUE(absl::Base64Unescape(Get(raw, "cwd").GetString(), &bytes));
  EXPECT_EQ(bytes, e.cwd);
  ASSERT_TRUE(absl::Base64Unescape(Get(raw, "args.2").GetString(), &bytes));
  EXPECT_EQ(bytes, e.args[2]);
  EXPECT_FALSE(raw.HasMember("binary"));
  EXPECT_FALSE(raw.HasMember("args.1"));
}

TEST(JsonWriterStringTest, ValidUtf8HasNoInvalidUtf8Field) {
  ExecEvent e = SampleExec();
  e.args = {"prog", "caf\xC3\xA9"};
  Document d = Parse(Writer().Exec(e, Self(e), nullptr));
  EXPECT_FALSE(Get(d, "process").HasMember("invalid_utf8"));
}

// ---------------------------------------------------------------- exit

ExitEvent SampleExit(uint32_t status) {
  ExitEvent x;
  x.ktime_ns = kKtime;
  x.pid = 4242;
  x.exit_code = status;
  x.start_ns = kKtime - 1997786;
  return x;
}

// Events are rendered into one reused buffer: a long event followed by a
// short one leaves nothing of the first behind.
TEST(JsonWriterExecTest, ReusedBufferHoldsOnlyTheLatestEvent) {
  JsonWriter w("node-1");
  ExecEvent big = SampleExec();
  big.args.assign(200, std::string(100, 'a'));
  const std::string first(w.Exec(big, Self(big), nullptr));
  ExitEvent x = SampleExit(0);
  const std::string second(w.Exit(x, nullptr));
  EXPECT_LT(second.size(), first.size() / 10);
  Document d = Parse(second);
  EXPECT_JSON_STR(d, "type", "exit");
  EXPECT_EQ(second.find("aaaa"), std::string::npos);
  EXPECT_EQ(Parse(w.Exec(big, Self(big), nullptr)).GetObject().MemberCount(),
            Parse(first).GetObject().MemberCount());
  EXPECT_EQ(std::string(w.Exec(big, Self(big), nullptr)), first);
}

TEST(JsonWriterExitTest, EveryContractFieldWithItsType) {
  ExecEvent e = SampleExec();
  ProcessInfo self = Self(e);
  Document d = Parse(Writer().Exit(SampleExit(0), &self));
  EXPECT_JSON_UINT(d, "schema", 1);
  EXPECT_JSON_STR(d, "type", "exit");
  EXPECT_JSON_STR(d, "time", kRealText);
  EXPECT_JSON_STR(d, "node", "node-a");
  const Value& p = Get(d, "process");
  EXPECT_JSON_UINT(p, "pid", 4242);
  EXPECT_JSON_UINT(p, "ppid", 4200);
  EXPECT_JSON_STR(p, "exec_id", "5f0c1a2b:81234567890:4242");
  EXPECT_JSON_STR(p, "parent_exec_id", "5f0c1a2b:80111111111:4200");
  EXPECT_JSON_STR(p, "binary", "/work/bin/hello_pie8");
  EXPECT_JSON_UINT(p, "cgroup_id", 7231);
  EXPECT_JSON_STR(p, "build_id", "0e0e0e0e00000008");
  EXPECT_JSON_STR(p, "build_id_source", "task_work");
  EXPECT_JSON_NULL(p, "build_id_error");
  EXPECT_JSON_STR(p, "start_time", "2026-01-02T03:04:05.121459003Z");
  const Value& x = Get(d, "exit");
  ASSERT_TRUE(x.IsObject());
  EXPECT_JSON_UINT(x, "status", 0);
  EXPECT_JSON_UINT(x, "code", 0);
  EXPECT_FALSE(Has(x, "signal"));
  EXPECT_JSON_UINT(x, "lifetime_ns", 1997786);
}

TEST(JsonWriterExitTest, NormalExitHasCodeNotSignal) {
  Document d = Parse(Writer().Exit(SampleExit(3 << 8), nullptr));
  const Value& x = Get(d, "exit");
  EXPECT_JSON_UINT(x, "status", 3 << 8);
  EXPECT_JSON_UINT(x, "code", 3);
  EXPECT_FALSE(Has(x, "signal"));
}

TEST(JsonWriterExitTest, KilledBySignalHasSignalNotCode) {
  Document d = Parse(Writer().Exit(SampleExit(SIGKILL), nullptr));
  const Value& x = Get(d, "exit");
  EXPECT_JSON_UINT(x, "status", 9);
  EXPECT_JSON_UINT(x, "signal", 9);
  EXPECT_FALSE(Has(x, "code"));
}

TEST(JsonWriterExitTest, CoreDumpSignalIsReported) {
  const uint32_t status = SIGSEGV | 0x80;  // WCOREFLAG
  Document d = Parse(Writer().Exit(SampleExit(status), nullptr));
  const Value& x = Get(d, "exit");
  EXPECT_JSON_UINT(x, "status", status);
  EXPECT_JSON_UINT(x, "signal", SIGSEGV);
  EXPECT_FALSE(Has(x, "code"));
}

TEST(JsonWriterExitTest, ExitCode255) {
  Document d = Parse(Writer().Exit(SampleExit(255 << 8), nullptr));
  EXPECT_JSON_UINT(Get(d, "exit"), "code", 255);
}

TEST(JsonWriterExitTest, LifetimeZeroWhenClockGoesBackwards) {
  ExitEvent x = SampleExit(0);
  x.start_ns = x.ktime_ns + 5;
  Document d = Parse(Writer().Exit(x, nullptr));
  EXPECT_JSON_UINT(Get(d, "exit"), "lifetime_ns", 0);
}

TEST(JsonWriterExitTest, UnknownProcessHasOnlyPidAndStartTime) {
  Document d = Parse(Writer().Exit(SampleExit(0), nullptr));
  const Value& p = Get(d, "process");
  EXPECT_JSON_UINT(p, "pid", 4242);
  EXPECT_JSON_STR(p, "start_time", "2026-01-02T03:04:05.121459003Z");
  for (const char* absent :
       {"ppid", "exec_id", "parent_exec_id", "binary", "cgroup_id", "build_id",
        "build_id_source", "build_id_error"}) {
    EXPECT_FALSE(Has(p, absent)) << absent;
  }
}

TEST(JsonWriterExitTest, UnknownBuildIdAndParent) {
  ExecEvent e = SampleExec();
  ProcessInfo self = Self(e);
  self.parent_exec_id.clear();
  self.build_id = Failed(EM_BID_ERR_EXITED, BuildIdSource::kTaskWork);
  Document d = Parse(Writer().Exit(SampleExit(0), &self));
  const Value& p = Get(d, "process");
  EXPECT_JSON_NULL(p, "parent_exec_id");
  EXPECT_JSON_NULL(p, "build_id");
  EXPECT_JSON_STR(p, "build_id_error", "exited");
}

// ---------------------------------------------------------------- snapshot

SnapTask SampleTask() {
  SnapTask t;
  t.ktime_ns = kKtime;
  t.pid = 812;
  t.ppid = 1;
  t.uid = 10;
  t.gid = 20;
  t.euid = 30;
  t.loginuid = UINT32_MAX;
  t.mnt_ns = 4026531841u;
  t.pid_ns = 4026531836u;
  t.cgroup_id = 4321;
  t.start_ns = kKtime - 123456789;
  t.comm = "sshd";
  t.args = {"sshd:", "/usr/sbin/sshd", "-D"};
  return t;
}

SnapObject Object(const std::string& path, uint64_t ino, BuildId b,
                  bool is_exe) {
  SnapObject o;
  o.pid = 812;
  o.is_exe = is_exe;
  o.path = path;
  o.file.ino = ino;
  o.file.dev = 253u << 20 | 1u;
  o.file.ctime_sec = 1763000000;
  o.file.size = 1198472;
  o.build_id = std::move(b);
  return o;
}

ProcessInfo SnapSelf() {
  ProcessInfo p;
  p.pid = 812;
  p.ppid = 1;
  p.exec_id = "5f0c1a2b:2100000000:812";
  p.parent_exec_id = "5f0c1a2b:1000:1";
  p.binary = "/usr/sbin/sshd";
  return p;
}

TEST(JsonWriterSnapshotTest, EveryContractFieldWithItsType) {
  SnapObject exe =
      Object("/usr/sbin/sshd", 393422,
             Known("\x0c\xfe\x2c", BuildIdSource::kSnapshot), true);
  SnapObject libc = Object("/usr/lib/x86_64-linux-gnu/libc.so.6", 393001,
                           Known("\xc6\xf2\xe8", BuildIdSource::kCache), false);
  SnapObject odd =
      Object("/opt/blob.so", 5,
             Failed(EM_BID_ERR_NO_NOTE, BuildIdSource::kSnapshot), false);
  Document d = Parse(
      Writer().Snapshot(SampleTask(), SnapSelf(), &exe, {&exe, &libc, &odd}));
  EXPECT_JSON_UINT(d, "schema", 1);
  EXPECT_JSON_STR(d, "type", "snapshot");
  EXPECT_JSON_STR(d, "time", kRealText);
  EXPECT_JSON_STR(d, "node", "node-a");
  const Value& p = Get(d, "process");
  EXPECT_JSON_UINT(p, "pid", 812);
  EXPECT_JSON_UINT(p, "ppid", 1);
  EXPECT_JSON_UINT(p, "uid", 10);
  EXPECT_JSON_UINT(p, "gid", 20);
  EXPECT_JSON_UINT(p, "euid", 30);
  EXPECT_JSON_NULL(p, "loginuid");
  EXPECT_JSON_STR(p, "comm", "sshd");
  EXPECT_JSON_STR(p, "exec_id", "5f0c1a2b:2100000000:812");
  EXPECT_JSON_STR(p, "parent_exec_id", "5f0c1a2b:1000:1");
  EXPECT_JSON_STR(p, "binary", "/usr/sbin/sshd");
  EXPECT_EQ(Strings(Get(p, "args")),
            (std::vector<std::string>{"sshd:", "/usr/sbin/sshd", "-D"}));
  EXPECT_JSON_BOOL(p, "args_truncated", false);
  EXPECT_JSON_UINT(p, "cgroup_id", 4321);
  EXPECT_JSON_UINT(p, "mnt_ns", 4026531841u);
  EXPECT_JSON_UINT(p, "pid_ns", 4026531836u);
  EXPECT_JSON_STR(p, "start_time", "2026-01-02T03:04:05.000000000Z");

  const Value& x = Get(p, "exe");
  ASSERT_TRUE(x.IsObject());
  EXPECT_JSON_UINT(x, "dev", 64769);  // 253:1
  EXPECT_JSON_UINT(x, "inode", 393422);
  ASSERT_TRUE(Get(x, "ctime_ns").IsInt64());
  EXPECT_EQ(Get(x, "ctime_ns").GetInt64(), 1763000000000000000);
  EXPECT_JSON_UINT(x, "size", 1198472);
  EXPECT_FALSE(Has(x, "nlink"));
  EXPECT_FALSE(Has(x, "mode"));

  EXPECT_JSON_STR(p, "build_id", "0cfe2c");
  EXPECT_JSON_STR(p, "build_id_source", "snapshot");
  EXPECT_JSON_NULL(p, "build_id_error");

  const Value& objects = Get(p, "objects");
  ASSERT_TRUE(objects.IsArray());
  ASSERT_EQ(objects.Size(), 3u);
  const Value& o0 = objects[0];
  EXPECT_JSON_STR(o0, "path", "/usr/sbin/sshd");
  EXPECT_JSON_STR(o0, "build_id", "0cfe2c");
  EXPECT_JSON_STR(o0, "build_id_source", "snapshot");
  EXPECT_JSON_NULL(o0, "build_id_error");
  EXPECT_JSON_UINT(o0, "inode", 393422);
  EXPECT_JSON_UINT(o0, "dev", 64769);
  const Value& o1 = objects[1];
  EXPECT_JSON_STR(o1, "path", "/usr/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_JSON_STR(o1, "build_id", "c6f2e8");
  EXPECT_JSON_STR(o1, "build_id_source", "cache");
  EXPECT_JSON_NULL(o1, "build_id_error");
  EXPECT_JSON_UINT(o1, "inode", 393001);
  const Value& o2 = objects[2];
  EXPECT_JSON_STR(o2, "path", "/opt/blob.so");
  EXPECT_JSON_NULL(o2, "build_id");
  EXPECT_JSON_STR(o2, "build_id_error", "no_note");
  EXPECT_JSON_UINT(o2, "inode", 5);
}

TEST(JsonWriterSnapshotTest, NoExeMeansNoExeObjectAndNullBuildId) {
  Document d = Parse(Writer().Snapshot(SampleTask(), SnapSelf(), nullptr, {}));
  const Value& p = Get(d, "process");
  EXPECT_FALSE(Has(p, "exe"));
  EXPECT_JSON_NULL(p, "build_id");
  EXPECT_JSON_STR(p, "build_id_source", "none");
  ASSERT_TRUE(Get(p, "objects").IsArray());
  EXPECT_EQ(Get(p, "objects").Size(), 0u);
}

TEST(JsonWriterSnapshotTest, ExeBuildIdErrorIsNamed) {
  SnapObject exe =
      Object("/memfd:x (deleted)", 7,
             Failed(EM_BID_ERR_READ_FAULT, BuildIdSource::kSnapshot), true);
  Document d = Parse(Writer().Snapshot(SampleTask(), SnapSelf(), &exe, {&exe}));
  const Value& p = Get(d, "process");
  EXPECT_JSON_NULL(p, "build_id");
  EXPECT_JSON_STR(p, "build_id_error", "read_fault");
}

TEST(JsonWriterSnapshotTest, LoginuidParentAndArgsTruncated) {
  SnapTask t = SampleTask();
  t.loginuid = 1000;
  t.flags = EM_F_ARGS_TRUNC;
  ProcessInfo self = SnapSelf();
  self.parent_exec_id.clear();
  Document d = Parse(Writer().Snapshot(t, self, nullptr, {}));
  const Value& p = Get(d, "process");
  EXPECT_JSON_UINT(p, "loginuid", 1000);
  EXPECT_JSON_NULL(p, "parent_exec_id");
  EXPECT_JSON_BOOL(p, "args_truncated", true);
}

}  // namespace
}  // namespace execmon
