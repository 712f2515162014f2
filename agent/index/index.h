// The build-ID index (docs/index.md): for every ELF file with a build ID in
// a source (a root filesystem, .deb files), the build ID, the path, size
// and sha256, and the Debian package that ships it. Built by `execmon index
// build`, read by `execmon index query` and `execmon policy generate`.
#ifndef EXECMON_AGENT_INDEX_INDEX_H_
#define EXECMON_AGENT_INDEX_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace execmon {

inline constexpr int kIndexFormatVersion = 1;

// A Debian binary package, from dpkg's status file or a .deb's control.
struct PackageInfo {
  std::string name;
  std::string version;
  std::string arch;
  std::string source;  // the source package (= name when not stated)
};

struct IndexEntry {
  std::string build_id;  // raw bytes (1-20)
  std::string path;      // absolute path inside the source
  uint64_t size = 0;
  std::string sha256;   // raw 32 bytes
  PackageInfo package;  // name empty: no package ships the file
  int source = 0;       // index into Index::sources
};

struct IndexSource {
  std::string kind;    // "rootfs", "deb" or "oci"
  std::string ref;     // the directory or file as given
  std::string image;   // oci: the image's name (ref.name annotation)
  std::string digest;  // oci: the image manifest's digest
};

// What a build met that did not become an entry.
struct IndexStats {
  uint64_t files = 0;           // regular files looked at
  uint64_t elf_without_id = 0;  // ELF files without a (valid) build ID
  uint64_t unreadable = 0;      // files that could not be read
};

struct Index {
  std::vector<IndexSource> sources;
  std::vector<IndexEntry> entries;
  IndexStats stats;
};

// Adds one source: a directory (a root filesystem, with dpkg's database
// under var/lib/dpkg when it has one), a .deb file, or a container image:
// "oci:DIR" (an OCI image layout, as `buildah push IMAGE oci:DIR` writes;
// a directory with an oci-layout file is one too) or "oci-archive:FILE"
// (the same as a tar). `under`: for a root filesystem, only these
// subtrees (absolute paths inside it); empty: all.
absl::Status AddIndexSource(const std::string& source,
                            const std::vector<std::string>& under,
                            Index* index);

// The header line's "execmon_index" (-1: absent) against the format this
// execmon reads: OK, or InvalidArgument "<path>:1: ..." saying what is wrong.
absl::Status CheckIndexFormat(const std::string& path, int64_t format);

// One entry as the index file has it (one JSON object, no newline);
// `index_file`, when given, is added as "index" (for `index query`).
std::string IndexEntryJson(const IndexEntry& entry,
                           absl::string_view index_file = {});

// JSON Lines: a header line, then one line per entry (docs/index.md).
absl::Status WriteIndex(const Index& index, const std::string& path);
absl::StatusOr<Index> ReadIndex(const std::string& path);

}  // namespace execmon

#endif  // EXECMON_AGENT_INDEX_INDEX_H_
