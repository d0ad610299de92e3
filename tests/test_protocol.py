"""The protocol's fairness: no test label reaches any choice of any model."""

import dataclasses

import numpy as np
import pytest

from credit_nas_jax import evaluation
from credit_nas_jax import pipeline
from experiments.configs import evaluate_test

# What depends on the machine's clock, not on the data.
_TIMING = ("search_seconds", "supernet_inference_ms", "derived_inference_ms",
           "inference_speedup")


def _flip_test_labels(dataset):
  """The same borrowers, features, graph and split; every test label flipped."""
  labels = dataset.labels.copy()
  test = dataset.splits["test"]
  labels[test] = 1 - labels[test]
  return dataclasses.replace(dataset, labels=labels)


def _choices(row):
  """Everything a model chose or measured on validation (no test, no clock)."""
  details = {k: v for k, v in row["details"].items() if k not in _TIMING}
  return {"validation_auc": row["validation_auc"], **details}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  config = evaluate_test.get_config()
  # Smaller than the tiny config: the test needs every choice made, not a
  # good model (two protocol runs of every model).
  config.num_borrowers = 400
  config.search_steps = 10
  config.arch_warmup_steps = 3
  config.retrain_steps = 10
  config.eval_every = 5
  dataset = pipeline.load_dataset(config)
  models = [m for m in evaluation.MODELS
            if m != "lightgbm" or evaluation.lightgbm_available()]
  return [evaluation.evaluate_seed(
      data, config, 0, models, "relations",
      str(tmp_path_factory.mktemp(name)))
          for name, data in (("as_is", dataset),
                             ("flipped", _flip_test_labels(dataset)))]


def test_the_flip_reaches_every_test_score(runs):
  for row, flipped in zip(*runs):
    assert flipped["test"]["auc"] == pytest.approx(1 - row["test"]["auc"],
                                                   abs=1e-9), row["model"]


def test_every_choice_and_validation_figure_ignores_test_labels(runs):
  for row, flipped in zip(*runs):
    assert row["model"] == flipped["model"]
    assert _choices(row) == _choices(flipped), row["model"]


def test_every_model_reports_its_validation_budget(runs):
  budgets = {row["model"]: row["details"]["budget"] for row in runs[0]}
  config = evaluate_test.get_config()
  assert budgets["logistic_regression"] == len(evaluation.LR_STRENGTHS)
  for name in ("mlp", "gcn", "graphsage"):
    assert budgets[name] == len(config.fixed_width_ratios) * len(
        config.fixed_weight_decays)
  assert budgets["supernet"] == 1
  if "lightgbm" in budgets:
    assert budgets["lightgbm"] == len(evaluation.lightgbm_grid(config)) == 2
  # Ours: every derive candidate scored on validation.
  for name in evaluation.SEARCHED:
    row = next(r for r in runs[0] if r["model"] == name)
    assert budgets[name] == len(row["details"]["derive_trials"]) > 1
  # The chosen setting is the grid's best on validation.
  for row in runs[0]:
    if "grid" in row["details"]:
      best = max(t["validation_auc"] for t in row["details"]["grid"])
      assert row["validation_auc"] == pytest.approx(best)
      assert len(row["details"]["grid"]) == row["details"]["budget"]
  assert np.isfinite([r["validation_auc"] for r in runs[0]]).all()
