#!/usr/bin/env bash
# The test suite: installs what is missing, builds, runs every test with ctest.
# Integration tests use ../shared/datasets when present (CI copies shared/ beside the clone).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
export PCONV_BUILD_DIR="${PCONV_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh" -DPCONV_WERROR=ON
cd "$PCONV_BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "${PCONV_TEST_JOBS:-2}"
