#include "agent/elf/build_id_file.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "bpf/execmon_abi.h"

namespace execmon {
namespace {

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r: returns the message, which may or may not be in buf.
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

absl::Status ErrnoStatus(const std::string& path, int err) {
  std::string message = absl::StrCat(path, ": ", ErrnoText(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EIO:
    case EAGAIN:
    case EINTR:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Malformed(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": malformed ELF: ", what));
}

absl::Status LibelfError(const std::string& path) {
  return Malformed(path, elf_errmsg(-1));
}

bool LibelfReady() {
  static const bool ready = elf_version(EV_CURRENT) != EV_NONE;
  return ready;
}

// Ends the Elf handle and closes the descriptor on every path.
struct OpenElf {
  OpenElf() = default;
  OpenElf(const OpenElf&) = delete;
  OpenElf& operator=(const OpenElf&) = delete;
  ~OpenElf() {
    if (elf != nullptr) elf_end(elf);
    if (fd >= 0) close(fd);
  }

  int fd = -1;
  Elf* elf = nullptr;
};

// Walks the notes of one chunk (a PT_NOTE segment or an SHT_NOTE section).
// Returns the build ID if found, std::nullopt if the chunk holds none, or
// an error. `where` names the chunk in error messages.
absl::StatusOr<std::optional<std::string>> FindInNotes(
    const std::string& path, Elf_Data* data, absl::string_view where) {
  const size_t size = data->d_size;
  size_t offset = 0;
  while (offset < size && size - offset >= sizeof(GElf_Nhdr)) {
    GElf_Nhdr nhdr;
    size_t name_offset = 0, desc_offset = 0;
    const size_t next =
        gelf_getnote(data, offset, &nhdr, &name_offset, &desc_offset);
    if (next <= offset) {  // 0: libelf found the note malformed
      return Malformed(path, absl::StrCat("truncated or overflowing note at "
                                          "offset ",
                                          offset, " of ", where));
    }
    const auto* bytes = static_cast<const char*>(data->d_buf);
    if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == 4 &&
        std::memcmp(bytes + name_offset, "GNU", 4) == 0) {
      if (nhdr.n_descsz == 0 || nhdr.n_descsz > EM_BUILD_ID_MAX) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": build-ID note of ", nhdr.n_descsz,
                         " bytes (want 1..", EM_BUILD_ID_MAX, ")"));
      }
      return std::optional<std::string>(
          std::string(bytes + desc_offset, nhdr.n_descsz));
    }
    offset = next;
  }
  // Fewer bytes than a note header left: padding, as the kernel allows.
  return std::optional<std::string>();
}

absl::StatusOr<std::optional<std::string>> FindInSegments(
    const std::string& path, Elf* elf, size_t phnum) {
  for (size_t i = 0; i < phnum; ++i) {
    if (i > static_cast<size_t>(INT_MAX)) {
      return Malformed(path, "too many program headers");
    }
    GElf_Phdr phdr;
    if (gelf_getphdr(elf, static_cast<int>(i), &phdr) == nullptr) {
      return LibelfError(path);
    }
    if (phdr.p_type != PT_NOTE || phdr.p_filesz == 0) continue;
    if (phdr.p_offset > static_cast<uint64_t>(INT64_MAX) ||
        phdr.p_filesz > SIZE_MAX) {
      return Malformed(
          path, absl::StrCat("PT_NOTE segment ", i, " lies outside the file"));
    }
    // 8-byte aligned note segments (GNU properties) pad name and
    // descriptor to 8 bytes, relative to the start of each note.
    Elf_Data* data =
        elf_getdata_rawchunk(elf, static_cast<int64_t>(phdr.p_offset),
                             static_cast<size_t>(phdr.p_filesz),
                             phdr.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
    if (data == nullptr) {
      return Malformed(
          path, absl::StrCat("PT_NOTE segment ", i, ": ", elf_errmsg(-1)));
    }
    absl::StatusOr<std::optional<std::string>> found =
        FindInNotes(path, data, absl::StrCat("PT_NOTE segment ", i));
    if (!found.ok() || found->has_value()) return found;
  }
  return std::optional<std::string>();
}

absl::StatusOr<std::optional<std::string>> FindInSections(
    const std::string& path, Elf* elf) {
  size_t shstrndx = 0;
  const bool have_names = elf_getshdrstrndx(elf, &shstrndx) == 0;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr;
       scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) return LibelfError(path);
    if (shdr.sh_type != SHT_NOTE || shdr.sh_size == 0) continue;
    // libelf picks ELF_T_NHDR8 itself for 8-aligned note sections.
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr) return LibelfError(path);
    const char* name =
        have_names ? elf_strptr(elf, shstrndx, shdr.sh_name) : nullptr;
    absl::StatusOr<std::optional<std::string>> found = FindInNotes(
        path, data,
        absl::StrCat("section ", elf_ndxscn(scn),
                     name != nullptr ? absl::StrCat(" (", name, ")") : ""));
    if (!found.ok() || found->has_value()) return found;
  }
  return std::optional<std::string>();
}

}  // namespace

namespace {

// The build ID of an opened image (name: for messages).
absl::StatusOr<std::string> BuildIdOfElf(const std::string& path, Elf* elf) {
  if (elf == nullptr) return LibelfError(path);
  if (elf_kind(elf) != ELF_K_ELF) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an ELF file"));
  }
  GElf_Ehdr ehdr;
  if (gelf_getehdr(elf, &ehdr) == nullptr) return LibelfError(path);
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) != 0) return LibelfError(path);

  absl::StatusOr<std::optional<std::string>> found =
      phnum > 0 ? FindInSegments(path, elf, phnum) : FindInSections(path, elf);
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return absl::NotFoundError(absl::StrCat(path, ": no GNU build-ID note"));
  }
  return std::move(**found);
}

}  // namespace

absl::StatusOr<std::string> ReadBuildIdFile(const std::string& path) {
  if (!LibelfReady()) {
    return absl::InternalError(
        absl::StrCat(path, ": libelf: ", elf_errmsg(-1)));
  }
  OpenElf file;
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  file.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (file.fd < 0) return ErrnoStatus(path, errno);
  struct stat st;
  if (fstat(file.fd, &st) != 0) return ErrnoStatus(path, errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
  file.elf = elf_begin(file.fd, ELF_C_READ_MMAP, nullptr);
  return BuildIdOfElf(path, file.elf);
}

absl::StatusOr<std::string> ReadBuildIdBytes(const std::string& name,
                                             absl::string_view bytes) {
  if (!LibelfReady()) return absl::InternalError("libelf: version mismatch");
  OpenElf image;
  // elf_memory does not write through its pointer in ELF_C_READ mode.
  image.elf = elf_memory(const_cast<char*>(bytes.data()), bytes.size());
  return BuildIdOfElf(name, image.elf);
}

}  // namespace execmon
