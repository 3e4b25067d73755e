#!/usr/bin/env bash
# The main job, end to end and offline: installs what is missing, builds, prepares CIFAR-10
# (from ../shared/datasets when present, else the official download), then on configs/quick.json:
# dense training, ADMM pattern + connectivity pruning, hard prune, masked retraining, the pruning
# report, generated code for every target this machine can run (x86 and c natively, neon under
# qemu, opencl on PoCL) each verified against the reference executor, the latency benchmark
# against oneDNN, and one summary. Re-running resumes an interrupted run.
#   --fast   a smoke run of a few minutes (few steps per epoch, data subsets)
#   --fresh  discard the run folder and start over
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
fast=0
fresh=0
for a in "$@"; do
  case "$a" in
    --fast) fast=1 ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

echo "== [1/6] dependencies"
"$root/scripts/install-deps.sh"
echo "== [2/6] build"
# Only the commands this job runs: the test suite is scripts/test.sh's to build.
PCONV_TARGETS="pconv-train pconv-eval pconv-inspect pconv-deploy pconv-bench" "$root/scripts/build.sh"
bin="${PCONV_BUILD_DIR:-$root/build}/bin"

config=configs/quick.json
run=runs/quick
args=()
repeat=20
if [ "$fast" = 1 ]; then
  run=runs/quick-fast
  args+=(--run-dir "$run" --smoke 20 --epochs 1 --set data.train_limit=5000)
  repeat=3
fi
if [ "$fresh" = 1 ]; then args+=(--restart); elif [ -d "$run" ]; then args+=(--resume); fi

echo "== [3/6] train: dense -> ADMM -> prune -> retrain ($config)"
"$bin/pconv-train" "$config" "${args[@]}"
model="$run/model.h5"

echo "== [4/6] inspect the pruned model"
"$bin/pconv-inspect" "$model" --json "$run/inspect.json" --png-dir "$run/report/patterns"

echo "== [5/6] generate and verify inference code"
targets=(x86 c)
if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null; then
  targets+=(neon)
fi
if command -v clinfo >/dev/null && [ "$(clinfo -l 2>/dev/null | grep -c Platform)" -gt 0 ]; then
  targets+=(opencl)
fi
: > "$run/deploy-status.txt"
mkdir -p "$run/deploy"
for t in "${targets[@]}"; do
  if "$bin/pconv-deploy" "$model" --target "$t" --out "$run/deploy/$t" --verify > "$run/deploy/$t.log" 2>&1; then
    echo "$t verified against the reference executor"
  else
    echo "$t FAILED (see $run/deploy/$t.log)"
  fi | tee -a "$run/deploy-status.txt"
done

echo "== [6/6] latency: generated x86 code vs oneDNN (batch 1)"
# How busy the machine is without us (the load average would still count our own builds above):
# the fraction of CPU time others used over 2 s while this script waits.
python3 - > "$run/bench-load.txt" <<'PY'
import time
def busy():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return v[3] + v[4], sum(v)  # idle + iowait, total
i0, t0 = busy(); time.sleep(2); i1, t1 = busy()
print(f"{1 - (i1 - i0) / max(1, t1 - t0):.3f}")
PY
# Latency at batch 1 wants the OpenMP default (spin at barriers): an inherited
# OMP_WAIT_POLICY=passive, useful for training on a shared machine, made the quick model 5x slower
# at 2 threads (5.6 ms instead of 1.1).
env -u OMP_WAIT_POLICY "$bin/pconv-bench" "$model" --threads 1,2 --repeat "$repeat" --json "$run/bench.json" --md "$run/bench.md" \
  --work "$run/bench-work" > "$run/bench.log" 2>&1 || echo "benchmark failed (see $run/bench.log)"
python3 scripts/report.py "$run" > /dev/null 2>&1 || echo "(report charts need python3-matplotlib)"

echo
python3 - "$run" "$fast" <<'PY'
import json, os, sys
run, fast = sys.argv[1], sys.argv[2] == "1"
s = json.load(open(f"{run}/summary.json"))
st = {x["stage"]: x for x in s["stages"]}
print("Summary" + (" (--fast smoke run: 20 steps per stage, so the accuracies mean nothing; "
                   "it checks that every step works)" if fast else ""))
dense = st.get("pretrain", {}).get("test_top1")
pruned = s["stages"][-1].get("test_top1")
if dense is not None:
    print(f"  dense test top1      {dense:.4f}")
if pruned is not None and s["stages"][-1]["stage"] != "pretrain":
    print(f"  pruned test top1     {pruned:.4f}  ({100 * (pruned - dense):+.2f} points)")
if os.path.exists(f"{run}/inspect.json"):
    t = json.load(open(f"{run}/inspect.json"))
    print(f"  conv compression     {t['totals']['conv_compression']:.2f}x   MAC reduction "
          f"{t['totals']['mac_reduction']:.2f}x   constraints {'verified' if t['verified'] else 'VIOLATED'}")
for line in open(f"{run}/deploy-status.txt"):
    print(f"  deploy               {line.strip()}")
if os.path.exists(f"{run}/bench.json"):
    b = json.load(open(f"{run}/bench.json"))
    for r in b.get("runs", []):
        tot = r["total"]
        print(f"  latency, {r['threads']} thread(s)  generated {tot['generated_e2e']['median_ms']:.2f} ms "
              f"vs oneDNN dense model {tot['dense_model_net']['median_ms']:.2f} ms "
              f"({tot['speedup_vs_dense_model']:.2f}x); conv layers {r['conv']['speedup_vs_best']:.2f}x "
              f"vs oneDNN's best per layer")
if os.path.exists(f"{run}/bench-load.txt"):
    busy = float(open(f"{run}/bench-load.txt").read().split()[0])
    if busy > 0.25:
        print(f"  note                 other work used {100 * busy:.0f}% of the CPUs just before the "
              "benchmark, so its timings (2 threads above all) are not trustworthy; rerun on a "
              "quiet machine")
print(f"  run folder           {run}/  (model.h5, report.md, metrics.jsonl per stage, tb/ for TensorBoard)")
print(f"  generated code       {run}/deploy/<target>/")
PY
