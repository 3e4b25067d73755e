#!/usr/bin/env bash
# The main job, end to end and offline: installs what is missing, builds, prepares CIFAR-10
# (from ../shared/datasets when present, else the official download), trains the quick config,
# evaluates the result and prints a summary. Re-running resumes an interrupted run.
#   --fast   a smoke run of a couple of minutes (few steps per epoch, data subsets)
#   --fresh  discard runs/quick and start over
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
fast=0
fresh=0
for a in "$@"; do
  case "$a" in
    --fast) fast=1 ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

echo "== [1/4] dependencies"
"$root/scripts/install-deps.sh"
echo "== [2/4] build"
"$root/scripts/build.sh"
bin="${PCONV_BUILD_DIR:-$root/build}/bin"

config=configs/quick.json
run=runs/quick
args=()
if [ "$fast" = 1 ]; then
  run=runs/quick-fast
  args+=(--run-dir "$run" --smoke 20 --set data.train_limit=5000)
fi
if [ "$fresh" = 1 ]; then args+=(--restart); elif [ -d "$run" ]; then args+=(--resume); fi

echo "== [3/4] train ($config)"
"$bin/pconv-train" "$config" "${args[@]}"

echo "== [4/4] evaluate on the CIFAR-10 test set"
"$bin/pconv-eval" "$run/model.h5" --json "$run/eval.json"

echo
echo "Summary"
python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
s = json.load(open(f"{run}/summary.json"))
e = json.load(open(f"{run}/eval.json"))
for st in s["stages"]:
    print(f"  {st['name']:<14} {st['stage']:<9} epochs {st.get('epochs', 0):>3}  "
          f"test top1 {st.get('test_top1', float('nan')):.4f}  train {st.get('train_seconds', 0):.0f}s")
print(f"  final model    {s['model']}")
print(f"  test top1      {e['test_top1']:.4f}  top5 {e['test_top5']:.4f} on {e['images']} images")
print(f"  run folder     {run}  (metrics.jsonl per stage, config.json, summary.json)")
PY
