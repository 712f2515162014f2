#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit tests (ctest)
# and end-to-end tests against the real kernel (pytest, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD=$(realpath -m "${EXECMON_BUILD_DIR:-build}")
REPORTS="$BUILD/test-reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"

status=0
echo "== unit tests"
ctest --test-dir "$BUILD" --output-on-failure --output-junit "$REPORTS/unit.xml" \
  || status=1
echo "== end-to-end tests (real kernel, real BPF)"
EXECMON_BUILD_DIR="$BUILD" python3 -m pytest -v tests/e2e \
  --junitxml="$REPORTS/e2e.xml" -p no:cacheprovider || status=1

python3 scripts/test_summary.py "$REPORTS"/*.xml || status=1
exit $status
