#!/usr/bin/env bash
# The AVX-512 deploy tests and an AVX-512 pconv-bench on a machine that is not this one (a lent
# server with AVX-512, when this machine has only AVX2): the binaries are built here, the device
# needs g++ (the tests and the bench build generated code) and nothing else.
#
#   scripts/avx512_device_check.sh bundle BUNDLE
#       the deploy test binaries, pconv-bench, pconv-synth, the shared libraries they load
#       (beyond libc, libstdc++ and libgomp) and a CMake from PyPI, packed into BUNDLE/pack.tar.xz;
#       BUNDLE/run.sh is what the device runs.
#   (on the device)  BUNDLE/run.sh OUT_DIR
#       unpacks to /tmp/pconv-pack, puts on the library path only the libraries the device lacks,
#       runs both deploy test binaries, then pconv-bench --target avx512 on VGG-16/224 (r3.1) and
#       VGG-16/32 (r8.8) pinned to 2 cores (PCONV_CPUS, default 2,3; REPEAT runs, default 20;
#       PCONV_MODELS, default "v32 v224", picks the models; "" runs the tests only).
# PCONV_BUILD: the build folder (default <repo>/build). The test binaries write their generated
# code under the build folder they were built in; run.sh creates that path on the device.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PCONV_BUILD:-$repo/build}"
[[ $# -eq 2 && $1 == bundle ]] || { sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
bundle=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$bundle" "$tmp/pack/bin" "$tmp/pack/libs" "$tmp/pack/cmake/bin"
cp "$build"/tests/deploy-test_stationary "$build"/tests/deploy-test_codegen_run \
  "$build"/bin/pconv-bench "$build"/bin/pconv-synth "$tmp/pack/bin/"
for b in "$tmp"/pack/bin/*; do ldd "$b" | awk '/=>/{print $3}'; done | sort -u |
  grep -v -E 'libc\.so|libm\.so|libstdc\+\+|libgcc_s|libgomp|libpthread|libdl\.so|librt\.so|ld-linux' |
  while read -r l; do cp -L "$l" "$tmp/pack/libs/"; done
# A CMake for a device without one: the PyPI wheel's binary needs only glibc.
python3 -m pip download cmake==3.28.3 --no-deps -q -d "$tmp/whl"
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$tmp"/whl/cmake-*.whl "$tmp/whl/x"
cp "$tmp"/whl/x/cmake/data/bin/cmake "$tmp/pack/cmake/bin/"
cp -r "$tmp"/whl/x/cmake/data/share "$tmp/pack/cmake/"
git -C "$repo" rev-parse --short HEAD > "$tmp/pack/commit"
realpath "$build" > "$tmp/pack/build_dir"  # where the test binaries write generated code
tar cJf "$bundle/pack.tar.xz" -C "$tmp/pack" .
cat > "$bundle/run.sh" << 'RUN'
#!/usr/bin/env bash
# Runs on the AVX-512 device: BUNDLE/run.sh OUT_DIR (written by scripts/avx512_device_check.sh).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out=${1:?usage: run.sh OUT_DIR}
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
echo "== host"; date; nproc; lscpu | grep -E "Model name|Thread|L1d|L2|L3"
grep -o -w 'avx512[a-z]*' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
P=/tmp/pconv-pack
rm -rf "$P"; mkdir -p "$P/need"
tar xJf "$here/pack.tar.xz" -C "$P" || { echo "unpack failed"; exit 1; }
echo "bundled from a checkout at $(cat "$P/commit") (pconv-bench records its build commit)"
for b in "$P"/bin/*; do ldd "$b" | awk '/not found/{print $1}'; done | sort -u |
  while read -r l; do ln -sf "$P/libs/$l" "$P/need/$l"; done
echo "carried libraries used: $(ls "$P/need" | tr '\n' ' ')"
export LD_LIBRARY_PATH=$P/need
command -v cmake > /dev/null || export PATH=$P/cmake/bin:$PATH
g++ --version | head -1; cmake --version | head -1
bdir=$(cat "$P/build_dir")
mkdir -p "$bdir"
echo "== tests (generated code under $bdir)"
timeout 200 "$P/bin/deploy-test_stationary" > "$out/test_stationary.log" 2>&1 & p1=$!
timeout 200 "$P/bin/deploy-test_codegen_run" > "$out/test_codegen_run.log" 2>&1 & p2=$!
wait $p1; echo "deploy-test_stationary rc $?"; wait $p2; echo "deploy-test_codegen_run rc $?"
grep -h -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out"/test_*.log
echo "== pconv-bench --target avx512 on cores ${PCONV_CPUS:-2,3}"
w=/tmp/pconv-bench-avx512; mkdir -p "$w"
for m in ${PCONV_MODELS-v32 v224}; do
  case $m in
    v224) synth=(--arch vgg16 --image-size 224 --classes 1000 --conn-rate 3.1) ;;
    v32) synth=(--arch vgg16_cifar --image-size 32 --classes 10 --conn-rate 8.8) ;;
    *) echo "unknown model $m (v32 or v224)"; continue ;;
  esac
  "$P/bin/pconv-synth" "${synth[@]}" --patterns 4 --seed 1 --out "$w/$m.h5" > /dev/null
  timeout 150 taskset -c "${PCONV_CPUS:-2,3}" "$P/bin/pconv-bench" "$w/$m.h5" --target avx512 --threads 1,2 \
    --repeat "${REPEAT:-20}" --rounds 5 --work "$w/g$m" --json "$out/$m.json" > "$out/bench_$m.log" 2>&1
  echo "pconv-bench $m rc $?"; tail -4 "$out/bench_$m.log"
done
date
RUN
chmod +x "$bundle/run.sh"
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)); on the device: $bundle/run.sh OUT_DIR"
