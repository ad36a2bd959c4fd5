"""fairrec from Python: audit an LLM-based recommender's predictions for unfairness.

The figures are fairrec's own (the same Rust code as the ``fairrec`` command, which this
package also installs): paper A's GD and Rate over counterfactual prompt variants, paper
B's stereotype-aware fairness, FaiRLLM's list metrics, and fairlearn / Aequitas-style
group metrics, each with bootstrap intervals over users.

>>> import fairrec
>>> result = fairrec.audit_predictions("predictions.jsonl", data="prepared/")
>>> result.by_group("gender")          # the users' true groups, one row each
>>> result.by_variant("age,gender")    # the counterfactual groups (MultiIndex)
>>> result.to_dict()["fairness"]       # the metrics.json structure

Errors are :class:`FairrecError`, with the message the command prints.
"""

from ._native import FairrecError, __version__, git_revision
from ._api import (
    AuditResult,
    ListResult,
    StereotypeResult,
    audit_predictions,
    list_fairness,
    load_split,
    prepare,
    stereotype,
)

__all__ = [
    "AuditResult",
    "FairrecError",
    "ListResult",
    "StereotypeResult",
    "__version__",
    "audit_predictions",
    "git_revision",
    "list_fairness",
    "load_split",
    "prepare",
    "stereotype",
]
