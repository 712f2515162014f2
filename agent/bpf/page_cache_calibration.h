// Finds and validates the two kernel bases the page-cache path needs to
// read a file page through the direct map (bpf/page_cache.bpf.h): where the
// direct map starts (page_offset_base) and where the struct page array
// starts (vmemmap_base). Both are randomised by CONFIG_RANDOMIZE_MEMORY.
//
// The agent writes a random marker into a memfd page and asks the kernel
// side for that page's struct page (its page-cache entry). Candidates come
// from /proc/kallsyms data symbols where the kernel lists them, else from
// the page's PFN (/proc/self/pagemap, root) or the kernel's defaults, with
// a search over the direct map's 1 GiB randomisation steps. A candidate is
// used only after the marker was read back through it with the very code
// the exec path runs; otherwise the path is refused.
#ifndef EXECMON_AGENT_BPF_PAGE_CACHE_CALIBRATION_H_
#define EXECMON_AGENT_BPF_PAGE_CACHE_CALIBRATION_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "bpf/execmon_abi.h"

namespace execmon {

struct PageCacheBases {
  uint64_t page_offset_base = 0;
  uint64_t vmemmap_base = 0;
  std::string how;  // where the validated candidate came from
};

class PageCacheCalibrator {
 public:
  // Runs the calibration iterator (em_pc_calibrate) with a request.
  using RunFn =
      std::function<absl::StatusOr<em_pc_calib_out>(const em_pc_calib_req&)>;

  explicit PageCacheCalibrator(RunFn run) : run_(std::move(run)) {}

  absl::StatusOr<PageCacheBases> Calibrate();

 private:
  RunFn run_;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_BPF_PAGE_CACHE_CALIBRATION_H_
