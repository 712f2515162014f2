// libFuzzer entry point: arbitrary bytes as a policy file (and as a
// build-ID list file). Parsing must never crash, throw, leak or hang, and
// what it accepts must satisfy the model's invariants.
//
// Built by tests/fuzz/CMakeLists.txt (clang, -fsanitize=fuzzer,address,
// undefined); run with tests/fuzz/run_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "agent/policy/evaluator.h"
#include "agent/policy/list_file.h"
#include "agent/policy/parser.h"
#include "agent/policy/policy.h"

namespace {

void Check(bool ok) {
  if (!ok) abort();
}

void CheckEntries(const execmon::BuildIdMap& m) {
  for (const auto& [id, entry] : m) {
    Check(!id.view().empty() && id.view().size() <= 20);
    Check(m.find(id.view()) != m.end());  // found by its raw bytes
    Check(entry.file != nullptr && !entry.file->empty());
    Check(entry.line >= 1 && entry.column >= 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);

  execmon::ParseResult result;
  execmon::ParsePolicyText(text, "fuzz.yaml", "/nonexistent/execmon-fuzz",
                           &result);
  for (const execmon::PolicyError& e : result.errors) {
    Check(!e.message.empty());
    Check(!e.ToString().empty());
  }
  absl::flat_hash_set<std::string> names;
  for (const execmon::Policy& p : result.set.policies) {
    Check(names.insert(p.name).second);
    Check(result.names.contains(p.name));
    Check(p.action != execmon::PolicyAction::kKill ||
          p.mode == execmon::PolicyMode::kEnforce);
    CheckEntries(p.deny);
    CheckEntries(p.allow);
    Check(p.allow.empty() || p.has_allow_list);
    for (const auto& [id, entry] : p.allow) Check(!p.deny.contains(id));
    Check(!(p.selector.host.value_or(false) && p.selector.NeedsPodMetadata()));
  }
  // Whatever was accepted can be evaluated.
  execmon::Workload pod;
  pod.host = false;
  pod.namespace_name = "prod";
  pod.labels = {{"app", "web"}};
  pod.container = "nginx";
  for (const execmon::Workload& w : {execmon::Workload{}, pod}) {
    for (const absl::optional<std::string>& id :
         {absl::optional<std::string>(),
          absl::optional<std::string>("\xab\xcd")}) {
      execmon::Verdict v = execmon::Evaluate(result.set, id, w);
      Check(v.policy < static_cast<int>(result.set.policies.size()));
    }
  }

  // The same bytes as a list file.
  execmon::BuildIdMap ids;
  std::vector<execmon::PolicyError> errors;
  size_t n = execmon::ParseBuildIdList(text, "fuzz.txt", &ids, &errors);
  Check(ids.size() <= n);
  Check(errors.size() <= execmon::kMaxListFileErrors);
  CheckEntries(ids);
  return 0;
}
