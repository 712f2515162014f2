// The agent's view of loaded build-ID indexes (docs/index.md): build ID ->
// the Debian package that ships it, for `process.package` in events.
// Compact and immutable once loaded (a reload builds a new map): per build
// ID 24 bytes in one sorted array (a 21-byte key and a 24-bit package
// number; a hash table would round its capacity up to the next power of
// two); per package version one record into a shared text arena.
#ifndef EXECMON_AGENT_INDEX_PACKAGE_MAP_H_
#define EXECMON_AGENT_INDEX_PACKAGE_MAP_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace execmon {

// Views into the map: valid while the map lives.
struct PackageRef {
  absl::string_view name, version, arch, source;
};

class PackageMap {
 public:
  // Loads every index named: a file, or a directory's regular files (names
  // starting with '.' skipped, as a ConfigMap volume's "..data"). An
  // unreadable or malformed index fails the load, naming file and line.
  // An index is JSON Lines (docs/index.md) or compiled (Save): the first
  // bytes tell which.
  static absl::StatusOr<PackageMap> Load(const std::vector<std::string>& paths);

  // Writes the map in the compiled form (`execmon index compile`): its
  // sorted entry array, package records and text as they are in memory,
  // behind a header, so a load is a read and a validation, not a parse.
  // It keeps only what the agent uses: build ID -> package.
  absl::Status Save(const std::string& path) const;

  // The first bytes of a compiled index.
  static constexpr absl::string_view kMagic = "EMIDX01\n";

  // The package of a build ID (raw bytes). When several indexes name
  // different packages for one build ID, the first loaded wins (files in
  // the order given, a directory's in name order).
  std::optional<PackageRef> Find(absl::string_view build_id) const;

  // Calls fn(build_id, PackageRef) for every build ID, in key order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const Entry& e : entries_) {
      fn(absl::string_view(reinterpret_cast<const char*>(e.key.data()) + 1,
                           e.key[0]),
         RefOf(e.number()));
    }
  }

  size_t size() const { return entries_.size(); }
  size_t packages() const { return packages_.size(); }
  size_t files() const { return files_; }
  // The map's own memory: its arrays and package text.
  size_t MemoryBytes() const {
    return entries_.capacity() * sizeof(Entry) +
           packages_.capacity() * sizeof(Package) + text_.capacity();
  }

 private:
  using Key = std::array<uint8_t, 21>;  // [0]: length, then the ID
  struct Entry {
    Key key;
    uint8_t package[3];  // little-endian package number
    uint32_t number() const {
      return package[0] | package[1] << 8 | package[2] << 16;
    }
  };
  static_assert(sizeof(Entry) == 24);
  struct Package {
    uint32_t offset;  // into text_: name, version, arch, source
    uint16_t len[4];
  };

  absl::Status LoadFile(const std::string& path);
  // A compiled index (data: the whole file, magic included).
  absl::Status LoadCompiled(const std::string& path, absl::string_view data);
  PackageRef RefOf(uint32_t package) const;

  std::vector<Entry> entries_;  // sorted by key once loaded
  std::vector<Package> packages_;
  std::string text_;
  // While loading only: "name\nversion\narch\nsource" -> package number.
  absl::flat_hash_map<std::string, uint32_t> interned_;
  size_t files_ = 0;
  // A compiled file was loaded: with only one file loaded, entries_ is
  // sorted and unique already.
  bool sorted_ = false;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_INDEX_PACKAGE_MAP_H_
