#include "agent/bpf/page_cache_calibration.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace execmon {
namespace {

// x86-64 defaults without randomisation (Documentation/arch/x86/x86_64/mm.rst),
// 4- and 5-level paging.
constexpr uint64_t kDirectMapL4 = 0xffff888000000000ULL;
constexpr uint64_t kDirectMapL5 = 0xff11000000000000ULL;
constexpr uint64_t kVmemmapL4 = 0xffffea0000000000ULL;
constexpr uint64_t kVmemmapL5 = 0xffd4000000000000ULL;
// kaslr_memory_regions() moves each region by whole PUDs (1 GiB).
constexpr uint64_t kRandomStep = 1ULL << 30;
// The search covers 64 TiB of direct-map placements.
constexpr uint64_t kSearchSteps = 1ULL << 16;

class Marker {
 public:
  ~Marker() {
    if (addr_ != nullptr) munmap(addr_, size_);
    if (fd_ >= 0) close(fd_);
  }
  absl::Status Create() {
    size_ = sysconf(_SC_PAGESIZE);
    fd_ = memfd_create("execmon-page-cache-calibration", MFD_CLOEXEC);
    if (fd_ < 0) return Errno("memfd_create");
    if (ftruncate(fd_, size_) != 0) return Errno("ftruncate");
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return Errno("mmap");
    addr_ = static_cast<uint8_t*>(p);
    if (getrandom(bytes_, sizeof(bytes_), 0) != sizeof(bytes_)) {
      return Errno("getrandom");
    }
    // Never all-zero in its first 8 bytes (the search compares those).
    bytes_[0] |= 1;
    std::memcpy(addr_, bytes_, sizeof(bytes_));
    mlock(addr_, size_);  // best effort: keeps the PFN stable
    return absl::OkStatus();
  }
  // The PFN of the page, 0 when pagemap does not say (needs CAP_SYS_ADMIN).
  uint64_t Pfn() const {
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint64_t entry = 0;
    off_t off = (reinterpret_cast<uintptr_t>(addr_) / size_) * sizeof(entry);
    ssize_t n = pread(fd, &entry, sizeof(entry), off);
    close(fd);
    if (n != sizeof(entry) || !(entry >> 63)) return 0;  // not present
    return entry & ((1ULL << 55) - 1);
  }
  int fd() const { return fd_; }
  const uint8_t* bytes() const { return bytes_; }
  uint64_t first8() const {
    uint64_t v;
    std::memcpy(&v, bytes_, sizeof(v));
    return v;
  }

 private:
  static absl::Status Errno(const char* what) {
    return absl::InternalError(
        absl::StrCat("calibration ", what, ": ", std::strerror(errno)));
  }
  int fd_ = -1;
  size_t size_ = 0;
  uint8_t* addr_ = nullptr;
  uint8_t bytes_[32] = {};
};

}  // namespace

absl::StatusOr<PageCacheBases> PageCacheCalibrator::Calibrate() {
  Marker marker;
  if (absl::Status s = marker.Create(); !s.ok()) return s;
  em_pc_calib_req req{};
  req.tgid = getpid();
  req.fd = marker.fd();
  req.mode = EM_PC_CAL_FIND;
  auto found = run_(req);
  if (!found.ok()) return found.status();
  const uint64_t page = found->page;
  const uint64_t page_struct = found->page_size_of_struct;
  if (page == 0 || page_struct == 0) {
    return absl::FailedPreconditionError(
        "calibration: the marker page was not found in its own page cache");
  }
  const uint64_t pfn = marker.Pfn();

  struct Candidate {
    uint64_t page_offset_base, vmemmap_base;
    std::string how;
  };
  std::vector<Candidate> candidates;
  if (found->ksym_page_offset_base != 0 && found->ksym_vmemmap_base != 0) {
    candidates.push_back({found->ksym_page_offset_base,
                          found->ksym_vmemmap_base,
                          "page_offset_base and vmemmap_base from kallsyms"});
  }
  std::vector<uint64_t> vmemmaps;
  if (pfn != 0 && page >= pfn * page_struct) {
    vmemmaps.push_back(page - pfn * page_struct);
  }
  for (uint64_t v : {kVmemmapL4, kVmemmapL5}) {
    if (page > v) vmemmaps.push_back(v);
  }
  for (uint64_t v : vmemmaps) {
    for (uint64_t d : {kDirectMapL4, kDirectMapL5}) {
      candidates.push_back(
          {d, v,
           pfn != 0 && v == vmemmaps.front()
               ? "struct page base from the marker's PFN, default direct map"
               : "default bases"});
    }
  }
  std::vector<std::string> tried;
  auto validate = [&](const Candidate& c) -> bool {
    em_pc_calib_req r{};
    r.tgid = req.tgid;
    r.fd = req.fd;
    r.mode = EM_PC_CAL_READ;
    r.cand.page_offset_base = c.page_offset_base;
    r.cand.vmemmap_base = c.vmemmap_base;
    auto out = run_(r);
    bool ok =
        out.ok() && out->read_err == 0 &&
        std::memcmp(out->marker, marker.bytes(), sizeof(out->marker)) == 0;
    tried.push_back(
        absl::StrFormat("0x%x/0x%x", c.page_offset_base, c.vmemmap_base));
    return ok;
  };
  for (const Candidate& c : candidates) {
    if (validate(c))
      return PageCacheBases{c.page_offset_base, c.vmemmap_base, c.how};
  }
  // Randomised direct map: search its 1 GiB steps for the marker at the
  // known PFN, then validate the hit like any other candidate.
  if (pfn != 0) {
    for (uint64_t start : {kDirectMapL4, kDirectMapL5}) {
      em_pc_calib_req r{};
      r.tgid = req.tgid;
      r.fd = req.fd;
      r.mode = EM_PC_CAL_SEARCH;
      r.search_start = start;
      r.search_step = kRandomStep;
      r.search_count = kSearchSteps;
      r.pfn = pfn;
      r.marker64 = marker.first8();
      auto out = run_(r);
      if (!out.ok() || out->found == 0) continue;
      Candidate c{out->found, vmemmaps.front(),
                  "direct map found by search, struct page base from the "
                  "marker's PFN"};
      if (validate(c)) {
        return PageCacheBases{c.page_offset_base, c.vmemmap_base, c.how};
      }
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "no direct-map translation validated (tried ", absl::StrJoin(tried, ", "),
      pfn == 0 ? "; the page's PFN is unknown: /proc/self/pagemap needs "
                 "CAP_SYS_ADMIN, and kallsyms lists no page_offset_base"
               : "",
      ")"));
}

}  // namespace execmon
