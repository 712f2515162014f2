// Decodes records written by the BPF programs (ring buffer and iterator
// output) into KernelRecord. The wire layout is bpf/execmon_abi.h; its
// sizes and offsets are pinned by static_asserts in decoder.cc.
#ifndef EXECMON_AGENT_EVENT_DECODER_H_
#define EXECMON_AGENT_EVENT_DECODER_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/event/event.h"

namespace execmon {

// Decodes one record. Errors (short, unknown type, ABI mismatch, lengths
// beyond their fields) are InvalidArgument with the reason.
absl::StatusOr<KernelRecord> DecodeRecord(absl::Span<const uint8_t> data);

// Size of the record at the front of data, from its header, for splitting
// a stream of iterator output. 0 when data is too short for a header.
size_t RecordSize(absl::Span<const uint8_t> data);

}  // namespace execmon

#endif  // EXECMON_AGENT_EVENT_DECODER_H_
