#!/usr/bin/env bash
# A CIFAR VGG-16 trained and pruned in PyTorch, through pconv, checked against PyTorch (issue 5):
#   1. scripts/export_pytorch.py: full-width vgg16_cifar trained on CIFAR-10 (pconv's images,
#      order and normalisation), pruned to the 4 SCPs at connectivity rate 8.8 (pconv's joint
#      projection), fine-tuned with the masks held, evaluated on the 10,000 test images in eval
#      mode; the state_dict, masks and PyTorch's test logits go into one .h5;
#   2. pconv-import -> pconv-inspect (violations must be 0) -> pconv-deploy --target x86 --verify;
#   3. pconv-eval of the imported .h5, and pconv-eval --deployed of the generated code, over the
#      whole test set; the generated runner is also fed PyTorch's exact input tensors, so its
#      per-image predictions are compared with PyTorch's (agreement, max logit difference);
#   4. writes docs/results/pytorch-vgg16.json (or --json FILE) and fails unless the deployed
#      top-1 equals PyTorch's and inspect found no violation.
#
# Usage: scripts/pytorch_roundtrip.sh [--fast] [--reuse-torch] [--work DIR] [--json FILE]
#   --fast         width 0.25, a few steps: a smoke run of a few minutes
#                  (writes <work>/result.json, not docs/results)
#   --reuse-torch  keep <work>/vgg_torch.h5 when it exists and was written by the same
#                  export command (recorded as torch_model_reused in the JSON)
# Environment: WIDTH (default 1: full width; --fast 0.25), TRAIN_STEPS, FINETUNE_STEPS, BATCH,
#              LR, WARMUP, CONN_RATE, TORCH_THREADS, PCONV_BUILD (default <repo>/build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bin="${PCONV_BUILD:-$repo/build}/bin"
fast=0 reuse=0 work="" json=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fast) fast=1 ;;
    --reuse-torch) reuse=1 ;;
    --work) work="$2"; shift ;;
    --json) json="$2"; shift ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "pytorch_roundtrip: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ $fast == 1 ]]; then
  width="${WIDTH:-0.25}" eval_limit=10000
  : "${TRAIN_STEPS:=60}" "${FINETUNE_STEPS:=30}"
  work="${work:-$repo/runs/pytorch-vgg16-fast}" json="${json:-$work/result.json}"
else
  width="${WIDTH:-1}" eval_limit=10000
  : "${TRAIN_STEPS:=450}" "${FINETUNE_STEPS:=200}"
  work="${work:-$repo/runs/pytorch-vgg16}" json="${json:-$repo/docs/results/pytorch-vgg16.json}"
fi
: "${BATCH:=64}" "${LR:=0.05}" "${WARMUP:=30}" "${CONN_RATE:=8.8}" "${TORCH_THREADS:=1}"
# The generated runner's OpenMP threads sleep at barriers instead of spinning: on a machine shared
# with other jobs, spinning made its 10,000-image batch take ~8 min of wall time instead of ~2.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
mkdir -p "$work"
for t in pconv-import pconv-inspect pconv-deploy pconv-eval; do
  [[ -x "$bin/$t" ]] || { echo "pytorch_roundtrip: $bin/$t missing (scripts/build.sh)" >&2; exit 1; }
done
# Every setting, spelled out: the command reproduces this run.
command_line="WIDTH=$width TRAIN_STEPS=$TRAIN_STEPS FINETUNE_STEPS=$FINETUNE_STEPS BATCH=$BATCH"
command_line+=" LR=$LR WARMUP=$WARMUP CONN_RATE=$CONN_RATE TORCH_THREADS=$TORCH_THREADS"
command_line+=" scripts/pytorch_roundtrip.sh"
if [[ $fast == 1 ]]; then command_line+=" --fast"; fi
if [[ $reuse == 1 ]]; then command_line+=" --reuse-torch"; fi
t_start=$(date +%s)
# The commit this run starts from (-dirty: tracked files modified).
commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD || commit="$commit-dirty"

# 0. CIFAR-10 where pconv finds it (nothing happens when it is there already).
datasets/prepare_cifar10.sh >/dev/null

# 1. PyTorch: train, prune, fine-tune, evaluate, export.
export_cmd=(python3 scripts/export_pytorch.py --arch vgg16_cifar --width "$width" --data cifar10
  --threads "$TORCH_THREADS" --train-steps "$TRAIN_STEPS" --warmup "$WARMUP" --batch "$BATCH"
  --lr "$LR" --prune-rate "$CONN_RATE" --patterns scp4 --finetune-steps "$FINETUNE_STEPS"
  --eval-limit "$eval_limit" --reference-batch 8 --seed 0 --out "$work/vgg_torch.h5")
reused=false
if [[ $reuse == 1 && -f "$work/vgg_torch.h5" && -f "$work/export_cmd.txt" &&
      "$(cat "$work/export_cmd.txt")" == "${export_cmd[*]}" ]]; then
  echo "== reusing $work/vgg_torch.h5 (same export command)"
  reused=true
else
  rm -f "$work/vgg_torch.h5" "$work/export_cmd.txt"
  echo "== PyTorch: ${export_cmd[*]}"
  t0=$(date +%s)
  "${export_cmd[@]}" 2>&1 | tee "$work/torch.log"
  echo $(( $(date +%s) - t0 )) > "$work/torch_seconds.txt"
  echo "${export_cmd[*]}" > "$work/export_cmd.txt"
fi

# 2. pconv: import, inspect, deploy + verify.
echo "== pconv-import"
"$bin/pconv-import" "$work/vgg_torch.h5" --arch vgg16_cifar --width "$width" --out "$work/vgg.h5"
echo "== pconv-inspect"
"$bin/pconv-inspect" "$work/vgg.h5" --json "$work/inspect.json" | tail -3
echo "== pconv-deploy --target x86 --verify"
rm -rf "$work/x86"
"$bin/pconv-deploy" "$work/vgg.h5" --target x86 --out "$work/x86" --verify 2>&1 |
  tee "$work/deploy.log" | tail -5

# 3. Accuracy: the .h5 through pconv::Net, then the generated code over the same images.
echo "== pconv-eval (imported .h5)"
"$bin/pconv-eval" "$work/vgg.h5" --json "$work/eval_h5.json"
echo "== pconv-eval --deployed"
"$bin/pconv-eval" "$work/vgg.h5" --deployed "$work/x86" \
  --json "$work/eval_deployed.json"

# 4. The runner on PyTorch's own input tensors, per image against PyTorch; the result file.
echo "== per-image comparison with PyTorch, $json"
python3 - "$work" "$json" "$command_line" "$reused" "$TRAIN_STEPS" "$FINETUNE_STEPS" \
  "$CONN_RATE" "$width" "$BATCH" "$t_start" "$commit" "$LR" "$WARMUP" <<'EOF'
import json, os, subprocess, sys, time
import h5py
import numpy as np
sys.path.insert(0, "scripts")
from export_pytorch import load_cifar10, normalize_cifar

(work, out, command, reused, train_steps, ft_steps, rate, width, batch, t_start, commit, lr,
 warmup) = sys.argv[1:]
with h5py.File(os.path.join(work, "vgg_torch.h5"), "r") as f:
    ref = {k: f["reference"][k][()] for k in f["reference"]}
x_test, y_test = load_cifar10("test")
idx = ref["test_indices"]
assert np.array_equal(y_test[idx], ref["test_labels"]), "test labels differ from the export's"
inputs = os.path.join(work, "x86", "torch_inputs.f32")
logits_path = os.path.join(work, "x86", "torch_inputs_logits.f32")
with open(inputs, "wb") as fh:
    for i in range(0, len(idx), 1000):
        normalize_cifar(x_test[idx[i:i + 1000]]).tofile(fh)
runner = os.path.join(work, "x86", "build", "runner")
subprocess.run([runner, os.path.join(work, "x86", "weights.bin"), "--batch", "--input", inputs,
                "--output", logits_path], check=True, stdout=subprocess.DEVNULL)
dep = np.fromfile(logits_path, dtype=np.float32).reshape(len(idx), -1)
os.remove(inputs)
os.remove(logits_path)
torch_logits = ref["test_logits"]
torch_pred, dep_pred = torch_logits.argmax(1), dep.argmax(1)
labels = ref["test_labels"]
insp = json.load(open(os.path.join(work, "inspect.json")))
e_h5 = json.load(open(os.path.join(work, "eval_h5.json")))
e_dep = json.load(open(os.path.join(work, "eval_deployed.json")))
torch_seconds = open(os.path.join(work, "torch_seconds.txt")).read().strip() \
    if os.path.exists(os.path.join(work, "torch_seconds.txt")) else None
r = {
    "model": f"vgg16_cifar (width {width}), trained and pruned in PyTorch "
             f"{__import__('torch').__version__}, scripts/export_pytorch.py",
    "dataset": f"CIFAR-10 test, {len(idx)} images (pconv's decoded JPEGs, order, normalisation)",
    "patterns": "scp4 (4 SCPs: {1,3,4,5} {1,3,4,7} {3,4,5,7} {1,4,5,7})",
    "conn_rate": float(rate),
    "train_steps": int(train_steps),
    "finetune_steps": int(ft_steps),
    "batch": int(batch),
    "width": float(width),
    "lr": float(lr),
    "warmup_steps": int(warmup),
    "torch_dense_test_top1": float(ref["dense_test_top1"]) if "dense_test_top1" in ref else None,
    "torch_dense_eval_images": 2000,
    "torch_pruned_before_finetune_top1": float(ref["pruned_test_top1"])
    if "pruned_test_top1" in ref else None,
    "torch_test_top1": float(ref["test_top1"]),
    "imported_h5_test_top1": e_h5["test_top1"],
    "deployed_x86_test_top1": e_dep["deployed_top1"],
    "deployed_vs_h5_agreement": e_dep["top1_agreement"],
    "deployed_vs_h5_max_logit_diff": e_dep["max_logit_diff"],
    "agreement": float(np.mean(torch_pred == dep_pred)),
    "agreement_note": "the generated x86 runner fed PyTorch's own input tensors: fraction of "
                      "test images with the same top-1 as PyTorch",
    "runner_on_torch_inputs_top1": float(np.mean(dep_pred == labels)),
    "max_logit_diff_vs_torch": float(np.max(np.abs(dep - torch_logits))),
    "max_abs_torch_logit": float(np.max(np.abs(torch_logits))),
    "inspect_violations": len(insp["violations"]),
    "conv_weight_compression": insp["totals"]["conv_compression"],
    "mac_reduction": insp["totals"]["mac_reduction"],
    "conv_weights_kept": insp["totals"]["conv_weights_kept"],
    "conv_weights_total": insp["totals"]["conv_weights_total"],
    "torch_train_seconds": int(torch_seconds) if torch_seconds else None,
    "torch_model_reused": reused == "true",
    "total_seconds": int(time.time() - int(t_start)),
    "command": command,
    "commit": commit,
}
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
with open(out, "w") as fh:
    json.dump(r, fh, indent=2)
    fh.write("\n")
print(json.dumps(r, indent=2))
ok = (r["inspect_violations"] == 0 and r["deployed_x86_test_top1"] == r["torch_test_top1"]
      and r["imported_h5_test_top1"] == r["torch_test_top1"])
print("round trip:", "PASS" if ok else "FAIL",
      f"(PyTorch {r['torch_test_top1']:.4f}, .h5 {r['imported_h5_test_top1']:.4f}, "
      f"deployed {r['deployed_x86_test_top1']:.4f}, agreement {r['agreement']:.4f})")
sys.exit(0 if ok else 1)
EOF
