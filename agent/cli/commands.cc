#include "agent/cli/commands.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace execmon {
namespace {

constexpr absl::string_view kPolicyTestFlags[] = {
    "build_id",  "sha256", "namespace", "labels",
    "container", "host",   "format",    "index"};

// Flags some command other than "run" claims.
absl::flat_hash_set<absl::string_view> ClaimedFlags() {
  absl::flat_hash_set<absl::string_view> out;
  for (const Command& c : Commands())
    out.insert(c.flags.begin(), c.flags.end());
  out.erase("output");  // shared by run, index build and index compile
  out.erase("index");   // shared by run and policy test
  return out;
}

bool IsRun(const Command& cmd) { return cmd.name == "run"; }

// Wraps text at width columns, each line indented by indent spaces.
std::string Wrap(absl::string_view text, size_t indent, size_t width = 78) {
  std::string out, line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty())
    absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
  return out;
}

// A command name padded to the summary column.
std::string Padded(absl::string_view name) {
  constexpr size_t kColumn = 18;
  return absl::StrCat(
      name,
      std::string(name.size() < kColumn ? kColumn - name.size() : 1, ' '));
}

std::string Usage(const Command& cmd) {
  return absl::StrCat("execmon ", cmd.name,
                      cmd.args.empty() ? "" : absl::StrCat(" ", cmd.args));
}

}  // namespace

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"run",
       "[flags]",
       "monitor every exec on this node (the agent)",
       "Loads the BPF programs, reports every exec, exit and running process "
       "as JSON events (stdout, a file or Kafka), judges build IDs against the "
       "policies in --policies and serves Prometheus metrics. Needs root (or "
       "CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE and CAP_SYS_PTRACE). Flags may "
       "be written with dashes or underscores.",
       "execmon run\n"
       "execmon run --policies=/etc/execmon/policies "
       "--output=/var/log/execmon.jsonl\n"
       "execmon run --kafka_brokers=kafka:9092 --metrics_address=0.0.0.0:9470",
       {}},
      {"buildid",
       "FILE...",
       "print the GNU build ID of ELF files, as 'HEX  FILE'",
       "Reads each file's NT_GNU_BUILD_ID note with libelf (the ID the agent "
       "reports for an exec of that file). A build ID names a build; it does "
       "not prove the file's content: anyone can link a binary with a chosen "
       "ID. Exit status 1 if any file has no readable build ID.",
       "execmon buildid /usr/bin/curl /usr/lib/x86_64-linux-gnu/libc.so.6",
       {}},
      {"policy lint",
       "DIR [--format=json]",
       "check the policies in a directory",
       "Parses every *.yaml policy in DIR (and the list files they name) and "
       "reports each error with file, line and column. Exit status 1 on any "
       "error.",
       "execmon policy lint /etc/execmon/policies\n"
       "execmon policy lint /etc/execmon/policies --format=json",
       {"format"}},
      {"policy test",
       "DIR [--build_id=HEX] [--sha256=HEX] (--host | [--namespace=NS] "
       "[--labels=k=v,...] [--container=NAME]) [--format=json]",
       "show the verdict the policies in DIR give one exec",
       "Evaluates the policies in DIR for an exec with the given build ID in "
       "the given place (--host, or a pod's --namespace, --labels, "
       "--container), and shows what each policy says. With --index, "
       "denyPackages rules expand through those build-ID indexes and what "
       "each expanded to is shown. Exit status 3 when the decision is deny.",
       "execmon policy test /etc/execmon/policies --build_id=6d1b5b9e0ab5f1c1 "
       "--namespace=prod --labels=app=web",
       {std::begin(kPolicyTestFlags), std::end(kPolicyTestFlags)}},
      {"policy generate",
       "--from_index=FILE --name=NAME [--mode=enforce]",
       "print an allowlist policy of every build ID in an index",
       "Prints an ExecPolicy (YAML) that allows every build ID in the index "
       "(execmon index build): an image's or a package set's allowlist in "
       "one command. Add a selector before enforcing it: an allowlist kills "
       "everything it does not list among the processes it selects.",
       "execmon policy generate --from_index=web.idx --name=web-allowlist > "
       "web.yaml",
       {"from_index", "name", "mode"}},
      {"index build",
       "--output=FILE SOURCE... [--under=PATH,...]",
       "index the build IDs of root filesystems and .deb packages",
       "Writes an index (docs/index.md) of every ELF file with a build ID in "
       "the sources: a root filesystem directory (its dpkg database names "
       "the packages) or .deb files (their control data does). Each entry has "
       "the build ID, path, size, sha256 and package name, version, "
       "architecture and source package.",
       "execmon index build --output=bookworm.idx "
       "/var/cache/apt/archives/*.deb\n"
       "execmon index build --output=rootfs.idx /srv/images/web/rootfs\n"
       "execmon index build --output=bin.idx / --under=/usr/bin,/usr/sbin",
       {"output", "under"}},
      {"index compile",
       "--output=FILE INDEX...",
       "compile indexes into the agent's fast-loading form",
       "Reads indexes (JSON Lines from 'index build', or compiled ones; a "
       "directory: its files in name order) and writes one compiled index: "
       "build ID -> package only, sorted, in the layout the agent keeps in "
       "memory, so --index loads it with a read and a check instead of a "
       "JSON parse (1 million entries: well under a second; docs/index.md). "
       "Where indexes name different packages for one build ID, the first "
       "wins, as in the agent.",
       "execmon index compile --output=/etc/execmon/index/bookworm.emidx "
       "bookworm.idx bookworm-security.idx",
       {"output"}},
      {"index query",
       "FILE... [--build_id=HEX] [--package=NAME]",
       "look up build IDs or packages in indexes",
       "Prints the entries of the indexes that match: 'BUILD-ID  PACKAGE "
       "VERSION ARCH  PATH', or one JSON object per line with --format=json. "
       "Exit status 1 when nothing matches.",
       "execmon index query bookworm.idx --build_id=6d1b5b9e0ab5f1c1\n"
       "execmon index query bookworm.idx --package=curl --format=json",
       {"build_id", "package", "format"}},
      {"schema",
       "",
       "print the JSON Schema of the events",
       "Prints the JSON Schema (draft 2020-12) of every event type the agent "
       "emits, for the event schema version in each event's \"schema\" "
       "field. docs/events.md describes the fields.",
       "execmon schema > execmon-events.schema.json",
       {}},
      {"version",
       "",
       "print the version",
       "Prints 'execmon VERSION'.",
       "execmon version",
       {}},
      {"help",
       "[COMMAND]",
       "show help for execmon or a command",
       "Without a command, lists the commands; with one, shows its usage, "
       "flags and an example. 'execmon COMMAND --help' does the same.",
       "execmon help policy test",
       {}},
  };
  return *commands;
}

const Command* FindCommand(absl::string_view name) {
  for (const Command& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> FlagsOf(const Command& cmd,
                                 absl::string_view defining_file) {
  std::vector<std::string> out;
  if (!IsRun(cmd)) {
    for (absl::string_view f : cmd.flags) out.emplace_back(f);
  } else {
    const auto claimed = ClaimedFlags();
    for (const auto& [name, flag] : absl::GetAllFlags()) {
      if (!absl::EndsWith(flag->Filename(), defining_file)) continue;
      if (!claimed.contains(name)) out.emplace_back(name);
    }
  }
  // absl's own flag every command accepts (the chart passes Kafka
  // credentials through it).
  out.emplace_back("flagfile");
  std::sort(out.begin(), out.end());
  return out;
}

std::string TopHelp() {
  std::string out =
      "execmon: a container-aware exec security monitor. Learns the ELF build "
      "ID\nof every executed binary in the kernel and judges it against "
      "policies.\n\nUsage: execmon COMMAND [ARGS] [flags]\n\nCommands:\n";
  for (const Command& c : Commands()) {
    absl::StrAppend(&out, "  ", Padded(c.name), c.summary, "\n");
  }
  absl::StrAppend(&out,
                  "\nRun 'execmon help COMMAND' or 'execmon COMMAND --help' "
                  "for a command's flags.\n");
  return out;
}

std::string GroupHelp(absl::string_view group) {
  std::string out =
      absl::StrCat("Usage: execmon ", group, " COMMAND\n\nCommands:\n");
  for (const Command& c : Commands()) {
    if (!absl::StartsWith(c.name, absl::StrCat(group, " "))) continue;
    absl::StrAppend(&out, "  ", Padded(c.name), c.summary, "\n");
  }
  absl::StrAppend(&out, "\nRun 'execmon help ", group,
                  " COMMAND' for a command's flags.\n");
  return out;
}

std::string CommandHelp(const Command& cmd, absl::string_view defining_file) {
  std::string out = absl::StrCat("Usage: ", Usage(cmd), "\n\n");
  absl::StrAppend(&out, Wrap(cmd.details, 0), "\n");
  const std::vector<std::string> flags = FlagsOf(cmd, defining_file);
  if (!flags.empty()) {
    absl::StrAppend(&out, "Flags:\n");
    for (const std::string& name : flags) {
      const absl::CommandLineFlag* f = absl::FindCommandLineFlag(name);
      if (f == nullptr) continue;
      // --name=DEFAULT: copy-pasteable, and what the chart tests parse.
      const std::string def = f->DefaultValue();
      absl::StrAppend(&out, "  --", name, "=", def.empty() ? "\"\"" : def, "\n",
                      Wrap(f->Help(), 6));
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "Example",
                  absl::StrContains(cmd.example, '\n') ? "s" : "", ":\n");
  for (absl::string_view line : absl::StrSplit(cmd.example, '\n')) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

std::vector<std::string> FlagsGiven(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--") break;  // the rest are positional arguments
    if (!absl::ConsumePrefix(&a, "--") && !absl::ConsumePrefix(&a, "-")) {
      continue;
    }
    a = a.substr(0, a.find('='));
    std::string name(a);
    // --nofoo is absl's spelling of --foo=false.
    if (absl::FindCommandLineFlag(name) == nullptr &&
        absl::ConsumePrefix(&a, "no") &&
        absl::FindCommandLineFlag(a) != nullptr) {
      name = std::string(a);
    }
    out.push_back(std::move(name));
  }
  return out;
}

absl::Status CheckFlags(const Command& cmd, absl::string_view defining_file,
                        const std::vector<std::string>& given) {
  const std::vector<std::string> mine = FlagsOf(cmd, defining_file);
  std::vector<std::string> wrong;
  for (const std::string& name : given) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;  // absl's own, or unknown (absl says so)
    if (!absl::EndsWith(flag->Filename(), defining_file)) continue;
    if (std::binary_search(mine.begin(), mine.end(), name)) continue;
    wrong.push_back(name);
  }
  if (wrong.empty()) return absl::OkStatus();
  std::vector<std::string> owners;
  for (const Command& c : Commands()) {
    const std::vector<std::string> theirs = FlagsOf(c, defining_file);
    if (std::binary_search(theirs.begin(), theirs.end(), wrong[0])) {
      owners.emplace_back(c.name);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "execmon ", cmd.name, ": --", wrong[0], " is not a flag of '", cmd.name,
      "'",
      owners.empty() ? ""
                     : absl::StrCat(" (it belongs to '",
                                    absl::StrJoin(owners, "', '"), "')"),
      "; see 'execmon help ", cmd.name, "'"));
}

}  // namespace execmon
