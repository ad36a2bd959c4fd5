#!/usr/bin/env python3
"""How MoS routes each stereotype group, from the training logs of a paper-B run.

    python3 experiments/results/routing.py RUN_DIR [--out routing.json]

RUN_DIR is what `fairrec experiment run` wrote (its cells keep `train/train_log.jsonl`,
which the committed results leave out). MoS logs, every optimizer step, each group's mean
routing probability per expert (`route/<group>/<k>`, after top-K routing: the inactive
experts' probabilities are zero). For every MoS cell this script averages them over the
steps of the last epoch trained and reports, per group, the expert usage, the top expert,
and the total variation distance between the groups' usage (0: the groups are routed
alike; 1: to disjoint experts). Prints a Markdown table; `--out` also writes the figures
as JSON (committed beside a result as `routing.json`).
"""

import argparse
import json
import os
import statistics


def cell_routing(log_path):
    steps = [json.loads(l) for l in open(log_path) if l.strip()]
    steps = [s for s in steps if "step" in s and any(k.startswith("route/") for k in s)]
    if not steps:
        return None
    last_epoch = max(s["epoch"] for s in steps)
    steps = [s for s in steps if s["epoch"] == last_epoch]
    groups = {}
    for s in steps:
        for k, v in s.items():
            if k.startswith("route/"):
                _, g, e = k.split("/")
                groups.setdefault(g, {}).setdefault(int(e), []).append(v)
    usage = {g: [statistics.fmean(es[e]) for e in sorted(es)] for g, es in groups.items()}
    names = sorted(usage)
    tv = None
    if len(names) == 2:
        a, b = usage[names[0]], usage[names[1]]
        sa, sb = sum(a) or 1.0, sum(b) or 1.0
        tv = 0.5 * sum(abs(x / sa - y / sb) for x, y in zip(a, b))
    return {
        "epoch": last_epoch,
        "steps": len(steps),
        "usage": usage,
        "top": {g: max(range(len(u)), key=u.__getitem__) for g, u in usage.items()},
        "tv_distance": tv,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--out")
    args = ap.parse_args()
    out = {}
    for root, _, files in os.walk(os.path.join(args.run_dir, "cells")):
        if "train_log.jsonl" in files and root.endswith("train"):
            cell = os.path.relpath(os.path.dirname(root), os.path.join(args.run_dir, "cells"))
            r = cell_routing(os.path.join(root, "train_log.jsonl"))
            if r:
                out[cell] = r
    print("| cell | last epoch's steps | usage per group (expert 0..K-1) | top expert | TV distance |")
    print("|---|---|---|---|---|")
    for cell in sorted(out):
        r = out[cell]
        usage = "; ".join(
            f"{g}: " + " ".join(f"{x:.3f}" for x in u) for g, u in sorted(r["usage"].items())
        )
        top = ", ".join(f"{g} {t}" for g, t in sorted(r["top"].items()))
        tv = "n/a" if r["tv_distance"] is None else f"{r['tv_distance']:.4f}"
        print(f"| {cell} | {r['steps']} | {usage} | {top} | {tv} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
