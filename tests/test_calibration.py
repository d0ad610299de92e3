"""Calibration maps: the figures against hand references, the choice, the
guarantee on validation, and the map's JSON."""

import json
import os

import numpy as np
import pytest
from sklearn import calibration as sk_calibration
from sklearn import metrics as sk_metrics

from credit_nas_jax import calibration
from credit_nas_jax import plotting


def _book(seed, rows, distortion):
  """Labels drawn from true probabilities, and scores that distort them."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(1.0, 1.5, rows)
  labels = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(float)
  return labels, 1 / (1 + np.exp(-distortion(logits)))


DISTORTIONS = {
    "overconfident": lambda z: 2.5 * z,
    "underconfident": lambda z: 0.4 * z,
    "shifted": lambda z: z + 1.0,
    "bent": lambda z: np.sign(z) * np.abs(z) ** 1.7,
    "calibrated": lambda z: z,
}


def test_metrics_against_hand_references():
  labels = np.array([1, 0, 1, 1, 0, 1.0])
  scores = np.array([0.95, 0.05, 0.55, 0.62, 0.3, 1.0])
  assert calibration.brier_score(labels, scores) == pytest.approx(
      sk_metrics.brier_score_loss(labels, scores))
  # Bins [0.9, 1.0] (0.95, 1.0), [0.0, 0.1) (0.05), [0.5, 0.6) (0.55),
  # [0.6, 0.7) (0.62), [0.3, 0.4) (0.3): each bin's |rate - mean score|.
  gaps = [2 * abs(1 - 0.975), abs(0 - 0.05), abs(1 - 0.55), abs(1 - 0.62),
          abs(0 - 0.3)]
  assert calibration.expected_calibration_error(labels, scores) == (
      pytest.approx(sum(gaps) / 6))
  table = calibration.reliability_bins(labels, scores)
  assert table["count"].tolist() == [1, 0, 0, 1, 0, 1, 1, 0, 0, 2]
  observed, predicted = sk_calibration.calibration_curve(labels, scores,
                                                         n_bins=10)
  full = table["count"] > 0
  np.testing.assert_allclose(table["observed"][full], observed)
  np.testing.assert_allclose(table["mean_score"][full], predicted)
  assert calibration.log_loss(labels, scores) == pytest.approx(
      sk_metrics.log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7)))


@pytest.mark.parametrize("labels,scores,message", [
    ([1, 0], [0.5], "equal 1-d shapes"),
    ([], [], "no rows"),
    ([1, 2], [0.5, 0.5], r"0 \(default\) or 1"),
    ([1, 0], [0.5, 1.5], "probabilities in"),
    ([1, 0], [0.5, np.nan], "probabilities in"),
])
def test_bad_inputs_are_named(labels, scores, message):
  with pytest.raises(ValueError, match=message):
    calibration.fit_calibration(np.array(labels), np.array(scores))


@pytest.mark.parametrize("name", sorted(DISTORTIONS))
def test_calibration_is_never_worse_on_validation(name):
  labels, scores = _book(0, 3000, DISTORTIONS[name])
  fitted = calibration.fit_calibration(labels, scores, seed=1)
  before = calibration.log_loss(labels, scores)
  after = calibration.log_loss(labels, calibration.apply_map(fitted, scores))
  assert after <= before
  assert fitted["out_of_fold_log_loss"][fitted["method"]] <= before
  if name != "calibrated":  # a real distortion is mended, out of sample too
    assert fitted["method"] != "identity"
    assert after < before - 0.005
    test_labels, test_scores = _book(1, 3000, DISTORTIONS[name])
    report = calibration.calibration_report(fitted, test_labels, test_scores)
    assert report["after"]["ece"] < 0.03 < report["before"]["ece"]
    assert report["after"]["log_loss"] < report["before"]["log_loss"]


def test_the_choice_follows_the_out_of_fold_loss():
  # A step function Platt scaling cannot follow: isotonic regression wins.
  rng = np.random.default_rng(3)
  scores = rng.random(4000)
  labels = (rng.random(4000) < np.where(scores > 0.5, 0.9, 0.2)).astype(float)
  fitted = calibration.fit_calibration(labels, scores)
  assert fitted["method"] == "isotonic"
  losses = fitted["out_of_fold_log_loss"]
  assert losses["isotonic"] < losses["platt"] < losses["identity"]
  # A pure temperature: Platt scaling's own family.
  labels, scores = _book(4, 4000, DISTORTIONS["overconfident"])
  assert calibration.fit_calibration(labels, scores)["method"] == "platt"


def test_a_gain_within_its_noise_keeps_the_identity():
  # 200 rows, scores a little overconfident: Platt scaling's out-of-fold
  # gain is smaller than one standard error of it.
  labels, scores = _book(2, 200, lambda z: 1.15 * z)
  careful = calibration.fit_calibration(labels, scores)
  losses, errors = (careful["out_of_fold_log_loss"],
                    careful["out_of_fold_gain_se"])
  assert careful["method"] == "identity" and careful["confidence"] == 1.0
  gain = losses["identity"] - losses["platt"]
  assert 0 < gain < calibration.CONFIDENCE * errors["platt"]
  # The out-of-fold figures are means of per-row losses.
  rows = np.where(labels > 0.5, np.log(scores), np.log1p(-scores))
  assert losses["identity"] == pytest.approx(-rows.mean())
  # With no confidence asked, any gain is taken.
  assert calibration.fit_calibration(labels, scores, confidence=0.0)[
      "method"] == "platt"


def test_too_few_defaults_keep_the_identity():
  labels = np.array([1.0] * 40 + [0.0])
  scores = np.linspace(0.2, 0.9, 41)
  fitted = calibration.fit_calibration(labels, scores)
  assert (fitted["method"], fitted["folds"]) == ("identity", 1)
  np.testing.assert_array_equal(calibration.apply_map(fitted, scores), scores)


@pytest.mark.parametrize("name", ["overconfident", "bent"])
def test_map_survives_json_and_applies_monotonically(name, tmp_path):
  labels, scores = _book(5, 2000, DISTORTIONS[name])
  fitted = calibration.fit_calibration(labels, scores)
  path = os.path.join(tmp_path, "calibration.json")
  with open(path, "w") as f:
    json.dump(fitted, f, allow_nan=False)
  with open(path) as f:
    loaded = calibration.check_map(json.load(f))
  grid = np.linspace(0, 1, 501)
  applied = calibration.apply_map(loaded, grid)
  np.testing.assert_array_equal(applied, calibration.apply_map(fitted, grid))
  assert np.all(np.diff(applied) >= 0)
  assert applied.min() > 0 and applied.max() < 1
  np.testing.assert_array_equal(calibration.apply_map(None, grid), grid)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(format="other"), "not a credit_nas_jax.calibration"),
    (lambda m: m.update(method="beta"), "unknown calibration method"),
    (lambda m: m.update(method="platt", parameters={"slope": "1"}),
     "platt parameters"),
    (lambda m: m.update(method="isotonic",
                        parameters={"scores": [0.2, 0.1],
                                    "probabilities": [0.1, 0.2]}),
     "isotonic parameters"),
    (lambda m: m.update(method="isotonic",
                        parameters={"scores": [0.1, 0.2],
                                    "probabilities": [0.3, 1.2]}),
     "isotonic parameters"),
    (lambda m: m.update(method="identity", parameters={"slope": 1.0}),
     "takes no parameters"),
])
def test_bad_maps_are_refused(edit, message):
  labels, scores = _book(6, 500, DISTORTIONS["overconfident"])
  fitted = calibration.fit_calibration(labels, scores)
  edit(fitted)
  with pytest.raises(ValueError, match=message):
    calibration.check_map(fitted)


def test_reliability_plot_is_written(tmp_path):
  labels, scores = _book(7, 500, DISTORTIONS["overconfident"])
  path = str(tmp_path / "calibration.png")
  plotting.plot_reliability({"before": (labels, scores)}, path, "test")
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
