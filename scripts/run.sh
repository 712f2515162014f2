#!/usr/bin/env bash
# Installs what is missing, builds, and runs the agent on its defaults:
# JSON events to stdout, logs to stderr. Extra arguments go to `execmon run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec "${EXECMON_BUILD_DIR:-build}/bin/execmon" run "$@"
