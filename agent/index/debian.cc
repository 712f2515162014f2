#include "agent/index/debian.h"

#include <apt-pkg/error.h>
#include <apt-pkg/fileutl.h>
#include <apt-pkg/tagfile.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace execmon {
namespace {

PackageInfo FromSection(const pkgTagSection& s) {
  PackageInfo p;
  p.name = s.FindS("Package");
  p.version = s.FindS("Version");
  p.arch = s.FindS("Architecture");
  // "Source: openssl (3.0.11-1)": the name only.
  std::string source = s.FindS("Source");
  p.source = source.empty() ? p.name
                            : std::string(absl::StripAsciiWhitespace(
                                  source.substr(0, source.find('('))));
  return p;
}

// apt's pending error messages, as one string (and the stack cleared).
std::string AptErrors() {
  std::string out;
  while (!_error->empty()) {
    std::string msg;
    _error->PopMessage(msg);
    absl::StrAppend(&out, out.empty() ? "" : "; ", msg);
  }
  return out.empty() ? "unknown error" : out;
}

}  // namespace

absl::StatusOr<PackageInfo> ParseControl(absl::string_view stanza) {
  // Scan wants the stanza to end with a blank line.
  std::string text(stanza);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  text += "\n\n";
  pkgTagSection section;
  if (!section.Scan(text.data(), text.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("control: not a deb822 stanza: ", AptErrors()));
  }
  PackageInfo p = FromSection(section);
  if (p.name.empty() || p.version.empty()) {
    return absl::InvalidArgumentError("control: no Package or Version field");
  }
  return p;
}

absl::StatusOr<absl::flat_hash_map<std::string, PackageInfo>> DpkgOwners(
    const std::string& status,
    absl::FunctionRef<std::optional<std::string>(const std::string&)>
        read_list) {
  absl::flat_hash_map<std::string, PackageInfo> owners;
  FileFd fd;
  if (!fd.Open(status, FileFd::ReadOnly)) {
    return absl::UnavailableError(absl::StrCat(status, ": ", AptErrors()));
  }
  pkgTagFile tags(&fd);
  pkgTagSection section;
  while (tags.Step(section)) {
    // "Status: install ok installed": only what is installed owns files.
    if (!absl::EndsWith(section.FindS("Status"), " installed")) continue;
    PackageInfo p = FromSection(section);
    // Multi-Arch: same packages list their files as name:arch.list.
    for (const std::string& list :
         {absl::StrCat(p.name, ".list"),
          absl::StrCat(p.name, ":", p.arch, ".list")}) {
      std::optional<std::string> text = read_list(list);
      if (!text.has_value()) continue;
      for (absl::string_view line : absl::StrSplit(*text, '\n')) {
        if (line.empty() || line == "/.") continue;
        owners.insert_or_assign(std::string(line), p);
        // Merged /usr: dpkg lists /bin/x, the file lives at /usr/bin/x.
        for (absl::string_view moved :
             {"/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"}) {
          if (absl::StartsWith(line, moved)) {
            owners.try_emplace(absl::StrCat("/usr", line), p);
          }
        }
      }
    }
  }
  if (!_error->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(status, ": ", AptErrors()));
  }
  return owners;
}

absl::StatusOr<absl::flat_hash_map<std::string, PackageInfo>> ReadDpkgOwners(
    const std::string& root) {
  const std::string dpkg = root + "/var/lib/dpkg";
  const std::string status = dpkg + "/status";
  if (!FileExists(status))
    return absl::flat_hash_map<std::string, PackageInfo>();
  return DpkgOwners(status,
                    [&](const std::string& list) -> std::optional<std::string> {
                      std::ifstream in(absl::StrCat(dpkg, "/info/", list));
                      if (!in) return std::nullopt;
                      return std::string((std::istreambuf_iterator<char>(in)),
                                         std::istreambuf_iterator<char>());
                    });
}

}  // namespace execmon
