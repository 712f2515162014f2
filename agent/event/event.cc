#include "agent/event/event.h"

#include <sys/sysmacros.h>

#include "absl/strings/escaping.h"
#include "bpf/execmon_abi.h"

namespace execmon {

uint64_t FileKey::UserDev() const {
  // Kernel-internal dev_t: 12-bit major in the top bits, 20-bit minor.
  return makedev(dev >> 20, dev & 0xfffff);
}

std::string BuildId::Hex() const { return absl::BytesToHexString(bytes); }

const char* BuildIdSourceName(BuildIdSource source) {
  switch (source) {
    case BuildIdSource::kNone:
      return "none";
    case BuildIdSource::kCache:
      return "cache";
    case BuildIdSource::kTaskWork:
      return "task_work";
    case BuildIdSource::kIterator:
      return "iterator";
    case BuildIdSource::kSnapshot:
      return "snapshot";
    case BuildIdSource::kPageCache:
      return "page_cache";
  }
  return "none";
}

const char* BuildIdErrorName(uint8_t error) {
  switch (error) {
    case EM_BID_OK:
      return "";
    case EM_BID_ERR_PENDING:
      return "pending";
    case EM_BID_ERR_NOT_ELF:
      return "not_elf";
    case EM_BID_ERR_NO_NOTE:
      return "no_note";
    case EM_BID_ERR_READ_FAULT:
      return "read_fault";
    case EM_BID_ERR_BAD_PHDRS:
      return "bad_program_headers";
    case EM_BID_ERR_BAD_NOTE:
      return "bad_note";
    case EM_BID_ERR_BAD_SIZE:
      return "bad_build_id_size";
    case EM_BID_ERR_NO_AUXV:
      return "no_auxv";
    case EM_BID_ERR_NO_MAPPING:
      return "no_mapping";
    case EM_BID_ERR_MISMATCH:
      return "mapping_mismatch";
    case EM_BID_ERR_EXITED:
      return "exited";
    case EM_BID_ERR_SCHEDULE:
      return "schedule_failed";
    case EM_BID_ERR_TABLE_FULL:
      return "pending_table_full";
    case EM_BID_ERR_LIMIT:
      return "walk_limit";
    case EM_BID_ERR_NOT_RESIDENT:
      return "not_resident";
    case EM_BID_ERR_UNRESOLVED:
      return "unresolved";
  }
  return "unknown";
}

std::vector<std::string> SplitArgs(const char* data, size_t len) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < len; ++i) {
    if (data[i] == '\0') {
      out.emplace_back(data + start, i - start);
      start = i + 1;
    }
  }
  if (start < len) out.emplace_back(data + start, len - start);
  return out;
}

}  // namespace execmon
