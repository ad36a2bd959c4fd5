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


def percentiles(ps: list) -> list:
    """`ps` with each setting's P(Yes) replaced by its percentile (rank + 0.5) / n within
    the setting (ties share their mean rank); predictions in no setting keep theirs."""
    out = [dict(p) for p in ps]
    by = defaultdict(list)
    for i, p in enumerate(ps):
        s = setting(p)
        if s is not None:
            by[s].append(i)
    for idx in by.values():
        idx.sort(key=lambda i: ps[i]["p_yes"])
        n, j = len(idx), 0
        while j < n:
            k = j
            while k + 1 < n and ps[idx[k + 1]]["p_yes"] == ps[idx[j]]["p_yes"]:
                k += 1
            for i in idx[j:k + 1]:
                out[i]["p_yes"] = ((j + k) / 2 + 0.5) / n
            j = k + 1
    return out


def reaudit(fairrec: str, ps: list, data: str) -> dict:
    """`fairrec metrics` at the 0.5 threshold on the predictions `ps`."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "predictions.jsonl", Path(tmp) / "audit"
        src.write_text("".join(json.dumps(p) + "\n" for p in ps))
        subprocess.run(
            [fairrec, "-q", "metrics", "--predictions", str(src), "--data", data,
             "--threshold", "0.5", "--bootstrap", "0", "--out", str(out)],
            check=True, stdout=subprocess.DEVNULL)
        return json.loads((out / "metrics.json").read_text())


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

    def add(method, m, median=None):
        if method not in order:
            order.append(method)
        for attr, st in m["stereotype"].items():
            for s in SETTINGS:
                total = st["settings"].get(s, {}).get("total")
                if total is not None:
                    rows[method][f"{s} ({attr})"].append(total)
        rows[method]["median"].append(median)

    files = sorted(a.run_dir.glob("cells/*/*/*/*/*/audit/predictions.jsonl"))
    if not files:
        sys.exit(f"{a.run_dir}: no cell with audit/predictions.jsonl")
    first = None
    for f in files:
        ps = [json.loads(line) for line in f.open()]
        data = json.loads((f.parent / "run.json").read_text())["data"]
        explicit = [p["p_yes"] for p in ps if setting(p) == "explicit"]
        if not explicit:
            sys.exit(f"{f}: no prediction of the original (explicit) variant")
        add(f.parent.parent.parent.name, reaudit(a.fairrec, percentiles(ps), data),
            statistics.median(explicit))
        first = first or (ps, data)
    # References on the first cell's prompts (every cell audits the same test prompts).
    ps, data = first
    add("(all Yes)", reaudit(a.fairrec, [{**p, "p_yes": 1.0} for p in ps], data))
    for d in range(a.draws):
        rng = random.Random(d)
        shuffled = percentiles([{**p, "p_yes": rng.random()} for p in ps])
        add(f"(random top half, {a.draws} draws)", reaudit(a.fairrec, shuffled, data))
    cols = sorted({c for r in rows.values() for c in r if c != "median"},
                  key=lambda c: (c.split(" ", 1)[1], SETTINGS.index(c.split(" ", 1)[0])))
    print("| Method | n | " + " | ".join(cols) + " | explicit median P(Yes) |")
    print("|---|---|" + "---|" * len(cols) + "---|")
    for method in order:
        r = rows[method]
        ts = ", ".join(sorted({f"{t:.3f}" for t in r["median"] if t is not None})) or "–"
        print(f"| {method} | {len(r['median'])} | "
              + " | ".join(fmt(r[c]) for c in cols) + f" | {ts} |")


if __name__ == "__main__":
    main()
