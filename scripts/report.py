#!/usr/bin/env python3
"""Writes RUN_DIR/report.md with PNG charts in RUN_DIR/report/ for a pconv run folder.

    scripts/report.py RUN_DIR [--inspect-bin PATH] [--no-inspect] [--quiet]

Reads (each optional but the metrics; docs/reports.md):
  <stage>/metrics.jsonl   one JSON object per epoch (docs/user-guide.md, docs/pruning.md)
  summary.json            stage order and per-stage figures
  inspect.json            `pconv-inspect model.h5 --json` output; when absent and model.h5 exists,
                          pconv-inspect is run (--inspect-bin, $PCONV_INSPECT, build/bin/, PATH)
                          and its output kept as inspect.json
  bench.json              per-layer latency: pconv-bench's JSON (runs[].layers[] with name,
                          generated.median_ms, onednn_best_ms) or the minimal form
                          {"layers": [{"name", "generated_ms", "onednn_best_ms"}]}
Charts: loss, accuracy and learning rate per epoch across stages (stage boundaries marked),
||W-Z||/||W|| per layer during ADMM (log scale), kept kernels and pattern histogram per layer,
latency per layer against oneDNN. Needs matplotlib (python3-matplotlib); uses the Agg backend.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

CHART_DIR = "report"
STAGE_COLOURS = {"pretrain": "#4c72b0", "admm": "#dd8452", "prune": "#c44e52", "retrain": "#55a868"}


def log(quiet, *a):
    if not quiet:
        print("[report]", *a, file=sys.stderr)


def num(x):
    """A finite float, or None (absent, null, NaN, not a number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                j = json.loads(line)
            except ValueError:
                print(f"[report] {path}:{n}: skipped an unreadable line", file=sys.stderr)
                continue
            if isinstance(j, dict):
                out.append(j)
    return out


def leading_index(name):
    m = re.match(r"^(\d+)-", name)
    return int(m.group(1)) if m else float("inf")


def stage_dirs_in_order(run_dir, summary):
    """Same rule as pconv::tb::stage_dirs_in_order: summary.json's order, then by "<n>-", name."""
    found = sorted(d for d in os.listdir(run_dir)
                   if os.path.isfile(os.path.join(run_dir, d, "metrics.jsonl")))
    out = []
    for st in (summary or {}).get("stages", []) or []:
        name = st.get("name") if isinstance(st, dict) else None
        if name in found:
            out.append(name)
            found.remove(name)
    found.sort(key=lambda d: (leading_index(d), d))
    return out + found


class Stage:
    def __init__(self, folder, records, offset):
        self.folder = folder
        self.records = records
        kinds = [r.get("stage") for r in records if isinstance(r.get("stage"), str)]
        self.kind = kinds[0] if kinds else re.sub(r"^\d+-", "", folder)
        self.offset = offset
        self.span = max([1] + [int(num(r.get("epoch")) or 0) for r in records])
        for r in records:  # global step = cumulative epoch across stages (as the TensorBoard export)
            r["_step"] = offset + max(1, int(num(r.get("epoch")) or 0))

    def last(self, key):
        for r in reversed(self.records):
            if num(r.get(key)) is not None:
                return num(r[key])
        return None


def load_stages(run_dir, summary):
    stages, offset = [], 0
    for d in stage_dirs_in_order(run_dir, summary):
        s = Stage(d, read_jsonl(os.path.join(run_dir, d, "metrics.jsonl")), offset)
        offset += s.span
        stages.append(s)
    return stages


def series(stages, key, kinds=None):
    xs, ys = [], []
    for s in stages:
        if kinds and s.kind not in kinds:
            continue
        for r in s.records:
            v = num(r.get(key))
            if v is not None:
                xs.append(r["_step"])
                ys.append(v)
    return xs, ys


def mark_stages(ax, stages):
    """Shades each stage's epochs and names it at the top of the axes."""
    for i, s in enumerate(stages):
        lo, hi = s.offset + 0.5, s.offset + s.span + 0.5
        ax.axvspan(lo, hi, color=STAGE_COLOURS.get(s.kind, "#999999"), alpha=0.08, lw=0)
        if i > 0:
            ax.axvline(lo, color="#555555", ls="--", lw=0.8)
        ax.text((lo + hi) / 2, 1.01, s.folder, transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=8, color="#333333", clip_on=False)
    if stages:
        ax.set_xlim(0.5, stages[-1].offset + stages[-1].span + 0.5)


def save(fig, run_dir, name):
    os.makedirs(os.path.join(run_dir, CHART_DIR), exist_ok=True)
    rel = f"{CHART_DIR}/{name}"
    fig.savefig(os.path.join(run_dir, rel), dpi=110, bbox_inches="tight")
    plt.close(fig)
    return rel


def chart_curves(run_dir, stages, keys, ylabel, title, name, percent=False, logy=False):
    fig, ax = plt.subplots(figsize=(9, 4.2))
    mark_stages(ax, stages)
    drawn = False
    for i, (key, style, label) in enumerate(keys):
        colour = plt.get_cmap("tab10")(i)
        for s in stages:  # one segment per stage: no line across a stage without the metric
            xs, ys = series([s], key)
            if not xs:
                continue
            if percent:
                ys = [100 * y for y in ys]
            ax.plot(xs, ys, style, color=colour, label=None if drawn == key else label, ms=4,
                    lw=1.4)
            drawn = key
    if not drawn:
        plt.close(fig)
        return None
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (cumulative across stages)")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title, pad=16)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return save(fig, run_dir, name)


def admm_layers(stages):
    """{layer: ([admm epoch], [residual])}, ([epoch], [rho]), ([epoch], [residual_max])."""
    layers, rho, rmax, epoch = {}, ([], []), ([], []), 0
    for s in stages:
        for r in s.records:
            a = r.get("admm")
            if not isinstance(a, dict):
                continue
            epoch += 1
            for name, v in (a.get("layers") or {}).items():
                res = num(v.get("residual")) if isinstance(v, dict) else None
                if res is not None:
                    layers.setdefault(name, ([], []))
                    layers[name][0].append(epoch)
                    layers[name][1].append(res)
            for key, dst in (("rho", rho), ("residual_max", rmax)):
                v = num(a.get(key))
                if v is not None:
                    dst[0].append(epoch)
                    dst[1].append(v)
    return layers, rho, rmax


def chart_admm(run_dir, stages):
    layers, rho, rmax = admm_layers(stages)
    if not layers:
        return None
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    n = len(layers)
    if rmax[0]:  # underneath the layers: it coincides with the largest one
        ax.plot(rmax[0], [max(v, 1e-12) for v in rmax[1]], "-", color="#bbbbbb", lw=5, label="max",
                zorder=1)
    for i, (name, (xs, ys)) in enumerate(layers.items()):
        # Ten distinct colours, then the same colours dashed, dotted, ...; a viridis ramp past 40.
        if n <= 40:
            colour, style = plt.get_cmap("tab10")(i % 10), ["-", "--", ":", "-."][i // 10]
        else:
            colour, style = plt.get_cmap("viridis")(0.9 * i / (n - 1)), "-"
        pos = [(x, y) for x, y in zip(xs, ys) if y > 0]  # log scale: an exact 0 cannot be drawn
        if pos:
            ax.plot([p[0] for p in pos], [p[1] for p in pos], style, color=colour, lw=1.3,
                    label=name, zorder=2)
    ax.set_yscale("log")
    ax.set_ylabel("‖W − Z‖ / ‖W‖")
    ax.set_title("ADMM residual per layer (must fall toward 0)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=max(1, math.ceil(n / 12)), loc="center left",
              bbox_to_anchor=(1.01, 0.5))
    if rho[0]:
        ax2.plot(rho[0], rho[1], "o-", color="#dd8452", ms=3)
        ax2.set_yscale("log")
    ax2.set_ylabel("ρ")
    ax2.set_xlabel("ADMM epoch")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.grid(True, which="both", alpha=0.3)
    return save(fig, run_dir, "admm_residual.png")


def find_inspect_bin(explicit):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for c in (explicit, os.environ.get("PCONV_INSPECT"),
              os.path.join(here, "build", "bin", "pconv-inspect"), shutil.which("pconv-inspect")):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def load_inspect(run_dir, args):
    path = os.path.join(run_dir, "inspect.json")
    j = read_json(path)
    if j is not None or args.no_inspect:
        return j
    model = os.path.join(run_dir, "model.h5")
    if not os.path.isfile(model):
        return None
    exe = find_inspect_bin(args.inspect_bin)
    if not exe:
        log(args.quiet, "no pconv-inspect found (build it, or pass --inspect-bin); no pruning charts")
        return None
    cmd = [exe, model, "--json", path, "--png-dir", os.path.join(run_dir, CHART_DIR, "patterns")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in (0, 1):  # 1 = constraints violated: the report shows them
        log(args.quiet, f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
        return None
    return read_json(path)


def pattern_label(lib, i):
    if isinstance(lib, list) and i < len(lib) and isinstance(lib[i], list):
        return f"id {i} {{{','.join(str(p) for p in lib[i])}}}"
    return f"id {i}"


def chart_kernels(run_dir, insp):
    layers = [l for l in insp.get("layers", []) if num(l.get("kernels_total"))]
    if not any(l.get("pruned") for l in layers):  # a dense model: the table says it all
        return None
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.32 * len(layers) + 1.2)))
    names = [l["name"] for l in layers][::-1]
    total = [num(l["kernels_total"]) for l in layers][::-1]
    kept = [num(l.get("kernels_kept")) or 0 for l in layers][::-1]
    pruned = [bool(l.get("pruned")) for l in layers][::-1]
    frac = [100 * k / t for k, t in zip(kept, total)]
    ax.barh(names, [100] * len(names), color="#dddddd", label="total")
    ax.barh(names, frac, color=["#4c72b0" if p else "#999999" for p in pruned], label="kept")
    for i, (k, t) in enumerate(zip(kept, total)):
        ax.text(101, i, f"{int(k)}/{int(t)}  ({t / k:.2f}x)" if k else f"0/{int(t)}",
                va="center", fontsize=7)
    ax.set_xlim(0, 135)
    ax.set_xticks([0, 20, 40, 60, 80, 100])
    ax.set_xlabel("kernels kept (% of O·I; blue = pruned layer, grey = dense)")
    ax.set_title("Kept kernels per conv layer")
    ax.tick_params(axis="y", labelsize=7)
    return save(fig, run_dir, "kernels.png")


def chart_patterns(run_dir, insp):
    layers = [l for l in insp.get("layers", []) if l.get("pruned") and l.get("pattern_hist")]
    if not layers:
        return None
    k = max(len(l["pattern_hist"]) for l in layers)
    lib = insp.get("library")
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.32 * len(layers) + 1.5)))
    names = [l["name"] for l in layers][::-1]
    left = [0.0] * len(layers)
    cmap = plt.get_cmap("tab20" if k > 10 else "tab10")
    for i in range(k):
        vals = []
        for l in layers[::-1]:
            h = l["pattern_hist"]
            kept = sum(h) or 1
            vals.append(100 * (h[i] if i < len(h) else 0) / kept)
        ax.barh(names, vals, left=left, color=cmap(i % cmap.N), label=pattern_label(lib, i))
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the layer's kept kernels (%)")
    ax.set_title("Pattern histogram per pruned layer")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save(fig, run_dir, "patterns.png")


def bench_runs(bench):
    """[(label, [(layer, generated_ms, onednn_best_ms)])] from either bench.json form."""
    def layer_rows(layers):
        rows = []
        for l in layers or []:
            if not isinstance(l, dict):
                continue
            gen = num(l.get("generated_ms"))
            if gen is None and isinstance(l.get("generated"), dict):
                gen = num(l["generated"].get("median_ms"))
            ref = num(l.get("onednn_best_ms"))
            if ref is None and isinstance(l.get("onednn"), dict):
                ref = num(l["onednn"].get("median_ms"))
            if l.get("name") and gen is not None and ref is not None:
                rows.append((str(l["name"]), gen, ref))
        return rows

    if not isinstance(bench, dict):
        return []
    out = []
    for r in bench.get("runs", []) or []:
        if isinstance(r, dict):
            rows = layer_rows(r.get("layers"))
            if rows:
                label = f"{r['threads']} thread(s)" if "threads" in r else f"run {len(out) + 1}"
                out.append((label, rows))
    rows = layer_rows(bench.get("layers"))
    if rows:
        out.append(("", rows))
    return out


def chart_latency(run_dir, runs):
    if not runs:
        return None
    nl = max(len(rows) for _, rows in runs)
    fig, axes = plt.subplots(1, len(runs), figsize=(4.8 * len(runs) + 2, max(3, 0.3 * nl + 1.5)),
                             squeeze=False, sharey=True)
    for ax, (label, rows) in zip(axes[0], runs):
        rows = rows[::-1]
        y = list(range(len(rows)))
        ax.barh([v + 0.2 for v in y], [r[2] for r in rows], 0.4, color="#999999", label="oneDNN best")
        ax.barh([v - 0.2 for v in y], [r[1] for r in rows], 0.4, color="#4c72b0", label="generated")
        ax.set_yticks(y)
        ax.set_yticklabels([r[0] for r in rows], fontsize=7)
        ax.set_xlabel("ms per image")
        ax.set_title(f"Latency per layer {label}".strip())
        ax.grid(True, axis="x", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    return save(fig, run_dir, "latency.png")


def pct(x):
    return "—" if x is None else f"{100 * x:.2f}%"


def fmt(x, unit="", digits=2):
    return "—" if x is None else f"{x:.{digits}f}{unit}"


def md_table(header, rows):
    s = "| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|\n"
    return s + "".join("| " + " | ".join(str(c) for c in r) + " |\n" for r in rows)


CHART_NAMES = ("loss.png", "accuracy.png", "lr.png", "admm_residual.png", "kernels.png",
               "patterns.png", "latency.png")


def build_report(run_dir, args):
    for n in CHART_NAMES:  # a chart that no longer applies must not linger from an earlier report
        p = os.path.join(run_dir, CHART_DIR, n)
        if os.path.isfile(p):
            os.remove(p)
    summary = read_json(os.path.join(run_dir, "summary.json"))
    stages = load_stages(run_dir, summary)
    insp = load_inspect(run_dir, args)
    bench = read_json(os.path.join(run_dir, "bench.json"))
    runs = bench_runs(bench)
    name = (summary or {}).get("run") or os.path.basename(os.path.abspath(run_dir))

    charts = {
        "loss": chart_curves(run_dir, stages, [("train_loss", "-", "train"), ("test_loss", "o-", "test")],
                             "loss", "Loss per epoch", "loss.png"),
        "accuracy": chart_curves(run_dir, stages,
                                 [("train_top1", "-", "train top-1"), ("test_top1", "o-", "test top-1"),
                                  ("test_top5", "s--", "test top-5")],
                                 "accuracy (%)", "Accuracy per epoch", "accuracy.png", percent=True),
        "lr": chart_curves(run_dir, stages, [("lr", "-", "learning rate")], "learning rate",
                           "Learning rate", "lr.png", logy=True),
        "admm": chart_admm(run_dir, stages),
        "kernels": chart_kernels(run_dir, insp) if insp else None,
        "patterns": chart_patterns(run_dir, insp) if insp else None,
        "latency": chart_latency(run_dir, runs),
    }

    def last_of(kind, key="test_top1"):
        for s in reversed(stages):
            if s.kind == kind and s.last(key) is not None:
                return s.last(key)
        return None

    dense = last_of("pretrain")
    final = stages[-1].last("test_top1") if stages else None
    totals = (insp or {}).get("totals", {})
    lines = [f"# Run report: {name}", ""]
    if summary and summary.get("commit"):
        lines += [f"Commit `{summary['commit']}`" + (f", command `{summary['command']}`"
                                                      if summary.get("command") else "") + ".", ""]
    if not stages:
        lines += ["No stage folder with a metrics.jsonl yet.", ""]

    lines += ["## Summary", ""]
    kinds = {s.kind for s in stages}
    rows = [["dense accuracy (end of pretrain)", pct(dense)]]
    rows += [[label, pct(last_of(kind))] for kind, label in
             (("admm", "after ADMM"), ("prune", "after hard prune")) if kind in kinds]
    rows.append(["final accuracy (last stage)", pct(final)])
    if dense is not None and final is not None:
        rows.append(["final − dense", f"{100 * (final - dense):+.2f} points"])
    if totals:
        rows += [["conv weight compression",
                  fmt(num(totals.get("conv_compression")), "x") +
                  f" ({totals.get('conv_weights_kept', '?')} of {totals.get('conv_weights_total', '?')} weights)"],
                 ["MAC reduction (whole model)",
                  fmt(num(totals.get("mac_reduction")), "x") +
                  f" ({totals.get('macs_kept', '?')} of {totals.get('macs_total', '?')} MACs per image)"]]
        if insp.get("granularity"):
            rows.append(["granularity", insp["granularity"]])
        if "verified" in insp:
            nv = len(insp.get("violations") or [])
            rows.append(["constraints", "verified" if insp["verified"] else f"**VIOLATED** ({nv} violations)"])
    for label, rr in runs:
        g, o = sum(r[1] for r in rr), sum(r[2] for r in rr)
        rows.append([f"latency, sum of layers {label}".strip(),
                     f"{g:.3f} ms generated vs {o:.3f} ms oneDNN best ({o / g:.2f}x)" if g > 0 else "—"])
    lines += [md_table(["", ""], rows)]

    if stages:
        srows = []
        for s in stages:
            secs = sum(num(r.get("train_seconds")) or 0 for r in s.records)
            srows.append([s.folder, s.kind, len(s.records), pct(s.last("test_top1")),
                          pct(s.last("test_top5")), fmt(s.last("test_loss"), digits=3),
                          f"{secs / 60:.1f} min" if secs else "—"])
        lines += ["## Stages", "",
                  md_table(["stage", "kind", "records", "test top-1", "test top-5", "test loss", "train time"],
                           srows)]

    lines += ["## Training", ""]
    for key, cap in (("loss", "Loss"), ("accuracy", "Accuracy"), ("lr", "Learning rate")):
        if charts[key]:
            lines += [f"![{cap}]({charts[key]})", ""]
    if charts["admm"]:
        layers, _, rmax = admm_layers(stages)
        lines += ["## ADMM", "", f"![ADMM residual]({charts['admm']})", ""]
        if rmax[1]:
            lines += [f"Largest ‖W − Z‖/‖W‖: {rmax[1][0]:.3g} after the first ADMM epoch, "
                      f"{max(rmax[1]):.3g} at its peak, {rmax[1][-1]:.3g} at the end.", ""]

    if insp:
        lines += ["## Pruning", ""]
        for key, cap in (("kernels", "Kept kernels"), ("patterns", "Pattern histogram")):
            if charts[key]:
                lines += [f"![{cap}]({charts[key]})", ""]
        prow = []
        for l in insp.get("layers", []):
            shape = "x".join(str(v) for v in l.get("shape", []))
            h = l.get("pattern_hist") or []
            prow.append([l.get("name"), shape, f"{l.get('kernels_kept')}/{l.get('kernels_total')}",
                         fmt(num(l.get("connectivity_rate")), "x"),
                         f"{l.get('weights_kept')}/{l.get('weights_total')}",
                         " ".join(f"{i}:{c}" for i, c in enumerate(h)) if l.get("pruned") else "dense"])
        lines += [md_table(["layer", "shape", "kernels", "connectivity", "weights", "patterns"], prow)]
        pdir = os.path.join(run_dir, CHART_DIR, "patterns")
        if os.path.isdir(pdir):
            pngs = sorted(f for f in os.listdir(pdir) if f.endswith(".png"))
            if pngs:
                lines += ["Pattern maps (row = output channel, column = input channel, black = removed): " +
                          ", ".join(f"[{p[:-4]}]({CHART_DIR}/patterns/{p})" for p in pngs) + ".", ""]
        for v in (insp.get("violations") or [])[:20]:
            lines.append(f"- violation: {v.get('layer')}: {v.get('what')}")

    if runs:
        lines += ["## Latency", "", f"![Latency per layer]({charts['latency']})", ""]
        for label, rr in runs:
            lines += [f"{label}:".strip() if label else "", "",
                      md_table(["layer", "generated ms", "oneDNN best ms", "speed-up"],
                               [[n, f"{g:.4f}", f"{o:.4f}", f"{o / g:.2f}x" if g > 0 else "—"]
                                for n, g, o in rr])]
    lines += ["", "TensorBoard: `tensorboard --logdir " + os.path.join(run_dir, "tb") +
              "` (written by pconv-train at the end of a run; docs/reports.md)."]

    out = os.path.join(run_dir, "report.md")
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    os.replace(out + ".tmp", out)
    return out, [c for c in charts.values() if c]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--inspect-bin", help="pconv-inspect to run when inspect.json is absent")
    ap.add_argument("--no-inspect", action="store_true", help="never run pconv-inspect")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(args.run_dir):
        sys.exit(f"report.py: {args.run_dir} is not a folder")
    out, charts = build_report(args.run_dir, args)
    log(args.quiet, f"wrote {out} ({len(charts)} charts in {os.path.join(args.run_dir, CHART_DIR)})")


if __name__ == "__main__":
    main()
