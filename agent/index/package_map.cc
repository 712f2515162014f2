#include "agent/index/package_map.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/index/index.h"
#include "rapidjson/document.h"

namespace execmon {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

using Document = rapidjson::GenericDocument<rapidjson::UTF8<>,
                                            rapidjson::MemoryPoolAllocator<>,
                                            rapidjson::MemoryPoolAllocator<>>;

absl::string_view Str(const rapidjson::Value& o, const char* k) {
  auto it = o.FindMember(k);
  if (it == o.MemberEnd() || !it->value.IsString()) return {};
  return absl::string_view(it->value.GetString(), it->value.GetStringLength());
}

}  // namespace

absl::Status PackageMap::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad())
    return absl::UnavailableError(absl::StrCat(path, ": read error"));
  if (text.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  // One line at a time, parsed in place with memory pools on the stack:
  // no allocation per line.
  char value_buf[8192], parse_buf[2048];
  std::string interned;
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
    rapidjson::MemoryPoolAllocator<> values(value_buf, sizeof(value_buf));
    rapidjson::MemoryPoolAllocator<> parse(parse_buf, sizeof(parse_buf));
    Document d(&values, sizeof(parse_buf), &parse);
    d.ParseInsitu(line);
    if (d.HasParseError() || !d.IsObject()) return bad("not a JSON object");
    if (lineno == 1) {
      auto v = d.FindMember("execmon_index");
      if (v == d.MemberEnd() || !v->value.IsInt()) {
        return bad("not an execmon index (no \"execmon_index\" header)");
      }
      if (v->value.GetInt() != kIndexFormatVersion) {
        return bad(absl::StrCat("index format ", v->value.GetInt(),
                                ", this execmon reads ", kIndexFormatVersion));
      }
      continue;
    }
    const absl::string_view hex = Str(d, "build_id");
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
    auto pkg = d.FindMember("package");
    if (pkg == d.MemberEnd() || !pkg->value.IsObject()) continue;
    const absl::string_view fields[4] = {
        Str(pkg->value, "name"), Str(pkg->value, "version"),
        Str(pkg->value, "arch"), Str(pkg->value, "source")};
    if (fields[0].empty()) continue;
    // Looked up through a reused buffer: a string is built only for a
    // package version not seen before.
    interned.clear();
    absl::StrAppend(&interned, fields[0], "\n", fields[1], "\n", fields[2],
                    "\n", fields[3]);
    auto it = interned_.find(interned);
    if (it == interned_.end()) {
      it = interned_.emplace(interned, static_cast<uint32_t>(packages_.size()))
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
    Entry e;
    e.key = key;
    e.package[0] = static_cast<uint8_t>(it->second);
    e.package[1] = static_cast<uint8_t>(it->second >> 8);
    e.package[2] = static_cast<uint8_t>(it->second >> 16);
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
