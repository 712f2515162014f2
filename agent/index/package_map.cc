#include "agent/index/package_map.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
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

// The entries of a run of lines, with package numbers local to it.
// Each chunk writes its entries straight into its own slice of the map's
// array (sized by its line count), package numbers local to the chunk.
template <typename Entry>
struct Chunk {
  Entry* out = nullptr;                                    // its slice
  size_t count = 0;                                        // entries written
  std::vector<std::array<absl::string_view, 4>> packages;  // into the text
  absl::Status status;
};

// Parses lines [begin, end) of an index (NUL-terminated in place as it
// goes); first_line numbers them for errors.
template <typename Entry>
void ParseChunk(char* begin, char* end, int first_line, const std::string& path,
                Chunk<Entry>* out) {
  absl::flat_hash_map<std::string, uint32_t> interned;
  std::string key_text, last_text;
  uint32_t last_number = 0;
  int lineno = first_line - 1;
  for (char* line = begin; line < end;) {
    char* nl = static_cast<char*>(std::memchr(line, '\n', end - line));
    if (nl == nullptr) nl = end;
    *nl = '\0';
    ++lineno;
    char* next = nl + 1;
    auto bad = [&](absl::string_view what) {
      out->status = absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": ", what));
    };
    LineHandler h;
    rapidjson::Reader reader;
    rapidjson::InsituStringStream stream(line);
    if (*line != '{' ||
        reader.Parse<rapidjson::kParseInsituFlag>(stream, h).IsError()) {
      return bad("not a JSON object");
    }
    line = next;
    const absl::string_view hex = h.build_id;
    if (hex.empty() || hex.size() > 40 || hex.size() % 2 != 0) {
      return bad("build_id: want 1-20 bytes of hex");
    }
    std::array<uint8_t, 21> key{};
    key[0] = static_cast<uint8_t>(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
      const int hi = HexDigit(hex[i]), lo = HexDigit(hex[i + 1]);
      if (hi < 0 || lo < 0) return bad("build_id: want 1-20 bytes of hex");
      key[1 + i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
    if (h.fields[0].empty()) continue;
    // Looked up through a reused buffer: a string is built only for a
    // package version not seen before; an index lists a package's files
    // together, so the previous line's package is tried first.
    key_text.clear();
    absl::StrAppend(&key_text, h.fields[0], "\n", h.fields[1], "\n",
                    h.fields[2], "\n", h.fields[3]);
    uint32_t number;
    if (key_text == last_text) {
      number = last_number;
    } else {
      auto [it, added] = interned.try_emplace(
          key_text, static_cast<uint32_t>(out->packages.size()));
      if (added) {
        out->packages.push_back(
            {h.fields[0], h.fields[1], h.fields[2], h.fields[3]});
      }
      number = it->second;
      last_text = key_text;
      last_number = number;
    }
    Entry& e = out->out[out->count++];
    e.key = key;
    e.package[0] = static_cast<uint8_t>(number);
    e.package[1] = static_cast<uint8_t>(number >> 8);
    e.package[2] = static_cast<uint8_t>(number >> 16);
  }
}

}  // namespace

// The compiled form: this header, then `entries` 24-byte entries (sorted,
// unique), `packages` 12-byte package records, `text_bytes` of text. All
// little-endian, as in memory on the machines execmon runs on (x86-64 and
// arm64; checked below).
struct CompiledHeader {
  char magic[8];
  uint32_t entries;
  uint32_t packages;
  uint64_t text_bytes;
};
static_assert(sizeof(CompiledHeader) == 24);
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);

absl::Status PackageMap::Save(const std::string& path) const {
  CompiledHeader h{};
  std::memcpy(h.magic, kMagic.data(), sizeof(h.magic));
  h.entries = static_cast<uint32_t>(entries_.size());
  h.packages = static_cast<uint32_t>(packages_.size());
  h.text_bytes = text_.size();
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::UnavailableError(absl::StrCat(tmp, ": cannot create"));
    out.write(reinterpret_cast<const char*>(&h), sizeof(h));
    out.write(reinterpret_cast<const char*>(entries_.data()),
              static_cast<std::streamsize>(entries_.size() * sizeof(Entry)));
    out.write(reinterpret_cast<const char*>(packages_.data()),
              static_cast<std::streamsize>(packages_.size() * sizeof(Package)));
    out.write(text_.data(), static_cast<std::streamsize>(text_.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return absl::UnavailableError(absl::StrCat(tmp, ": write error"));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::UnavailableError(
        absl::StrCat(path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status PackageMap::LoadCompiled(const std::string& path,
                                      absl::string_view data) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": compiled index: ", what));
  };
  CompiledHeader h;
  if (data.size() < sizeof(h)) return bad("truncated header");
  std::memcpy(&h, data.data(), sizeof(h));
  const uint64_t want = sizeof(h) + uint64_t{h.entries} * sizeof(Entry) +
                        uint64_t{h.packages} * sizeof(Package) + h.text_bytes;
  if (data.size() != want) {
    return bad(absl::StrCat(data.size(), " bytes, the header says ", want));
  }
  if (h.packages > (1u << 24)) return bad("more than 16777216 packages");
  if (packages_.size() + h.packages > (1u << 24)) {
    return bad("more than 16777216 package versions in all indexes");
  }
  if (text_.size() + h.text_bytes > UINT32_MAX) return bad("text too large");
  const char* at = data.data() + sizeof(h);
  std::vector<Entry> entries(h.entries);
  std::memcpy(entries.data(), at, entries.size() * sizeof(Entry));
  at += entries.size() * sizeof(Entry);
  std::vector<Package> packages(h.packages);
  std::memcpy(packages.data(), at, packages.size() * sizeof(Package));
  at += packages.size() * sizeof(Package);
  const absl::string_view text(at, h.text_bytes);
  // Everything a lookup relies on: keys well formed, sorted and unique,
  // package numbers and text ranges in bounds.
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.key[0] < 1 || e.key[0] > 20 ||
        std::any_of(e.key.begin() + 1 + e.key[0], e.key.end(),
                    [](uint8_t b) { return b != 0; })) {
      return bad(absl::StrCat("entry ", i, ": malformed build ID"));
    }
    if (i > 0 && !(entries[i - 1].key < e.key)) {
      return bad(absl::StrCat("entry ", i, ": not sorted or repeated"));
    }
    if (e.number() >= h.packages) {
      return bad(absl::StrCat("entry ", i, ": package ", e.number(),
                              " out of range"));
    }
  }
  for (size_t i = 0; i < packages.size(); ++i) {
    Package& p = packages[i];
    uint64_t end = p.offset;
    for (uint16_t len : p.len) end += len;
    if (end > text.size()) {
      return bad(absl::StrCat("package ", i, ": text out of range"));
    }
    p.offset += static_cast<uint32_t>(text_.size());
  }
  const uint32_t base = static_cast<uint32_t>(packages_.size());
  sorted_ = true;
  if (base != 0) {
    for (Entry& e : entries) {
      const uint32_t number = base + e.number();
      e.package[0] = static_cast<uint8_t>(number);
      e.package[1] = static_cast<uint8_t>(number >> 8);
      e.package[2] = static_cast<uint8_t>(number >> 16);
    }
  }
  if (entries_.empty()) {
    entries_ = std::move(entries);
  } else {
    entries_.insert(entries_.end(), entries.begin(), entries.end());
  }
  packages_.insert(packages_.end(), packages.begin(), packages.end());
  text_.append(text.data(), text.size());
  return absl::OkStatus();
}

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
  if (text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  }
  if (absl::StartsWith(text, kMagic)) return LoadCompiled(path, text);
  // Every line ends in a newline, which the parser overwrites with a NUL.
  if (text.back() != '\n') text.push_back('\n');
  // The header line.
  char* const data = text.data();
  char* const end = data + text.size();
  char* body = static_cast<char*>(std::memchr(data, '\n', text.size())) + 1;
  body[-1] = '\0';
  {
    LineHandler h;
    rapidjson::Reader reader;
    rapidjson::InsituStringStream stream(data);
    if (*data != '{' ||
        reader.Parse<rapidjson::kParseInsituFlag>(stream, h).IsError()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":1: not a JSON object"));
    }
    if (absl::Status header = CheckIndexFormat(path, h.format); !header.ok()) {
      return header;
    }
  }
  // The entry lines, in chunks parsed side by side on large indexes (one
  // per CPU, at most 4); a chunk starts at a line.
  const size_t cpus = std::max(1u, std::thread::hardware_concurrency());
  const size_t n = (end - body) < (8 << 20) ? 1 : std::min<size_t>(cpus, 4);
  std::vector<char*> starts = {body};
  for (size_t i = 1; i < n; ++i) {
    char* at = body + (end - body) * i / n;
    at = static_cast<char*>(std::memchr(at, '\n', end - at));
    if (at == nullptr || at + 1 >= end) break;
    starts.push_back(at + 1);
  }
  starts.push_back(end);
  // Each chunk's lines (at most one entry each) and first line number.
  std::vector<Chunk<Entry>> chunks(starts.size() - 1);
  std::vector<size_t> lines(chunks.size());
  std::vector<int> first_line(chunks.size());
  size_t total_lines = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    lines[i] = static_cast<size_t>(std::count(starts[i], starts[i + 1], '\n'));
    first_line[i] = 2 + static_cast<int>(total_lines);
    total_lines += lines[i];
  }
  const size_t base = entries_.size();
  entries_.resize(base + total_lines);
  for (size_t i = 0, at = base; i < chunks.size(); at += lines[i], ++i) {
    chunks[i].out = entries_.data() + at;
  }
  {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < chunks.size(); ++i) {
      threads.emplace_back(ParseChunk<Entry>, starts[i], starts[i + 1],
                           first_line[i], std::cref(path), &chunks[i]);
    }
    ParseChunk<Entry>(starts[0], starts[1], first_line[0], path, &chunks[0]);
    for (std::thread& t : threads) t.join();
  }
  for (const Chunk<Entry>& c : chunks) {
    if (!c.status.ok()) {
      entries_.resize(base);
      return c.status;
    }
  }
  // Global package numbers, and the slices closed up, in line order.
  std::string key_text;
  std::vector<uint32_t> global;
  size_t kept = base;
  for (Chunk<Entry>& c : chunks) {
    global.clear();
    for (const auto& f : c.packages) {
      key_text.clear();
      absl::StrAppend(&key_text, f[0], "\n", f[1], "\n", f[2], "\n", f[3]);
      auto [it, added] = interned_.try_emplace(
          key_text, static_cast<uint32_t>(packages_.size()));
      if (added) {
        Package p;
        p.offset = static_cast<uint32_t>(text_.size());
        for (int k = 0; k < 4; ++k) {
          p.len[k] =
              static_cast<uint16_t>(std::min<size_t>(f[k].size(), 0xffff));
          text_.append(f[k].data(), p.len[k]);
        }
        packages_.push_back(p);
        if (packages_.size() > (1u << 24)) {
          entries_.resize(base);
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": more than 16777216 package versions"));
        }
      }
      global.push_back(it->second);
    }
    for (size_t i = 0; i < c.count; ++i) {
      Entry e = c.out[i];
      const uint32_t number = global[e.number()];
      e.package[0] = static_cast<uint8_t>(number);
      e.package[1] = static_cast<uint8_t>(number >> 8);
      e.package[2] = static_cast<uint8_t>(number >> 16);
      entries_[kept++] = e;
    }
  }
  entries_.resize(kept);
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
  if (map.files_ == 1 && map.sorted_) {
    map.entries_.shrink_to_fit();
    return map;  // one compiled index: sorted and unique already
  }
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
