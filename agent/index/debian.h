// Debian package metadata through libapt-pkg: deb822 control stanzas
// (a .deb's control file, dpkg's status file) and which installed package
// owns which path (dpkg's info/*.list).
#ifndef EXECMON_AGENT_INDEX_DEBIAN_H_
#define EXECMON_AGENT_INDEX_DEBIAN_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/index/index.h"

namespace execmon {

// The package a control stanza describes (Package, Version, Architecture,
// Source: "name (version)" keeps the name).
absl::StatusOr<PackageInfo> ParseControl(absl::string_view stanza);

// path -> package, for every file an installed package of the dpkg
// database under root (root/var/lib/dpkg) lists. Paths a merged /usr moved
// (/bin/x listed, /usr/bin/x on disk) are recorded under both names. Empty
// when root has no dpkg database.
absl::StatusOr<absl::flat_hash_map<std::string, PackageInfo>> ReadDpkgOwners(
    const std::string& root);

// The same from a status file at `status` and the info/*.list files that
// read_list("<package>[:<arch>].list") returns (nullopt: no such list).
absl::StatusOr<absl::flat_hash_map<std::string, PackageInfo>> DpkgOwners(
    const std::string& status,
    absl::FunctionRef<std::optional<std::string>(const std::string&)>
        read_list);

}  // namespace execmon

#endif  // EXECMON_AGENT_INDEX_DEBIAN_H_
