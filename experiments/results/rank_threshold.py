#!/usr/bin/env python3
"""Paper B's stereotype-aware fairness with "recommended" read as "ranked in the top half".

    python3 experiments/results/rank_threshold.py RUN_DIR [--fairrec target/release/fairrec]

RUN_DIR is what `fairrec experiment run` wrote for a paper-B experiment (its cells keep
`audit/predictions.jsonl`, and `audit/run.json` names the prepared data). For every cell,
each setting's prompts (implicit: the neutral variant; explicit: the original one;
counterfactual: a single attribute stated with a value other than the user's) are ranked
by P(Yes) among themselves, P(Yes) is replaced by the percentile (rank + 0.5) / n (ties
share their mean rank), and `fairrec metrics --threshold 0.5` re-audits them: a Yes is
then a target ranked in the top half of its setting, whatever the model's calibration
(and whatever a prompt setting does to it). At the default 0.5
a model that answers Yes to everything has the same stereotype figures as every other such
model (those of the test targets themselves); at the median threshold, the figures depend
on which targets the model ranks higher for which users. This reading is ours, not paper
B's: it is an analysis of the committed tables, not part of them.

Prints a Markdown table: per method, mean and sample std over seeds of 100 x sum |Delta|
in the implicit, explicit and counterfactual settings, and the median P(Yes) of the
explicit prompts (where the top half starts); then two reference rows on the same test
prompts: every target answered Yes (the figure of any all-Yes model at 0.5), and a random
top half (the ranking replaced by a seeded random one, --draws times: what chance gives).
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

SETTINGS = ["implicit", "explicit", "counterfactual"]


def setting(p: dict):
    v = p["variant"]
    if v == "neutral":
        return "implicit"
    if v == "original":
        return "explicit"
    stated = dict(kv.split("=", 1) for kv in v.split(","))
    truth = p.get("attributes") or {}
    if len(stated) == 1:
        (attr, value), = stated.items()
        if attr in truth and truth[attr] != value:
            return "counterfactual"
    return None


def ranked(pred_file: Path, out: Path) -> float:
    """Write `pred_file` with each setting's P(Yes) as percentiles; return the explicit
    prompts' median P(Yes)."""
    ps = [json.loads(line) for line in pred_file.open()]
    by = defaultdict(list)
    for i, p in enumerate(ps):
        s = setting(p)
        if s is not None:
            by[s].append(i)
    if "explicit" not in by:
        sys.exit(f"{pred_file}: no prediction of the original (explicit) variant")
    median = statistics.median(ps[i]["p_yes"] for i in by["explicit"])
    for idx in by.values():
        idx.sort(key=lambda i: ps[i]["p_yes"])
        n, j = len(idx), 0
        while j < n:
            k = j
            while k + 1 < n and ps[idx[k + 1]]["p_yes"] == ps[idx[j]]["p_yes"]:
                k += 1
            for i in idx[j:k + 1]:
                ps[i]["p_yes"] = ((j + k) / 2 + 0.5) / n
            j = k + 1
    out.write_text("".join(json.dumps(p) + "\n" for p in ps))
    return median


def audit(fairrec: str, pred_file: Path, data: str, replace=None, rank=True):
    """The cell's predictions ranked (unless not `rank`), re-audited at 0.5; (metrics,
    explicit median). `replace(p)` gives each prediction's P(Yes) first, if given."""
    with tempfile.TemporaryDirectory() as tmp:
        ranks = Path(tmp) / "ranked.jsonl"
        if replace is not None:
            ps = [json.loads(line) for line in pred_file.open()]
            src = Path(tmp) / "replaced.jsonl"
            src.write_text("".join(json.dumps({**p, "p_yes": replace(p)}) + "\n" for p in ps))
            pred_file = src
        if rank:
            median = ranked(pred_file, ranks)
        else:
            ranks, median = pred_file, None
        out = Path(tmp) / "audit"
        subprocess.run(
            [fairrec, "-q", "metrics", "--predictions", str(ranks), "--data", data,
             "--threshold", "0.5", "--bootstrap", "0", "--out", str(out)],
            check=True, stdout=subprocess.DEVNULL)
        return json.loads((out / "metrics.json").read_text()), median


def fmt(xs):
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--fairrec", default="target/release/fairrec")
    ap.add_argument("--draws", type=int, default=100)
    a = ap.parse_args()
    rows = defaultdict(lambda: defaultdict(list))
    order = []

    def add(method, m, t, name):
        if method not in order:
            order.append(method)
        for attr, st in m["stereotype"].items():
            for s in SETTINGS:
                total = st["settings"].get(s, {}).get("total")
                if total is not None:
                    rows[method][f"{s} ({attr})"].append(total)
        rows[method]["threshold"].append(t)
        rows[method]["cells"].append(name)

    preds = sorted(a.run_dir.glob("cells/*/*/*/*/*/audit/predictions.jsonl"))
    if not preds:
        sys.exit(f"{a.run_dir}: no cell with audit/predictions.jsonl")
    for pred in preds:
        cell = pred.parent.parent
        run = json.loads((pred.parent / "run.json").read_text())
        add(cell.parent.name, *audit(a.fairrec, pred, run["data"]), cell.name)
    # References on the first cell's prompts (every cell audits the same test prompts).
    data = json.loads((preds[0].parent / "run.json").read_text())["data"]
    add("(all Yes)", audit(a.fairrec, preds[0], data, lambda p: 1.0, rank=False)[0], None, "-")
    for d in range(a.draws):
        rng = random.Random(d)
        add(f"(random top half, {a.draws} draws)",
            audit(a.fairrec, preds[0], data, lambda p: rng.random())[0], None, "-")
    cols = sorted({c for r in rows.values() for c in r if c not in ("threshold", "cells")},
                  key=lambda c: (c.split(" ", 1)[1], SETTINGS.index(c.split(" ", 1)[0])))
    print("| Method | n | " + " | ".join(cols) + " | explicit median P(Yes) |")
    print("|---|---|" + "---|" * len(cols) + "---|")
    for method in order:
        r = rows[method]
        ts = ", ".join(sorted({f"{t:.3f}" for t in r["threshold"] if t is not None})) or "–"
        print(f"| {method} | {len(r['cells'])} | "
              + " | ".join(fmt(r[c]) for c in cols) + f" | {ts} |")


if __name__ == "__main__":
    main()
