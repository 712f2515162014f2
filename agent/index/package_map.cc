#include "agent/index/package_map.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
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
