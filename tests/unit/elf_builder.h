// Crafted little-endian ELF images for the build-ID tests: 32- or 64-bit,
// any program headers, PT_LOAD / PT_NOTE segments over arbitrary bytes
// (well-formed or hostile notes), optional SHT_NOTE sections.
#ifndef EXECMON_TESTS_UNIT_ELF_BUILDER_H_
#define EXECMON_TESTS_UNIT_ELF_BUILDER_H_

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace execmon::testing {

inline constexpr uint16_t kEtRel = 1;
inline constexpr uint16_t kEtExec = 2;
inline constexpr uint16_t kEtDyn = 3;
inline constexpr uint32_t kPtLoad = 1;
inline constexpr uint32_t kPtNote = 4;
inline constexpr uint32_t kPtPhdr = 6;
inline constexpr uint32_t kPtGnuStack = 0x6474e551;
inline constexpr uint32_t kShtStrtab = 3;
inline constexpr uint32_t kShtNote = 7;
inline constexpr uint32_t kNtGnuAbiTag = 1;
inline constexpr uint32_t kNtGnuBuildId = 3;
inline constexpr uint32_t kNtGnuPropertyType0 = 5;
inline constexpr std::string_view kGnuName{"GNU\0", 4};

inline void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>(v >> (8 * i)));
  }
}

inline void PutLeAt(std::vector<uint8_t>& out, uint64_t off, uint64_t v,
                    int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out[off + i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

inline uint64_t AlignUp(uint64_t v, uint64_t a) {
  return a <= 1 ? v : (v + a - 1) / a * a;
}

// One note laid out as the gABI says: 12-byte header, name padded so the
// descriptor starts `align`-aligned relative to the note, descriptor padded
// to `align`. `name` includes its NUL if it has one.
inline std::string Note(uint32_t type, std::string_view name,
                        std::string_view desc, uint64_t align = 4) {
  std::string out;
  PutLe(out, name.size(), 4);
  PutLe(out, desc.size(), 4);
  PutLe(out, type, 4);
  out.append(name);
  out.resize(AlignUp(out.size(), align), '\0');
  out.append(desc);
  out.resize(AlignUp(out.size(), align), '\0');
  return out;
}

// A note header with arbitrary (possibly lying) sizes, then `payload`.
inline std::string RawNote(uint32_t namesz, uint32_t descsz, uint32_t type,
                           std::string_view payload) {
  std::string out;
  PutLe(out, namesz, 4);
  PutLe(out, descsz, 4);
  PutLe(out, type, 4);
  out.append(payload);
  return out;
}

inline std::string BuildIdNote(std::string_view id, uint64_t align = 4) {
  return Note(kNtGnuBuildId, kGnuName, id, align);
}

// NT_GNU_ABI_TAG: Linux 3.2.0.
inline std::string AbiTagNote() {
  std::string desc;
  for (uint32_t v : {0u, 3u, 2u, 0u}) PutLe(desc, v, 4);
  return Note(kNtGnuAbiTag, kGnuName, desc);
}

// NT_GNU_PROPERTY_TYPE_0 as in .note.gnu.property of x86-64 binaries
// (GNU_PROPERTY_X86_ISA_1_NEEDED = baseline): 8-aligned, 32 bytes.
inline std::string PropertyNote() {
  std::string desc;
  PutLe(desc, 0xc0008002, 4);
  PutLe(desc, 4, 4);
  PutLe(desc, 1, 4);
  PutLe(desc, 0, 4);
  return Note(kNtGnuPropertyType0, kGnuName, desc, 8);
}

// `n` bytes 0x01, 0x02, ... (wrapping): recognizable IDs.
inline std::string TestId(size_t n, uint8_t first = 1) {
  std::string id;
  for (size_t i = 0; i < n; ++i) id.push_back(static_cast<char>(first + i));
  return id;
}

struct Phdr {
  uint32_t type = 0;
  uint32_t flags = 4;  // PF_R
  uint64_t offset = 0;
  uint64_t vaddr = 0;
  uint64_t paddr = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
  uint64_t align = 0;
};

class ElfBuilder {
 public:
  // Data placed with Place() starts at data_start; the program header table
  // goes right after the ELF header and must end before data_start.
  ElfBuilder(bool is64, uint16_t e_type, uint64_t data_start = 0x400)
      : is64_(is64), e_type_(e_type), cursor_(data_start) {}

  bool is64() const { return is64_; }
  uint64_t ehdr_size() const { return is64_ ? 64 : 52; }
  uint64_t phdr_size() const { return is64_ ? 56 : 32; }
  // p_vaddr of file offset 0 (of the automatic PT_LOAD).
  uint64_t load_vaddr() const {
    if (e_type_ != kEtExec) return 0;
    return is64_ ? 0x10000000 : 0x08048000;
  }
  uint64_t VaddrOf(uint64_t offset) const { return load_vaddr() + offset; }

  void SetCursor(uint64_t offset) { cursor_ = offset; }

  // Copies bytes into the file at the cursor (aligned up); returns where.
  uint64_t Place(std::string_view bytes, uint64_t align = 8) {
    const uint64_t off = AlignUp(cursor_, align);
    blobs_.push_back({off, std::string(bytes)});
    cursor_ = off + bytes.size();
    return off;
  }

  // Places `notes` and adds a PT_NOTE segment over them (p_vaddr follows
  // the automatic PT_LOAD). filesz overrides the segment's size.
  uint64_t AddNoteSegment(std::string_view notes, uint64_t p_align = 4,
                          std::optional<uint64_t> filesz = std::nullopt) {
    const uint64_t off = Place(notes, std::max<uint64_t>(p_align, 4));
    Phdr ph;
    ph.type = kPtNote;
    ph.offset = off;
    ph.vaddr = ph.paddr = VaddrOf(off);
    ph.filesz = ph.memsz = filesz.value_or(notes.size());
    ph.align = p_align;
    phdrs_.push_back(ph);
    return off;
  }

  void AddPhdr(const Phdr& ph) { phdrs_.push_back(ph); }

  // Places `notes` and describes them with an SHT_NOTE section.
  uint64_t AddNoteSection(std::string_view name, std::string_view notes,
                          uint64_t align = 4) {
    const uint64_t off = Place(notes, align);
    sections_.push_back(
        {std::string(name), kShtNote, off, notes.size(), align});
    return off;
  }

  // The automatic first program header: PT_LOAD of file offset 0 at
  // load_vaddr() over the whole file (or load0_filesz bytes).
  bool load_at_zero = true;
  std::optional<uint64_t> load0_filesz;
  // ELF header overrides.
  std::optional<uint64_t> e_phoff;
  std::optional<uint16_t> e_phentsize;
  std::optional<uint16_t> e_phnum;

  std::vector<Phdr> AllPhdrs(uint64_t file_size) const {
    std::vector<Phdr> all;
    if (load_at_zero) {
      Phdr load;
      load.type = kPtLoad;
      load.flags = 5;  // R+X
      load.vaddr = load.paddr = load_vaddr();
      load.filesz = load.memsz = load0_filesz.value_or(file_size);
      load.align = 0x1000;
      all.push_back(load);
    }
    all.insert(all.end(), phdrs_.begin(), phdrs_.end());
    return all;
  }

  std::vector<uint8_t> Build() const {
    // Sections (if any) go last: names, then the header table.
    std::string shstrtab(1, '\0');
    std::vector<uint32_t> name_offsets;
    for (const Section& s : sections_) {
      name_offsets.push_back(static_cast<uint32_t>(shstrtab.size()));
      shstrtab.append(s.name).push_back('\0');
    }
    const uint32_t shstrtab_name = static_cast<uint32_t>(shstrtab.size());
    shstrtab.append(".shstrtab").push_back('\0');

    uint64_t end = ehdr_size();
    for (const Blob& b : blobs_) end = std::max(end, b.offset + b.bytes.size());
    const size_t nphdrs = phdrs_.size() + (load_at_zero ? 1 : 0);
    const uint64_t table_end = ehdr_size() + nphdrs * phdr_size();
    for (const Blob& b : blobs_) {
      if (b.offset < table_end) std::abort();  // data over the phdr table
    }
    end = std::max(end, table_end);
    uint64_t shstrtab_off = 0, shoff = 0;
    const uint64_t shdr_size = is64_ ? 64 : 40;
    if (!sections_.empty()) {
      shstrtab_off = end;
      shoff = AlignUp(shstrtab_off + shstrtab.size(), 8);
      end = shoff + (sections_.size() + 2) * shdr_size;
    }

    std::vector<uint8_t> out(end, 0);
    for (const Blob& b : blobs_) {
      std::copy(b.bytes.begin(), b.bytes.end(), out.begin() + b.offset);
    }
    const std::vector<Phdr> phdrs = AllPhdrs(end);

    // ELF header.
    out[0] = 0x7f;
    out[1] = 'E';
    out[2] = 'L';
    out[3] = 'F';
    out[4] = is64_ ? 2 : 1;
    out[5] = 1;  // ELFDATA2LSB
    out[6] = 1;  // EV_CURRENT
    PutLeAt(out, 16, e_type_, 2);
    PutLeAt(out, 18, is64_ ? 62 : 3, 2);  // EM_X86_64 / EM_386
    PutLeAt(out, 20, 1, 4);
    const uint64_t phoff = e_phoff.value_or(phdrs.empty() ? 0 : ehdr_size());
    const uint16_t phentsize = e_phentsize.value_or(
        phdrs.empty() ? 0 : static_cast<uint16_t>(phdr_size()));
    const uint16_t phnum =
        e_phnum.value_or(static_cast<uint16_t>(phdrs.size()));
    const uint16_t shnum =
        sections_.empty() ? 0 : static_cast<uint16_t>(sections_.size() + 2);
    const uint16_t shstrndx = shnum == 0 ? 0 : static_cast<uint16_t>(shnum - 1);
    if (is64_) {
      PutLeAt(out, 32, phoff, 8);
      PutLeAt(out, 40, shoff, 8);
      PutLeAt(out, 52, 64, 2);
      PutLeAt(out, 54, phentsize, 2);
      PutLeAt(out, 56, phnum, 2);
      PutLeAt(out, 58, shnum ? shdr_size : 0, 2);
      PutLeAt(out, 60, shnum, 2);
      PutLeAt(out, 62, shstrndx, 2);
    } else {
      PutLeAt(out, 28, phoff, 4);
      PutLeAt(out, 32, shoff, 4);
      PutLeAt(out, 40, 52, 2);
      PutLeAt(out, 42, phentsize, 2);
      PutLeAt(out, 44, phnum, 2);
      PutLeAt(out, 46, shnum ? shdr_size : 0, 2);
      PutLeAt(out, 48, shnum, 2);
      PutLeAt(out, 50, shstrndx, 2);
    }

    // Program headers, always at the end of the ELF header (e_phoff may
    // say otherwise).
    for (size_t i = 0; i < phdrs.size(); ++i) {
      const Phdr& p = phdrs[i];
      const uint64_t at = ehdr_size() + i * phdr_size();
      if (is64_) {
        PutLeAt(out, at + 0, p.type, 4);
        PutLeAt(out, at + 4, p.flags, 4);
        PutLeAt(out, at + 8, p.offset, 8);
        PutLeAt(out, at + 16, p.vaddr, 8);
        PutLeAt(out, at + 24, p.paddr, 8);
        PutLeAt(out, at + 32, p.filesz, 8);
        PutLeAt(out, at + 40, p.memsz, 8);
        PutLeAt(out, at + 48, p.align, 8);
      } else {
        PutLeAt(out, at + 0, p.type, 4);
        PutLeAt(out, at + 4, p.offset, 4);
        PutLeAt(out, at + 8, p.vaddr, 4);
        PutLeAt(out, at + 12, p.paddr, 4);
        PutLeAt(out, at + 16, p.filesz, 4);
        PutLeAt(out, at + 20, p.memsz, 4);
        PutLeAt(out, at + 24, p.flags, 4);
        PutLeAt(out, at + 28, p.align, 4);
      }
    }

    // Section headers: [0] null, the note sections, .shstrtab.
    if (!sections_.empty()) {
      std::copy(shstrtab.begin(), shstrtab.end(), out.begin() + shstrtab_off);
      auto put_shdr = [&](size_t index, uint32_t name, uint32_t type,
                          uint64_t offset, uint64_t size, uint64_t align) {
        const uint64_t at = shoff + index * shdr_size;
        PutLeAt(out, at, name, 4);
        PutLeAt(out, at + 4, type, 4);
        if (is64_) {
          PutLeAt(out, at + 24, offset, 8);
          PutLeAt(out, at + 32, size, 8);
          PutLeAt(out, at + 48, align, 8);
        } else {
          PutLeAt(out, at + 16, offset, 4);
          PutLeAt(out, at + 20, size, 4);
          PutLeAt(out, at + 32, align, 4);
        }
      };
      for (size_t i = 0; i < sections_.size(); ++i) {
        const Section& s = sections_[i];
        put_shdr(i + 1, name_offsets[i], s.type, s.offset, s.size, s.align);
      }
      put_shdr(sections_.size() + 1, shstrtab_name, kShtStrtab, shstrtab_off,
               shstrtab.size(), 1);
    }
    return out;
  }

 private:
  struct Blob {
    uint64_t offset;
    std::string bytes;
  };
  struct Section {
    std::string name;
    uint32_t type;
    uint64_t offset;
    uint64_t size;
    uint64_t align;
  };

  bool is64_;
  uint16_t e_type_;
  uint64_t cursor_;
  std::vector<Blob> blobs_;
  std::vector<Phdr> phdrs_;
  std::vector<Section> sections_;
};

}  // namespace execmon::testing

#endif  // EXECMON_TESTS_UNIT_ELF_BUILDER_H_
