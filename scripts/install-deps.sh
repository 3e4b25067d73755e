#!/usr/bin/env bash
# Installs every Debian package pconv needs. Skips apt entirely when all are already present,
# so repeated runs (tests, quick start) cost nothing.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config
  libdnnl-dev libhdf5-dev libopencv-dev nlohmann-json3-dev libgtest-dev
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
  g++-aarch64-linux-gnu qemu-user libsimde-dev
  python3
  python3-matplotlib
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "[pconv] installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[pconv] packages installed"
