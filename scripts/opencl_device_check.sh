#!/usr/bin/env bash
# The opencl target's accuracy check on an OpenCL device that is not this machine (a GPU server,
# a phone): this machine has the models, the data and the reference executor; the device needs
# nothing but the runners, the inputs and an OpenCL driver.
#
#   scripts/opencl_device_check.sh bundle BUNDLE MODEL.h5[:LIMIT] ...
#       for each model (named by its file, or by its folder for a model.h5): pconv-deploy
#       --target opencl, runners built (plain, and with per-layer device times), the CIFAR-10
#       test images (all, or a class-balanced LIMIT) exported with
#       pconv-eval --export-inputs and gzipped; BUNDLE/run.sh is what the device runs.
#   (on the device)  BUNDLE/run.sh OUT_DIR
#       every model's logits over its images (runner --batch), then batch-1 latency and per-layer
#       device times; PCONV_OPENCL_PLATFORM picks the platform (default: nvidia).
#   scripts/opencl_device_check.sh score BUNDLE OUT_DIR [--json FILE]
#       pconv-eval --deployed-logits for each model: .h5 top-1, deployed top-1, agreement.
# PCONV_BUILD: the build folder (default <repo>/build), with pconv-deploy and pconv-eval.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${PCONV_BUILD:-$repo/build}/bin"
usage() {
  sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}
[[ $# -ge 2 ]] || usage
mode=$1 bundle=$2
shift 2

if [[ $mode == bundle ]]; then
  [[ $# -ge 1 ]] || usage
  mkdir -p "$bundle"
  : > "$bundle/models.txt"
  for spec in "$@"; do
    model=${spec%%:*} limit=""
    [[ $spec == *:* ]] && limit=${spec##*:}
    [[ -f $model ]] || { echo "opencl_device_check: $model: no such model file" >&2; exit 1; }
    # pconv-train names every model model.h5: name those by their run folder.
    name=$(basename "$model" .h5)
    [[ $name == model ]] && name=$(basename "$(dirname "$(realpath "$model")")")
    if grep -q "^$name " "$bundle/models.txt"; then
      echo "opencl_device_check: $model: a model named $name is already in the bundle" >&2
      exit 1
    fi
    d="$bundle/$name"
    rm -rf "$d"
    "$bin/pconv-deploy" "$model" --target opencl --out "$d/src" > "$d.deploy.log"
    cmake -S "$d/src" -B "$d/b" -DCMAKE_BUILD_TYPE=Release > /dev/null
    cmake --build "$d/b" -j2 > /dev/null
    cmake -S "$d/src" -B "$d/blt" -DCMAKE_BUILD_TYPE=Release -DPCONV_LAYER_TIMES=ON > /dev/null
    cmake --build "$d/blt" -j2 > /dev/null
    cp "$d/b/runner" "$d/runner"
    cp "$d/blt/runner" "$d/runner-layer-times"
    cp "$d/src/weights.bin" "$d/"
    rm -rf "$d/b" "$d/blt"
    line=$("$bin/pconv-eval" "$model" ${limit:+--limit "$limit"} --export-inputs "$d/xs.f32" | tail -1)
    echo "$line"
    floats=$(grep -o '([0-9]* floats each)' <<< "$line" | tr -dc 0-9)
    head -c $((floats * 4)) "$d/xs.f32" > "$d/x1.f32"  # the first image, for latency
    gzip -f -1 "$d/xs.f32"
    echo "$name $(realpath "$model") ${limit:-all}" >> "$bundle/models.txt"
  done
  # The runners link the ICD loader and libgomp; bring libgomp along for a device without it.
  cp "$(g++ -print-file-name=libgomp.so.1)" "$bundle/" 2> /dev/null || true
  cat > "$bundle/run.sh" << 'EOF'
#!/usr/bin/env bash
# Runs on the OpenCL device: BUNDLE/run.sh OUT_DIR (written by scripts/opencl_device_check.sh).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
out=${1:?usage: run.sh OUT_DIR}
mkdir -p "$out"
export PCONV_OPENCL_PLATFORM=${PCONV_OPENCL_PLATFORM:-nvidia}
ldconfig -p 2> /dev/null | grep -q libgomp.so.1 || export LD_LIBRARY_PATH=$PWD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
rc=0
while read -r name model limit; do
  gunzip -kf "$name/xs.f32.gz"
  echo "=== $name ($limit images)"
  TIMEFORMAT="batch: %R s wall"
  time "$name/runner" "$name/weights.bin" --batch --input "$name/xs.f32" --output "$out/$name.f32" || rc=1
  "$name/runner" "$name/weights.bin" --input "$name/x1.f32" --repeat 100 2>&1 | grep -E "latency|error" || rc=1
  "$name/runner-layer-times" "$name/weights.bin" --input "$name/x1.f32" --repeat 50 --layer-times 2>&1 | tail -60
done < models.txt
exit $rc
EOF
  chmod +x "$bundle/run.sh"
  echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)); on the device: $bundle/run.sh OUT_DIR"
  exit 0
fi

if [[ $mode == score ]]; then
  [[ $# -ge 1 ]] || usage
  out=$1 json=""
  [[ ${2:-} == --json ]] && json=${3:?--json needs a file}
  results=()
  while read -r name model limit; do
    j=$(mktemp)
    lim=()
    [[ $limit != all ]] && lim=(--limit "$limit")
    "$bin/pconv-eval" "$model" "${lim[@]}" --deployed-logits "$out/$name.f32" --json "$j" | tail -1
    results+=("$j")
  done < "$bundle/models.txt"
  if [[ -n $json ]]; then
    python3 - "$json" "${results[@]}" << 'EOF'
import json, sys
rows = [json.load(open(p)) for p in sys.argv[2:]]
json.dump({"models": rows}, open(sys.argv[1], "w"), indent=2)
EOF
  fi
  rm -f "${results[@]}"
  exit 0
fi
usage
