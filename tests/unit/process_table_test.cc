// Tests of the process table (agent/process/process_table.h): exec IDs,
// parent links across exec, fork and snapshot, exit, and the entry bound.
#include "agent/process/process_table.h"

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/event/event.h"
#include "gtest/gtest.h"

namespace execmon {
namespace {

constexpr char kBoot[] = "5f0c1a2b";

ExecEvent Exec(uint32_t pid, uint32_t ppid, uint64_t ktime_ns,
               std::string binary = "/usr/bin/true") {
  ExecEvent e;
  e.pid = pid;
  e.tid = pid;
  e.ppid = ppid;
  e.ktime_ns = ktime_ns;
  e.start_ns = ktime_ns - 1;
  e.binary = std::move(binary);
  e.build_id.bytes = absl::StrCat("id-", pid, "-", ktime_ns);
  e.build_id.source = BuildIdSource::kTaskWork;
  e.cgroup_id = 1000 + pid;
  return e;
}

ForkEvent Fork(uint32_t pid, uint32_t ppid, uint64_t ktime_ns) {
  return ForkEvent{ktime_ns, pid, ppid, ktime_ns - 1};
}

ExitEvent Exit(uint32_t pid, uint64_t ktime_ns = 999999) {
  return ExitEvent{ktime_ns, pid, 0, 0};
}

SnapTask Snap(uint32_t pid, uint32_t ppid, uint64_t start_ns) {
  SnapTask t;
  t.pid = pid;
  t.ppid = ppid;
  t.start_ns = start_ns;
  t.ktime_ns = 5000000000;
  t.cgroup_id = 4321;
  return t;
}

BuildId Id(const std::string& bytes) {
  BuildId b;
  b.bytes = bytes;
  b.source = BuildIdSource::kSnapshot;
  return b;
}

TEST(ProcessTableTest, ExecIdIsBootKtimePid) {
  ProcessTable t(16, kBoot);
  EXPECT_EQ(t.ExecId(4242, 81234567890), "5f0c1a2b:81234567890:4242");
  const ProcessInfo& p = t.OnExec(Exec(4242, 4200, 81234567890));
  EXPECT_EQ(p.exec_id, "5f0c1a2b:81234567890:4242");
}

TEST(ProcessTableTest, OnExecRecordsTheExec) {
  ProcessTable t(16, kBoot);
  ExecEvent e = Exec(10, 1, 500, "/bin/sh");
  const ProcessInfo& p = t.OnExec(e);
  EXPECT_EQ(p.pid, 10u);
  EXPECT_EQ(p.ppid, 1u);
  EXPECT_EQ(p.exec_ns, 500u);
  EXPECT_EQ(p.start_ns, 499u);
  EXPECT_EQ(p.binary, "/bin/sh");
  EXPECT_EQ(p.build_id.bytes, e.build_id.bytes);
  EXPECT_EQ(p.build_id.source, BuildIdSource::kTaskWork);
  EXPECT_EQ(p.cgroup_id, 1010u);
  EXPECT_EQ(p.origin, ProcessInfo::Origin::kExec);
  EXPECT_EQ(t.size(), 1u);
  ASSERT_NE(t.Find(10), nullptr);
  EXPECT_EQ(t.Find(10)->exec_id, p.exec_id);
}

TEST(ProcessTableTest, ExecWithUnknownParentHasNoParentExecId) {
  ProcessTable t(16, kBoot);
  const ProcessInfo& p = t.OnExec(Exec(10, 1, 500));
  EXPECT_EQ(p.parent_exec_id, "");
}

TEST(ProcessTableTest, ExecTakesParentExecIdFromParentEntry) {
  ProcessTable t(16, kBoot);
  const std::string parent_id = t.OnExec(Exec(100, 1, 1000)).exec_id;
  const ProcessInfo& child = t.OnExec(Exec(101, 100, 2000));
  EXPECT_EQ(child.parent_exec_id, parent_id);
  EXPECT_EQ(child.parent_exec_id, "5f0c1a2b:1000:100");
  EXPECT_NE(child.exec_id, parent_id);
}

TEST(ProcessTableTest, ForkGetsItsOwnExecIdAndInheritsParentImage) {
  ProcessTable t(16, kBoot);
  ExecEvent pe = Exec(100, 1, 1000, "/usr/bin/bash");
  pe.cgroup_id = 7231;
  const std::string parent_id = t.OnExec(pe).exec_id;
  const ProcessInfo& child = t.OnFork(Fork(101, 100, 1500));
  EXPECT_EQ(child.exec_id, "5f0c1a2b:1500:101");
  EXPECT_NE(child.exec_id, parent_id);
  EXPECT_EQ(child.parent_exec_id, parent_id);
  EXPECT_EQ(child.pid, 101u);
  EXPECT_EQ(child.ppid, 100u);
  EXPECT_EQ(child.binary, "/usr/bin/bash");
  EXPECT_EQ(child.build_id.bytes, pe.build_id.bytes);
  EXPECT_EQ(child.build_id.source, pe.build_id.source);
  EXPECT_EQ(child.cgroup_id, 7231u);
  EXPECT_EQ(child.exec_ns, 1500u);
  EXPECT_EQ(child.start_ns, 1499u);
  EXPECT_EQ(child.origin, ProcessInfo::Origin::kFork);
}

TEST(ProcessTableTest, ForkOfUnknownParentHasEmptyImage) {
  ProcessTable t(16, kBoot);
  const ProcessInfo& child = t.OnFork(Fork(101, 100, 1500));
  EXPECT_EQ(child.exec_id, "5f0c1a2b:1500:101");
  EXPECT_EQ(child.parent_exec_id, "");
  EXPECT_EQ(child.binary, "");
  EXPECT_FALSE(child.build_id.known());
  EXPECT_EQ(child.cgroup_id, 0u);
}

TEST(ProcessTableTest, ExecOfForkedChildLinksToItsParent) {
  ProcessTable t(16, kBoot);
  const std::string bash_id = t.OnExec(Exec(100, 1, 1000, "/bin/bash")).exec_id;
  const std::string fork_id = t.OnFork(Fork(101, 100, 1500)).exec_id;
  const ProcessInfo& p = t.OnExec(Exec(101, 100, 1600, "/bin/ls"));
  EXPECT_EQ(p.exec_id, "5f0c1a2b:1600:101");
  EXPECT_NE(p.exec_id, fork_id);
  EXPECT_EQ(p.parent_exec_id, bash_id);
  EXPECT_EQ(p.binary, "/bin/ls");
}

TEST(ProcessTableTest, ExecUnderForkedParentLinksToTheForkEntry) {
  // bash (100) forks a subshell (101) that has not exec'd; the subshell
  // forks and execs 102. 102's parent is running the fork entry of 101.
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(100, 1, 1000, "/bin/bash"));
  const std::string subshell_id = t.OnFork(Fork(101, 100, 1500)).exec_id;
  const ProcessInfo& p = t.OnExec(Exec(102, 101, 1700, "/bin/ls"));
  EXPECT_EQ(p.parent_exec_id, subshell_id);
  EXPECT_EQ(p.parent_exec_id, "5f0c1a2b:1500:101");
}

TEST(ProcessTableTest, ReExecReplacesEntryWithNewExecId) {
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(100, 1, 1000));
  const std::string first = t.OnExec(Exec(101, 100, 2000, "/bin/sh")).exec_id;
  const ProcessInfo& second = t.OnExec(Exec(101, 100, 3000, "/bin/ls"));
  EXPECT_NE(second.exec_id, first);
  EXPECT_EQ(second.exec_id, "5f0c1a2b:3000:101");
  EXPECT_EQ(second.parent_exec_id, "5f0c1a2b:1000:100");
  EXPECT_EQ(t.size(), 2u);
  ASSERT_NE(t.Find(101), nullptr);
  EXPECT_EQ(t.Find(101)->exec_id, "5f0c1a2b:3000:101");
  EXPECT_EQ(t.Find(101)->binary, "/bin/ls");
  EXPECT_EQ(t.evictions(), 0u);
}

TEST(ProcessTableTest, ExitRemovesAndReturnsEntry) {
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(100, 1, 1000));
  t.OnExec(Exec(101, 100, 2000, "/bin/sleep"));
  std::optional<ProcessInfo> gone = t.OnExit(Exit(101));
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->pid, 101u);
  EXPECT_EQ(gone->exec_id, "5f0c1a2b:2000:101");
  EXPECT_EQ(gone->parent_exec_id, "5f0c1a2b:1000:100");
  EXPECT_EQ(gone->binary, "/bin/sleep");
  EXPECT_EQ(t.Find(101), nullptr);
  EXPECT_NE(t.Find(100), nullptr);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.evictions(), 0u);
}

TEST(ProcessTableTest, ExitOfUnknownPidReturnsNullopt) {
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(100, 1, 1000));
  EXPECT_EQ(t.OnExit(Exit(555)), std::nullopt);
  EXPECT_EQ(t.size(), 1u);
}

TEST(ProcessTableTest, SecondExitOfSamePidReturnsNullopt) {
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(100, 1, 1000));
  EXPECT_TRUE(t.OnExit(Exit(100)).has_value());
  EXPECT_EQ(t.OnExit(Exit(100)), std::nullopt);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ProcessTableTest, ExitedParentIsNoLongerLinked) {
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(100, 1, 1000));
  t.OnExit(Exit(100));
  EXPECT_EQ(t.OnExec(Exec(101, 100, 2000)).parent_exec_id, "");
}

TEST(ProcessTableTest, BoundEvictsOldestByInsertion) {
  constexpr size_t kMax = 8;
  constexpr uint32_t kExtra = 3;
  ProcessTable t(kMax, kBoot);
  // Pids deliberately not in insertion order, to separate "oldest" from
  // "smallest pid".
  auto pid_of = [](uint32_t i) { return 5000 - 7 * i; };
  for (uint32_t i = 0; i < kMax + kExtra; ++i) {
    t.OnExec(Exec(pid_of(i), 1, 1000 + i));
  }
  EXPECT_EQ(t.size(), kMax);
  EXPECT_EQ(t.evictions(), kExtra);
  for (uint32_t i = 0; i < kExtra; ++i) {
    EXPECT_EQ(t.Find(pid_of(i)), nullptr) << "oldest #" << i << " kept";
  }
  for (uint32_t i = kExtra; i < kMax + kExtra; ++i) {
    const ProcessInfo* p = t.Find(pid_of(i));
    ASSERT_NE(p, nullptr) << "newer #" << i << " evicted";
    EXPECT_EQ(p->exec_id, t.ExecId(pid_of(i), 1000 + i));
  }
}

TEST(ProcessTableTest, BoundKeepsTheParentOfTheNewEntry) {
  ProcessTable t(3, kBoot);
  t.OnExec(Exec(10, 1, 100));  // the oldest, and the parent of 13
  t.OnExec(Exec(11, 1, 200));
  t.OnExec(Exec(12, 1, 300));
  const ProcessInfo& child = t.OnExec(Exec(13, 10, 400));
  EXPECT_EQ(child.parent_exec_id, t.ExecId(10, 100));
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_NE(t.Find(10), nullptr) << "the parent of the new entry was evicted";
  EXPECT_EQ(t.Find(11), nullptr) << "the next oldest should have gone";
  EXPECT_NE(t.Find(12), nullptr);
  // With room for one, the bound wins: the parent goes too.
  ProcessTable one(1, kBoot);
  one.OnExec(Exec(20, 1, 100));
  one.OnExec(Exec(21, 20, 200));
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one.Find(20), nullptr);
  EXPECT_NE(one.Find(21), nullptr);
}

TEST(ProcessTableTest, BoundAppliesAcrossExecForkAndSnapshot) {
  ProcessTable t(2, kBoot);
  t.OnSnapshot(Snap(10, 1, 100), "/a", BuildId{});
  t.OnFork(Fork(11, 10, 200));
  t.OnExec(Exec(12, 11, 300));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.Find(10), nullptr);
  EXPECT_NE(t.Find(11), nullptr);
  EXPECT_NE(t.Find(12), nullptr);
}

TEST(ProcessTableTest, ReinsertingExistingPidIsNotAnEviction) {
  ProcessTable t(3, kBoot);
  t.OnExec(Exec(1, 0, 100));
  t.OnExec(Exec(2, 1, 200));
  t.OnExec(Exec(3, 1, 300));
  // A full table: re-exec of a present pid replaces it in place.
  t.OnExec(Exec(2, 1, 400));
  t.OnFork(Fork(3, 1, 500));
  EXPECT_EQ(t.evictions(), 0u);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_NE(t.Find(1), nullptr);
  EXPECT_NE(t.Find(2), nullptr);
  EXPECT_NE(t.Find(3), nullptr);
}

TEST(ProcessTableTest, ReinsertedPidBecomesNewest) {
  ProcessTable t(3, kBoot);
  t.OnExec(Exec(1, 0, 100));
  t.OnExec(Exec(2, 1, 200));
  t.OnExec(Exec(3, 1, 300));
  t.OnExec(Exec(1, 0, 400));  // 1 is now the newest; 2 the oldest
  t.OnExec(Exec(4, 1, 500));
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.Find(2), nullptr);
  EXPECT_NE(t.Find(1), nullptr);
  EXPECT_NE(t.Find(3), nullptr);
  EXPECT_NE(t.Find(4), nullptr);
}

TEST(ProcessTableTest, ExitFreesRoomWithoutEviction) {
  ProcessTable t(2, kBoot);
  t.OnExec(Exec(1, 0, 100));
  t.OnExec(Exec(2, 1, 200));
  t.OnExit(Exit(1));
  t.OnExec(Exec(3, 1, 300));
  EXPECT_EQ(t.evictions(), 0u);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_NE(t.Find(2), nullptr);
  EXPECT_NE(t.Find(3), nullptr);
}

TEST(ProcessTableTest, ZeroMaxEntriesKeepsOneEntry) {
  ProcessTable t(0, kBoot);
  t.OnExec(Exec(1, 0, 100));
  t.OnExec(Exec(2, 1, 200));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_NE(t.Find(2), nullptr);
}

TEST(ProcessTableTest, SnapshotEntryUsesStartTimeForExecId) {
  ProcessTable t(16, kBoot);
  SnapTask s = Snap(812, 1, 2100000000);
  const ProcessInfo& p = t.OnSnapshot(s, "/usr/sbin/sshd", Id("\x0c\xfe"));
  EXPECT_EQ(p.exec_id, "5f0c1a2b:2100000000:812");
  EXPECT_EQ(p.pid, 812u);
  EXPECT_EQ(p.ppid, 1u);
  EXPECT_EQ(p.start_ns, 2100000000u);
  EXPECT_EQ(p.exec_ns, 2100000000u);
  EXPECT_EQ(p.binary, "/usr/sbin/sshd");
  EXPECT_EQ(p.build_id.bytes, "\x0c\xfe");
  EXPECT_EQ(p.cgroup_id, 4321u);
  EXPECT_EQ(p.origin, ProcessInfo::Origin::kSnapshot);
}

TEST(ProcessTableTest, LinkParentsFillsParentsInsertedAfterChildren) {
  ProcessTable t(16, kBoot);
  // Iterator order is arbitrary: grandchild, child, then the root.
  t.OnSnapshot(Snap(300, 200, 3000), "/bin/c", BuildId{});
  t.OnSnapshot(Snap(200, 100, 2000), "/bin/b", BuildId{});
  t.OnSnapshot(Snap(100, 1, 1000), "/bin/a", BuildId{});
  EXPECT_EQ(t.Find(300)->parent_exec_id, "");
  EXPECT_EQ(t.Find(200)->parent_exec_id, "");
  t.LinkParents();
  EXPECT_EQ(t.Find(300)->parent_exec_id, "5f0c1a2b:2000:200");
  EXPECT_EQ(t.Find(200)->parent_exec_id, "5f0c1a2b:1000:100");
  EXPECT_EQ(t.Find(100)->parent_exec_id, "");  // pid 1 was never seen
}

TEST(ProcessTableTest, LinkParentsKeepsExistingLinks) {
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(100, 1, 1000));
  t.OnExec(Exec(101, 100, 2000));
  // 100 re-execs: 101's recorded parent is what 100 ran when 101 started.
  t.OnExec(Exec(100, 1, 3000));
  t.LinkParents();
  EXPECT_EQ(t.Find(101)->parent_exec_id, "5f0c1a2b:1000:100");
}

TEST(ProcessTableTest, LinkParentsNeverLinksSelfParentedSnapshot) {
  ProcessTable t(16, kBoot);
  t.OnSnapshot(Snap(1, 0, 100), "/sbin/init", BuildId{});
  t.OnSnapshot(Snap(7, 7, 700), "/weird", BuildId{});  // ppid == pid
  t.LinkParents();
  EXPECT_EQ(t.Find(1)->parent_exec_id, "");
  EXPECT_EQ(t.Find(7)->parent_exec_id, "");
}

TEST(ProcessTableTest, LinkParentsPidOneUnderPidZeroEntry) {
  // Even a (bogus) entry for pid 0 is a different process than pid 1:
  // linking is by ppid, and only a self link is refused.
  ProcessTable t(16, kBoot);
  t.OnSnapshot(Snap(1, 0, 100), "/sbin/init", BuildId{});
  t.OnSnapshot(Snap(0, 0, 1), "swapper", BuildId{});
  t.LinkParents();
  EXPECT_EQ(t.Find(1)->parent_exec_id, "5f0c1a2b:1:0");
  EXPECT_EQ(t.Find(0)->parent_exec_id, "");
}

TEST(ProcessTableTest, SelfParentedExecNeverLinksToItself) {
  ProcessTable t(16, kBoot);
  const ProcessInfo& first = t.OnExec(Exec(7, 7, 1000));
  EXPECT_EQ(first.parent_exec_id, "");
  // A re-exec with ppid == pid must not link to the process's own
  // previous exec.
  const ProcessInfo& second = t.OnExec(Exec(7, 7, 2000));
  EXPECT_NE(second.parent_exec_id, "5f0c1a2b:1000:7");
  EXPECT_EQ(second.parent_exec_id, "");
}

TEST(ProcessTableTest, SelfParentedForkNeverLinksToItself) {
  ProcessTable t(16, kBoot);
  t.OnExec(Exec(7, 1, 1000, "/bin/x"));
  // OnFork must not take the pid's own (about to be replaced) entry as
  // its parent.
  const ProcessInfo& p = t.OnFork(Fork(7, 7, 2000));
  EXPECT_EQ(p.parent_exec_id, "");
}

}  // namespace
}  // namespace execmon
