"""The Python API over ``fairrec._native``: paths, DataFrames or records in; the figures of
the ``fairrec`` command out, as dicts and pandas DataFrames."""

from __future__ import annotations

import copy
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import pandas as pd

from . import _native
from ._native import FairrecError

PathLike = Union[str, "os.PathLike[str]"]

#: Columns a predictions table needs (``fairrec metrics --predictions``' JSONL fields).
PREDICTION_FIELDS = ("sample_id", "variant", "label", "p_yes")
#: Optional columns of a predictions table, passed on when present.
PREDICTION_OPTIONAL = ("attributes", "user_id", "target", "history", "censored")
#: Columns a ranked-lists table needs (``fairrec metrics --lists``).
LIST_FIELDS = ("instruction_id", "variant", "items")

#: The group rates of fairlearn's MetricFrame that fairrec reports, in column order.
RATES = ("selection_rate", "tpr", "fpr", "precision")


def _plain(v: Any) -> Any:
    """A pandas or numpy value as the JSON value it stands for (missing -> None)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        v = v.tolist()  # numpy scalars and arrays
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _jsonl(records: Iterable[Dict[str, Any]], required: Sequence[str], optional: Sequence[str], what: str) -> bytes:
    lines = []
    for i, r in enumerate(records):
        missing = [c for c in required if c not in r]
        if missing:
            raise FairrecError(
                f"{what}: row {i + 1} has no `{missing[0]}` (needs {', '.join(required)})"
            )
        row = {c: _plain(r[c]) for c in (*required, *optional) if c in r}
        row = {k: v for k, v in row.items() if not (k in optional and v is None)}
        lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _input(obj: Any, required: Sequence[str], optional: Sequence[str], what: str) -> Tuple[str, bytes]:
    """(name in errors, JSONL bytes) of a path, a DataFrame or a list of dicts. A table's
    row ``i`` (from 1) is line ``i`` of the JSONL the errors name."""
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        try:
            return path, Path(path).read_bytes()
        except OSError as e:
            raise FairrecError(f"reading {path}: {e.strerror} (os error {e.errno})") from e
    if isinstance(obj, pd.DataFrame):
        missing = [c for c in required if c not in obj.columns]
        if missing:
            raise FairrecError(
                f"{what} DataFrame: no column `{missing[0]}` (needs {', '.join(required)})"
            )
        return "<DataFrame>", _jsonl(obj.to_dict("records"), required, optional, what)
    if isinstance(obj, (list, tuple)):
        return "<records>", _jsonl(obj, required, optional, what)
    raise TypeError(f"{what}: expected a path, a pandas DataFrame or a list of dicts, got {type(obj).__name__}")


def _set_name(attributes: Union[str, Sequence[str]]) -> str:
    parts = attributes.split(",") if isinstance(attributes, str) else list(attributes)
    return ",".join(sorted(p.strip() for p in parts if p.strip()))


def _levels(key: str, attrs: List[str]) -> Tuple[str, ...]:
    """A group key (``female``, ``gender=female`` or ``age=old,gender=female``) as its values
    in the order of ``attrs``."""
    if "=" not in key:
        return (key,)
    stated = dict(part.split("=", 1) for part in key.split(","))
    return tuple(stated.get(a) for a in attrs)


class AuditResult:
    """An audit of predictions: what ``fairrec metrics`` writes as ``metrics.json`` and
    ``metrics.csv``."""

    def __init__(self, metrics_json: str, csv: str):
        self._dict = json.loads(metrics_json)
        self._csv = csv

    def to_dict(self) -> Dict[str, Any]:
        """The ``metrics.json`` structure (a copy)."""
        return copy.deepcopy(self._dict)

    def to_csv(self) -> str:
        """The text of ``metrics.csv`` (one row per scope x group x metric)."""
        return self._csv

    def to_frame(self) -> pd.DataFrame:
        """``metrics.csv`` as a DataFrame: scope, group, metric, estimate, ci_low, ci_high, n."""
        numeric = {c: [""] for c in ("estimate", "ci_low", "ci_high", "n")}
        return pd.read_csv(
            io.StringIO(self._csv),
            dtype={"scope": str, "group": str, "metric": str},
            keep_default_na=False,
            na_values=numeric,
        )

    def by_group(self, attributes: Union[None, str, Sequence[str]] = None) -> pd.DataFrame:
        """The users' true groups on the original prompts, as fairlearn's ``MetricFrame.by_group``
        would show them: selection rate, TPR, FPR and precision with their bootstrap intervals
        (``<rate>_ci_low``/``_ci_high``), Aequitas's disparity to the largest group
        (``<rate>_disparity``, ``<rate>_flagged`` outside [0.8, 1.25]) and the count ``n``.
        ``attributes`` (``"gender"``, ``"age,gender"`` or a list) picks one table, indexed by
        its attributes (a MultiIndex for joint groups); ``None`` stacks every table under an
        index (``attributes``, ``group``)."""
        return self._groups("users", attributes)

    def by_variant(self, attributes: Union[None, str, Sequence[str]] = None) -> pd.DataFrame:
        """The counterfactual groups: the prompts stating each value of an attribute set, over
        the same users. The columns of :meth:`by_group`, and each variant's F1 and AUC
        (without intervals)."""
        return self._groups("variants", attributes)

    def disparities(self) -> pd.DataFrame:
        """One row per group table (``users:<attrs>``, ``variants:<attrs>``): demographic-parity
        and equalized-odds differences, the flip rate (variants), with their intervals."""
        rows = {}
        for name, t in self._dict.get("group_metrics", {}).items():
            row = {}
            for col, key in (
                ("dp_difference", "demographic_parity_difference"),
                ("eo_difference", "equalized_odds_difference"),
                ("flip_rate", "flip_rate"),
            ):
                row[col] = t.get(key)
                lo, hi = t.get("ci", {}).get(col, (None, None))
                row[f"{col}_ci_low"], row[f"{col}_ci_high"] = lo, hi
            rows[name] = row
        out = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
        out.index.name = "table"
        return out

    def _groups(self, kind: str, attributes: Union[None, str, Sequence[str]]) -> pd.DataFrame:
        tables = {
            name.split(":", 1)[1]: t
            for name, t in self._dict.get("group_metrics", {}).items()
            if name.startswith(f"{kind}:")
        }
        if attributes is not None:
            want = _set_name(attributes)
            if want not in tables:
                raise FairrecError(
                    f"no {kind} groups of `{want}` in this audit (it has: {', '.join(sorted(tables)) or 'none'})"
                )
            tables = {want: tables[want]}
        variant_rows = self._variant_rows() if kind == "variants" else {}
        rows: Dict[Tuple[str, str], Dict[str, Any]] = {}
        for set_name, t in tables.items():
            for g, rates in t["groups"].items():
                row: Dict[str, Any] = {}
                for m in RATES:
                    row[m] = rates.get(m)
                    lo, hi = t.get("ci", {}).get(f"{g}.{m}", (None, None))
                    row[f"{m}_ci_low"], row[f"{m}_ci_high"] = lo, hi
                for m in RATES:
                    d = t.get("aequitas_disparity", {}).get(f"{g}.{m}")
                    row[f"{m}_disparity"] = d
                    row[f"{m}_flagged"] = f"{g}.{m}" in t.get("aequitas_flagged", [])
                row.update(variant_rows.get(g, {}))
                row["n"] = rates.get("n")
                rows[(set_name, g)] = row
        out = pd.DataFrame.from_dict(rows, orient="index")
        if out.empty:
            return out
        if attributes is None:
            out.index = pd.MultiIndex.from_tuples(list(rows), names=["attributes", "group"])
            return out
        attrs = _set_name(attributes).split(",")
        keys = [_levels(g, attrs) for _, g in rows]
        if len(attrs) == 1:
            out.index = pd.Index([k[0] for k in keys], name=attrs[0])
        else:
            out.index = pd.MultiIndex.from_tuples(keys, names=attrs)
        return out

    def _variant_rows(self) -> Dict[str, Dict[str, Any]]:
        """Each variant's F1 and AUC by variant name (the audit gives them no interval)."""
        return {
            name: {"f1": block.get("f1"), "auc": block.get("auc")}
            for name, block in self._dict.get("variants", {}).items()
        }

    def __repr__(self) -> str:
        m = self._dict
        return f"AuditResult({m.get('n_predictions')} predictions, {len(m.get('variants', {}))} variants)"


def audit_predictions(
    predictions: Any,
    data: Optional[PathLike] = None,
    threshold: float = 0.5,
    bootstrap: int = 200,
    seed: int = 0,
    *,
    confidence: float = 0.95,
    z_threshold: Union[str, float] = "auto",
    raw_counts: bool = False,
    allow_partial: bool = False,
) -> AuditResult:
    """Audit predictions as ``fairrec metrics --predictions`` does, with the same figures.

    ``predictions``: a JSONL path, a DataFrame or a list of dicts with ``sample_id``,
    ``variant`` (``original``, ``neutral`` or ``attr=value[,attr=value]``), ``label`` and
    ``p_yes``. ``data``: the prepared dataset they are of (joins users and attributes,
    enables paper B's stereotype section and the users' true groups)."""
    source, content = _input(predictions, PREDICTION_FIELDS, PREDICTION_OPTIONAL, "predictions")
    metrics, csv = _native.audit_predictions(
        source,
        content,
        None if data is None else os.fspath(data),
        allow_partial,
        float(threshold),
        int(bootstrap),
        int(seed),
        float(confidence),
        str(z_threshold),
        raw_counts,
    )
    return AuditResult(metrics, csv)


class ListResult:
    """FaiRLLM's list figures (``metrics.json``'s ``fairllm``)."""

    def __init__(self, text: str):
        self._dict = json.loads(text)

    def to_dict(self) -> Dict[str, Any]:
        return copy.deepcopy(self._dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per attribute set x similarity measure: SNSR and SNSV with intervals."""
        rows = {}
        for set_name, measures in self._dict["attributes"].items():
            for measure, f in measures.items():
                row = {"snsr": f["snsr"], "snsv": f["snsv"]}
                for k in ("snsr", "snsv"):
                    lo, hi = f.get("ci", {}).get(k, (None, None))
                    row[f"{k}_ci_low"], row[f"{k}_ci_high"] = lo, hi
                rows[(set_name, measure)] = row
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index = pd.MultiIndex.from_tuples(list(rows), names=["attributes", "measure"])
        return out


def list_fairness(
    lists: Any, k: int = 20, bootstrap: int = 200, seed: int = 0, *, confidence: float = 0.95
) -> ListResult:
    """FaiRLLM's list metrics (Jaccard, SERP*, PRAG*; SNSR/SNSV) of ranked lists, as
    ``fairrec metrics --lists`` computes them. ``lists``: a JSONL path, a DataFrame or
    records with ``instruction_id``, ``variant`` and ``items`` (a list of titles)."""
    source, content = _input(lists, LIST_FIELDS, (), "lists")
    return ListResult(
        _native.list_fairness(source, content, int(k), int(bootstrap), int(seed), float(confidence))
    )


class StereotypeResult:
    """The items' stereotype z-scores per attribute (paper B's Figure 3), as ``fairrec data
    stereotypes`` writes them in ``stereotypes.json``."""

    def __init__(self, text: str):
        self._list = json.loads(text)

    def to_list(self) -> List[Dict[str, Any]]:
        return copy.deepcopy(self._list)

    @property
    def auto(self) -> Dict[str, float]:
        """The z* that ``--z-threshold auto`` picks, per attribute."""
        return {d["attribute"]: d["auto"] for d in self._list}

    def sizes(self) -> pd.DataFrame:
        """Items per stereotype group at each threshold z*, indexed (attribute, z)."""
        rows = {}
        for d in self._list:
            names = [g["group"] for g in d["groups"]]
            for z, counts in d["sizes"].items():
                rows[(d["attribute"], float(z))] = dict(zip(names, counts))
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index = pd.MultiIndex.from_tuples(list(rows), names=["attribute", "z"])
        return out.sort_index()

    def top_items(self) -> pd.DataFrame:
        """Each group's items of highest z-score: attribute, group, item_id, title, z."""
        rows = [
            {"attribute": d["attribute"], "group": g["group"], "item_id": i, "title": t, "z": z}
            for d in self._list
            for g in d["groups"]
            for i, t, z in g["top"]
        ]
        return pd.DataFrame(rows, columns=["attribute", "group", "item_id", "title", "z"])


def stereotype(
    data: PathLike, attributes: Union[None, str, Sequence[str]] = None, raw_counts: bool = False
) -> StereotypeResult:
    """The stereotype z-score distributions of a prepared dataset's train split (all its
    attributes unless ``attributes``), to choose ``z_threshold``."""
    attrs = None
    if attributes is not None:
        attrs = [a.strip() for a in (attributes.split(",") if isinstance(attributes, str) else attributes)]
    return StereotypeResult(_native.stereotypes(os.fspath(data), attrs, raw_counts))


def _frame(samples_json: str) -> pd.DataFrame:
    """Samples as a DataFrame: nested maps become columns (``attributes.gender``)."""
    return pd.json_normalize(json.loads(samples_json), sep=".")


def load_split(data: PathLike, split: str = "test") -> pd.DataFrame:
    """One split (``train``, ``valid`` or ``test``) of a prepared dataset, one sample a row."""
    return _frame(_native.load_split(os.fspath(data), split))


def prepare(
    dataset: str,
    raw: PathLike,
    out: PathLike,
    protocol: str = "cl-moe",
    seed: int = 0,
    force: bool = False,
    **options: Any,
) -> Dict[str, pd.DataFrame]:
    """Prepare ``dataset`` (``ml-1m``, ``ml-100k``, ``sushi3``, ``book-crossing``) from its
    original files in ``raw`` under ``protocol`` (``cl-moe`` or ``mos``) into ``out``, as
    ``fairrec data prepare`` does (the same files, ``out/manifest.json`` included).
    ``options`` override the protocol's settings by their manifest names (``attributes``,
    ``split``, ``like_threshold``, ``max_liked``, ...). Returns the splits as DataFrames."""
    _native.prepare(
        dataset,
        os.fspath(raw),
        os.fspath(out),
        protocol,
        int(seed),
        json.dumps({k: _plain(v) for k, v in options.items()}) if options else None,
        force,
    )
    return {split: load_split(out, split) for split in ("train", "valid", "test")}
