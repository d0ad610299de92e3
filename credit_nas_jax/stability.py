"""Population stability: is a scored batch the population the model knows?

The saved model keeps its training population (``population.json``): for
the model's score and for every feature, the training rows' bins and the
share of rows in each. A batch's population stability index (PSI) against
it is

    PSI = sum over bins of (batch share - training share)
                           * ln(batch share / training share),

each share floored at ``SHARE_FLOOR`` so that an empty bin counts as a
large shift instead of an infinite one. The usual reading: under 0.1
stable, 0.1 to 0.25 shifting, over ``MAJOR_SHIFT`` (0.25) a major shift.

* Numeric values (the score, a numeric feature): decile bins, the unique
  training quantiles at 10%, ..., 90% as inner edges (numpy's "lower"
  quantile: every edge is a training value), bin i holding
  ``edges[i-1] <= value < edges[i]``; a feature with many equal values
  (a grade, an overdue degree that is mostly 0) has fewer bins. Missing
  values have a bin of their own, last.
* Categorical features: one bin per training category, and a last bin
  for missing values and categories unseen in training.
* The score is the network's probability before calibration: a
  calibration map is monotone, so it keeps the score's bins, and an
  isotonic map's ties would merge them.
* A batch of fewer than ``MIN_ROWS`` rows (10 x 10: ten rows per decile)
  is too small for deciles; it gets a note instead of a number.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

FORMAT = "credit_nas_jax.population"
BINS = 10
MIN_ROWS = BINS * BINS
SHARE_FLOOR = 1e-4
STABLE_BELOW = 0.1
MAJOR_SHIFT = 0.25
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def _shares(counts: np.ndarray) -> list[float]:
  """Counts as shares of their total (all 0 for no rows)."""
  total = counts.sum()
  return [float(c / total) if total else 0.0 for c in counts]


def _missing(values: np.ndarray) -> np.ndarray:
  """Where an array holds a missing value (NaN, None or pandas' NA)."""
  return np.asarray(pd.isna(values), dtype=bool)


def fit_numeric(values: np.ndarray, bins: int = BINS) -> dict[str, Any]:
  """Decile bins of numeric training values and their shares.

  Args:
    values: [n] training values (NaN: missing).
    bins: quantile bins (10: deciles).

  Returns:
    ``kind``, ``edges`` (the unique inner quantiles) and ``shares`` (one
    per bin, then the missing share).
  """
  values = np.asarray(values, dtype=np.float64)
  finite = values[np.isfinite(values)]
  levels = np.arange(1, bins) / bins
  edges = (np.unique(np.quantile(finite, levels, method="lower"))
           if finite.size else np.zeros(0))
  return {"kind": NUMERIC, "edges": [float(e) for e in edges],
          "shares": _shares(_numeric_counts(edges, values))}


def _numeric_counts(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
  """Rows per numeric bin, then missing (NaN or infinite) rows."""
  values = np.asarray(values, dtype=np.float64)
  finite = np.isfinite(values)
  index = np.searchsorted(np.asarray(edges, np.float64), values[finite],
                          side="right")
  counts = np.bincount(index, minlength=len(edges) + 1)
  return np.append(counts, (~finite).sum()).astype(np.float64)


def fit_categorical(values: np.ndarray) -> dict[str, Any]:
  """One bin per training category, then missing or unseen; their shares."""
  values = np.asarray(values, dtype=object)
  present = values[~_missing(values)].astype(str)
  categories = sorted(set(present.tolist()))
  return {"kind": CATEGORICAL, "categories": categories,
          "shares": _shares(_categorical_counts(categories, values))}


def _categorical_counts(categories: Sequence[str],
                        values: np.ndarray) -> np.ndarray:
  """Rows per training category, then missing or unseen rows."""
  values = np.asarray(values, dtype=object)
  text = np.where(_missing(values), None, values.astype(str))
  counts = [float(np.sum(text == c)) for c in categories]
  return np.asarray(counts + [values.size - sum(counts)])


def batch_shares(reference: Mapping[str, Any],
                 values: np.ndarray) -> np.ndarray:
  """A batch's shares in a reference's bins (:func:`fit_numeric` or
  :func:`fit_categorical`)."""
  if reference["kind"] == NUMERIC:
    counts = _numeric_counts(reference["edges"], values)
  else:
    counts = _categorical_counts(reference["categories"], values)
  return np.asarray(_shares(counts))


def psi(expected: np.ndarray, actual: np.ndarray,
        floor: float = SHARE_FLOOR) -> float:
  """The population stability index of two share vectors over one set of
  bins, each share floored at ``floor``."""
  expected = np.maximum(np.asarray(expected, np.float64), floor)
  actual = np.maximum(np.asarray(actual, np.float64), floor)
  if expected.shape != actual.shape:
    raise ValueError(f"share vectors {expected.shape} and {actual.shape} "
                     "must cover the same bins")
  return float(np.sum((actual - expected) * np.log(actual / expected)))


def level(value: float) -> str:
  """``stable`` (< 0.1), ``shifting`` (0.1 to 0.25) or ``major shift``."""
  if value < STABLE_BELOW:
    return "stable"
  return "shifting" if value <= MAJOR_SHIFT else "major shift"


def fit_population(scores: np.ndarray, columns: Mapping[str, np.ndarray],
                   categorical: Sequence[str] = ()) -> dict[str, Any]:
  """The training population of a model: its score's and every feature's
  bins and shares.

  Args:
    scores: [n] the model's probabilities of good credit on training rows.
    columns: feature name -> [n] training values.
    categorical: features binned by category instead of deciles.

  Returns:
    The ``population.json`` object: ``format``, ``rows``, ``bins``,
    ``score`` and ``features`` (name -> bins and shares).
  """
  return {"format": FORMAT, "rows": int(np.asarray(scores).size),
          "bins": BINS, "score": fit_numeric(scores),
          "features": {name: (fit_categorical(values) if name in categorical
                              else fit_numeric(values))
                       for name, values in columns.items()}}


def _entry(reference: Mapping[str, Any], values: np.ndarray | None,
           rows: int, min_rows: int) -> dict[str, Any]:
  """One PSI entry of a report, or the reason there is none."""
  if values is None:
    return {"psi": None, "note": "not in the batch"}
  if rows < min_rows:
    return {"psi": None, "note": f"batch of {rows} rows is too small for "
                                 f"deciles (needs at least {min_rows})"}
  value = psi(reference["shares"], batch_shares(reference, values))
  return {"psi": value, "level": level(value)}


def stability_report(population: Mapping[str, Any], scores: np.ndarray,
                     columns: Mapping[str, np.ndarray], *,
                     min_rows: int = MIN_ROWS) -> dict[str, Any]:
  """A batch's PSI against the training population, score and features.

  Args:
    population: the model's :func:`fit_population` object.
    scores: [n] the batch's probabilities of good credit before
      calibration.
    columns: feature name -> [n] the batch's values (a feature the
      population holds and the batch lacks is reported as missing).
    min_rows: fewest rows that get a number.

  Returns:
    ``rows``, ``min_rows``, ``score`` and ``features`` (each ``psi`` and
    ``level``, or ``psi`` None and a ``note``), and ``major_shifts``: the
    features over ``MAJOR_SHIFT``.
  """
  rows = int(np.asarray(scores).size)
  features = {name: _entry(reference, columns.get(name), rows, min_rows)
              for name, reference in population["features"].items()}
  return {"rows": rows, "min_rows": min_rows,
          "training_rows": population.get("rows"),
          "score": _entry(population["score"], scores, rows, min_rows),
          "features": features,
          "major_shifts": [name for name, entry in features.items()
                           if entry["psi"] is not None
                           and entry["psi"] > MAJOR_SHIFT]}


def _check_reference(name: str, reference: Any) -> None:
  """Raises ValueError unless ``reference`` is one variable's bins."""
  if not isinstance(reference, dict) or reference.get("kind") not in (
      NUMERIC, CATEGORICAL):
    raise ValueError(f"{name}: expected an object of kind {NUMERIC!r} or "
                     f"{CATEGORICAL!r}")
  shares = np.asarray(reference.get("shares", []), dtype=np.float64)
  if reference["kind"] == NUMERIC:
    edges = np.asarray(reference.get("edges", []), dtype=np.float64)
    bins, ordered = edges.size + 2, bool(np.all(np.diff(edges) > 0))
    ordered = ordered and bool(np.isfinite(edges).all())
  else:
    categories = reference.get("categories", [])
    bins = len(categories) + 1
    ordered = (all(isinstance(c, str) for c in categories)
               and len(set(categories)) == len(categories))
  if (not ordered or shares.shape != (bins,) or not np.isfinite(shares).all()
      or shares.min() < 0 or abs(shares.sum() - 1) > 1e-6):
    raise ValueError(f"{name}: edges or categories and shares do not fit "
                     "(shares must be one per bin, summing to 1)")


def check_population(data: Any) -> dict[str, Any]:
  """A population read back from JSON, checked.

  Raises:
    ValueError: not a population object, or bins and shares that do not
      fit.
  """
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    raise ValueError(f"not a {FORMAT} object")
  if not isinstance(data.get("features"), dict):
    raise ValueError("'features' must be an object")
  _check_reference("score", data.get("score"))
  for name, reference in data["features"].items():
    _check_reference(f"feature {name!r}", reference)
  return data
