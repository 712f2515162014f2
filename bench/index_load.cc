// Loading build-ID indexes into the agent (docs/performance.md, "index"):
// writes an index of N entries (default 1,000,000; every 4th build ID
// shares a package version with others, as in a real distribution), then
// times PackageMap::Load and measures the resident memory it adds.
//
//   build/bench/index_load [N] [DIR]
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/index/package_map.h"

// jemalloc's control interface, when the agent's allocator is linked in.
extern "C" int mallctl(const char*, void*, size_t*, void*, size_t)
    __attribute__((weak));

namespace {

// Returns freed memory to the system (glibc's trim, or a jemalloc purge of
// every arena), so resident memory is what is in use.
void ReleaseFreed() {
  malloc_trim(0);
  if (mallctl != nullptr)
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
}

long RssKb() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 1000000;
  const std::string dir = argc > 2 ? argv[2] : "/tmp";
  const std::string path = dir + "/execmon-bench.idx";
  {
    std::ofstream out(path);
    out << "{\"execmon_index\":1,\"created\":\"2026-01-01T00:00:00Z\","
           "\"sources\":[{\"kind\":\"deb\",\"ref\":\"bench\"}],\"entries\":"
        << n << "}\n";
    for (long i = 0; i < n; ++i) {
      char id[20];
      for (int b = 0; b < 20; ++b) {
        id[b] = static_cast<char>((i * 2654435761L >> (b % 8)) + b * 131 + i);
      }
      std::memcpy(id, &i, sizeof(i));  // unique
      const long pkg = i / 4;
      out << "{\"build_id\":\"" << absl::BytesToHexString(std::string(id, 20))
          << "\",\"path\":\"/usr/lib/x86_64-linux-gnu/libbench" << i
          << ".so.1\",\"size\":123456,\"sha256\":\"" << std::string(64, 'a')
          << "\",\"package\":{\"name\":\"libbench" << pkg
          << "\",\"version\":\"1.2." << pkg % 100
          << "-1+deb12u1\",\"arch\":\"amd64\",\"source\":\"bench" << pkg / 10
          << "\"},\"source\":0}\n";
    }
  }
  // The JSON Lines index, then the same compiled (execmon index compile),
  // each loaded in a fresh map.
  const std::string compiled = dir + "/execmon-bench.emidx";
  for (const std::string& file : {path, compiled}) {
    if (file == compiled) {
      auto src = execmon::PackageMap::Load({path});
      if (!src.ok() || !src->Save(compiled).ok()) {
        std::fprintf(stderr, "compiling the index failed\n");
        return 1;
      }
    }
    ReleaseFreed();
    const long before = RssKb();
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<execmon::PackageMap> map = execmon::PackageMap::Load({file});
    const auto t1 = std::chrono::steady_clock::now();
    if (!map.ok()) {
      std::fprintf(stderr, "%s\n", std::string(map.status().message()).c_str());
      return 1;
    }
    ReleaseFreed();  // the parser's freed buffers are not the map's
    const long after = RssKb();
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    std::printf(
        "form=%s entries=%zu packages=%zu load_s=%.3f rss_added_kb=%ld "
        "rss_bytes_per_entry=%.1f map_bytes_per_entry=%.1f\n",
        file == compiled ? "compiled" : "jsonl", map->size(), map->packages(),
        secs, after - before,
        (after - before) * 1024.0 / static_cast<double>(map->size()),
        static_cast<double>(map->MemoryBytes()) /
            static_cast<double>(map->size()));
  }
  unlink(path.c_str());
  unlink(compiled.c_str());
  return 0;
}
