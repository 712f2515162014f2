// Tests of the kernel-record decoder (agent/event/decoder.h) and the event
// helpers it relies on (agent/event/event.h). Records are built the way the
// BPF side writes them: the ABI structs of bpf/execmon_abi.h, zeroed, filled
// and copied byte for byte into a buffer.
#include "agent/event/decoder.h"

#include <sys/sysmacros.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "agent/event/event.h"
#include "bpf/execmon_abi.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace execmon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A zeroed ABI record with a valid header for its type.
template <typename T>
T Record(uint16_t type, uint64_t ktime_ns = 1000) {
  static_assert(std::is_trivially_copyable_v<T>);
  T r;
  std::memset(&r, 0, sizeof(r));
  r.hdr.type = type;
  r.hdr.abi = EM_ABI_VERSION;
  r.hdr.size = sizeof(T);
  r.hdr.ktime_ns = ktime_ns;
  return r;
}

template <typename T>
std::vector<uint8_t> Bytes(const T& r) {
  std::vector<uint8_t> out(sizeof(T));
  std::memcpy(out.data(), &r, sizeof(T));
  return out;
}

em_file_key Key(uint64_t ino, uint32_t major, uint32_t minor) {
  em_file_key k;
  std::memset(&k, 0, sizeof(k));
  k.ino = ino;
  k.ctime_sec = 1763869261;
  k.ctime_nsec = 114935522;
  k.dev = major << 20 | minor;
  k.generation = 77;
  k.size = 16008;
  return k;
}

void SetBuildId(em_build_id& b, const std::string& id, uint8_t source,
                uint8_t error = EM_BID_OK) {
  std::memcpy(b.id, id.data(), id.size());
  b.len = static_cast<uint8_t>(id.size());
  b.source = source;
  b.error = error;
}

// Copies s into a fixed char field without requiring room for a NUL.
template <size_t N>
void Put(char (&field)[N], const std::string& s) {
  ASSERT_LE(s.size(), N);
  std::memcpy(field, s.data(), s.size());
}

em_exec_event ValidExec() {
  auto e = Record<em_exec_event>(EM_EV_EXEC, 81234567890);
  e.pid = 4242;
  e.tid = 4243;
  e.ppid = 4200;
  e.uid = 1000;
  e.gid = 1001;
  e.euid = 1002;
  e.egid = 1003;
  e.loginuid = 1004;
  e.flags = EM_F_SCRIPT | EM_F_CWD_TRUNC;
  e.mnt_ns = 4026531841u;
  e.pid_ns = 4026531836u;
  e.argc = 3;
  e.cgroup_id = 7231;
  e.start_ns = 81234000000;
  e.resolved_ns = 81234601020;
  e.exe = Key(1835221, 253, 1);
  e.exe_nlink = 1;
  e.exe_mode = 0100755;
  SetBuildId(e.bid, std::string("\x0e\x0e\x0e\x0e\x00\x00\x00\x08", 8),
             EM_BID_SRC_TASK_WORK);
  Put(e.comm, std::string("hello_pie8"));
  const std::string filename = "./hello_pie8";
  const std::string binary = "/work/bin/hello_pie8";
  const std::string cwd = "/work/bin";
  const std::string args("./hello_pie8\0arg one\0two\0", 25);
  Put(e.filename, filename);
  Put(e.binary, binary);
  Put(e.cwd, cwd);
  Put(e.args, args);
  e.filename_len = static_cast<uint16_t>(filename.size());
  e.binary_len = static_cast<uint16_t>(binary.size());
  e.cwd_len = static_cast<uint16_t>(cwd.size());
  e.args_len = static_cast<uint16_t>(args.size());
  return e;
}

template <typename T>
const T& Get(const absl::StatusOr<KernelRecord>& r) {
  static const T kEmpty{};
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return kEmpty;
  const T* v = std::get_if<T>(&*r);
  EXPECT_NE(v, nullptr) << "wrong record alternative " << r->index();
  return v != nullptr ? *v : kEmpty;
}

std::string ErrorOf(const absl::StatusOr<KernelRecord>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

// ---------------------------------------------------------------- exec

TEST(DecodeExecTest, DecodesEveryField) {
  const std::vector<uint8_t> raw = Bytes(ValidExec());
  auto r = DecodeRecord(raw);
  const ExecEvent& e = Get<ExecEvent>(r);
  EXPECT_EQ(e.ktime_ns, 81234567890u);
  EXPECT_EQ(e.pid, 4242u);
  EXPECT_EQ(e.tid, 4243u);
  EXPECT_EQ(e.ppid, 4200u);
  EXPECT_EQ(e.uid, 1000u);
  EXPECT_EQ(e.gid, 1001u);
  EXPECT_EQ(e.euid, 1002u);
  EXPECT_EQ(e.egid, 1003u);
  EXPECT_EQ(e.loginuid, 1004u);
  EXPECT_EQ(e.flags, EM_F_SCRIPT | EM_F_CWD_TRUNC);
  EXPECT_EQ(e.mnt_ns, 4026531841u);
  EXPECT_EQ(e.pid_ns, 4026531836u);
  EXPECT_EQ(e.argc, 3u);
  EXPECT_EQ(e.cgroup_id, 7231u);
  EXPECT_EQ(e.start_ns, 81234000000u);
  EXPECT_EQ(e.resolved_ns, 81234601020u);
  EXPECT_EQ(e.exe.ino, 1835221u);
  EXPECT_EQ(e.exe.ctime_sec, 1763869261);
  EXPECT_EQ(e.exe.ctime_nsec, 114935522u);
  EXPECT_EQ(e.exe.dev, 253u << 20 | 1u);
  EXPECT_EQ(e.exe.generation, 77u);
  EXPECT_EQ(e.exe.size, 16008u);
  EXPECT_EQ(e.exe_nlink, 1u);
  EXPECT_EQ(e.exe_mode, 0100755u);
  EXPECT_EQ(e.build_id.bytes,
            std::string("\x0e\x0e\x0e\x0e\x00\x00\x00\x08", 8));
  EXPECT_EQ(e.build_id.source, BuildIdSource::kTaskWork);
  EXPECT_EQ(e.build_id.error, EM_BID_OK);
  EXPECT_TRUE(e.build_id.known());
  EXPECT_EQ(e.build_id.Hex(), "0e0e0e0e00000008");
  EXPECT_EQ(e.comm, "hello_pie8");
  EXPECT_EQ(e.filename, "./hello_pie8");
  EXPECT_EQ(e.binary, "/work/bin/hello_pie8");
  EXPECT_EQ(e.cwd, "/work/bin");
  EXPECT_THAT(e.args, ElementsAre("./hello_pie8", "arg one", "two"));
}

TEST(DecodeExecTest, StringsAreCutByTheirLengthNotByNul) {
  em_exec_event e = ValidExec();
  // Bytes past each length are garbage the kernel did not clear.
  Put(e.filename, std::string("/usr/bin/true"));
  e.filename_len = 4;
  // Embedded NULs inside the length are kept.
  Put(e.binary, std::string("/a\0b/c", 6));
  e.binary_len = 6;
  e.cwd_len = 0;
  auto r = DecodeRecord(Bytes(e));
  const ExecEvent& out = Get<ExecEvent>(r);
  EXPECT_EQ(out.filename, "/usr");
  EXPECT_EQ(out.binary, std::string("/a\0b/c", 6));
  EXPECT_EQ(out.cwd, "");
}

TEST(DecodeExecTest, MaximalPathLengthsWithoutNulAreAccepted) {
  em_exec_event e = ValidExec();
  std::memset(e.filename, 'f', sizeof(e.filename));
  std::memset(e.binary, 'b', sizeof(e.binary));
  std::memset(e.cwd, 'c', sizeof(e.cwd));
  e.filename_len = EM_PATH_MAX - 1;
  e.binary_len = EM_PATH_MAX - 1;
  e.cwd_len = EM_PATH_MAX - 1;
  std::memset(e.args, 'a', sizeof(e.args));
  e.args_len = EM_ARGS_MAX;
  auto r = DecodeRecord(Bytes(e));
  const ExecEvent& out = Get<ExecEvent>(r);
  EXPECT_EQ(out.filename, std::string(EM_PATH_MAX - 1, 'f'));
  EXPECT_EQ(out.binary, std::string(EM_PATH_MAX - 1, 'b'));
  EXPECT_EQ(out.cwd, std::string(EM_PATH_MAX - 1, 'c'));
  EXPECT_THAT(out.args, ElementsAre(std::string(EM_ARGS_MAX, 'a')));
}

TEST(DecodeExecTest, CommWithoutNulUsesAllSixteenBytes) {
  em_exec_event e = ValidExec();
  Put(e.comm, std::string("0123456789abcdef"));
  auto r = DecodeRecord(Bytes(e));
  EXPECT_EQ(Get<ExecEvent>(r).comm, "0123456789abcdef");
}

TEST(DecodeExecTest, CommStopsAtNul) {
  em_exec_event e = ValidExec();
  Put(e.comm, std::string("sh\0garbage", 10));
  auto r = DecodeRecord(Bytes(e));
  EXPECT_EQ(Get<ExecEvent>(r).comm, "sh");
}

TEST(DecodeExecTest, TrailingPartialArgIsKept) {
  em_exec_event e = ValidExec();
  const std::string args("cat\0/etc/pass", 13);  // cut mid-argument
  Put(e.args, args);
  e.args_len = static_cast<uint16_t>(args.size());
  e.flags |= EM_F_ARGS_TRUNC;
  auto r = DecodeRecord(Bytes(e));
  EXPECT_THAT(Get<ExecEvent>(r).args, ElementsAre("cat", "/etc/pass"));
}

TEST(DecodeExecTest, EmptyArgsGiveNoArgs) {
  em_exec_event e = ValidExec();
  e.args_len = 0;  // the bytes in e.args are ignored
  auto r = DecodeRecord(Bytes(e));
  EXPECT_THAT(Get<ExecEvent>(r).args, IsEmpty());
}

TEST(DecodeExecTest, EmptyArgumentsArePreserved) {
  em_exec_event e = ValidExec();
  const std::string args("prog\0\0x\0", 8);  // argv = {"prog", "", "x"}
  Put(e.args, args);
  e.args_len = static_cast<uint16_t>(args.size());
  auto r = DecodeRecord(Bytes(e));
  EXPECT_THAT(Get<ExecEvent>(r).args, ElementsAre("prog", "", "x"));
}

TEST(DecodeExecTest, RecordLongerThanStructIsAccepted) {
  em_exec_event e = ValidExec();
  e.hdr.size = sizeof(e) + 8;  // e.g. ring-buffer padding
  std::vector<uint8_t> raw = Bytes(e);
  raw.resize(sizeof(e) + 8, 0xaa);
  auto r = DecodeRecord(raw);
  EXPECT_EQ(Get<ExecEvent>(r).pid, 4242u);
}

struct PathCase {
  const char* name;
  uint16_t em_exec_event::*len;
};

class DecodeExecPathLengthTest : public ::testing::TestWithParam<PathCase> {};

TEST_P(DecodeExecPathLengthTest, LengthOfPathMaxIsRejected) {
  em_exec_event e = ValidExec();
  e.*GetParam().len = EM_PATH_MAX;  // no room left for the NUL
  std::string msg = ErrorOf(DecodeRecord(Bytes(e)));
  EXPECT_THAT(msg,
              HasSubstr(absl::StrCat(GetParam().name, " length ", EM_PATH_MAX,
                                     " exceeds ", EM_PATH_MAX - 1)));
}

TEST_P(DecodeExecPathLengthTest, HugeLengthIsRejected) {
  em_exec_event e = ValidExec();
  e.*GetParam().len = 0xffff;
  std::string msg = ErrorOf(DecodeRecord(Bytes(e)));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat(GetParam().name, " length 65535")));
}

INSTANTIATE_TEST_SUITE_P(
    Paths, DecodeExecPathLengthTest,
    ::testing::Values(PathCase{"filename", &em_exec_event::filename_len},
                      PathCase{"binary", &em_exec_event::binary_len},
                      PathCase{"cwd", &em_exec_event::cwd_len}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DecodeExecTest, ArgsLengthBeyondArgsMaxIsRejected) {
  em_exec_event e = ValidExec();
  e.args_len = EM_ARGS_MAX + 1;
  std::string msg = ErrorOf(DecodeRecord(Bytes(e)));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat("args length ", EM_ARGS_MAX + 1,
                                          " exceeds ", EM_ARGS_MAX)));
}

// ---------------------------------------------------------------- build ID

TEST(DecodeBuildIdTest, TwentyByteIdIsKeptWhole) {
  em_exec_event e = ValidExec();
  std::string id;
  for (int i = 0; i < EM_BUILD_ID_MAX; ++i)
    id.push_back(static_cast<char>(0xa0 + i));
  SetBuildId(e.bid, id, EM_BID_SRC_CACHE);
  auto r = DecodeRecord(Bytes(e));
  const BuildId& b = Get<ExecEvent>(r).build_id;
  EXPECT_EQ(b.bytes, id);
  EXPECT_EQ(b.source, BuildIdSource::kCache);
  EXPECT_EQ(b.Hex(), "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3");
}

TEST(DecodeBuildIdTest, OneByteIdIsAccepted) {
  em_exec_event e = ValidExec();
  SetBuildId(e.bid, "\x7f", EM_BID_SRC_ITERATOR);
  auto r = DecodeRecord(Bytes(e));
  const BuildId& b = Get<ExecEvent>(r).build_id;
  EXPECT_EQ(b.bytes, "\x7f");
  EXPECT_EQ(b.source, BuildIdSource::kIterator);
}

TEST(DecodeBuildIdTest, BytesBeyondLenAreIgnored) {
  em_exec_event e = ValidExec();
  SetBuildId(e.bid, "\x01\x02\x03\x04\x05\x06", EM_BID_SRC_CACHE);
  e.bid.len = 4;
  auto r = DecodeRecord(Bytes(e));
  EXPECT_EQ(Get<ExecEvent>(r).build_id.Hex(), "01020304");
}

TEST(DecodeBuildIdTest, ErrorKeepsErrorAndDropsBytes) {
  em_exec_event e = ValidExec();
  // A failed read may leave bytes and a length behind: they mean nothing.
  SetBuildId(e.bid, "\x01\x02\x03", EM_BID_SRC_TASK_WORK, EM_BID_ERR_NO_NOTE);
  auto r = DecodeRecord(Bytes(e));
  const BuildId& b = Get<ExecEvent>(r).build_id;
  EXPECT_EQ(b.error, EM_BID_ERR_NO_NOTE);
  EXPECT_EQ(b.source, BuildIdSource::kTaskWork);
  EXPECT_THAT(b.bytes, IsEmpty());
  EXPECT_FALSE(b.known());
}

TEST(DecodeBuildIdTest, ErrorWithZeroLengthIsAccepted) {
  em_exec_event e = ValidExec();
  SetBuildId(e.bid, "", EM_BID_SRC_NONE, EM_BID_ERR_PENDING);
  auto r = DecodeRecord(Bytes(e));
  const BuildId& b = Get<ExecEvent>(r).build_id;
  EXPECT_EQ(b.error, EM_BID_ERR_PENDING);
  EXPECT_EQ(b.source, BuildIdSource::kNone);
  EXPECT_FALSE(b.known());
}

TEST(DecodeBuildIdTest, LastErrorValueIsAccepted) {
  em_exec_event e = ValidExec();
  SetBuildId(e.bid, "", EM_BID_SRC_SNAPSHOT, EM_BID_ERR_MAX - 1);
  auto r = DecodeRecord(Bytes(e));
  const BuildId& b = Get<ExecEvent>(r).build_id;
  EXPECT_EQ(b.error, EM_BID_ERR_MAX - 1);
  EXPECT_EQ(b.source, BuildIdSource::kSnapshot);
}

TEST(DecodeBuildIdTest, MemoryFlagIsCarried) {
  em_exec_event e = ValidExec();
  SetBuildId(e.bid, "\x01\x02", EM_BID_SRC_ITERATOR, EM_BID_OK);
  e.bid.flags = EM_BID_F_MEMORY;
  auto r = DecodeRecord(Bytes(e));
  EXPECT_TRUE(Get<ExecEvent>(r).build_id.from_memory);
  e.bid.flags = 0;
  auto r2 = DecodeRecord(Bytes(e));
  EXPECT_FALSE(Get<ExecEvent>(r2).build_id.from_memory);
}

TEST(DecodeBuildIdTest, ZeroLengthWithOkIsRejected) {
  em_exec_event e = ValidExec();
  SetBuildId(e.bid, "", EM_BID_SRC_CACHE, EM_BID_OK);
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(e))),
              HasSubstr("build-ID length 0 out of range"));
}

TEST(DecodeBuildIdTest, LengthAboveTwentyWithOkIsRejected) {
  em_exec_event e = ValidExec();
  SetBuildId(e.bid, "\x01", EM_BID_SRC_CACHE, EM_BID_OK);
  e.bid.len = EM_BUILD_ID_MAX + 1;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(e))),
              HasSubstr("build-ID length 21 out of range"));
}

TEST(DecodeBuildIdTest, SourceOutOfRangeIsRejected) {
  em_exec_event e = ValidExec();
  e.bid.source = EM_BID_SRC_MAX;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(e))),
              HasSubstr(absl::StrCat("build-ID source ", EM_BID_SRC_MAX,
                                     " out of range")));
}

TEST(DecodeBuildIdTest, ErrorOutOfRangeIsRejected) {
  em_exec_event e = ValidExec();
  e.bid.error = EM_BID_ERR_MAX;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(e))),
              HasSubstr(absl::StrCat("build-ID error ",
                                     static_cast<int>(EM_BID_ERR_MAX),
                                     " out of range")));
}

TEST(DecodeBuildIdTest, SnapshotObjectBuildIdIsValidatedToo) {
  auto o = Record<em_snap_object>(EM_EV_SNAP_OBJECT);
  o.bid.error = 200;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(o))),
              HasSubstr("build-ID error 200 out of range"));
}

TEST(DecodeBuildIdTest, ResolvedBuildIdIsValidatedToo) {
  auto r = Record<em_resolved>(EM_EV_RESOLVED);
  r.bid.source = 9;
  r.bid.len = 4;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(r))),
              HasSubstr("build-ID source 9 out of range"));
}

// ---------------------------------------------------------------- other types

TEST(DecodeForkTest, DecodesEveryField) {
  auto f = Record<em_fork_event>(EM_EV_FORK, 5555);
  f.pid = 10;
  f.ppid = 9;
  f.start_ns = 5550;
  auto r = DecodeRecord(Bytes(f));
  const ForkEvent& out = Get<ForkEvent>(r);
  EXPECT_EQ(out.ktime_ns, 5555u);
  EXPECT_EQ(out.pid, 10u);
  EXPECT_EQ(out.ppid, 9u);
  EXPECT_EQ(out.start_ns, 5550u);
}

TEST(DecodeExitTest, DecodesEveryField) {
  auto x = Record<em_exit_event>(EM_EV_EXIT, 7777);
  x.pid = 11;
  x.exit_code = 3 << 8;
  x.start_ns = 7000;
  auto r = DecodeRecord(Bytes(x));
  const ExitEvent& out = Get<ExitEvent>(r);
  EXPECT_EQ(out.ktime_ns, 7777u);
  EXPECT_EQ(out.pid, 11u);
  EXPECT_EQ(out.exit_code, 3u << 8);
  EXPECT_EQ(out.start_ns, 7000u);
}

TEST(DecodeSnapObjectTest, DecodesEveryField) {
  auto o = Record<em_snap_object>(EM_EV_SNAP_OBJECT);
  o.pid = 812;
  o.is_exe = 2;  // any non-zero value
  o.vm_start = 0x55550000;
  o.vm_size = 0x2000;
  o.file = Key(393422, 8, 3);
  SetBuildId(o.bid, "\x0c\xfe\x2c", EM_BID_SRC_SNAPSHOT);
  Put(o.path, std::string("/usr/sbin/sshdGARBAGE"));
  o.path_len = 14;
  auto r = DecodeRecord(Bytes(o));
  const SnapObject& out = Get<SnapObject>(r);
  EXPECT_EQ(out.pid, 812u);
  EXPECT_TRUE(out.is_exe);
  EXPECT_EQ(out.vm_start, 0x55550000u);
  EXPECT_EQ(out.vm_size, 0x2000u);
  EXPECT_EQ(out.file.ino, 393422u);
  EXPECT_EQ(out.file.dev, 8u << 20 | 3u);
  EXPECT_EQ(out.file.ctime_sec, 1763869261);
  EXPECT_EQ(out.file.ctime_nsec, 114935522u);
  EXPECT_EQ(out.file.generation, 77u);
  EXPECT_EQ(out.file.size, 16008u);
  EXPECT_EQ(out.build_id.Hex(), "0cfe2c");
  EXPECT_EQ(out.build_id.source, BuildIdSource::kSnapshot);
  EXPECT_EQ(out.path, "/usr/sbin/sshd");
  EXPECT_FALSE(out.path_truncated);
}

TEST(DecodeSnapObjectTest, BinaryTruncFlagMarksPathTruncated) {
  auto o = Record<em_snap_object>(EM_EV_SNAP_OBJECT);
  o.bid.error = EM_BID_ERR_NOT_ELF;
  o.flags = EM_F_BINARY_TRUNC;
  auto r = DecodeRecord(Bytes(o));
  const SnapObject& out = Get<SnapObject>(r);
  EXPECT_TRUE(out.path_truncated);
  EXPECT_FALSE(out.is_exe);
}

TEST(DecodeSnapObjectTest, OtherFlagsDoNotMarkPathTruncated) {
  auto o = Record<em_snap_object>(EM_EV_SNAP_OBJECT);
  o.bid.error = EM_BID_ERR_NOT_ELF;
  o.flags = ~static_cast<uint32_t>(EM_F_BINARY_TRUNC);
  auto r = DecodeRecord(Bytes(o));
  EXPECT_FALSE(Get<SnapObject>(r).path_truncated);
}

TEST(DecodeSnapObjectTest, PathLengthOfPathMaxIsRejected) {
  auto o = Record<em_snap_object>(EM_EV_SNAP_OBJECT);
  o.bid.error = EM_BID_ERR_NOT_ELF;
  o.path_len = EM_PATH_MAX;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(o))),
              HasSubstr(absl::StrCat("path length ", EM_PATH_MAX, " exceeds ",
                                     EM_PATH_MAX - 1)));
}

TEST(DecodeSnapTaskTest, DecodesEveryField) {
  auto t = Record<em_snap_task>(EM_EV_SNAP_TASK, 9999);
  t.pid = 812;
  t.ppid = 1;
  t.uid = 1;
  t.gid = 2;
  t.euid = 3;
  t.loginuid = UINT32_MAX;
  t.mnt_ns = 4026531841u;
  t.pid_ns = 4026531836u;
  t.cgroup_id = 4321;
  t.start_ns = 2100000000;
  t.flags = EM_F_ARGS_TRUNC;
  Put(t.comm, std::string("sshd"));
  const std::string args("sshd:\0/usr/sbin/sshd\0-", 22);
  Put(t.args, args);
  t.args_len = static_cast<uint32_t>(args.size());
  auto r = DecodeRecord(Bytes(t));
  const SnapTask& out = Get<SnapTask>(r);
  EXPECT_EQ(out.ktime_ns, 9999u);
  EXPECT_EQ(out.pid, 812u);
  EXPECT_EQ(out.ppid, 1u);
  EXPECT_EQ(out.uid, 1u);
  EXPECT_EQ(out.gid, 2u);
  EXPECT_EQ(out.euid, 3u);
  EXPECT_EQ(out.loginuid, UINT32_MAX);
  EXPECT_EQ(out.mnt_ns, 4026531841u);
  EXPECT_EQ(out.pid_ns, 4026531836u);
  EXPECT_EQ(out.cgroup_id, 4321u);
  EXPECT_EQ(out.start_ns, 2100000000u);
  EXPECT_EQ(out.flags, EM_F_ARGS_TRUNC);
  EXPECT_EQ(out.comm, "sshd");
  EXPECT_THAT(out.args, ElementsAre("sshd:", "/usr/sbin/sshd", "-"));
}

TEST(DecodeSnapTaskTest, ArgsLengthBeyondArgsMaxIsRejected) {
  auto t = Record<em_snap_task>(EM_EV_SNAP_TASK);
  t.args_len = EM_ARGS_MAX + 1;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(t))),
              HasSubstr(absl::StrCat("args length ", EM_ARGS_MAX + 1,
                                     " exceeds ", EM_ARGS_MAX)));
}

TEST(DecodeSnapTaskTest, ArgsLengthOfArgsMaxIsAccepted) {
  auto t = Record<em_snap_task>(EM_EV_SNAP_TASK);
  std::memset(t.args, 'z', sizeof(t.args));
  t.args_len = EM_ARGS_MAX;
  auto r = DecodeRecord(Bytes(t));
  EXPECT_THAT(Get<SnapTask>(r).args,
              ElementsAre(std::string(EM_ARGS_MAX, 'z')));
}

TEST(DecodeResolvedTest, DecodesEveryField) {
  auto x = Record<em_resolved>(EM_EV_RESOLVED, 4444);
  x.pid = 4242;
  x.index = 7;
  x.start_ns = 4000;
  x.file = Key(99, 0, 45);
  SetBuildId(x.bid, "\xde\xad\xbe\xef", EM_BID_SRC_ITERATOR);
  auto r = DecodeRecord(Bytes(x));
  const Resolved& out = Get<Resolved>(r);
  EXPECT_EQ(out.ktime_ns, 4444u);
  EXPECT_EQ(out.pid, 4242u);
  EXPECT_EQ(out.index, 7u);
  EXPECT_EQ(out.file.ino, 99u);
  EXPECT_EQ(out.file.dev, 45u);
  EXPECT_EQ(out.file.size, 16008u);
  EXPECT_EQ(out.build_id.Hex(), "deadbeef");
  EXPECT_EQ(out.build_id.source, BuildIdSource::kIterator);
  EXPECT_EQ(out.build_id.error, EM_BID_OK);
}

// ---------------------------------------------------------------- framing

TEST(DecodeRecordTest, EmptyInputHasNoHeader) {
  std::vector<uint8_t> raw;
  EXPECT_THAT(ErrorOf(DecodeRecord(raw)),
              HasSubstr("record of 0 bytes has no header"));
}

TEST(DecodeRecordTest, RecordShorterThanHeaderIsRejected) {
  std::vector<uint8_t> raw = Bytes(Record<em_fork_event>(EM_EV_FORK));
  raw.resize(sizeof(em_header) - 1);
  EXPECT_THAT(ErrorOf(DecodeRecord(raw)),
              HasSubstr(absl::StrCat("record of ", sizeof(em_header) - 1,
                                     " bytes has no header")));
}

TEST(DecodeRecordTest, AbiMismatchNamesBothVersions) {
  auto f = Record<em_fork_event>(EM_EV_FORK);
  f.hdr.abi = EM_ABI_VERSION + 41;
  std::string msg = ErrorOf(DecodeRecord(Bytes(f)));
  EXPECT_THAT(msg,
              HasSubstr(absl::StrCat("ABI version ", EM_ABI_VERSION + 41)));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat("agent speaks ", EM_ABI_VERSION)));
}

TEST(DecodeRecordTest, AbiZeroIsRejected) {
  auto f = Record<em_fork_event>(EM_EV_FORK);
  f.hdr.abi = 0;
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(f))), HasSubstr("ABI version 0"));
}

TEST(DecodeRecordTest, HeaderSizeLargerThanDataIsRejected) {
  auto f = Record<em_fork_event>(EM_EV_FORK);
  f.hdr.size = sizeof(f) + 1;
  std::string msg = ErrorOf(DecodeRecord(Bytes(f)));
  EXPECT_THAT(msg,
              HasSubstr(absl::StrCat("record says ", sizeof(f) + 1,
                                     " bytes, only ", sizeof(f), " present")));
}

TEST(DecodeRecordTest, TruncatedExecBufferIsRejectedBySizeCheck) {
  std::vector<uint8_t> raw = Bytes(ValidExec());
  raw.resize(raw.size() - 1);  // header still claims the full struct
  EXPECT_THAT(ErrorOf(DecodeRecord(raw)),
              HasSubstr(absl::StrCat("record says ", sizeof(em_exec_event),
                                     " bytes, only ", sizeof(em_exec_event) - 1,
                                     " present")));
}

TEST(DecodeRecordTest, UnknownTypeIsRejected) {
  auto f = Record<em_fork_event>(99);
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(f))),
              HasSubstr("unknown record type 99"));
}

TEST(DecodeRecordTest, TypeZeroIsUnknown) {
  auto f = Record<em_fork_event>(0);
  EXPECT_THAT(ErrorOf(DecodeRecord(Bytes(f))),
              HasSubstr("unknown record type 0"));
}

// Each type's record must hold its whole struct. Two ways to be short: the
// buffer and header agree on a short size, or the header says less than
// the buffer holds (decoding is bounded by the header).
struct ShortCase {
  const char* label;
  uint16_t type;
  size_t struct_size;
  const char* what;
};

class DecodeShortRecordTest : public ::testing::TestWithParam<ShortCase> {
 protected:
  // A buffer of struct_size bytes whose header says `size`.
  std::vector<uint8_t> Raw(uint32_t size) const {
    std::vector<uint8_t> raw(GetParam().struct_size, 0);
    em_header h{};
    h.type = GetParam().type;
    h.abi = EM_ABI_VERSION;
    h.size = size;
    std::memcpy(raw.data(), &h, sizeof(h));
    return raw;
  }
};

TEST_P(DecodeShortRecordTest, ShortBufferIsRejectedWithTypeName) {
  const uint32_t n = static_cast<uint32_t>(GetParam().struct_size - 1);
  std::vector<uint8_t> raw = Raw(n);
  raw.resize(n);
  EXPECT_THAT(ErrorOf(DecodeRecord(raw)),
              HasSubstr(absl::StrCat(GetParam().what, " record of ", n,
                                     " bytes, want ", GetParam().struct_size)));
}

TEST_P(DecodeShortRecordTest, HeaderSizeSmallerThanStructIsRejected) {
  std::vector<uint8_t> raw = Raw(sizeof(em_header));
  EXPECT_THAT(
      ErrorOf(DecodeRecord(raw)),
      HasSubstr(absl::StrCat(GetParam().what, " record of ", sizeof(em_header),
                             " bytes, want ", GetParam().struct_size)));
}

TEST_P(DecodeShortRecordTest, HeaderSizeZeroIsRejected) {
  std::vector<uint8_t> raw = Raw(0);
  EXPECT_THAT(ErrorOf(DecodeRecord(raw)),
              HasSubstr(absl::StrCat(GetParam().what, " record of 0 bytes")));
}

TEST_P(DecodeShortRecordTest, ExactStructSizeIsAccepted) {
  std::vector<uint8_t> raw = Raw(static_cast<uint32_t>(GetParam().struct_size));
  // A zeroed build ID with error OK would be rejected (length 0): mark it.
  size_t err_off = 0;
  switch (GetParam().type) {
    case EM_EV_EXEC:
      err_off = offsetof(em_exec_event, bid) + offsetof(em_build_id, error);
      break;
    case EM_EV_SNAP_OBJECT:
      err_off = offsetof(em_snap_object, bid) + offsetof(em_build_id, error);
      break;
    case EM_EV_RESOLVED:
      err_off = offsetof(em_resolved, bid) + offsetof(em_build_id, error);
      break;
  }
  if (err_off != 0) raw[err_off] = EM_BID_ERR_NO_NOTE;
  auto r = DecodeRecord(raw);
  EXPECT_TRUE(r.ok()) << r.status();
}

INSTANTIATE_TEST_SUITE_P(
    Types, DecodeShortRecordTest,
    ::testing::Values(
        ShortCase{"exec", EM_EV_EXEC, sizeof(em_exec_event), "exec"},
        ShortCase{"fork", EM_EV_FORK, sizeof(em_fork_event), "fork"},
        ShortCase{"exit", EM_EV_EXIT, sizeof(em_exit_event), "exit"},
        ShortCase{"snap_object", EM_EV_SNAP_OBJECT, sizeof(em_snap_object),
                  "snapshot object"},
        ShortCase{"snap_task", EM_EV_SNAP_TASK, sizeof(em_snap_task),
                  "snapshot task"},
        ShortCase{"resolved", EM_EV_RESOLVED, sizeof(em_resolved), "resolved"}),
    [](const auto& info) { return std::string(info.param.label); });

TEST(RecordSizeTest, ReturnsHeaderSize) {
  std::vector<uint8_t> raw = Bytes(ValidExec());
  EXPECT_EQ(RecordSize(raw), sizeof(em_exec_event));
}

TEST(RecordSizeTest, ReturnsHeaderSizeEvenIfLargerThanData) {
  auto f = Record<em_fork_event>(EM_EV_FORK);
  f.hdr.size = 123456;
  EXPECT_EQ(RecordSize(Bytes(f)), 123456u);
}

TEST(RecordSizeTest, ZeroWhenShorterThanHeader) {
  std::vector<uint8_t> raw = Bytes(Record<em_fork_event>(EM_EV_FORK));
  raw.resize(sizeof(em_header) - 1);
  EXPECT_EQ(RecordSize(raw), 0u);
  EXPECT_EQ(RecordSize({}), 0u);
}

TEST(RecordSizeTest, SplitsAStreamOfRecords) {
  std::vector<uint8_t> stream = Bytes(Record<em_fork_event>(EM_EV_FORK));
  auto t = Record<em_snap_task>(EM_EV_SNAP_TASK);
  t.pid = 33;
  std::vector<uint8_t> second = Bytes(t);
  stream.insert(stream.end(), second.begin(), second.end());
  absl::Span<const uint8_t> rest(stream);
  size_t first_size = RecordSize(rest);
  ASSERT_EQ(first_size, sizeof(em_fork_event));
  rest.remove_prefix(first_size);
  ASSERT_EQ(RecordSize(rest), sizeof(em_snap_task));
  auto r = DecodeRecord(rest);
  EXPECT_EQ(Get<SnapTask>(r).pid, 33u);
}

// ---------------------------------------------------------------- event.h

TEST(FileKeyTest, UserDevConvertsKernelEncoding) {
  FileKey k;
  k.dev = 253u << 20 | 0u;         // device-mapper 253:0
  EXPECT_EQ(k.UserDev(), 64768u);  // st_dev as stat(2) shows it
  k.dev = 8u << 20 | 1u;           // sda1
  EXPECT_EQ(k.UserDev(), makedev(8, 1));
  EXPECT_EQ(k.UserDev(), 0x801u);
}

TEST(FileKeyTest, UserDevHandlesWideMinorAndMajor) {
  FileKey k;
  k.dev = 0xabcu << 20 | 0x12345u;  // 12-bit major, 20-bit minor
  const uint64_t d = k.UserDev();
  EXPECT_EQ(major(d), 0xabcu);
  EXPECT_EQ(minor(d), 0x12345u);
  EXPECT_EQ(d, makedev(0xabc, 0x12345));
}

TEST(FileKeyTest, UserDevOfZeroIsZero) {
  FileKey k;
  EXPECT_EQ(k.UserDev(), 0u);
}

TEST(FileKeyTest, CtimeNsCombinesSecondsAndNanoseconds) {
  FileKey k;
  k.ctime_sec = 1763869261;
  k.ctime_nsec = 114935522;
  EXPECT_EQ(k.CtimeNs(), 1763869261114935522);
}

TEST(BuildIdTest, HexIsLowercase) {
  BuildId b;
  b.bytes = std::string("\xAB\xCD\xEF\x00\x9a", 5);
  EXPECT_EQ(b.Hex(), "abcdef009a");
}

TEST(BuildIdTest, KnownNeedsOkAndBytes) {
  BuildId b;
  EXPECT_FALSE(b.known());
  b.bytes = "x";
  EXPECT_TRUE(b.known());
  b.error = EM_BID_ERR_NO_NOTE;
  EXPECT_FALSE(b.known());
}

TEST(BuildIdNamesTest, EveryErrorValueHasItsName) {
  const std::vector<std::string> want = {
      "",                     // EM_BID_OK
      "pending",              // EM_BID_ERR_PENDING
      "not_elf",              // EM_BID_ERR_NOT_ELF
      "no_note",              // EM_BID_ERR_NO_NOTE
      "read_fault",           // EM_BID_ERR_READ_FAULT
      "bad_program_headers",  // EM_BID_ERR_BAD_PHDRS
      "bad_note",             // EM_BID_ERR_BAD_NOTE
      "bad_build_id_size",    // EM_BID_ERR_BAD_SIZE
      "no_auxv",              // EM_BID_ERR_NO_AUXV
      "no_mapping",           // EM_BID_ERR_NO_MAPPING
      "mapping_mismatch",     // EM_BID_ERR_MISMATCH
      "exited",               // EM_BID_ERR_EXITED
      "schedule_failed",      // EM_BID_ERR_SCHEDULE
      "pending_table_full",   // EM_BID_ERR_TABLE_FULL
      "walk_limit",           // EM_BID_ERR_LIMIT
      "not_resident",         // EM_BID_ERR_NOT_RESIDENT
      "unresolved",           // EM_BID_ERR_UNRESOLVED
  };
  ASSERT_EQ(want.size(), static_cast<size_t>(EM_BID_ERR_MAX));
  std::set<std::string> seen;
  for (int v = 0; v < EM_BID_ERR_MAX; ++v) {
    std::string name = BuildIdErrorName(static_cast<uint8_t>(v));
    EXPECT_EQ(name, want[v]) << "error " << v;
    EXPECT_NE(name, "unknown") << "error " << v;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate name " << name;
  }
}

TEST(BuildIdNamesTest, OutOfRangeErrorIsUnknown) {
  EXPECT_STREQ(BuildIdErrorName(EM_BID_ERR_MAX), "unknown");
  EXPECT_STREQ(BuildIdErrorName(255), "unknown");
}

TEST(BuildIdNamesTest, EverySourceValueHasItsName) {
  EXPECT_STREQ(BuildIdSourceName(BuildIdSource::kNone), "none");
  EXPECT_STREQ(BuildIdSourceName(BuildIdSource::kCache), "cache");
  EXPECT_STREQ(BuildIdSourceName(BuildIdSource::kTaskWork), "task_work");
  EXPECT_STREQ(BuildIdSourceName(BuildIdSource::kIterator), "iterator");
  EXPECT_STREQ(BuildIdSourceName(BuildIdSource::kSnapshot), "snapshot");
  std::set<std::string> seen;
  for (int v = EM_BID_SRC_NONE; v <= EM_BID_SRC_SNAPSHOT; ++v) {
    std::string name = BuildIdSourceName(static_cast<BuildIdSource>(v));
    EXPECT_NE(name, "unknown") << "source " << v;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate name " << name;
  }
}

TEST(BuildIdNamesTest, EnumValuesMirrorAbi) {
  EXPECT_EQ(static_cast<int>(BuildIdSource::kNone), EM_BID_SRC_NONE);
  EXPECT_EQ(static_cast<int>(BuildIdSource::kCache), EM_BID_SRC_CACHE);
  EXPECT_EQ(static_cast<int>(BuildIdSource::kTaskWork), EM_BID_SRC_TASK_WORK);
  EXPECT_EQ(static_cast<int>(BuildIdSource::kIterator), EM_BID_SRC_ITERATOR);
  EXPECT_EQ(static_cast<int>(BuildIdSource::kSnapshot), EM_BID_SRC_SNAPSHOT);
  EXPECT_EQ(static_cast<int>(BuildIdSource::kPageCache), EM_BID_SRC_PAGE_CACHE);
}

TEST(BuildIdNamesTest, OutOfRangeSourceFallsBackToNone) {
  // Observed behaviour: unlike errors, an out-of-range source is reported
  // as "none" (the decoder never produces one: it rejects them).
  EXPECT_STREQ(BuildIdSourceName(static_cast<BuildIdSource>(EM_BID_SRC_MAX)),
               "none");
  EXPECT_STREQ(BuildIdSourceName(BuildIdSource::kPageCache), "page_cache");
}

// ---------------------------------------------------------------- SplitArgs

std::vector<std::string> Split(const std::string& s) {
  return SplitArgs(s.data(), s.size());
}

TEST(SplitArgsTest, EmptyGivesNothing) {
  EXPECT_THAT(Split(""), IsEmpty());
  EXPECT_THAT(SplitArgs(nullptr, 0), IsEmpty());
}

TEST(SplitArgsTest, TerminatedArgs) {
  EXPECT_THAT(Split(std::string("a\0b\0", 4)), ElementsAre("a", "b"));
}

TEST(SplitArgsTest, TrailingPartialArgIsKept) {
  EXPECT_THAT(Split(std::string("a\0b", 3)), ElementsAre("a", "b"));
}

TEST(SplitArgsTest, OnlyNulsGiveEmptyArgs) {
  EXPECT_THAT(Split(std::string("\0\0", 2)), ElementsAre("", ""));
}

TEST(SplitArgsTest, SingleUnterminatedArg) {
  EXPECT_THAT(Split("abc"), ElementsAre("abc"));
}

TEST(SplitArgsTest, LengthBoundsTheScan) {
  const std::string s("ab\0cd\0ef\0", 9);
  EXPECT_THAT(SplitArgs(s.data(), 4), ElementsAre("ab", "c"));
}

}  // namespace
}  // namespace execmon
