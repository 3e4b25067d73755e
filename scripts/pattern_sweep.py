#!/usr/bin/env python3
"""Accuracy vs pattern count (the paper's Tables 1 and 2, accuracy side).

From one trained dense model, runs ADMM + hard prune + masked retrain for each pattern count K
at one connectivity rate (K = 4: the paper's SCPs; other K: the K patterns that fit the dense
model's kernels most often), then writes a markdown table, a JSON file and a PNG plot.

  scripts/pattern_sweep.py --dense runs/resnet20/model.h5 --base configs/resnet20_pconv.json \
      --k 4 8 12 --rate 2 --out docs/results/pattern-sweep [--runs-dir runs/sweep] [--smoke N]

Each K is its own pconv-train run folder (runs/sweep/k<K>), so an interrupted sweep resumes.
"""
import argparse
import json
import os
import subprocess
import sys


def run_k(a, k, build_bin):
    run_dir = os.path.join(a.runs_dir, f"k{k}")
    cfg = json.load(open(a.base))
    cfg["name"] = f"sweep-k{k}"
    cfg["run_dir"] = run_dir
    cfg["model"] = {"init": os.path.abspath(a.dense)}
    cfg["pruning"]["library"] = "scp4" if k == 4 and not a.k4_from_model else {"from_model": k}
    cfg["pruning"]["rate"] = a.rate
    os.makedirs(a.runs_dir, exist_ok=True)
    cfg_path = os.path.join(a.runs_dir, f"k{k}.json")
    json.dump(cfg, open(cfg_path, "w"), indent=2)
    cmd = [os.path.join(build_bin, "pconv-train"), cfg_path]
    if os.path.isdir(run_dir):
        cmd.append("--resume")
    if a.smoke:
        cmd += ["--smoke", str(a.smoke)]
    if a.epochs:
        cmd += ["--epochs", str(a.epochs)]
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    if rc == 130:  # Ctrl-C: pconv-train saved a checkpoint
        sys.exit(f"pattern_sweep: K={k} stopped with a checkpoint; rerun the same command to resume")
    if rc != 0:
        sys.exit(f"pattern_sweep: pconv-train failed for K={k} (exit {rc}); see its output above")
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    final = summary["stages"][-1]
    prune = [s for s in summary["stages"] if s["stage"] == "prune"]
    insp = os.path.join(run_dir, "inspect.json")
    report = json.load(open(insp)) if os.path.exists(insp) else {}
    totals = report.get("totals", {})
    return {
        "patterns": k,
        "library": cfg["pruning"]["library"],
        "conn_rate": a.rate,
        "test_top1": final.get("test_top1"),
        "after_hard_prune_top1": prune[0].get("test_top1") if prune else None,
        "conv_weight_compression": totals.get("conv_compression"),
        "mac_reduction": totals.get("mac_reduction"),
        # pconv-inspect's constraint check of the final model (every kept kernel a library
        # pattern with 4 non-zeros, every layer at its kernel budget).
        "inspect_violations": len(report["violations"]) if "violations" in report else None,
        "inspect_verified": report.get("verified"),
        # The builds that trained it, as pconv-train records them per stage. Binaries older than
        # that recorded the checkout's HEAD at run time instead, which says nothing of the code
        # that ran: such rows say so, and --note should name the build.
        "commit": ", ".join(summary.get("stage_commits") or ["not recorded"]),
        "command": summary.get("command"),
    }


def write_outputs(a, rows, dense_top1, pending):
    for r in rows:
        r["dense_top1"] = dense_top1
        r["top1_change"] = r["test_top1"] - dense_top1 if r["test_top1"] is not None else None
    args = sys.argv[1:]
    if "--note" in args:  # the note describes the run; it is no part of reproducing it
        i = args.index("--note")
        del args[i:i + 2]
    cmd = "scripts/pattern_sweep.py " + " ".join(args)
    out = {"command": cmd, "dense_model": a.dense, "dense_top1": dense_top1, "rows": rows,
           "pending": pending, "note": a.note}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    json.dump(out, open(a.out + ".json", "w"), indent=2)
    with open(a.out + ".md", "w") as f:
        f.write("# Accuracy vs pattern count\n\n")
        f.write(f"Dense model `{a.dense}`: test top-1 {dense_top1:.4f}. Connectivity rate {a.rate} on "
                "every pruned layer. Reproduce: `" + cmd + "`.\n\n")
        if a.note:
            f.write(a.note + "\n\n")
        f.write("| patterns | top-1 | change vs dense | after hard prune | conv compression | MAC reduction "
                "| inspect violations | commit |\n")
        f.write("|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            fmt = lambda v, p="{:.4f}": p.format(v) if v is not None else "-"
            f.write(f"| {r['patterns']} | {fmt(r['test_top1'])} | {fmt(r['top1_change'], '{:+.4f}')} | "
                    f"{fmt(r['after_hard_prune_top1'])} | {fmt(r['conv_weight_compression'], '{:.2f}x')} | "
                    f"{fmt(r['mac_reduction'], '{:.2f}x')} | {fmt(r.get('inspect_violations'), '{}')} | "
                    f"{r['commit']} |\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r["patterns"] for r in rows], [100 * r["test_top1"] for r in rows], "o-", label="pruned")
        ax.axhline(100 * dense_top1, color="gray", ls="--", label="dense")
        ax.set_xlabel("patterns in the library (K)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_xticks([r["patterns"] for r in rows])
        ax.legend()
        ax.set_title(f"accuracy vs pattern count, connectivity {a.rate}x")
        fig.tight_layout()
        fig.savefig(a.out + ".png", dpi=120)
    except ImportError:
        print("pattern_sweep: matplotlib missing, no PNG written", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", required=True, help="trained dense model (.h5)")
    ap.add_argument("--base", required=True, help="config holding the ADMM/prune/retrain stages")
    ap.add_argument("--k", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--out", required=True, help="output path without extension")
    ap.add_argument("--runs-dir", default="runs/sweep")
    ap.add_argument("--build", default="build", help="build folder holding bin/pconv-train")
    ap.add_argument("--smoke", type=int, default=0, help="cap epochs at N steps (a quick check)")
    ap.add_argument("--epochs", type=int, default=0, help="override every training stage's epochs")
    ap.add_argument("--k4-from-model", action="store_true", help="K=4 from the model, not the SCPs")
    ap.add_argument("--note", default="", help="a paragraph for the results (where the runs ran, ...)")
    a = ap.parse_args()
    if not os.path.exists(a.dense):
        sys.exit(f"pattern_sweep: dense model {a.dense} not found (train it first)")
    dense_eval = os.path.join(a.runs_dir, "dense-eval.json")
    os.makedirs(a.runs_dir, exist_ok=True)
    bin_dir = os.path.join(a.build, "bin")
    # A resumed sweep reuses the dense evaluation unless the dense model is newer than it.
    if not os.path.exists(dense_eval) or os.path.getmtime(dense_eval) < os.path.getmtime(a.dense):
        subprocess.run([os.path.join(bin_dir, "pconv-eval"), a.dense, "--json", dense_eval],
                       check=True)
    dense_top1 = json.load(open(dense_eval))["test_top1"]
    # Written after every K, so an interrupted sweep still shows what finished (rerun the same
    # command to resume: finished K are read back from their run folders, the rest continue).
    rows = []
    for k in a.k:
        rows.append(run_k(a, k, bin_dir))
        write_outputs(a, rows, dense_top1, pending=[x for x in a.k if x > k])
    print(open(a.out + ".md").read())


if __name__ == "__main__":
    main()
