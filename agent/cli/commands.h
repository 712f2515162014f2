// The command line's subcommands: their usage, their own flags, help text
// and examples, and the check that a flag was given to a subcommand that
// takes it. Flags stay absl flags (one global registry); this table says
// which subcommand each belongs to.
#ifndef EXECMON_AGENT_CLI_COMMANDS_H_
#define EXECMON_AGENT_CLI_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace execmon {

struct Command {
  absl::string_view name;     // "run", "policy lint", ...
  absl::string_view args;     // positional arguments, e.g. "FILE..."
  absl::string_view summary;  // one line, for `execmon help`
  absl::string_view details;  // a paragraph, for `execmon help NAME`
  absl::string_view example;  // one or more example invocations
  // Flag names (absl spelling) the command takes. Empty for "run": it
  // takes every flag defined in `defining_file` that no other command
  // claims.
  std::vector<absl::string_view> flags;
};

// Every command, in the order `execmon help` lists them.
const std::vector<Command>& Commands();

// The command named exactly `name` ("policy lint"), or nullptr.
const Command* FindCommand(absl::string_view name);

// The flags `cmd` takes, sorted. `defining_file`: the source file whose
// flags are the agent's (its absl Filename() ends with it).
std::vector<std::string> FlagsOf(const Command& cmd,
                                 absl::string_view defining_file);

// `execmon help`: the commands, one line each.
std::string TopHelp();
// `execmon help NAME` / `execmon NAME --help`: usage, description, the
// command's own flags (type, default, help) and an example.
std::string CommandHelp(const Command& cmd, absl::string_view defining_file);
// `execmon help policy`: the commands under a group ("policy").
std::string GroupHelp(absl::string_view group);

// The names of the flags on a command line (before absl parses it; names
// already in absl's underscore spelling): "--name", "--name=value", "-name",
// and "--noname" for a bool flag.
std::vector<std::string> FlagsGiven(int argc, char** argv);

// An error naming the command and the flag when a flag of `defining_file`
// among `given` is not one `cmd` takes.
absl::Status CheckFlags(const Command& cmd, absl::string_view defining_file,
                        const std::vector<std::string>& given);

}  // namespace execmon

#endif  // EXECMON_AGENT_CLI_COMMANDS_H_
