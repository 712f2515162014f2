#!/usr/bin/env bash
# Builds the policy fuzzer (clang++, libFuzzer + ASan + UBSan) and runs it
# for FUZZ_SECONDS (default 60) on a copy of tests/fuzz/corpus/policy, so
# the checked-in corpus is not modified. Exits non-zero on any crash, leak,
# timeout or sanitizer report; the reproducer is left in
# $FUZZ_BUILD/artifacts/.
#
#   FUZZ_BUILD    build directory (default build-fuzz; relative paths are
#                 taken from the repository root)
#   FUZZ_SECONDS  how long to fuzz (default 60)
#   FUZZ_JOBS     build parallelism (default: nproc)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${FUZZ_BUILD:-build-fuzz}"
[[ "$build" = /* ]] || build="$root/$build"
seconds="${FUZZ_SECONDS:-60}"

for tool in clang clang++ cmake; do
  command -v "$tool" >/dev/null || { echo "run_fuzz: $tool not found" >&2; exit 2; }
done

CC=clang CXX=clang++ cmake -S "$here" -B "$build" >/dev/null
cmake --build "$build" -j"${FUZZ_JOBS:-$(nproc)}"

work="$(mktemp -d "${TMPDIR:-/tmp}/execmon-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$build/artifacts"
cp "$here"/corpus/policy/* "$work/corpus/"

# Runs from the scratch dir: nothing the fuzzer writes lands in the repo.
cd "$work"
status=0
"$build/policy_fuzzer" \
  -max_total_time="$seconds" \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -max_len=8192 \
  -dict="$here/policy.dict" \
  -artifact_prefix="$build/artifacts/" \
  -print_final_stats=1 \
  "$work/corpus" || status=$?
if ((status != 0)); then
  echo "run_fuzz: the fuzzer failed (exit $status); see $build/artifacts/" >&2
  exit "$status"
fi
echo "run_fuzz: no crash in ${seconds}s"
