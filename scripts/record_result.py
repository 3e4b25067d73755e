#!/usr/bin/env python3
"""Writes a docs/results/<name>.json record from a finished (or partly finished) run folder.

  scripts/record_result.py RUN_DIR --stage 1-pretrain --out docs/results/quick.json
      [--dense-stage 1-pretrain]   # for pruned results: the dense accuracy to compare with
      [--dense-run DENSE_RUN_DIR]  # ... when the dense model was trained in another run folder

Fields: model, dataset, epochs (all training stages up to --stage), test_top1, test_top5, train_seconds, threads, command, commit
(and stage_commits), run, stage; for pruned stages also patterns, conn_rate, conv_weight_compression, mac_reduction,
dense_top1 (from RUN_DIR/inspect.json, written by pconv-train's report or pconv-inspect --json).
Only figures present in the run folder are written; nothing is estimated.
"""
import argparse
import json
import os
import sys


def metrics(run, stage):
    path = os.path.join(run, stage, "metrics.jsonl")
    if not os.path.exists(path):
        sys.exit(f"record_result: {path} not found")
    return [json.loads(l) for l in open(path) if l.strip()]


def stages_through(run, stage):
    """The run's stage folders ("1-pretrain", "2-admm", ...) in order, up to and including stage."""
    names = sorted((d for d in os.listdir(run) if d.split("-", 1)[0].isdigit()
                    and os.path.isdir(os.path.join(run, d))), key=lambda d: int(d.split("-", 1)[0]))
    if stage not in names:
        sys.exit(f"record_result: {run} has no stage folder {stage} (has {', '.join(names)})")
    return names[:names.index(stage) + 1]


def stage_epochs(run, stage):
    ms = [r for r in metrics(run, stage) if r.get("stage", "") != "prune"]
    return max((r.get("epoch", 0) for r in ms), default=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--stage", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dense-stage")
    ap.add_argument("--dense-run", help="run folder of --dense-stage (default: RUN itself), for a "
                    "pruning run started from another run's model")
    ap.add_argument("--note", help="free text kept with the record (e.g. how the tree differed)")
    a = ap.parse_args()
    if a.dense_run and not a.dense_stage:
        sys.exit("record_result: --dense-run needs --dense-stage")
    cfg = json.load(open(os.path.join(a.run, "config.json")))
    summary_path = os.path.join(a.run, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    m = [r for r in metrics(a.run, a.stage) if "test_top1" in r]
    if not m:
        sys.exit(f"record_result: stage {a.stage} has no evaluated epoch yet")
    last = m[-1]
    model = cfg["model"].get("arch") or cfg["model"].get("init") or "graph"
    if not cfg["model"].get("arch") and a.dense_run:  # started from the dense run's model
        dense_cfg = json.load(open(os.path.join(a.dense_run, "config.json")))
        model = dense_cfg["model"].get("arch", model)
    if cfg["model"].get("width", 1.0) != 1.0:
        model += f"@{cfg['model']['width']}"
    out = {
        "model": model,
        "dataset": cfg.get("data", {}).get("dataset", "cifar10"),
        "run": cfg["name"],
        "stage": a.stage,
        # Every stage up to this one counts (a warm restart or ADMM + retrain is one run).
        "epochs": sum(stage_epochs(a.run, s) for s in stages_through(a.run, a.stage)),
        "stage_epochs": last.get("epoch"),
        "test_top1": last["test_top1"],
        "test_top5": last.get("test_top5"),
        "best_top1": max(r["test_top1"] for r in m),
        "train_seconds": sum(r.get("train_seconds", 0.0)
                             for s in stages_through(a.run, a.stage) for r in metrics(a.run, s)),
        "threads": summary.get("threads", cfg.get("threads", 0)),
        "command": summary.get("command", ""),
        # "commit": the binary that wrote the summary; "stage_commits": the builds that trained
        # the stages, where pconv-train recorded them ("not recorded" for older binaries).
        "commit": summary.get("commit", ""),
        "config": cfg,
    }
    if "stage_commits" in summary:
        out["stage_commits"] = summary["stage_commits"]
    if a.note:
        out["note"] = a.note
    # The final model's pruning figures, when the stage is pruned.
    if a.dense_stage:
        dense_run = a.dense_run or a.run
        dense = [r for r in metrics(dense_run, a.dense_stage) if "test_top1" in r]
        if not dense:
            sys.exit(f"record_result: stage {a.dense_stage} of {dense_run} has no evaluated epoch")
        out["dense_top1"] = dense[-1]["test_top1"]
        if a.dense_run:
            out["dense_run"] = os.path.basename(os.path.normpath(a.dense_run))
            out["dense_epochs"] = sum(stage_epochs(a.dense_run, s)
                                      for s in stages_through(a.dense_run, a.dense_stage))
        out["top1_change"] = out["test_top1"] - out["dense_top1"]
        insp_path = os.path.join(a.run, "inspect.json")
        if os.path.exists(insp_path):
            insp = json.load(open(insp_path))
            t = insp.get("totals", insp)
            if "violations" in insp:  # pconv-inspect's constraint check of the final model
                out["inspect_violations"] = len(insp["violations"])
            for k_out, keys in (("conv_weight_compression", ("conv_compression",)),
                                ("mac_reduction", ("mac_reduction",))):
                for k in keys:
                    if k in t:
                        out[k_out] = t[k]
                        break
        pr = cfg.get("pruning", {})
        out["patterns"] = pr.get("library", "scp4")
        out["conn_rate"] = pr.get("rate", 1)
    args = sys.argv[1:]
    if "--note" in args:  # the note describes the record; it is no part of reproducing it
        i = args.index("--note")
        del args[i:i + 2]
    out["reproduce"] = "scripts/record_result.py " + " ".join(args)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
