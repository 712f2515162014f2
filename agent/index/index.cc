#include "agent/index/index.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/elf/build_id_file.h"
#include "agent/index/debian.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace execmon {
namespace {

std::string Sha256(absl::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

bool IsElf(absl::string_view bytes) {
  return bytes.size() >= 4 && bytes.substr(0, 4) ==
                                  "\x7f"
                                  "ELF";
}

// One file's bytes: an entry when it is an ELF file with a build ID.
void AddFile(const std::string& path, absl::string_view bytes,
             const PackageInfo* package, int source, Index* index) {
  ++index->stats.files;
  if (!IsElf(bytes)) return;
  absl::StatusOr<std::string> id = ReadBuildIdBytes(path, bytes);
  if (!id.ok()) {
    ++index->stats.elf_without_id;
    return;
  }
  IndexEntry e;
  e.build_id = *std::move(id);
  e.path = path;
  e.size = bytes.size();
  e.sha256 = Sha256(bytes);
  if (package != nullptr) e.package = *package;
  e.source = source;
  index->entries.push_back(std::move(e));
}

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::UnavailableError(absl::StrCat(path, ": cannot open"));
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad())
    return absl::UnavailableError(absl::StrCat(path, ": read error"));
  return data;
}

absl::Status WalkRootfs(
    const std::string& dir, const std::string& top,
    const absl::flat_hash_map<std::string, PackageInfo>& owners, int source,
    Index* index);

absl::Status AddRootfs(const std::string& dir,
                       const std::vector<std::string>& under, Index* index) {
  absl::StatusOr<absl::flat_hash_map<std::string, PackageInfo>> owners =
      ReadDpkgOwners(dir);
  if (!owners.ok()) return owners.status();
  const int source = static_cast<int>(index->sources.size());
  index->sources.push_back({"rootfs", dir});
  if (under.empty()) return WalkRootfs(dir, dir, *owners, source, index);
  for (const std::string& sub : under) {
    if (!absl::StartsWith(sub, "/") || absl::StrContains(sub, "/../") ||
        absl::EndsWith(sub, "/..")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--under=", sub, ": want an absolute path inside the root"));
    }
    absl::Status s = WalkRootfs(dir, dir + sub, *owners, source, index);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Walks top (dir itself or a subtree of it); paths are recorded relative
// to dir.
absl::Status WalkRootfs(
    const std::string& dir, const std::string& top,
    const absl::flat_hash_map<std::string, PackageInfo>& owners, int source,
    Index* index) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root = fs::path(dir);
  fs::recursive_directory_iterator it(
      fs::path(top), fs::directory_options::skip_permission_denied, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(top, ": ", ec.message()));
  struct stat root_st;
  if (stat(top.c_str(), &root_st) != 0) {
    return absl::NotFoundError(absl::StrCat(top, ": cannot stat"));
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      ++index->stats.unreadable;
      ec.clear();
      continue;
    }
    struct stat st;
    if (lstat(it->path().c_str(), &st) != 0) {
      ++index->stats.unreadable;
      continue;
    }
    // One file system, like `find -xdev`: /proc, /sys and other mounts
    // inside the tree stay out.
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != root_st.st_dev) it.disable_recursion_pending();
      continue;
    }
    // Never follow symlinks (out of the tree), never open devices or FIFOs.
    if (!S_ISREG(st.st_mode)) continue;
    // Lexically: resolving symlinks in the path would leave the tree.
    std::string rel = "/" + it->path().lexically_relative(root).string();
    // Only files that start like an ELF file are read whole.
    char magic[4] = {};
    {
      std::ifstream probe(it->path(), std::ios::binary);
      if (!probe.read(magic, 4) || absl::string_view(magic, 4) !=
                                       "\x7f"
                                       "ELF") {
        ++index->stats.files;
        continue;
      }
    }
    absl::StatusOr<std::string> bytes = ReadWhole(it->path().string());
    if (!bytes.ok()) {
      ++index->stats.unreadable;
      continue;
    }
    auto owner = owners.find(rel);
    AddFile(rel, *bytes, owner == owners.end() ? nullptr : &owner->second,
            source, index);
  }
  return absl::OkStatus();
}

struct ArchiveCloser {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<struct archive, ArchiveCloser>;

absl::Status ArchiveError(const std::string& what, struct archive* a) {
  const char* msg = archive_error_string(a);
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": ", msg != nullptr ? msg : "archive error"));
}

// The current entry's data, whole.
absl::StatusOr<std::string> EntryData(struct archive* a,
                                      const std::string& what) {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
    if (n < 0) return ArchiveError(what, a);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// A tar (any compression libarchive knows) held in memory: calls fn(path,
// bytes) for every regular file in it.
template <typename Fn>
absl::Status ForEachTarFile(const std::string& what, const std::string& tar,
                            Fn fn) {
  ArchivePtr a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK) {
    return ArchiveError(what, a.get());
  }
  struct archive_entry* entry;
  int rc;
  while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    if (archive_entry_hardlink(entry) != nullptr) continue;  // a second name
    std::string path = archive_entry_pathname(entry);
    if (absl::StartsWith(path, "./")) path.erase(0, 1);
    if (!absl::StartsWith(path, "/")) path.insert(0, "/");
    absl::StatusOr<std::string> data = EntryData(a.get(), what);
    if (!data.ok()) return data.status();
    fn(path, *data);
  }
  if (rc != ARCHIVE_EOF) return ArchiveError(what, a.get());
  return absl::OkStatus();
}

absl::Status AddDeb(const std::string& deb, Index* index) {
  ArchivePtr a(archive_read_new());
  archive_read_support_format_ar(a.get());
  if (archive_read_open_filename(a.get(), deb.c_str(), 1 << 16) != ARCHIVE_OK) {
    return ArchiveError(deb, a.get());
  }
  std::string control_tar, data_tar;
  struct archive_entry* entry;
  int rc;
  while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    const std::string name = archive_entry_pathname(entry);
    if (absl::StartsWith(name, "control.tar")) {
      absl::StatusOr<std::string> d = EntryData(a.get(), deb);
      if (!d.ok()) return d.status();
      control_tar = *std::move(d);
    } else if (absl::StartsWith(name, "data.tar")) {
      absl::StatusOr<std::string> d = EntryData(a.get(), deb);
      if (!d.ok()) return d.status();
      data_tar = *std::move(d);
    }
  }
  if (rc != ARCHIVE_EOF) return ArchiveError(deb, a.get());
  if (control_tar.empty() || data_tar.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        deb, ": not a Debian package (no control.tar or data.tar)"));
  }
  std::string control;
  absl::Status s =
      ForEachTarFile(deb + " control.tar", control_tar,
                     [&](const std::string& path, absl::string_view bytes) {
                       if (path == "/control") control = std::string(bytes);
                     });
  if (!s.ok()) return s;
  absl::StatusOr<PackageInfo> package = ParseControl(control);
  if (!package.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(deb, ": ", package.status().message()));
  }
  const int source = static_cast<int>(index->sources.size());
  index->sources.push_back({"deb", deb});
  return ForEachTarFile(deb + " data.tar", data_tar,
                        [&](const std::string& path, absl::string_view bytes) {
                          AddFile(path, bytes, &*package, source, index);
                        });
}

// --- OCI image layouts --------------------------------------------------

absl::StatusOr<rapidjson::Document> ReadJsonFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWhole(path);
  if (!text.ok()) return text.status();
  rapidjson::Document d;
  d.Parse(text->data(), text->size());
  if (d.HasParseError() || !d.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a JSON object"));
  }
  return d;
}

std::string JsonStr(const rapidjson::Value& o, const char* k) {
  if (!o.IsObject()) return "";
  auto it = o.FindMember(k);
  return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString()
                                                     : std::string();
}

// blobs/<algorithm>/<hex> of a digest "<algorithm>:<hex>".
absl::StatusOr<std::string> BlobPath(const std::string& dir,
                                     const std::string& digest) {
  const size_t colon = digest.find(':');
  if (colon == std::string::npos || colon == 0 ||
      digest.find('/') != std::string::npos ||
      digest.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": bad digest \"", digest, "\""));
  }
  return absl::StrCat(dir, "/blobs/", digest.substr(0, colon), "/",
                      digest.substr(colon + 1));
}

// The whiteout-aware union of an image's layers, read from the top layer
// down: a path is taken from the highest layer that has it, unless a
// higher layer deleted it (.wh.NAME), made its directory opaque
// (.wh..wh..opq) or put a non-directory at one of its ancestors.
class LayerUnion {
 public:
  // Whether an entry of the layer being read is visible (and not yet
  // taken from a higher layer); records it as taken.
  bool Take(const std::string& path, bool is_dir) {
    for (std::string p = path; !p.empty() && p != "/";
         p = p.substr(0, p.rfind('/'))) {
      if (hidden_.contains(p)) return false;
      if (p != path && (opaque_.contains(p) || shadow_.contains(p))) {
        return false;
      }
    }
    if (!taken_.insert(path).second) return false;
    if (!is_dir) layer_shadow_.push_back(path);
    return true;
  }
  void Whiteout(const std::string& path) { layer_hidden_.push_back(path); }
  void Opaque(const std::string& dir) { layer_opaque_.push_back(dir); }
  // A layer is done: its deletions apply to the layers below it.
  void EndLayer() {
    hidden_.insert(layer_hidden_.begin(), layer_hidden_.end());
    opaque_.insert(layer_opaque_.begin(), layer_opaque_.end());
    shadow_.insert(layer_shadow_.begin(), layer_shadow_.end());
    layer_hidden_.clear();
    layer_opaque_.clear();
    layer_shadow_.clear();
  }

 private:
  absl::flat_hash_set<std::string> taken_, hidden_, opaque_, shadow_;
  std::vector<std::string> layer_hidden_, layer_opaque_, layer_shadow_;
};

absl::Status AddOciLayout(const std::string& dir, const std::string& ref,
                          const std::string& want_name, Index* index) {
  absl::StatusOr<rapidjson::Document> top = ReadJsonFile(dir + "/index.json");
  if (!top.ok()) return top.status();
  if (!top->HasMember("manifests") || !(*top)["manifests"].IsArray() ||
      (*top)["manifests"].Empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/index.json: no manifests"));
  }
  // The manifest named want_name (org.opencontainers.image.ref.name), or
  // the first one.
  const rapidjson::Value* desc = nullptr;
  std::string image;
  for (const auto& m : (*top)["manifests"].GetArray()) {
    const std::string name =
        m.HasMember("annotations")
            ? JsonStr(m["annotations"], "org.opencontainers.image.ref.name")
            : "";
    if (want_name.empty() || name == want_name) {
      desc = &m;
      image = name;
      break;
    }
  }
  if (desc == nullptr) {
    return absl::NotFoundError(absl::StrCat(ref, ": no image named \"",
                                            want_name, "\" in the layout"));
  }
  std::string digest = JsonStr(*desc, "digest");
  absl::StatusOr<std::string> path = BlobPath(dir, digest);
  if (!path.ok()) return path.status();
  absl::StatusOr<rapidjson::Document> manifest = ReadJsonFile(*path);
  if (!manifest.ok()) return manifest.status();
  // A multi-platform image index: its linux/amd64 image.
  if (manifest->HasMember("manifests") && (*manifest)["manifests"].IsArray()) {
    std::string chosen;
    for (const auto& m : (*manifest)["manifests"].GetArray()) {
      if (!m.HasMember("platform")) continue;
      if (JsonStr(m["platform"], "os") == "linux" &&
          JsonStr(m["platform"], "architecture") == "amd64") {
        chosen = JsonStr(m, "digest");
        break;
      }
    }
    if (chosen.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ref, ": the image index has no linux/amd64 image"));
    }
    digest = chosen;
    path = BlobPath(dir, digest);
    if (!path.ok()) return path.status();
    manifest = ReadJsonFile(*path);
    if (!manifest.ok()) return manifest.status();
  }
  if (!manifest->HasMember("layers") || !(*manifest)["layers"].IsArray()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ref, ": manifest ", digest, " has no layers"));
  }
  std::vector<std::string> layers;
  for (const auto& l : (*manifest)["layers"].GetArray()) {
    absl::StatusOr<std::string> blob = BlobPath(dir, JsonStr(l, "digest"));
    if (!blob.ok()) return blob.status();
    layers.push_back(*blob);
  }
  const int source = static_cast<int>(index->sources.size());
  index->sources.push_back({"oci", ref, image, digest});
  const size_t first_entry = index->entries.size();

  LayerUnion fs;
  std::string status;
  absl::flat_hash_map<std::string, std::string> lists;
  for (auto layer = layers.rbegin(); layer != layers.rend(); ++layer) {
    ArchivePtr a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_filename(a.get(), layer->c_str(), 1 << 16) !=
        ARCHIVE_OK) {
      return ArchiveError(*layer, a.get());
    }
    struct archive_entry* entry;
    int rc;
    while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
      std::string p = archive_entry_pathname(entry);
      if (absl::StartsWith(p, "./")) p.erase(0, 1);
      if (!absl::StartsWith(p, "/")) p.insert(0, "/");
      while (p.size() > 1 && p.back() == '/') p.pop_back();
      const size_t slash = p.rfind('/');
      const std::string parent = slash == 0 ? "/" : p.substr(0, slash);
      const std::string base = p.substr(slash + 1);
      if (base == ".wh..wh..opq") {
        fs.Opaque(parent);
        continue;
      }
      if (absl::StartsWith(base, ".wh.")) {
        fs.Whiteout(
            absl::StrCat(parent == "/" ? "" : parent, "/", base.substr(4)));
        continue;
      }
      const bool is_dir = archive_entry_filetype(entry) == AE_IFDIR;
      if (!fs.Take(p, is_dir)) continue;
      if (archive_entry_filetype(entry) != AE_IFREG ||
          archive_entry_hardlink(entry) != nullptr) {
        continue;
      }
      const bool db = p == "/var/lib/dpkg/status" ||
                      (absl::StartsWith(p, "/var/lib/dpkg/info/") &&
                       absl::EndsWith(p, ".list"));
      char magic[4] = {};
      la_ssize_t n = 0;
      std::string bytes;
      if (!db) {
        // Peek: only ELF files are read whole.
        n = archive_read_data(a.get(), magic, sizeof(magic));
        if (n < 0) return ArchiveError(*layer, a.get());
        if (n < 4 || absl::string_view(magic, 4) !=
                         "\x7f"
                         "ELF") {
          ++index->stats.files;
          continue;
        }
        bytes.assign(magic, 4);
      }
      absl::StatusOr<std::string> rest = EntryData(a.get(), *layer);
      if (!rest.ok()) return rest.status();
      bytes += *rest;
      if (p == "/var/lib/dpkg/status") {
        status = std::move(bytes);
      } else if (db) {
        lists[p.substr(p.rfind('/') + 1)] = std::move(bytes);
      } else {
        AddFile(p, bytes, nullptr, source, index);
      }
    }
    if (rc != ARCHIVE_EOF) return ArchiveError(*layer, a.get());
    fs.EndLayer();
  }
  if (status.empty()) return absl::OkStatus();
  // The image's dpkg database names the packages of its files.
  char tmpl[] = "/tmp/execmon-dpkg-status-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) return absl::UnavailableError("mkstemp failed");
  const bool wrote = write(fd, status.data(), status.size()) ==
                     static_cast<ssize_t>(status.size());
  close(fd);
  absl::StatusOr<absl::flat_hash_map<std::string, PackageInfo>> owners =
      wrote ? DpkgOwners(
                  tmpl,
                  [&](const std::string& list) -> std::optional<std::string> {
                    auto it = lists.find(list);
                    if (it == lists.end()) return std::nullopt;
                    return it->second;
                  })
            : absl::UnavailableError("writing the status file failed");
  unlink(tmpl);
  if (!owners.ok()) return owners.status();
  for (size_t i = first_entry; i < index->entries.size(); ++i) {
    auto it = owners->find(index->entries[i].path);
    if (it != owners->end()) index->entries[i].package = it->second;
  }
  return absl::OkStatus();
}

// An OCI layout in a tar file: unpacked into a temporary directory.
absl::Status AddOciArchive(const std::string& file, const std::string& ref,
                           Index* index) {
  char tmpl[] = "/tmp/execmon-oci-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::UnavailableError("mkdtemp failed");
  const std::string dir = tmpl;
  absl::Status s = [&]() -> absl::Status {
    ArchivePtr a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_filename(a.get(), file.c_str(), 1 << 16) !=
        ARCHIVE_OK) {
      return ArchiveError(file, a.get());
    }
    struct archive_entry* entry;
    int rc;
    while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
      std::string p = archive_entry_pathname(entry);
      if (absl::StartsWith(p, "./")) p.erase(0, 2);
      // Only the layout's regular files, never out of the directory.
      if (archive_entry_filetype(entry) != AE_IFREG || p.empty() ||
          p[0] == '/' || absl::StrContains(p, "..")) {
        continue;
      }
      absl::StatusOr<std::string> data = EntryData(a.get(), file);
      if (!data.ok()) return data.status();
      const std::filesystem::path out = std::filesystem::path(dir) / p;
      std::error_code ec;
      std::filesystem::create_directories(out.parent_path(), ec);
      std::ofstream o(out, std::ios::binary);
      o.write(data->data(), static_cast<std::streamsize>(data->size()));
      if (!o)
        return absl::UnavailableError(
            absl::StrCat(out.string(), ": write failed"));
    }
    if (rc != ARCHIVE_EOF) return ArchiveError(file, a.get());
    return AddOciLayout(dir, ref, "", index);
  }();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return s;
}

std::string Hex(absl::string_view raw) { return absl::BytesToHexString(raw); }

// Lowercase or uppercase hex of whole bytes.
bool FromHex(absl::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = absl::HexStringToBytes(hex);
  return true;
}

}  // namespace

absl::Status AddIndexSource(const std::string& source,
                            const std::vector<std::string>& under,
                            Index* index) {
  if (absl::StartsWith(source, "oci-archive:")) {
    return AddOciArchive(source.substr(12), source, index);
  }
  if (absl::StartsWith(source, "oci:")) {
    // oci:DIR or oci:DIR:NAME (buildah's and skopeo's syntax).
    std::string dir = source.substr(4), name;
    const size_t colon = dir.rfind(':');
    if (!std::filesystem::is_directory(dir) && colon != std::string::npos) {
      name = dir.substr(colon + 1);
      dir.resize(colon);
    }
    return AddOciLayout(dir, source, name, index);
  }
  struct stat st;
  if (stat(source.c_str(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat(source, ": no such file or directory"));
  }
  if (S_ISDIR(st.st_mode)) {
    if (std::filesystem::exists(source + "/oci-layout")) {
      return AddOciLayout(source, source, "", index);
    }
    return AddRootfs(source, under, index);
  }
  if (!under.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": --under applies to root filesystems only"));
  }
  if (absl::EndsWith(source, ".deb")) return AddDeb(source, index);
  return absl::InvalidArgumentError(absl::StrCat(
      source,
      ": not a source (want a root filesystem directory or a .deb file)"));
}

absl::Status CheckIndexFormat(const std::string& path, int64_t format) {
  if (format < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":1: not an execmon index (no \"execmon_index\" header)"));
  }
  if (format != kIndexFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":1: index format ", format, ", this execmon reads ",
                     kIndexFormatVersion));
  }
  return absl::OkStatus();
}

std::string IndexEntryJson(const IndexEntry& e, absl::string_view index_file) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](absl::string_view v) {
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  w.StartObject();
  if (!index_file.empty()) {
    w.Key("index");
    str(index_file);
  }
  w.Key("build_id");
  str(Hex(e.build_id));
  w.Key("path");
  str(e.path);
  w.Key("size");
  w.Uint64(e.size);
  w.Key("sha256");
  str(Hex(e.sha256));
  if (!e.package.name.empty()) {
    w.Key("package");
    w.StartObject();
    w.Key("name");
    str(e.package.name);
    w.Key("version");
    str(e.package.version);
    w.Key("arch");
    str(e.package.arch);
    w.Key("source");
    str(e.package.source);
    w.EndObject();
  }
  w.Key("source");
  w.Int(e.source);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

absl::Status WriteIndex(const Index& index, const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr)
    return absl::UnavailableError(absl::StrCat(tmp, ": cannot create"));
  auto line = [&](const rapidjson::StringBuffer& sb) {
    std::fwrite(sb.GetString(), 1, sb.GetSize(), f);
    std::fputc('\n', f);
  };
  {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("execmon_index");
    w.Int(kIndexFormatVersion);
    w.Key("created");
    const std::string now = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(),
                                             absl::UTCTimeZone());
    w.String(now.c_str());
    w.Key("sources");
    w.StartArray();
    for (const IndexSource& s : index.sources) {
      w.StartObject();
      w.Key("kind");
      w.String(s.kind.c_str());
      w.Key("ref");
      w.String(s.ref.c_str());
      if (!s.image.empty()) {
        w.Key("image");
        w.String(s.image.c_str());
      }
      if (!s.digest.empty()) {
        w.Key("digest");
        w.String(s.digest.c_str());
      }
      w.EndObject();
    }
    w.EndArray();
    w.Key("entries");
    w.Uint64(index.entries.size());
    w.EndObject();
    line(sb);
  }
  for (const IndexEntry& e : index.entries) {
    const std::string json = IndexEntryJson(e);
    std::fwrite(json.data(), 1, json.size(), f);
    std::fputc('\n', f);
  }
  const bool ok = std::ferror(f) == 0;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return absl::UnavailableError(absl::StrCat(path, ": write failed"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat(path, ": rename failed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Index> ReadIndex(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  Index index;
  std::string text;
  int lineno = 0;
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", lineno, ": ", what));
  };
  auto str = [](const rapidjson::Value& o, const char* k) -> std::string {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString()
                                                       : std::string();
  };
  while (std::getline(in, text)) {
    ++lineno;
    if (lineno == 1 && absl::StartsWith(text, "EMIDX01")) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          ": a compiled index (execmon index compile) holds only build ID -> "
          "package, for the agent: query the JSON Lines index it was "
          "compiled from"));
    }
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (d.HasParseError() || !d.IsObject()) return bad("not a JSON object");
    if (lineno == 1) {
      auto v = d.FindMember("execmon_index");
      absl::Status header = CheckIndexFormat(
          path,
          v != d.MemberEnd() && v->value.IsInt() ? v->value.GetInt() : -1);
      if (!header.ok()) return header;
      if (d.HasMember("sources") && d["sources"].IsArray()) {
        for (const auto& s : d["sources"].GetArray()) {
          index.sources.push_back({str(s, "kind"), str(s, "ref"),
                                   str(s, "image"), str(s, "digest")});
        }
      }
      continue;
    }
    IndexEntry e;
    std::string id, sha;
    if (!FromHex(str(d, "build_id"), &id) || id.empty() || id.size() > 20) {
      return bad("build_id: want 1-20 bytes of hex");
    }
    e.build_id = id;
    e.path = str(d, "path");
    if (d.HasMember("size") && d["size"].IsUint64())
      e.size = d["size"].GetUint64();
    if (FromHex(str(d, "sha256"), &sha)) e.sha256 = sha;
    if (d.HasMember("package") && d["package"].IsObject()) {
      const auto& p = d["package"];
      e.package = {str(p, "name"), str(p, "version"), str(p, "arch"),
                   str(p, "source")};
    }
    if (d.HasMember("source") && d["source"].IsInt())
      e.source = d["source"].GetInt();
    index.entries.push_back(std::move(e));
  }
  if (lineno == 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  return index;
}

}  // namespace execmon
