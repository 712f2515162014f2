#!/usr/bin/env bash
# Configures and builds everything into build/ (or $EXECMON_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${EXECMON_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
