"""Credit-scoring metrics: ROC AUC, KS, Gini and log loss.

Scores are probabilities of good credit (higher = better) and labels are
1 for good, 0 for a default; the figures are the same as those of the
default probability against the default label.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import metrics as sk_metrics


def ks_statistic(labels: np.ndarray, scores: np.ndarray) -> float:
  """Kolmogorov-Smirnov: the largest gap between the good and bad score CDFs."""
  false_positive, true_positive, _ = sk_metrics.roc_curve(labels, scores)
  return float(np.max(true_positive - false_positive))


def classification_metrics(labels: np.ndarray,
                           scores: np.ndarray) -> dict[str, float]:
  """ROC AUC, KS, Gini (2 AUC - 1) and log loss of good-credit scores."""
  labels = np.asarray(labels, dtype=float)
  scores = np.asarray(scores, dtype=float)
  if labels.shape != scores.shape or labels.ndim != 1:
    raise ValueError(f"labels {labels.shape} and scores {scores.shape} must "
                     "be equal 1-d shapes")
  if np.unique(labels).size < 2:
    raise ValueError("metrics need both good and bad borrowers")
  auc = float(sk_metrics.roc_auc_score(labels, scores))
  clipped = np.clip(scores, 1e-7, 1 - 1e-7)
  return {
      "auc": auc,
      "ks": ks_statistic(labels, scores),
      "gini": 2 * auc - 1,
      "log_loss": float(sk_metrics.log_loss(labels, clipped, labels=[0, 1])),
      "count": int(labels.size),
      "default_rate": float(1 - labels.mean()),
  }


def _midranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks, ties given their average rank."""
  ordered = np.sort(values)
  below = np.searchsorted(ordered, values, side="left")
  upto = np.searchsorted(ordered, values, side="right")
  return (below + upto + 1) / 2


def auc_difference_se(labels: np.ndarray, scores_a: np.ndarray,
                      scores_b: np.ndarray) -> float:
  """Standard error of AUC(a) - AUC(b), both scored on the same borrowers.

  DeLong, DeLong and Clarke-Pearson (Biometrics, 1988): each AUC is the
  mean of per-borrower placements (a good borrower's share of bad ones
  scored below it, a bad borrower's share of good ones above it); the
  variance of the difference is that of the paired placement differences,
  over the good and the bad borrowers. Two scorings that differ little
  differ in few placements, so their difference is known far better than
  either AUC.
  """
  labels = np.asarray(labels) > 0.5
  good, bad = int(labels.sum()), int((~labels).sum())
  if good < 2 or bad < 2:
    raise ValueError("a standard error needs two good and two bad borrowers"
                     f" (got {good} good, {bad} bad)")
  placements = []
  for scores in (scores_a, scores_b):
    scores = np.asarray(scores, np.float64)
    if scores.shape != labels.shape:
      raise ValueError(f"scores {scores.shape} and labels {labels.shape} "
                       "must have equal shapes")
    overall = _midranks(scores)
    good_placement = (overall[labels] - _midranks(scores[labels])) / bad
    bad_placement = 1 - (overall[~labels] - _midranks(scores[~labels])) / good
    placements.append((good_placement, bad_placement))
  (good_a, bad_a), (good_b, bad_b) = placements
  variance = (np.var(good_a - good_b, ddof=1) / good
              + np.var(bad_a - bad_b, ddof=1) / bad)
  return float(np.sqrt(variance))


def roc_auc_from_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """ROC AUC on the device, ties counted half (sklearn's value).

  The Mann-Whitney statistic from average ranks; logits rank as their
  sigmoid scores would, without the sigmoid's saturation in float32.
  """
  order = jnp.argsort(logits)
  ordered = logits[order]
  below = jnp.searchsorted(ordered, ordered, side="left")
  upto = jnp.searchsorted(ordered, ordered, side="right")
  ranks = (below + upto + 1).astype(jnp.float32) / 2  # 1-based, ties averaged
  good = labels[order].astype(jnp.float32)
  positives = jnp.sum(good)
  negatives = good.shape[0] - positives
  rank_sum = jnp.sum(ranks * good)
  return (rank_sum - positives * (positives + 1) / 2) / jnp.maximum(
      positives * negatives, 1.0)


def log_loss_from_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean binary cross-entropy of good-credit logits, on the device.

  Probabilities are clipped to [1e-7, 1 - 1e-7] first, like
  :func:`classification_metrics`.
  """
  bound = float(np.log((1 - 1e-7) / 1e-7))
  clipped = jnp.clip(logits, -bound, bound)
  return jnp.mean(jnp.maximum(clipped, 0) - clipped * labels
                  + jnp.log1p(jnp.exp(-jnp.abs(clipped))))
