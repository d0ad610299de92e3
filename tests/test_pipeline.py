"""The launcher end to end with the tiny config, and the saved model."""

import json
import os

import numpy as np
import pandas as pd
import pytest

import launch  # pylint: disable=g-bad-import-order
from credit_nas_jax import experiment
from credit_nas_jax import model_io
from credit_nas_jax import pipeline

OUTPUTS = ("config.json", "metrics.jsonl", "alphas.csv", "alphas.png",
           "architecture.json", "test_metrics.json", "search_cost.json",
           "model/model.json", "model/weights.npz")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  result = launch.search(workdir, "--config.search_steps=12")
  return workdir, result.stderr


def test_launcher_writes_every_output(run_dir):
  workdir, log = run_dir
  for name in OUTPUTS:
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert "search step 12/12" in log
  assert "test: AUC" in log


def test_outputs_are_consistent(run_dir):
  workdir, _ = run_dir
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["search_steps"] == 12  # the override was applied
  gates = pd.read_csv(os.path.join(workdir, "alphas.csv"))
  assert gates["step"].tolist() == [0, 5, 10, 12]
  assert gates.filter(like="feature/").shape[1] == 5
  assert ((gates.drop(columns="step") > 0)
          & (gates.drop(columns="step") < 1)).all().all()
  records = [json.loads(line) for line in open(
      os.path.join(workdir, "metrics.jsonl"))]
  assert {r["phase"] for r in records} == {"search", "retrain"}
  architecture = json.load(open(os.path.join(workdir, "architecture.json")))
  assert len(architecture["features"]) == 5
  assert len(architecture["chosen_ops"]) == 2
  final = gates.iloc[-1]
  for feature in architecture["features"]:
    assert feature["gate"] == pytest.approx(final[f"feature/{feature['name']}"],
                                            rel=1e-6)
    assert feature["kept"] == (feature["gate"] >= 0.5) or (
        architecture["kept_features"] == [feature["name"]])
  metrics = json.load(open(os.path.join(workdir, "test_metrics.json")))
  for key in ("auc", "ks", "gini", "log_loss"):
    assert np.isfinite(metrics["test"][key])
  assert metrics["test"]["gini"] == pytest.approx(
      2 * metrics["test"]["auc"] - 1)
  cost = json.load(open(os.path.join(workdir, "search_cost.json")))
  for key in ("device_kind", "jax_version", "compile_seconds",
              "search_seconds", "search_steps_per_second"):
    assert key in cost
  # The loop's figures: its time per step against the bare step's.
  assert cost["sampler"] == "device"
  assert cost["loop_over_bare_step"] == pytest.approx(
      cost["search_loop_seconds_per_step"]
      / cost["bare_search_step_seconds"])


@pytest.mark.highest_matmul_precision
def test_saved_model_reproduces_the_test_metrics(run_dir):
  workdir, _ = run_dir
  saved = model_io.load_model(os.path.join(workdir, "model"))
  config = pipeline.get_config_from_json(os.path.join(workdir, "config.json"))
  dataset = pipeline.load_dataset(config)
  assert saved.encoder == dataset.encoder
  exp = experiment.prepare(config, dataset)
  test, _ = experiment.evaluate(exp, saved.weights, {}, saved.arch, "test")
  expected = json.load(open(os.path.join(workdir, "test_metrics.json")))
  assert test["auc"] == pytest.approx(expected["test"]["auc"], abs=1e-6)
