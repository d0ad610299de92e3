"""Calibrated probabilities of good credit: a map fitted on validation rows.

A network's score is a probability of good credit that nothing has
calibrated (weight decay, early stopping and an ensemble's mean all move
it), so a decision band of 0.9 need not mean a 10% default rate. A
calibration map is fitted on validation rows only and applied to every
later score:

* Candidates: Platt scaling (logistic regression of the label on the
  score's logit, ``sigmoid(slope * logit(score) + intercept)``) and
  isotonic regression (scikit-learn's pool-adjacent-violators: a
  non-decreasing step function, applied by linear interpolation between
  its thresholds and held constant beyond them, its values clipped to
  [``PROBABILITY_FLOOR``, 1 - ``PROBABILITY_FLOOR``]).
* Choice: each candidate's log loss out of fold (``FOLDS`` stratified
  folds of the validation rows; in sample, isotonic regression would
  always win). A candidate replaces the identity only where its out-of-fold
  log loss is lower by more than ``CONFIDENCE`` paired standard errors
  (of the per-row differences), so that a small validation set (german's
  200 rows) keeps the scores as they are unless the evidence is clear; the
  better such candidate is refitted on every validation row. The identity
  is also kept where the refitted map is worse on the validation rows, so
  the map never makes the validation log loss worse.
* Figures (:func:`calibration_metrics`): Brier score, expected calibration
  error (ECE: ``BINS`` equal-width bins of the predicted probability over
  [0, 1], the last one closed; the sum over bins of the bin's share of the
  rows times |observed good rate - mean prediction|) and log loss (scores
  clipped to [1e-7, 1 - 1e-7], as :mod:`credit_nas_jax.metrics`).
* Storage: a map is a JSON object (``format``, ``method``, ``parameters``,
  how it was fitted); no pickle. :func:`check_map` validates one read back.

Labels are 1 for good credit and 0 for a default, as everywhere in the
package; the calibrated default probability is 1 minus the calibrated score.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from sklearn import isotonic
from sklearn import linear_model
from sklearn import metrics as sk_metrics
from sklearn import model_selection

FORMAT = "credit_nas_jax.calibration"
METHODS = ("identity", "platt", "isotonic")
BINS = 10
FOLDS = 5
CONFIDENCE = 1.0
PROBABILITY_FLOOR = 1e-6
_LOG_LOSS_CLIP = 1e-7
_LOGIT_CLIP = 1e-7


def _labels_and_scores(labels: np.ndarray, scores: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Both as float64 1-d arrays of one length (ValueError otherwise)."""
  labels = np.asarray(labels, dtype=np.float64)
  scores = np.asarray(scores, dtype=np.float64)
  if labels.ndim != 1 or labels.shape != scores.shape:
    raise ValueError(f"labels {labels.shape} and scores {scores.shape} must "
                     "be equal 1-d shapes")
  if not labels.size:
    raise ValueError("no rows to calibrate on or to measure")
  if not np.isin(labels, (0.0, 1.0)).all():
    raise ValueError("labels must be 0 (default) or 1 (good credit)")
  if not (np.isfinite(scores).all() and (scores >= 0).all()
          and (scores <= 1).all()):
    raise ValueError("scores must be probabilities in [0, 1]")
  return labels, scores


def brier_score(labels: np.ndarray, scores: np.ndarray) -> float:
  """Mean squared difference between the probability and the 0/1 label."""
  labels, scores = _labels_and_scores(labels, scores)
  return float(np.mean((scores - labels) ** 2))


def reliability_bins(labels: np.ndarray, scores: np.ndarray,
                     bins: int = BINS) -> dict[str, np.ndarray]:
  """Rows, mean prediction and observed good rate per equal-width bin.

  Args:
    labels: [n] 1 for good credit, 0 for a default.
    scores: [n] probabilities of good credit.
    bins: equal-width bins over [0, 1]; the last one holds 1.

  Returns:
    ``count``, ``mean_score`` and ``observed`` ([bins] each; an empty bin's
    mean and observed rate are NaN).
  """
  labels, scores = _labels_and_scores(labels, scores)
  index = np.minimum((scores * bins).astype(np.int64), bins - 1)
  count = np.bincount(index, minlength=bins).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean_score = np.bincount(index, scores, minlength=bins) / count
    observed = np.bincount(index, labels, minlength=bins) / count
  return {"count": count, "mean_score": mean_score, "observed": observed}


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray,
                               bins: int = BINS) -> float:
  """ECE over ``bins`` equal-width bins (see the module docstring)."""
  table = reliability_bins(labels, scores, bins)
  full = table["count"] > 0
  gaps = np.abs(table["observed"][full] - table["mean_score"][full])
  return float(np.sum(table["count"][full] * gaps) / table["count"].sum())


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
  """Mean negative log likelihood of the labels, scores clipped to
  [1e-7, 1 - 1e-7]."""
  labels, scores = _labels_and_scores(labels, scores)
  clipped = np.clip(scores, _LOG_LOSS_CLIP, 1 - _LOG_LOSS_CLIP)
  return float(sk_metrics.log_loss(labels, clipped, labels=[0, 1]))


def _row_log_losses(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """Every row's negative log likelihood (scores clipped as
  :func:`log_loss`'s)."""
  clipped = np.clip(scores, _LOG_LOSS_CLIP, 1 - _LOG_LOSS_CLIP)
  return -np.where(labels > 0.5, np.log(clipped), np.log1p(-clipped))


def calibration_metrics(labels: np.ndarray,
                        scores: np.ndarray) -> dict[str, float]:
  """Brier score, ECE (``BINS`` equal-width bins) and log loss."""
  return {"brier": brier_score(labels, scores),
          "ece": expected_calibration_error(labels, scores),
          "log_loss": log_loss(labels, scores)}


def _logit(scores: np.ndarray) -> np.ndarray:
  """log(p / (1 - p)), p clipped away from 0 and 1."""
  clipped = np.clip(scores, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
  return np.log(clipped) - np.log1p(-clipped)


def fit_platt(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
  """Platt scaling's parameters: a logistic regression of the label on the
  score's logit (unpenalised)."""
  labels, scores = _labels_and_scores(labels, scores)
  model = linear_model.LogisticRegression(C=1e6, max_iter=1000)
  model.fit(_logit(scores)[:, None], labels.astype(int))
  return {"slope": float(model.coef_[0, 0]),
          "intercept": float(model.intercept_[0])}


def fit_isotonic(labels: np.ndarray,
                 scores: np.ndarray) -> dict[str, list[float]]:
  """Isotonic regression's thresholds: (scores, probabilities), both
  increasing, the probabilities clipped to the floor."""
  labels, scores = _labels_and_scores(labels, scores)
  model = isotonic.IsotonicRegression(y_min=0.0, y_max=1.0,
                                      out_of_bounds="clip")
  model.fit(scores, labels)
  probabilities = np.clip(model.y_thresholds_, PROBABILITY_FLOOR,
                          1 - PROBABILITY_FLOOR)
  return {"scores": [float(x) for x in model.X_thresholds_],
          "probabilities": [float(y) for y in probabilities]}


_FITS = {"platt": fit_platt, "isotonic": fit_isotonic}


def _apply(method: str, parameters: Mapping[str, Any],
           scores: np.ndarray) -> np.ndarray:
  """One method's calibrated probabilities (float64)."""
  scores = np.asarray(scores, dtype=np.float64)
  if method == "identity":
    return scores
  if method == "platt":
    logits = parameters["slope"] * _logit(scores) + parameters["intercept"]
    return 1 / (1 + np.exp(-logits))
  if method == "isotonic":
    return np.interp(scores, parameters["scores"],
                     parameters["probabilities"])
  raise ValueError(f"unknown calibration method {method!r}; expected one of "
                   f"{list(METHODS)}")


def apply_map(calibration_map: Mapping[str, Any] | None,
              scores: np.ndarray) -> np.ndarray:
  """Calibrated probabilities of good credit; ``None`` (no map) returns the
  scores as they are (float64); NaN stays NaN."""
  if calibration_map is None:
    return np.asarray(scores, dtype=np.float64)
  return _apply(calibration_map["method"], calibration_map["parameters"],
                scores)


def _out_of_fold_log_losses(labels: np.ndarray, scores: np.ndarray,
                            folds: int, seed: int) -> dict[str, np.ndarray]:
  """Every row's log loss under each candidate fitted on the folds that do
  not hold the row; the identity's on every row."""
  losses = {"identity": _row_log_losses(labels, scores)}
  if folds < 2:
    return losses
  splitter = model_selection.StratifiedKFold(folds, shuffle=True,
                                             random_state=seed)
  for method, fit in _FITS.items():
    predicted = np.empty_like(scores)
    for fit_rows, held_rows in splitter.split(scores[:, None], labels):
      parameters = fit(labels[fit_rows], scores[fit_rows])
      predicted[held_rows] = _apply(method, parameters, scores[held_rows])
    losses[method] = _row_log_losses(labels, predicted)
  return losses


def _gain_standard_error(identity: np.ndarray,
                         candidate: np.ndarray) -> float:
  """The standard error of the mean per-row log-loss gain over the
  identity."""
  gains = identity - candidate
  return float(gains.std(ddof=1) / math.sqrt(gains.size)) if (
      gains.size > 1) else math.inf


def _choose(rows: dict[str, np.ndarray], confidence: float) -> str:
  """The candidate of the lowest mean loss among those that beat the
  identity by more than ``confidence`` standard errors, else the identity
  (ties go to the simpler map, ``METHODS``' order)."""
  identity = rows["identity"]
  clear = [m for m in rows if m != "identity" and (
      identity.mean() - rows[m].mean()
      > confidence * _gain_standard_error(identity, rows[m]))]
  return min(clear, key=lambda m: (rows[m].mean(), METHODS.index(m)),
             default="identity")


def fit_calibration(labels: np.ndarray, scores: np.ndarray, *,
                    folds: int = FOLDS, seed: int = 0,
                    confidence: float = CONFIDENCE) -> dict[str, Any]:
  """The calibration map of validation rows (see the module docstring).

  Args:
    labels: [n] validation labels, 1 for good credit, 0 for a default.
    scores: [n] the model's validation probabilities of good credit.
    folds: stratified folds that choose between the candidates (fewer where
      a class has fewer rows; under 2 the identity is kept).
    seed: the folds' shuffle.
    confidence: paired standard errors by which a candidate's out-of-fold
      log loss must beat the identity's (0: any gain).

  Returns:
    The map: ``format``, ``method`` (one of ``METHODS``), ``parameters``,
    ``rows``, ``folds``, ``confidence``, and per candidate its
    ``out_of_fold_log_loss`` and the standard error of its gain over the
    identity (``out_of_fold_gain_se``).
  """
  labels, scores = _labels_and_scores(labels, scores)
  smaller_class = int(min(labels.sum(), labels.size - labels.sum()))
  folds = min(int(folds), smaller_class)
  rows = _out_of_fold_log_losses(labels, scores, folds, seed)
  method = _choose(rows, confidence)
  parameters = {} if method == "identity" else _FITS[method](labels, scores)
  before = log_loss(labels, scores)
  if log_loss(labels, _apply(method, parameters, scores)) > before:
    # A solver's tolerance, on scores already calibrated: never worse.
    method, parameters = "identity", {}
  return {"format": FORMAT, "method": method, "parameters": parameters,
          "rows": int(labels.size), "folds": folds,
          "confidence": float(confidence),
          "out_of_fold_log_loss": {m: float(r.mean())
                                   for m, r in rows.items()},
          "out_of_fold_gain_se": {
              m: _gain_standard_error(rows["identity"], r)
              for m, r in rows.items() if m != "identity"}}


def calibration_report(calibration_map: Mapping[str, Any] | None,
                       labels: np.ndarray,
                       scores: np.ndarray) -> dict[str, dict[str, float]]:
  """``before`` and ``after`` :func:`calibration_metrics` of some rows (the
  test rows, say) under a map."""
  return {"before": calibration_metrics(labels, scores),
          "after": calibration_metrics(labels,
                                       apply_map(calibration_map, scores))}


def _check_parameters(method: str, parameters: Any) -> None:
  """Raises ValueError unless ``parameters`` fit ``method``."""
  if not isinstance(parameters, dict):
    raise ValueError("'parameters' must be an object")
  if method == "platt":
    values = [parameters.get(k) for k in ("slope", "intercept")]
    if set(parameters) != {"slope", "intercept"} or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v) for v in values):
      raise ValueError("platt parameters must be finite 'slope' and "
                       "'intercept'")
  elif method == "isotonic":
    x = np.asarray(parameters.get("scores", []), dtype=np.float64)
    y = np.asarray(parameters.get("probabilities", []), dtype=np.float64)
    if (set(parameters) != {"scores", "probabilities"} or x.ndim != 1
        or not x.size or x.shape != y.shape or not np.isfinite(x).all()
        or not np.isfinite(y).all() or np.any(np.diff(x) <= 0)
        or np.any(np.diff(y) < 0) or y.min() < 0 or y.max() > 1):
      raise ValueError("isotonic parameters must be 'scores' (increasing) "
                       "and 'probabilities' (non-decreasing, in [0, 1]) of "
                       "one length")
  elif parameters:
    raise ValueError("the identity map takes no parameters")


def check_map(data: Any) -> dict[str, Any]:
  """A map read back from JSON, checked.

  Raises:
    ValueError: not a calibration map, an unknown method, or parameters
      that do not fit it.
  """
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    raise ValueError(f"not a {FORMAT} object")
  method = data.get("method")
  if method not in METHODS:
    raise ValueError(f"unknown calibration method {method!r}; expected one "
                     f"of {list(METHODS)}")
  _check_parameters(method, data.get("parameters"))
  return data


def describe(calibration_map: Mapping[str, Any] | None) -> str:
  """One line saying which map a model applies."""
  if calibration_map is None:
    return ("the model has no calibration map: scores are the network's "
            "uncalibrated probabilities of good credit")
  return (f"calibrated scores: {calibration_map['method']} map fitted on "
          f"{calibration_map.get('rows', '?')} validation rows")
