"""The fairrec wheel against the fairrec command it installs: the same figures, the same
files, the same error messages; and its group metrics against fairlearn's MetricFrame."""

import itertools
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import fairrec

FIELDS = ("selection_rate", "tpr", "fpr", "precision")


def run(*args, cwd=None, ok=True):
    """The installed `fairrec` command; returns the finished process."""
    exe = shutil.which("fairrec")
    assert exe is not None, "the wheel installs a `fairrec` command"
    p = subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def variants(attribute_values):
    """Every prompt variant of paper A's scenarios over these attributes."""
    attrs = sorted(attribute_values)
    out = ["original", "neutral"]
    for r in range(1, len(attrs) + 1):
        for combo in itertools.combinations(attrs, r):
            for vals in itertools.product(*(attribute_values[a] for a in combo)):
                out.append(",".join(f"{a}={v}" for a, v in zip(combo, vals)))
    return out


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The synthetic world prepared under paper A's protocol, and seeded predictions of its
    test split in all 13 variants, with a planted gender effect."""
    d = tmp_path_factory.mktemp("world")
    run("data", "synth", "--out", d / "raw", "--group-effect", "0.5")
    run("data", "prepare", "--dataset", "ml-100k", "--raw", d / "raw", "--protocol", "cl-moe", "--out", d / "data")
    manifest = json.loads((d / "data" / "manifest.json").read_text())
    rng = random.Random(7)
    with open(d / "preds.jsonl", "w") as f:
        for line in open(d / "data" / "test.jsonl"):
            s = json.loads(line)
            for v in variants(manifest["attribute_values"]):
                p = rng.random() * 0.8 + (0.2 if "female" in v else 0.0)
                f.write(json.dumps({"sample_id": s["sample_id"], "variant": v, "label": s["label"], "p_yes": p}) + "\n")
    run("metrics", "--predictions", "preds.jsonl", "--data", "data", "--out", "audit", cwd=d)
    return d


def without_inputs(m):
    return {k: v for k, v in m.items() if k != "inputs"}


def test_the_wheel_installs_the_command():
    p = run("--version")
    assert p.stdout.strip() == f"fairrec {fairrec.__version__}"


def test_audit_gives_the_commands_figures_and_files(world):
    cwd = os.getcwd()
    os.chdir(world)
    try:
        r = fairrec.audit_predictions("preds.jsonl", data="data")
    finally:
        os.chdir(cwd)
    cli = json.loads((world / "audit" / "metrics.json").read_text())
    assert without_inputs(r.to_dict()) == without_inputs(cli)
    assert r.to_dict()["inputs"]["predictions_sha256"] == cli["inputs"]["predictions_sha256"]
    assert r.to_csv() == (world / "audit" / "metrics.csv").read_text()
    frame = r.to_frame()
    assert list(frame.columns) == ["scope", "group", "metric", "estimate", "ci_low", "ci_high", "n"]
    gd = frame[(frame.scope == "fairness:gender") & (frame.metric == "gd")].estimate.item()
    assert gd == cli["fairness"]["gender"]["gd"]


def test_a_dataframe_or_records_audit_like_the_file(world):
    rows = [json.loads(l) for l in open(world / "preds.jsonl")]
    by_path = fairrec.audit_predictions(world / "preds.jsonl", data=world / "data", bootstrap=50, seed=3)
    by_frame = fairrec.audit_predictions(pd.DataFrame(rows), data=world / "data", bootstrap=50, seed=3)
    by_records = fairrec.audit_predictions(rows, data=world / "data", bootstrap=50, seed=3)
    assert without_inputs(by_frame.to_dict()) == without_inputs(by_path.to_dict())
    assert without_inputs(by_records.to_dict()) == without_inputs(by_path.to_dict())
    assert by_frame.to_dict()["inputs"]["predictions"] == "<DataFrame>"


def truth(world):
    """Original-prompt predictions joined to the test users' true attributes."""
    preds = pd.DataFrame([json.loads(l) for l in open(world / "preds.jsonl")])
    users = fairrec.load_split(world / "data", "test")[["sample_id", "attributes.gender", "attributes.age"]]
    orig = preds[preds.variant == "original"].merge(users, on="sample_id")
    orig["yes"] = orig.p_yes >= 0.5
    return preds, orig


def rates(frame):
    """fairrec's four group rates, written out with pandas."""
    tp = (frame.yes & frame.label).sum()
    fp = (frame.yes & ~frame.label).sum()
    pos, neg = frame.label.sum(), (~frame.label).sum()
    return {"selection_rate": frame.yes.mean(), "tpr": tp / pos, "fpr": fp / neg, "precision": tp / (tp + fp)}


def test_groups_are_the_arithmetic_of_their_predictions(world):
    r = fairrec.audit_predictions(world / "preds.jsonl", data=world / "data")
    preds, orig = truth(world)
    by_gender = r.by_group("gender")
    assert by_gender.index.name == "gender" and set(by_gender.index) == {"female", "male"}
    for g, part in orig.groupby("attributes.gender"):
        for m, v in rates(part).items():
            assert by_gender.loc[g, m] == pytest.approx(v, abs=1e-12)
        assert by_gender.loc[g, "n"] == len(part)
        assert by_gender.loc[g, "selection_rate_ci_low"] <= by_gender.loc[g, "selection_rate"] <= by_gender.loc[g, "selection_rate_ci_high"]
    joint = r.by_group(["gender", "age"])
    assert joint.index.names == ["age", "gender"]
    for (a, g), part in orig.groupby(["attributes.age", "attributes.gender"]):
        assert joint.loc[(a, g), "selection_rate"] == pytest.approx(part.yes.mean(), abs=1e-12)
    by_variant = r.by_variant("age,gender")
    assert by_variant.index.names == ["age", "gender"] and len(by_variant) == 6
    stated = preds[preds.variant == "age=old,gender=female"]
    assert by_variant.loc[("old", "female"), "selection_rate"] == pytest.approx((stated.p_yes >= 0.5).mean(), abs=1e-12)
    assert by_variant.loc[("old", "female"), "f1"] == r.to_dict()["variants"]["age=old,gender=female"]["f1"]
    everything = r.by_group()
    assert everything.index.names == ["attributes", "group"]
    assert set(everything.index.get_level_values(0)) == {"age", "gender", "age,gender"}
    dis = r.disparities()
    sel = by_gender.selection_rate
    assert dis.loc["users:gender", "dp_difference"] == pytest.approx(sel.max() - sel.min(), abs=1e-12)


def test_groups_match_fairlearn_metricframe(world):
    fl = pytest.importorskip("fairlearn.metrics", reason="fairlearn is not installed")
    from sklearn.metrics import precision_score, recall_score

    r = fairrec.audit_predictions(world / "preds.jsonl", data=world / "data")
    preds, orig = truth(world)
    metrics = {
        "selection_rate": fl.selection_rate,
        "tpr": recall_score,
        "fpr": fl.false_positive_rate,
        "precision": lambda t, p: precision_score(t, p, zero_division=0),
    }
    for attrs in (["attributes.gender"], ["attributes.age", "attributes.gender"]):
        mf = fl.MetricFrame(metrics=metrics, y_true=orig.label, y_pred=orig.yes, sensitive_features=orig[attrs])
        ours = r.by_group([a.split(".")[1] for a in attrs])
        for m in FIELDS:
            for g, v in mf.by_group[m].items():
                assert ours.loc[g, m] == pytest.approx(v, abs=1e-12), (attrs, m, g)
            assert r.to_dict()["group_metrics"]["users:" + ",".join(a.split(".")[1] for a in attrs)]["disparities"][m]["difference"] == pytest.approx(mf.difference()[m], abs=1e-12)
    dp = fl.demographic_parity_difference(orig.label, orig.yes, sensitive_features=orig["attributes.gender"])
    eo = fl.equalized_odds_difference(orig.label, orig.yes, sensitive_features=orig["attributes.gender"])
    assert r.disparities().loc["users:gender", "dp_difference"] == pytest.approx(dp, abs=1e-12)
    assert r.disparities().loc["users:gender", "eo_difference"] == pytest.approx(eo, abs=1e-12)
    # The counterfactual groups: the same users stated female and stated male.
    stated = preds[preds.variant.isin(["gender=female", "gender=male"])].copy()
    stated["yes"] = stated.p_yes >= 0.5
    mf = fl.MetricFrame(metrics=metrics, y_true=stated.label, y_pred=stated.yes, sensitive_features=stated.variant.str.split("=").str[1])
    ours = r.by_variant("gender")
    for m in FIELDS:
        for g, v in mf.by_group[m].items():
            assert ours.loc[g, m] == pytest.approx(v, abs=1e-12), (m, g)


def test_errors_carry_the_commands_messages(world):
    lines = (world / "preds.jsonl").read_text().splitlines()
    (world / "bad.jsonl").write_text(lines[0] + "\n" + lines[1].replace('"p_yes"', '"q_yes"') + "\n")
    p = run("metrics", "--predictions", "bad.jsonl", "--out", "bad-audit", cwd=world, ok=False)
    assert p.returncode != 0
    cli = p.stderr.strip().splitlines()[-1]
    assert cli.startswith("error: ")
    cwd = os.getcwd()
    os.chdir(world)
    try:
        with pytest.raises(fairrec.FairrecError) as e:
            fairrec.audit_predictions("bad.jsonl")
    finally:
        os.chdir(cwd)
    assert str(e.value) == cli[len("error: "):]
    assert "bad.jsonl:2" in str(e.value)
    with pytest.raises(fairrec.FairrecError, match="no column `p_yes`"):
        fairrec.audit_predictions(pd.DataFrame({"sample_id": ["a"], "variant": ["original"], "label": [True]}))
    with pytest.raises(fairrec.FairrecError, match="z_threshold"):
        fairrec.audit_predictions(world / "preds.jsonl", z_threshold="high")
    with pytest.raises(fairrec.FairrecError, match="reading .*missing.jsonl"):
        fairrec.audit_predictions(world / "missing.jsonl")
    with pytest.raises(fairrec.FairrecError, match="no users groups of `occupation`"):
        fairrec.audit_predictions(world / "preds.jsonl").by_group("occupation")


def test_stereotypes_as_the_command_writes_them(world):
    run("data", "stereotypes", world / "data", "--out", world / "stereo")
    s = fairrec.stereotype(world / "data")
    assert s.to_list() == json.loads((world / "stereo" / "stereotypes.json").read_text())
    sizes = s.sizes()
    assert sizes.index.names == ["attribute", "z"]
    assert set(sizes.columns) >= {"female", "male"}
    assert set(s.auto) == {"age", "gender"}
    top = s.top_items()
    assert len(top) > 0 and list(top.columns) == ["attribute", "group", "item_id", "title", "z"]
    with pytest.raises(fairrec.FairrecError, match="`occupation` is not an attribute"):
        fairrec.stereotype(world / "data", attributes="occupation")


def test_list_fairness_as_the_command(world, tmp_path):
    rng = random.Random(1)
    titles = [f"Movie {i}" for i in range(40)]
    rows = []
    for m in range(12):
        for v in ["neutral", "gender=female", "gender=male", "age=young", "age=old"]:
            rows.append({"instruction_id": f"i{m}", "variant": v, "items": rng.sample(titles, 10)})
    path = tmp_path / "lists.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run("metrics", "--lists", path, "--k", 10, "--out", tmp_path / "lists-audit")
    cli = json.loads((tmp_path / "lists-audit" / "metrics.json").read_text())["fairllm"]
    ours = fairrec.list_fairness(path, k=10)
    assert ours.to_dict() == cli
    assert fairrec.list_fairness(pd.DataFrame(rows), k=10).to_dict() == cli
    frame = ours.to_frame()
    assert frame.loc[("gender", "jaccard"), "snsr"] == cli["attributes"]["gender"]["jaccard"]["snsr"]


def test_prepare_writes_the_commands_files(world, tmp_path):
    splits = fairrec.prepare("ml-100k", world / "raw", tmp_path / "data", protocol="cl-moe")
    for name in ("train", "valid", "test"):
        assert (tmp_path / "data" / f"{name}.jsonl").read_bytes() == (world / "data" / f"{name}.jsonl").read_bytes()
    ours = json.loads((tmp_path / "data" / "manifest.json").read_text())
    cli = json.loads((world / "data" / "manifest.json").read_text())
    assert {k: v for k, v in ours.items() if k != "git_revision"} == {k: v for k, v in cli.items() if k != "git_revision"}
    assert len(splits["test"]) == cli["splits"]["test"]["samples"]
    assert {"sample_id", "user_id", "label", "attributes.gender", "attributes.age"} <= set(splits["train"].columns)
    with pytest.raises(fairrec.FairrecError, match="already holds a prepared dataset"):
        fairrec.prepare("ml-100k", world / "raw", tmp_path / "data")
    again = fairrec.prepare("ml-100k", world / "raw", tmp_path / "data", force=True, attributes=["gender"], split=[8, 1, 1])
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert list(manifest["attribute_values"]) == ["gender"] and manifest["config"]["split"] == [8.0, 1.0, 1.0]
    assert "attributes.age" not in again["train"].columns or again["train"]["attributes.age"].isna().all()
    stated = fairrec.prepare("ml-100k", world / "raw", tmp_path / "profiled", profile=["occupation"])
    assert json.loads((tmp_path / "profiled" / "manifest.json").read_text())["config"]["profile"] == ["occupation"]
    first = stated["train"].iloc[0]
    assert first["stated_profile"] == [["occupation", first["profile.occupation"]]]
    shown = run("data", "show", tmp_path / "profiled", "--split", "train", "--n", 1).stdout
    assert f"occupation {first['profile.occupation']} user's" in shown
    with pytest.raises(fairrec.FairrecError, match="`colour` is not a setting"):
        fairrec.prepare("ml-100k", world / "raw", tmp_path / "other", colour="red")
    with pytest.raises(fairrec.FairrecError, match="dataset"):
        fairrec.prepare("netflix", world / "raw", tmp_path / "other")


def test_real_ml100k_prepares_as_the_command(tmp_path):
    data = os.environ.get("FAIRREC_DATA")
    if not data or not (Path(data) / "ml-100k").is_dir():
        pytest.skip("SKIPPED: FAIRREC_DATA with ml-100k is not set")
    raw = Path(data) / "ml-100k"
    run("data", "prepare", "--dataset", "ml-100k", "--raw", raw, "--protocol", "cl-moe", "--out", tmp_path / "cli")
    splits = fairrec.prepare("ml-100k", raw, tmp_path / "py")
    for name in ("train", "valid", "test"):
        assert (tmp_path / "py" / f"{name}.jsonl").read_bytes() == (tmp_path / "cli" / f"{name}.jsonl").read_bytes()
    assert len(splits["test"]) == 189


def test_tensorboard_reads_the_training_events(world, tmp_path):
    ea = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator", reason="tensorboard is not installed"
    )
    run("model", "init", "--data", world / "data", "--out", tmp_path / "tiny", "--hidden", 32, "--layers", 1, "--vocab-size", 400)
    run(
        "train", "--model", tmp_path / "tiny", "--data", world / "data", "--out", tmp_path / "run", "--method", "lora",
        "--limit-train", 24, "--limit-valid", 8, "--epochs", 2, "--batch-size", 4,
    )
    log = [json.loads(l) for l in open(tmp_path / "run" / "train_log.jsonl")]
    steps = [l for l in log if "step" in l and "loss" in l]
    evals = [l["eval"] for l in log if "eval" in l]
    acc = ea.EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [s["step"] for s in steps] == list(range(1, 13))
    for e, s in zip(loss, steps):
        assert e.value == pytest.approx(s["loss"], rel=1e-6)  # stored as float32
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([s["lr"] for s in steps], rel=1e-6)
    auc = acc.Scalars("valid/auc")
    assert len(auc) == len(evals) == 2
    assert [e.value for e in auc] == pytest.approx([v["auc"] for v in evals], rel=1e-6)
