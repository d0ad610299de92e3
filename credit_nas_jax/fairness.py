"""How approvals, ranking and error rates differ between groups of borrowers.

A report only: nothing here changes a score or a decision. For one
sensitive column (a gender, an age binned by ``bins``), per group:

* ``count``; ``approval_rate``: the share approved at the policy's bands
  (any decision but refuse);
* with outcomes (label 1 = good credit, 0 = a default): ``auc`` of the
  scores, ``tpr`` (true positive rate: the share of good borrowers
  approved) and ``fpr`` (false positive rate: the share of defaulters
  approved); a group without both outcomes has no AUC;
* across the groups: ``demographic_parity_difference`` (the largest
  approval rate minus the smallest) and ``equal_opportunity_difference``
  (the same of the true positive rates), fairlearn's definitions
  (``fairlearn.metrics.demographic_parity_difference`` and
  ``equal_opportunity_difference``, checked against them in the tests).

A group of fewer than ``MIN_GROUP_ROWS`` rows is listed with its count
alone and left out of the differences; that, a column that is missing or
constant, and a binned column that is not numeric each add a one-line
message naming the column to the report's ``messages``, and the rest of
the report is still made.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as sk_metrics

MIN_GROUP_ROWS = 30
MISSING_GROUP = "missing"


def _number(value: float) -> str:
  """A bin edge as a group name shows it: 25, not 25.0."""
  return f"{value:g}"


def group_labels(values: np.ndarray,
                 bins: Sequence[float] = ()) -> np.ndarray:
  """Every row's group: its value as text, or its interval of ``bins``.

  Args:
    values: [n] the sensitive column (text or numbers; missing values form
      the group ``missing``).
    bins: increasing inner edges for a numeric column: (25, 35) makes the
      groups ``(-inf, 25)``, ``[25, 35)`` and ``[35, inf)``.

  Returns:
    [n] group names (object array).

  Raises:
    ValueError: ``bins`` are not increasing, or a binned column holds a
      value that is not a number.
  """
  values = np.asarray(values, dtype=object)
  missing = np.asarray(pd.isna(values), dtype=bool)
  if not len(bins):
    return np.where(missing, MISSING_GROUP, values.astype(str)).astype(object)
  edges = np.asarray(bins, dtype=np.float64)
  if not np.isfinite(edges).all() or np.any(np.diff(edges) <= 0):
    raise ValueError(f"bins {list(bins)} must be finite and increasing")
  numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
      np.float64)
  bad = ~missing & np.isnan(numbers)
  if bad.any():
    raise ValueError(f"holds {values[bad][0]!r}, not a number, so it cannot "
                     f"be binned by {list(bins)}")
  names = ([f"(-inf, {_number(edges[0])})"]
           + [f"[{_number(a)}, {_number(b)})"
              for a, b in zip(edges[:-1], edges[1:])]
           + [f"[{_number(edges[-1])}, inf)"])
  index = np.searchsorted(edges, np.where(missing, 0.0, numbers),
                          side="right")
  return np.where(missing, MISSING_GROUP,
                  np.asarray(names, dtype=object)[index]).astype(object)


def _group_order(name: str) -> tuple:
  """Sorts intervals by their lower edge, before other names, ``missing``
  last."""
  if name == MISSING_GROUP:
    return (2, 0.0, name)
  if name[:1] in "([" and name.endswith(")") and "," in name:
    return (0, float(name[1:].split(",")[0]), name)
  return (1, 0.0, name)


def _rate(selected: np.ndarray) -> float | None:
  """The share of True, or None for no rows."""
  return float(selected.mean()) if selected.size else None


def group_metrics(approved: np.ndarray, labels: np.ndarray | None = None,
                  scores: np.ndarray | None = None) -> dict[str, Any]:
  """One group's count, approval rate and, with outcomes, AUC, TPR, FPR.

  Args:
    approved: [n] whether each borrower was approved.
    labels: [n] 1 for good credit, 0 for a default, or None.
    scores: [n] probabilities of good credit (for the AUC), or None.

  Returns:
    ``count``, ``approval_rate``, and with labels ``auc`` (None without
    both outcomes or scores), ``tpr``, ``fpr`` (None without good or bad
    borrowers) and ``default_rate``.
  """
  approved = np.asarray(approved, dtype=bool)
  result = {"count": int(approved.size), "approval_rate": _rate(approved)}
  if labels is None:
    return result
  good = np.asarray(labels, dtype=np.float64) > 0.5
  both = good.any() and not good.all()
  result["auc"] = (float(sk_metrics.roc_auc_score(good, scores))
                   if both and scores is not None else None)
  result["tpr"] = _rate(approved[good])
  result["fpr"] = _rate(approved[~good])
  result["default_rate"] = _rate(~good)
  return result


def _spread(groups: dict[str, dict[str, Any]], key: str) -> float | None:
  """Largest minus smallest ``key`` over the groups that have it."""
  values = [g[key] for g in groups.values() if g.get(key) is not None]
  return float(max(values) - min(values)) if len(values) > 1 else None


def _grouped(column: str, groups: np.ndarray, approved: np.ndarray,
             labels: np.ndarray | None, scores: np.ndarray | None
             ) -> tuple[dict[str, dict[str, Any]], list[str]]:
  """Every group's metrics (a small group's count alone) and the messages."""
  report, messages = {}, []
  names, counts = np.unique(groups.astype(str), return_counts=True)
  order = sorted(range(names.size), key=lambda i: _group_order(names[i]))
  names, counts = [str(names[i]) for i in order], counts[order]
  if len(names) == 1:
    messages.append(f"fairness: sensitive column {column!r} is constant (one "
                    f"group, {names[0]!r}): no differences between groups")
  for name, count in zip(names, counts):
    rows = groups == name
    if count < MIN_GROUP_ROWS:
      messages.append(f"fairness: sensitive column {column!r} group "
                      f"{name!r} has {count} rows, under {MIN_GROUP_ROWS}: "
                      "its rates are left out")
      report[name] = {"count": int(count)}
      continue
    report[name] = group_metrics(
        approved[rows], None if labels is None else labels[rows],
        None if scores is None else scores[rows])
  return report, messages


def sensitive_report(column: str, values: np.ndarray | None,
                     approved: np.ndarray, labels: np.ndarray | None = None,
                     scores: np.ndarray | None = None,
                     bins: Sequence[float] = ()) -> dict[str, Any]:
  """The fairness report of one sensitive column.

  Args:
    column: the column's name (every message names it).
    values: [n] its values, or None where the table lacks the column.
    approved: [n] whether each borrower was approved at the bands.
    labels: [n] 1 for good credit, 0 for a default, or None (no AUC, TPR,
      FPR or equal-opportunity difference).
    scores: [n] probabilities of good credit, for the AUC.
    bins: inner edges that group a numeric column (:func:`group_labels`).

  Returns:
    ``column``, ``bins``, ``min_group_rows``, ``groups`` (name -> metrics),
    ``demographic_parity_difference``, ``equal_opportunity_difference``
    (None where fewer than two groups have the rate) and ``messages``.
  """
  report = {"column": column, "bins": [float(b) for b in bins],
            "min_group_rows": MIN_GROUP_ROWS, "groups": {},
            "demographic_parity_difference": None,
            "equal_opportunity_difference": None, "messages": []}
  if values is None:
    report["messages"].append(f"fairness: sensitive column {column!r} is not "
                              "in the table: no fairness report")
    return report
  try:
    groups = group_labels(values, bins)
  except ValueError as error:
    report["messages"].append(f"fairness: sensitive column {column!r} "
                              f"{error}: no fairness report")
    return report
  approved = np.asarray(approved, dtype=bool)
  labels = None if labels is None else np.asarray(labels, np.float64)
  scores = None if scores is None else np.asarray(scores, np.float64)
  report["groups"], report["messages"] = _grouped(column, groups, approved,
                                                  labels, scores)
  if labels is None:
    report["messages"].append(f"fairness: sensitive column {column!r}: no "
                              "outcomes given, so no AUC, TPR, FPR or "
                              "equal-opportunity difference")
  report["demographic_parity_difference"] = _spread(report["groups"],
                                                    "approval_rate")
  report["equal_opportunity_difference"] = _spread(report["groups"], "tpr")
  return report
