#!/usr/bin/env bash
# Reproduces docs/results/deploy-speed.{md,json} and docs/results/pattern-speed.{md,json}:
# synthesises VGG-16 models with pconv-synth (random weights, BN randomised, joint pattern +
# connectivity projection) and times them with pconv-bench (generated x86 code vs oneDNN).
#   scripts/bench_deploy.sh [BUILD_DIR] [REPEAT] [ROUNDS]
# BUILD_DIR defaults to build-deploy; needs the pconv-synth and pconv-bench targets built.
# PCONV_BENCH_TARGET: avx512 or avx2 (default: avx512 where this CPU has it, else avx2). AVX-512
# results go to deploy-speed.* and pattern-speed.* (the figures issue 4 asks for), AVX2 results
# to deploy-speed-avx2.* and pattern-speed-avx2.*, so a run on either kind of machine leaves the
# other's files alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-deploy}
repeat=${2:-40}
rounds=${3:-10}  # interleaved rounds: this host's slow phases last seconds (docs/deploy.md)
bin=$build/bin
target=${PCONV_BENCH_TARGET:-$(grep -qw avx512f /proc/cpuinfo && echo avx512 || echo avx2)}
case $target in
  avx512) suffix="" ;;
  avx2) suffix="-avx2" ;;
  *) echo "bench_deploy.sh: PCONV_BENCH_TARGET must be avx512 or avx2, not '$target'" >&2; exit 2 ;;
esac
work=${PCONV_BENCH_WORK:-/tmp/pconv-bench-deploy}/$target
out=$root/docs/results
mkdir -p "$work" "$out"
load_start=$(cut -d" " -f1-3 /proc/loadavg)

synth() {  # arch size patterns rate file
  "$bin/pconv-synth" --arch "$1" --image-size "$2" --classes "$( [ "$2" = 32 ] && echo 10 || echo 1000)" \
    --patterns "$3" --conn-rate "$4" --seed 1 --out "$5"
}
bench() {  # model name
  "$bin/pconv-bench" "$1" --target "$target" --threads 1,2 --repeat "$repeat" --rounds "$rounds" --work "$work/gen-$2" \
    --json "$work/$2.json" --md "$work/$2.md"
}

# Deploy speed: VGG-16/224 at connectivity 3.1x, VGG-16/32 at 8.8x, the 4 SCPs.
synth vgg16 224 4 3.1 "$work/vgg16_224_k4_r3.1.h5"
synth vgg16_cifar 32 4 8.8 "$work/vgg16_32_k4_r8.8.h5"
bench "$work/vgg16_224_k4_r3.1.h5" vgg16_224_k4_r3.1
bench "$work/vgg16_32_k4_r8.8.h5" vgg16_32_k4_r8.8

# Pattern-count sweep (speed side): the 4 SCPs, then 8 and 12 centre-holding 4-tap patterns.
for k in 8 12; do
  synth vgg16_cifar 32 "$k" 8.8 "$work/vgg16_32_k${k}_r8.8.h5"
  bench "$work/vgg16_32_k${k}_r8.8.h5" "vgg16_32_k${k}_r8.8"
done

load_end=$(cut -d" " -f1-3 /proc/loadavg)
python3 - "$work" "$out" "$repeat" "$load_start" "$load_end" "$rounds" "$target" "$suffix" <<'PY'
import json, sys
work, out, repeat, rounds, target, suffix = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[6], sys.argv[7], sys.argv[8]
load = f"load average (1/5/15 min) {sys.argv[4]} at the start, {sys.argv[5]} at the end"
cmd = f"PCONV_BENCH_TARGET={target} scripts/bench_deploy.sh BUILD_DIR {repeat} {rounds}"
loadj = lambda n: json.load(open(f"{work}/{n}.json"))
md = lambda n: open(f"{work}/{n}.md").read()

speed = ["vgg16_224_k4_r3.1", "vgg16_32_k4_r8.8"]
json.dump({"command": cmd, "results": [loadj(n) for n in speed], "load": load}, open(f"{out}/deploy-speed{suffix}.json", "w"), indent=1)
with open(f"{out}/deploy-speed{suffix}.md", "w") as f:
    f.write(f"# Deploy speed: generated x86 code ({target}) vs oneDNN (batch 1)\n\n")
    f.write(f"Reproduce: `{cmd}` (synthesised models, pconv-synth seed 1, 4 SCPs). Figures are "
            f"medians of {rounds} interleaved rounds' medians (min–max of all runs) measured on a shared 2-core machine; see the notes in docs/deploy.md. "
            "The generated code is timed twice: each layer in the model, and each layer alone (run 3 times back to back in every inference, the last timed), "
            "as oneDNN's primitives are timed (each run on its own buffers, back to back); the ratios are given both ways. Machine " + load + ".\n\n")
    for n in speed:
        f.write(md(n) + "\n")

sweep = ["vgg16_32_k4_r8.8", "vgg16_32_k8_r8.8", "vgg16_32_k12_r8.8"]
rows = []
for n, k in zip(sweep, [4, 8, 12]):
    j = loadj(n)
    for run in j["runs"]:
        rows.append({"patterns": k, "threads": run["threads"], "model": n,
                     "pattern_conv": run["pattern_conv"], "conv": run["conv"],
                     "total": run["total"], "commit": j["commit"]})
json.dump({"command": cmd, "load": load, "rows": rows}, open(f"{out}/pattern-speed{suffix}.json", "w"), indent=1)
with open(f"{out}/pattern-speed{suffix}.md", "w") as f:
    f.write(f"# Pattern-count sweep, speed side (VGG-16/32, connectivity 8.8x, {target})\n\n")
    f.write(f"Reproduce: `{cmd}`. Libraries from pconv-synth: the 4 SCPs, then 8 and 12 "
            f"centre-holding 4-tap patterns. Batch 1, per-layer timings as medians of {rounds} interleaved rounds' medians. Machine " + load + ".\n\n")
    f.write("| patterns | threads | pattern convs gen ms, in the model | alone | oneDNN best ms | speedup, in the model | alone | GFLOP/s non-zero, in the model | alone | whole model gen ms (min–max) | commit |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        p, t = r["pattern_conv"], r["total"]["generated_e2e"]
        f.write(f"| {r['patterns']} | {r['threads']} | {p['generated_ms']:.3f} | {p['generated_alone_ms']:.3f} | {p['onednn_best_ms']:.3f} | "
                f"{p['speedup_vs_best']:.2f}x | {p['speedup_vs_best_alone']:.2f}x | {p['generated_gflops_nonzero']:.1f} | {p['generated_alone_gflops_nonzero']:.1f} | "
                f"{t['median_ms']:.3f} ({t['min_ms']:.3f}–{t['max_ms']:.3f}) | {r['commit']} |\n")
PY
echo "wrote $out/deploy-speed$suffix.{md,json} and $out/pattern-speed$suffix.{md,json}"
