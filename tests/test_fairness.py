"""The fairness report: groups, rates against hand counts and fairlearn, and
the messages for a column that is missing, constant or has a small group."""

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from credit_nas_jax import fairness


def _borrowers(seed=0, rows=400):
  """A sensitive column, approvals that favour one group, outcomes, scores."""
  rng = np.random.default_rng(seed)
  gender = rng.choice(np.array(["female", "male"], dtype=object), rows)
  age = rng.integers(18, 80, rows).astype(float)
  good = (rng.random(rows) < 0.7).astype(float)
  scores = np.clip(0.5 * good + 0.5 * rng.random(rows)
                   + 0.1 * (gender == "male"), 0, 1)
  return gender, age, good, scores, scores >= 0.6


def test_rates_against_hand_counts():
  approved = np.array([1, 1, 0, 0, 1, 0], bool)
  labels = np.array([1, 0, 1, 0, 1, 1.0])
  scores = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.4])
  metrics = fairness.group_metrics(approved, labels, scores)
  assert metrics == {
      "count": 6, "approval_rate": pytest.approx(0.5),
      "auc": pytest.approx(sk_metrics.roc_auc_score(labels, scores)),
      "tpr": pytest.approx(2 / 4), "fpr": pytest.approx(1 / 2),
      "default_rate": pytest.approx(2 / 6)}
  only_good = fairness.group_metrics(approved[[0, 2]], labels[[0, 2]],
                                     scores[[0, 2]])
  assert only_good["auc"] is None and only_good["fpr"] is None
  assert fairness.group_metrics(approved) == {"count": 6,
                                              "approval_rate": 0.5}


def test_groups_and_differences():
  gender, _, good, scores, approved = _borrowers()
  report = fairness.sensitive_report("gender", gender, approved, labels=good,
                                     scores=scores)
  assert report["messages"] == []
  groups = report["groups"]
  assert list(groups) == ["female", "male"]
  for name, group in groups.items():
    rows = gender == name
    assert group["count"] == rows.sum()
    assert group["approval_rate"] == pytest.approx(approved[rows].mean())
    assert group["tpr"] == pytest.approx(approved[rows & (good == 1)].mean())
    assert group["fpr"] == pytest.approx(approved[rows & (good == 0)].mean())
  assert report["demographic_parity_difference"] == pytest.approx(
      groups["male"]["approval_rate"] - groups["female"]["approval_rate"])
  assert report["demographic_parity_difference"] > 0.05  # the planted bias
  assert report["equal_opportunity_difference"] == pytest.approx(
      abs(groups["male"]["tpr"] - groups["female"]["tpr"]))


def test_agrees_with_fairlearn():
  metrics = pytest.importorskip("fairlearn.metrics")
  gender, age, good, scores, approved = _borrowers(seed=1, rows=600)
  for values, bins in ((gender, ()), (age, (30, 45, 60))):
    groups = fairness.group_labels(values, bins)
    report = fairness.sensitive_report("column", values, approved,
                                       labels=good, scores=scores, bins=bins)
    frame = metrics.MetricFrame(
        metrics={"approval_rate": metrics.selection_rate,
                 "tpr": metrics.true_positive_rate,
                 "fpr": metrics.false_positive_rate},
        y_true=good, y_pred=approved, sensitive_features=groups)
    for name, row in frame.by_group.iterrows():
      for key in ("approval_rate", "tpr", "fpr"):
        assert report["groups"][name][key] == pytest.approx(row[key])
    assert report["demographic_parity_difference"] == pytest.approx(
        metrics.demographic_parity_difference(good, approved,
                                              sensitive_features=groups))
    assert report["equal_opportunity_difference"] == pytest.approx(
        metrics.equal_opportunity_difference(good, approved,
                                             sensitive_features=groups))


def test_numeric_bins():
  values = np.array([17, 25, 34.9, 35, 80, np.nan], dtype=object)
  groups = fairness.group_labels(values, (25, 35))
  assert groups.tolist() == ["(-inf, 25)", "[25, 35)", "[25, 35)",
                             "[35, inf)", "[35, inf)", "missing"]
  assert fairness.group_labels(np.array(["F", None], dtype=object)).tolist(
  ) == ["F", "missing"]
  with pytest.raises(ValueError, match="increasing"):
    fairness.group_labels(values, (35, 25))


def _one_line_naming(message, column):
  assert "\n" not in message and repr(column) in message


def test_a_missing_column_is_one_message():
  _, _, good, scores, approved = _borrowers()
  report = fairness.sensitive_report("SEX", None, approved, labels=good,
                                     scores=scores)
  assert len(report["messages"]) == 1
  _one_line_naming(report["messages"][0], "SEX")
  assert "not in the table" in report["messages"][0]
  assert report["groups"] == {}


def test_a_constant_column_is_one_message_and_the_rest_is_kept():
  _, _, good, scores, approved = _borrowers()
  constant = np.full(approved.size, "female", dtype=object)
  report = fairness.sensitive_report("Gender", constant, approved,
                                     labels=good, scores=scores)
  assert len(report["messages"]) == 1
  _one_line_naming(report["messages"][0], "Gender")
  assert "is constant" in report["messages"][0]
  assert report["groups"]["female"]["count"] == approved.size
  assert report["groups"]["female"]["auc"] is not None
  assert report["demographic_parity_difference"] is None


def test_a_small_group_is_named_and_left_out_of_the_differences():
  _, age, good, scores, approved = _borrowers(rows=500)
  age[:12] = 90  # twelve borrowers of 90: a group under 30 rows
  age[12:] = np.minimum(age[12:], 79)
  report = fairness.sensitive_report("Age", age, approved, labels=good,
                                     scores=scores, bins=(40, 85))
  assert len(report["messages"]) == 1
  _one_line_naming(report["messages"][0], "Age")
  assert "'[85, inf)' has 12 rows, under 30" in report["messages"][0]
  assert report["groups"]["[85, inf)"] == {"count": 12}
  kept = [report["groups"][g]["approval_rate"]
          for g in ("(-inf, 40)", "[40, 85)")]
  assert report["demographic_parity_difference"] == pytest.approx(
      max(kept) - min(kept))


def test_a_binned_text_column_is_one_message():
  gender, _, good, scores, approved = _borrowers()
  report = fairness.sensitive_report("gender", gender, approved, labels=good,
                                     scores=scores, bins=(30,))
  assert len(report["messages"]) == 1
  _one_line_naming(report["messages"][0], "gender")
  assert "not a number" in report["messages"][0]
