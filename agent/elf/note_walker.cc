#include "agent/elf/note_walker.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "bpf/elf_rules.h"

namespace execmon {
namespace {

// Little-endian loads. em_rule_ident has established EI_DATA == LSB before
// any multi-byte field is decoded (the kernel loads them natively, which is
// the same thing on the little-endian hosts it runs on).
uint16_t Le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t Le64(const uint8_t* p) {
  return static_cast<uint64_t>(Le32(p)) |
         (static_cast<uint64_t>(Le32(p + 4)) << 32);
}

// bpf_loop(): calls fn(i) for i = 0, 1, ... nr_loops - 1 until it returns
// non-zero, and returns the number of calls made (i + 1 when the callback
// stopped the loop at i, nr_loops when it never did).
template <typename Fn>
uint32_t BpfLoop(uint32_t nr_loops, Fn fn) {
  uint32_t i;
  for (i = 0; i < nr_loops; ++i) {
    if (fn(i) != 0) return i + 1;
  }
  return i;
}

// Field layouts of Elf64_Phdr / Elf32_Phdr (struct em_phdr64 / em_phdr32).
constexpr size_t kPhdr64Type = 0, kPhdr64Offset = 8, kPhdr64Vaddr = 16,
                 kPhdr64Filesz = 32, kPhdr64Align = 48;
constexpr size_t kPhdr32Type = 0, kPhdr32Offset = 4, kPhdr32Vaddr = 8,
                 kPhdr32Filesz = 16, kPhdr32Align = 28;
static_assert(EM_PHDR64_SIZE == 56 && EM_PHDR32_SIZE == 32);

// struct em_elf: the state of one walk.
class Walk {
 public:
  Walk(MemoryReader read, uint64_t base, uint64_t file_size)
      : read_(read), base_(base), file_size_(file_size) {}

  WalkResult Run(uint64_t map_size);

 private:
  // em_read: 0 on success, non-zero on a fault.
  int Read(void* dst, uint32_t size, uint64_t addr) {
    return read_(addr, dst, size) ? 0 : 1;
  }
  // Reads program header i: false (and err_ set) on a fault.
  bool ReadPhdr(uint32_t i, uint32_t* type, uint64_t* offset, uint64_t* vaddr,
                uint64_t* filesz, uint64_t* align);
  long PhdrStep(uint32_t i);  // em_phdr_step
  long LoadStep(uint32_t i);  // em_load_step
  long NoteStep(uint32_t i);  // em_note_step

  MemoryReader read_;
  uint64_t base_;
  uint64_t file_size_;
  uint64_t phoff_ = 0;
  uint64_t load_delta_ = 0;
  uint32_t phnum_ = 0;
  uint32_t is64_ = 0;
  uint32_t have_load_ = 0;
  uint32_t nsegs_ = 0;
  uint32_t err_ = 0;
  uint32_t seg_ = 0;
  uint64_t off_ = 0;
  uint8_t ehdr_[EM_EHDR64_SIZE] = {};
  uint64_t seg_vaddr_[EM_MAX_NOTE_SEGS] = {};
  uint32_t seg_size_[EM_MAX_NOTE_SEGS] = {};
  uint8_t seg_align_[EM_MAX_NOTE_SEGS] = {};
  uint8_t bid_id_[EM_BUILD_ID_MAX] = {};
  uint8_t bid_len_ = 0;
};

bool Walk::ReadPhdr(uint32_t i, uint32_t* type, uint64_t* offset,
                    uint64_t* vaddr, uint64_t* filesz, uint64_t* align) {
  uint64_t addr;

  if (is64_) {
    uint8_t ph[EM_PHDR64_SIZE];

    addr = base_ + phoff_ + static_cast<uint64_t>(i) * sizeof(ph);
    if (Read(ph, sizeof(ph), addr)) {
      err_ = EM_BID_ERR_READ_FAULT;
      return false;
    }
    *type = Le32(ph + kPhdr64Type);
    *offset = Le64(ph + kPhdr64Offset);
    *vaddr = Le64(ph + kPhdr64Vaddr);
    *filesz = Le64(ph + kPhdr64Filesz);
    *align = Le64(ph + kPhdr64Align);
  } else {
    uint8_t ph[EM_PHDR32_SIZE];

    addr = base_ + phoff_ + static_cast<uint64_t>(i) * sizeof(ph);
    if (Read(ph, sizeof(ph), addr)) {
      err_ = EM_BID_ERR_READ_FAULT;
      return false;
    }
    *type = Le32(ph + kPhdr32Type);
    *offset = Le32(ph + kPhdr32Offset);
    *vaddr = Le32(ph + kPhdr32Vaddr);
    *filesz = Le32(ph + kPhdr32Filesz);
    *align = Le32(ph + kPhdr32Align);
  }
  return true;
}

long Walk::PhdrStep(uint32_t i) {
  uint64_t offset, vaddr, filesz, align;
  uint32_t type, slot;
  int err;

  if (i >= phnum_) return 1;
  if (!ReadPhdr(i, &type, &offset, &vaddr, &filesz, &align)) return 1;
  if (type == EM_PT_LOAD && offset == 0 && !have_load_) {
    load_delta_ = vaddr;
    have_load_ = 1;
  } else if (type == EM_PT_NOTE) {
    err = em_rule_note_seg(filesz, align);
    if (!err) err = em_rule_note_seg_in_file(offset, filesz, file_size_);
    if (err) {
      err_ = err;
      return 1;
    }
    if (nsegs_ >= EM_MAX_NOTE_SEGS) {
      err_ = EM_BID_ERR_LIMIT;
      return 1;
    }
    slot = nsegs_ & (EM_MAX_NOTE_SEGS - 1);
    seg_vaddr_[slot] = offset;  // located by p_offset (LoadStep)
    seg_size_[slot] = static_cast<uint32_t>(filesz);
    seg_align_[slot] = static_cast<uint8_t>(em_note_align(align));
    nsegs_++;
  }
  return 0;
}

long Walk::LoadStep(uint32_t i) {
  uint64_t offset, vaddr, filesz, align;
  uint32_t type, slot;

  if (seg_ >= nsegs_) return 1;  // every note segment placed
  const uint64_t ph_i = static_cast<uint64_t>(i) - off_;
  if (ph_i >= phnum_) {
    err_ = EM_BID_ERR_BAD_NOTE;  // a note no PT_LOAD maps
    return 1;
  }
  if (!ReadPhdr(static_cast<uint32_t>(ph_i), &type, &offset, &vaddr, &filesz,
                &align)) {
    return 1;
  }
  slot = seg_ & (EM_MAX_NOTE_SEGS - 1);
  const uint64_t note_off = seg_vaddr_[slot];
  if (type == EM_PT_LOAD &&
      !em_rule_note_mapped(note_off, seg_size_[slot], offset, filesz)) {
    seg_vaddr_[slot] = vaddr + (note_off - offset);
    seg_++;
    off_ = static_cast<uint64_t>(i) + 1;
  }
  return 0;
}

long Walk::NoteStep(uint32_t /*i*/) {
  uint8_t nh[EM_NHDR_SIZE];
  uint64_t addr, size, align;
  __u64 next = 0;  // the type em_rule_note writes
  uint8_t name[4];
  uint32_t slot;
  int rc;

  if (seg_ >= nsegs_) return 1;  // every segment walked: no build ID
  slot = seg_ & (EM_MAX_NOTE_SEGS - 1);
  size = seg_size_[slot];
  align = seg_align_[slot];
  if (off_ >= size || size - off_ < EM_NHDR_SIZE) {
    // End of this segment (trailing padding is tolerated).
    seg_++;
    off_ = 0;
    return 0;
  }
  addr = base_ - load_delta_ + seg_vaddr_[slot] + off_;
  if (Read(nh, sizeof(nh), addr)) {
    err_ = EM_BID_ERR_READ_FAULT;
    return 1;
  }
  const uint32_t namesz = Le32(nh), descsz = Le32(nh + 4), type = Le32(nh + 8);
  rc = em_rule_note(off_, size, align, namesz, descsz, type, &next);
  if (rc < 0) {
    err_ = -rc;
    return 1;
  }
  if (rc == EM_NOTE_BUILD_ID) {
    if (Read(name, sizeof(name), addr + EM_NHDR_SIZE)) {
      err_ = EM_BID_ERR_READ_FAULT;
      return 1;
    }
    if (em_rule_gnu_name(name)) {
      uint32_t len = descsz;

      rc = em_rule_build_id_size(len);
      if (rc) {
        err_ = rc;
        return 1;
      }
      if (len > EM_BUILD_ID_MAX) return 1;  // unreachable (as in the kernel)
      if (Read(bid_id_, len, addr + em_note_desc_off(4, align))) {
        err_ = EM_BID_ERR_READ_FAULT;
        return 1;
      }
      bid_len_ = static_cast<uint8_t>(len);
      return 1;
    }
  }
  off_ = next;
  return 0;
}

WalkResult Walk::Run(uint64_t map_size) {
  WalkResult out;
  uint32_t phentsize;
  int err;

  if (Read(ehdr_, sizeof(ehdr_), base_)) {
    out.error = EM_BID_ERR_READ_FAULT;
    return out;
  }
  err = em_rule_ident(ehdr_);
  if (err) {
    out.error = static_cast<uint8_t>(err);
    return out;
  }
  is64_ = ehdr_[4] == EM_ELFCLASS64;
  if (is64_) {
    phoff_ = Le64(&ehdr_[32]);
    phentsize = Le16(&ehdr_[54]);
    phnum_ = Le16(&ehdr_[56]);
  } else {
    phoff_ = Le32(&ehdr_[28]);
    phentsize = Le16(&ehdr_[42]);
    phnum_ = Le16(&ehdr_[44]);
  }
  err = em_rule_phdrs(is64_, phoff_, phentsize, phnum_, map_size);
  if (err) {
    out.error = static_cast<uint8_t>(err);
    return out;
  }
  BpfLoop(EM_MAX_PHNUM, [this](uint32_t i) { return PhdrStep(i); });
  if (err_) {
    out.error = static_cast<uint8_t>(err_);
    return out;
  }
  if (!have_load_) {
    out.error = EM_BID_ERR_BAD_PHDRS;
    return out;
  }
  if (!nsegs_) {
    out.error = EM_BID_ERR_NO_NOTE;
    return out;
  }
  BpfLoop(EM_MAX_PHNUM * EM_MAX_NOTE_SEGS,
          [this](uint32_t i) { return LoadStep(i); });
  if (err_) {
    out.error = static_cast<uint8_t>(err_);
    return out;
  }
  seg_ = 0;
  off_ = 0;
  BpfLoop(EM_MAX_NOTE_STEPS, [this](uint32_t i) { return NoteStep(i); });
  // As the kernel: out of steps with segments left unwalked.
  if (seg_ < nsegs_ && !bid_len_ && !err_) err_ = EM_BID_ERR_LIMIT;
  if (err_) {
    out.error = static_cast<uint8_t>(err_);
    return out;
  }
  if (!bid_len_) {
    out.error = EM_BID_ERR_NO_NOTE;
    return out;
  }
  out.build_id.assign(reinterpret_cast<const char*>(bid_id_), bid_len_);
  out.error = EM_BID_OK;
  return out;
}

// One stretch of the emulated address space backed by the file.
struct Mapping {
  uint64_t start;
  uint64_t size;
  uint64_t file_offset;
};

constexpr uint16_t kEtExec = 2;
constexpr uint32_t kPtLoad = 1;

}  // namespace

WalkResult WalkBuildId(MemoryReader read, uint64_t base, uint64_t map_size,
                       uint64_t file_size) {
  Walk walk(read, base, file_size);
  return walk.Run(map_size);
}

WalkResult WalkBuildIdInFile(absl::Span<const uint8_t> file) {
  const uint64_t file_size = file.size();
  const uint8_t* f = file.data();

  // The loader's view of the file: the PT_LOAD segments, found without
  // trusting anything that is not bounds-checked against the file.
  bool have_load0 = false;
  uint64_t load0_vaddr = 0, load0_filesz = 0;
  uint16_t e_type = 0;
  std::vector<Mapping> loads;
  if (file_size >= EM_EHDR32_SIZE && f[0] == 0x7f && f[1] == 'E' &&
      f[2] == 'L' && f[3] == 'F' && f[5] == EM_ELFDATA2LSB &&
      (f[4] == EM_ELFCLASS32 ||
       (f[4] == EM_ELFCLASS64 && file_size >= EM_EHDR64_SIZE))) {
    const bool is64 = f[4] == EM_ELFCLASS64;
    e_type = Le16(f + 16);
    const uint64_t phoff = is64 ? Le64(f + 32) : Le32(f + 28);
    const uint32_t phentsize = Le16(f + (is64 ? 54 : 42));
    const uint32_t phnum = Le16(f + (is64 ? 56 : 44));
    const uint32_t want = is64 ? EM_PHDR64_SIZE : EM_PHDR32_SIZE;
    if (phentsize == want && phoff <= file_size &&
        static_cast<uint64_t>(phnum) * want <= file_size - phoff) {
      for (uint32_t i = 0; i < phnum; ++i) {
        const uint8_t* ph = f + phoff + static_cast<uint64_t>(i) * want;
        uint32_t type;
        uint64_t offset, vaddr, filesz;
        if (is64) {
          type = Le32(ph + kPhdr64Type);
          offset = Le64(ph + kPhdr64Offset);
          vaddr = Le64(ph + kPhdr64Vaddr);
          filesz = Le64(ph + kPhdr64Filesz);
        } else {
          type = Le32(ph + kPhdr32Type);
          offset = Le32(ph + kPhdr32Offset);
          vaddr = Le32(ph + kPhdr32Vaddr);
          filesz = Le32(ph + kPhdr32Filesz);
        }
        if (type != kPtLoad) continue;
        if (offset == 0 && !have_load0) {
          have_load0 = true;
          load0_vaddr = vaddr;
          load0_filesz = filesz;
        }
        loads.push_back({vaddr, filesz, offset});
      }
    }
  }

  const uint64_t base =
      (have_load0 && e_type == kEtExec) ? load0_vaddr : kFileLoadBase;
  const uint64_t map_size = have_load0 ? load0_filesz : file_size;
  // Unsigned wrap-around is intended: bias may be "negative".
  const uint64_t bias = base - (have_load0 ? load0_vaddr : 0);
  std::vector<Mapping> maps;
  maps.push_back({base, map_size, 0});
  for (const Mapping& load : loads) {
    maps.push_back({load.start + bias, load.size, load.file_offset});
  }

  auto read = [&](uint64_t addr, void* dst, size_t len) -> bool {
    for (const Mapping& m : maps) {
      if (addr < m.start) continue;
      const uint64_t rel = addr - m.start;
      if (rel > m.size || len > m.size - rel) continue;
      if (m.file_offset > file_size || rel > file_size - m.file_offset)
        continue;
      const uint64_t off = m.file_offset + rel;
      if (len > file_size - off) continue;
      if (len > 0) std::memcpy(dst, f + off, len);
      return true;
    }
    return false;
  };
  return WalkBuildId(read, base, map_size, file_size);
}

}  // namespace execmon
