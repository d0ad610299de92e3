"""Credit metrics against small hand-computed references."""

import numpy as np
import pytest

from credit_nas_jax import metrics


def _pairwise_auc(labels, scores):
  good, bad = scores[labels == 1], scores[labels == 0]
  wins = (good[:, None] > bad[None, :]).sum() + 0.5 * (
      good[:, None] == bad[None, :]).sum()
  return wins / (good.size * bad.size)


def _ks(labels, scores):
  thresholds = np.unique(scores)
  good_cdf = [(scores[labels == 1] <= t).mean() for t in thresholds]
  bad_cdf = [(scores[labels == 0] <= t).mean() for t in thresholds]
  return np.max(np.abs(np.array(good_cdf) - np.array(bad_cdf)))


def test_against_references():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 300)
  scores = np.clip(0.3 * labels + rng.uniform(size=300), 0, 1).round(2)
  got = metrics.classification_metrics(labels, scores)
  assert got["auc"] == pytest.approx(_pairwise_auc(labels, scores))
  assert got["ks"] == pytest.approx(_ks(labels, scores))
  assert got["gini"] == pytest.approx(2 * got["auc"] - 1)
  p = np.clip(scores, 1e-7, 1 - 1e-7)
  assert got["log_loss"] == pytest.approx(
      -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def test_perfect_and_inverted():
  labels = np.array([0, 0, 1, 1])
  assert metrics.classification_metrics(labels, np.array([.1, .2, .8, .9]))[
      "ks"] == 1.0
  assert metrics.classification_metrics(labels, np.array([.9, .8, .2, .1]))[
      "auc"] == 0.0


def test_one_class_is_an_error():
  with pytest.raises(ValueError, match="both good and bad"):
    metrics.classification_metrics(np.ones(3), np.array([.1, .2, .3]))


def _pairwise_difference_se(labels, a, b):
  """DeLong's error from its definition: placements over every pair."""
  def placements(scores):
    good, bad = scores[labels == 1], scores[labels == 0]
    psi = (good[:, None] > bad[None, :]) + 0.5 * (good[:, None]
                                                  == bad[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)
  (good_a, bad_a), (good_b, bad_b) = placements(a), placements(b)
  return np.sqrt(np.var(good_a - good_b, ddof=1) / good_a.size
                 + np.var(bad_a - bad_b, ddof=1) / bad_a.size)


def test_auc_difference_se_against_its_definition_and_a_bootstrap():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, 400)
  a = (labels + rng.normal(size=400)).round(1)  # ties included
  b = a + 0.7 * rng.normal(size=400)
  se = metrics.auc_difference_se(labels, a, b)
  assert se == pytest.approx(_pairwise_difference_se(labels, a, b))
  boots = []
  for _ in range(1000):
    rows = rng.integers(0, 400, 400)
    boots.append(_pairwise_auc(labels[rows], a[rows])
                 - _pairwise_auc(labels[rows], b[rows]))
  assert se == pytest.approx(np.std(boots), rel=0.15)
  assert metrics.auc_difference_se(labels, a, a) == 0.0
  # A small change of the scores is known better than a large one.
  assert metrics.auc_difference_se(labels, a, a + 0.05 * rng.normal(
      size=400)) < se / 3
  with pytest.raises(ValueError, match="two good and two bad"):
    metrics.auc_difference_se(np.array([1, 1, 1, 0]), a[:4], b[:4])
