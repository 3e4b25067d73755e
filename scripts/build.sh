#!/usr/bin/env bash
# Configures and builds pconv (Release) into ${PCONV_BUILD_DIR:-build}. Used by the two
# README commands; safe to re-run (incremental).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${PCONV_BUILD_DIR:-$root/build}"
jobs="${PCONV_JOBS:-$(nproc)}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# PCONV_TARGETS (space-separated) builds only those targets, e.g. the commands without the tests.
targets=()
for t in ${PCONV_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$jobs" "${targets[@]}"
