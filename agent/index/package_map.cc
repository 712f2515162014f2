#include "agent/index/package_map.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/index/index.h"
#include "rapidjson/reader.h"

namespace execmon {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// What one index line says, as a SAX handler: only the fields the agent
// keeps are looked at (the sha256 and path of each entry are skipped
// without building anything).
struct LineHandler
    : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, LineHandler> {
  int depth = 0;
  bool in_package = false;
  absl::string_view key;
  int64_t format = -1;  // header: execmon_index
  absl::string_view build_id;
  absl::string_view fields[4];  // package name, version, arch, source

  bool StartObject() {
    ++depth;
    in_package = depth == 2 && key == "package";
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    if (depth == 2) in_package = false;
    --depth;
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    key = absl::string_view(s, n);
    return true;
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    const absl::string_view v(s, n);
    if (depth == 1 && key == "build_id") {
      build_id = v;
    } else if (in_package) {
      if (key == "name") fields[0] = v;
      if (key == "version") fields[1] = v;
      if (key == "arch") fields[2] = v;
      if (key == "source") fields[3] = v;
    }
    return true;
  }
  bool Int(int i) { return Int64(i); }
  bool Uint(unsigned u) { return Int64(u); }
  bool Int64(int64_t i) {
    if (depth == 1 && key == "execmon_index") format = i;
    return true;
  }
  bool Default() { return true; }
};

}  // namespace

absl::Status PackageMap::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0);
  std::string text(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(text.size()))) {
    return absl::UnavailableError(absl::StrCat(path, ": read error"));
  }
  // One entry a line: memchr finds newlines many bytes at a time.
  size_t lines = 0;
  for (const char* p = text.data();
       (p = static_cast<const char*>(
            std::memchr(p, '\n', text.data() + text.size() - p)));
       ++p) {
    ++lines;
  }
  entries_.reserve(entries_.size() + lines);
  if (text.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  // One line at a time, parsed in place with memory pools on the stack:
  // no allocation per line.
  std::string interned, last_interned;
  uint32_t last_number = 0;
  size_t pos = 0;
  int lineno = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++lineno;
    if (end == text.size()) text.push_back('\0');
    text[end] = '\0';
    char* line = &text[pos];
    pos = end + 1;
    auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": ", what));
    };
    LineHandler h;
    rapidjson::Reader reader;
    rapidjson::InsituStringStream stream(line);
    const bool object = *line == '{';
    if (!object ||
        reader.Parse<rapidjson::kParseInsituFlag>(stream, h).IsError()) {
      return bad("not a JSON object");
    }
    if (lineno == 1) {
      if (h.format < 0) {
        return bad("not an execmon index (no \"execmon_index\" header)");
      }
      if (h.format != kIndexFormatVersion) {
        return bad(absl::StrCat("index format ", h.format,
                                ", this execmon reads ", kIndexFormatVersion));
      }
      continue;
    }
    const absl::string_view hex = h.build_id;
    if (hex.empty() || hex.size() > 40 || hex.size() % 2 != 0) {
      return bad("build_id: want 1-20 bytes of hex");
    }
    Key key{};
    key[0] = static_cast<uint8_t>(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
      const int hi = HexDigit(hex[i]), lo = HexDigit(hex[i + 1]);
      if (hi < 0 || lo < 0) return bad("build_id: want 1-20 bytes of hex");
      key[1 + i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
    const absl::string_view* fields = h.fields;
    if (fields[0].empty()) continue;
    // Looked up through a reused buffer: a string is built only for a
    // package version not seen before; an index lists a package's files
    // together, so the previous line's package is tried first.
    interned.clear();
    absl::StrAppend(&interned, fields[0], "\n", fields[1], "\n", fields[2],
                    "\n", fields[3]);
    uint32_t number;
    if (interned == last_interned) {
      number = last_number;
    } else {
      auto it = interned_.find(interned);
      if (it == interned_.end()) {
        it =
            interned_.emplace(interned, static_cast<uint32_t>(packages_.size()))
                .first;
        Package p;
        p.offset = static_cast<uint32_t>(text_.size());
        for (int f = 0; f < 4; ++f) {
          p.len[f] =
              static_cast<uint16_t>(std::min<size_t>(fields[f].size(), 0xffff));
          text_.append(fields[f].data(), p.len[f]);
        }
        packages_.push_back(p);
        if (packages_.size() > (1u << 24)) {
          return bad("more than 16777216 package versions");
        }
      }
      number = it->second;
      last_interned = interned;
      last_number = number;
    }
    Entry e;
    e.key = key;
    e.package[0] = static_cast<uint8_t>(number);
    e.package[1] = static_cast<uint8_t>(number >> 8);
    e.package[2] = static_cast<uint8_t>(number >> 16);
    entries_.push_back(e);
  }
  return absl::OkStatus();
}

absl::StatusOr<PackageMap> PackageMap::Load(
    const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<std::string> in_dir;
      for (const auto& e : fs::directory_iterator(path, ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name[0] == '.') continue;
        if (!e.is_regular_file(ec)) continue;
        in_dir.push_back(e.path().string());
      }
      if (ec) {
        return absl::UnavailableError(absl::StrCat(path, ": ", ec.message()));
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.push_back(path);
    }
  }
  PackageMap map;
  for (const std::string& file : files) {
    if (absl::Status s = map.LoadFile(file); !s.ok()) return s;
    ++map.files_;
  }
  map.interned_ = {};  // only needed while loading
  // Sorted for binary search; of equal keys the first loaded stays.
  std::stable_sort(
      map.entries_.begin(), map.entries_.end(),
      [](const Entry& a, const Entry& b) { return a.key < b.key; });
  map.entries_.erase(std::unique(map.entries_.begin(), map.entries_.end(),
                                 [](const Entry& a, const Entry& b) {
                                   return a.key == b.key;
                                 }),
                     map.entries_.end());
  map.entries_.shrink_to_fit();
  map.text_.shrink_to_fit();
  map.packages_.shrink_to_fit();
  return map;
}

std::optional<PackageRef> PackageMap::Find(absl::string_view build_id) const {
  if (build_id.empty() || build_id.size() > 20) return std::nullopt;
  Key key{};
  key[0] = static_cast<uint8_t>(build_id.size());
  std::copy(build_id.begin(), build_id.end(), key.begin() + 1);
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), key,
                       [](const Entry& e, const Key& k) { return e.key < k; });
  if (it == entries_.end() || it->key != key) return std::nullopt;
  return RefOf(it->number());
}

PackageRef PackageMap::RefOf(uint32_t package) const {
  const Package& p = packages_[package];
  absl::string_view t(text_);
  size_t at = p.offset;
  PackageRef r;
  absl::string_view* out[4] = {&r.name, &r.version, &r.arch, &r.source};
  for (int f = 0; f < 4; ++f) {
    *out[f] = t.substr(at, p.len[f]);
    at += p.len[f];
  }
  return r;
}

}  // namespace execmon
