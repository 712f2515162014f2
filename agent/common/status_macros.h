// Status propagation helpers. Debian's Abseil (20220623) ships no status
// macros, so they are defined once, here.
#ifndef EXECMON_AGENT_COMMON_STATUS_MACROS_H_
#define EXECMON_AGENT_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define EM_CONCAT_INNER_(a, b) a##b
#define EM_CONCAT_(a, b) EM_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status em_status_ = (expr);      \
    if (!em_status_.ok()) return em_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status,
// otherwise moves the value into `lhs` (a declaration or an lvalue).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(EM_CONCAT_(em_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // EXECMON_AGENT_COMMON_STATUS_MACROS_H_
