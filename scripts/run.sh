#!/usr/bin/env bash
# Installs what is missing, builds, and runs the agent on its defaults:
# JSON events to stdout, logs to stderr. Extra arguments go to `execmon run`.
set -euo pipefail
cd "$(dirname "$0")/.."
# stdout carries the events only: installing and building report on stderr.
scripts/install-deps.sh >&2
scripts/build.sh >&2
exec "${EXECMON_BUILD_DIR:-build}/bin/execmon" run "$@"
