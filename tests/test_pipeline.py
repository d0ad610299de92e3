"""The launcher end to end with the tiny config, and the saved model."""

import json
import logging
import os
import time

import numpy as np
import pandas as pd
import pytest

import launch  # pylint: disable=g-bad-import-order
from credit_nas_jax import calibration
from credit_nas_jax import config as config_lib
from credit_nas_jax import experiment
from credit_nas_jax import model_io
from credit_nas_jax import pipeline
from credit_nas_jax import progress
from credit_nas_jax import stability
from tensorboard.backend.event_processing import event_accumulator

OUTPUTS = ("config.json", "metrics.jsonl", "alphas.csv", "alphas.png",
           "architecture.json", "test_metrics.json", "calibration.png",
           "search_cost.json", "model/model.json", "model/weights.npz",
           "model/calibration.json", "model/population.json")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  result = launch.search(workdir, "--config.search.steps=12",
                         "--config.runtime.profile_steps=6,10")
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
  assert config["search"]["steps"] == 12  # the override was applied
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
    # The default derive (on validation) keeps the features it lists.
    assert feature["kept"] == (feature["name"]
                               in architecture["kept_features"])
  assert architecture["kept_features"]
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
  # The map was fitted on the validation rows, the population on training.
  _, validation = experiment.evaluate(exp, saved.weights, {}, saved.arch,
                                      "validation")
  labels = dataset.labels[dataset.splits["validation"]]
  assert saved.calibration["rows"] == labels.size
  report = calibration.calibration_report(saved.calibration, labels,
                                          validation)
  for when in ("before", "after"):
    for key, value in report[when].items():
      assert value == pytest.approx(
          expected["calibration"]["validation"][when][key], abs=1e-5), key
  _, train = experiment.evaluate(exp, saved.weights, {}, saved.arch, "train")
  assert saved.population["rows"] == train.size
  assert stability.stability_report(saved.population, train, {})["score"][
      "psi"] < 1e-3


def test_calibration_is_reported_and_never_worse_on_validation(run_dir):
  workdir, log = run_dir
  metrics = json.load(open(os.path.join(workdir, "test_metrics.json")))
  report = metrics["calibration"]
  assert report["method"] in calibration.METHODS
  assert report["ece_bins"] == 10
  for split in ("validation", "test"):
    for when in ("before", "after"):
      assert set(report[split][when]) == {"brier", "ece", "log_loss"}
  assert report["validation"]["after"]["log_loss"] <= (
      report["validation"]["before"]["log_loss"])
  assert report["test"]["before"]["log_loss"] == pytest.approx(
      metrics["test"]["log_loss"], rel=1e-6)
  assert "calibration: " in log and "test ECE" in log
  saved = model_io.load_model(os.path.join(workdir, "model"))
  assert saved.calibration["method"] == report["method"]
  assert set(saved.population["features"]) == set(saved.encoder.features)


def test_tensorboard_shows_the_curves_gates_and_hyperparameters(run_dir):
  workdir, _ = run_dir
  board = event_accumulator.EventAccumulator(
      str(workdir / "tensorboard"),
      size_guidance={event_accumulator.SCALARS: 0,
                     event_accumulator.TENSORS: 0})
  board.Reload()
  steps = lambda tag: [e.step for e in board.Scalars(tag)]
  for tag in ("search/train_loss", "search/val_loss",
              "search/steps_per_second"):
    assert steps(tag) == [5, 10, 12], tag
  gates = pd.read_csv(os.path.join(workdir, "alphas.csv"))
  feature_tags = [t for t in board.Tags()["scalars"]
                  if t.startswith("gates/feature/")]
  assert len(feature_tags) == 5
  assert [t for t in board.Tags()["scalars"] if t.startswith("gates/layer")]
  for tag in feature_tags:  # the trajectories of alphas.csv
    values = [e.value for e in board.Scalars(tag)]
    np.testing.assert_allclose(values, gates[tag[len("gates/"):]], rtol=1e-6)
  assert steps("retrain/val_auc") == [10, 20]
  assert steps("retrain/train_loss") == [10, 20]
  assert steps("retrain/steps_per_second") == [20]  # after the compile
  test = json.load(open(os.path.join(workdir, "test_metrics.json")))
  assert board.Scalars("test/auc")[-1].value == pytest.approx(
      test["test"]["auc"], rel=1e-6)
  assert board.Scalars("validation/auc")
  assert "_hparams_/session_start_info" in board.Tags()["tensors"]
  records = [json.loads(line) for line in open(
      os.path.join(workdir, "metrics.jsonl"))]
  assert {r["phase"] for r in records} == {"search", "retrain"}


def test_profile_steps_write_a_trace(run_dir):
  workdir, log = run_dir
  assert "profiling search steps 6 to 10" in log
  traces = [name for _, _, names in os.walk(workdir / "profile")
            for name in names if name.endswith(".xplane.pb")]
  assert traces


def test_search_profile_covers_the_blocks_of_its_steps(monkeypatch,
                                                       tmp_path):
  calls = []
  monkeypatch.setattr(pipeline.jax.profiler, "start_trace",
                      lambda path: calls.append(("start", path)))
  monkeypatch.setattr(pipeline.jax.profiler, "stop_trace",
                      lambda: calls.append(("stop",)))
  profile = pipeline.SearchProfile((7, 12), 5, str(tmp_path))
  for done in (0, 5, 10, 15, 20):  # blocks end at 5, 10, 15, 20
    profile.before_block(done)
    calls.append(("block", done + 5))
    profile.after_block(done + 5)
  assert calls == [("block", 5), ("start", str(tmp_path)), ("block", 10),
                   ("block", 15), ("stop",), ("block", 20), ("block", 25)]


@pytest.mark.parametrize("steps", [(0, 5), (6, 5), (1, 2, 3)])
def test_profile_steps_are_checked(steps):
  with pytest.raises(ValueError, match="profile_steps"):
    config_lib.from_dict({"runtime": {"profile_steps": steps}})


def test_heartbeat_logs_a_silent_stage(caplog):
  caplog.set_level(logging.INFO)
  with progress.Heartbeat(interval_seconds=0.2) as heartbeat:
    heartbeat.stage("building the graph")
    time.sleep(1.5)
  assert any("building the graph: still working" in r.getMessage()
             for r in caplog.records)


def test_rate_and_time_left():
  assert progress.rate_and_time_left(50, 250, 10.0) == (
      "5.0 steps/s, 40s left")
  assert progress.duration_text(3725) == "1h02m"
  assert progress.duration_text(65) == "1m05s"


@pytest.mark.parametrize("overrides,message", [
    (("--config.space.hidden_dim=0",), "config.space.hidden_dim=0: must be a whole"),
    (("--config.search.steps=0",), "config.search.steps=0"),
    (("--config.nonsense=3",), "--config.nonsense: no such field"),
    (("--config.search.nonsense=3",),
     "--config.search.nonsense: no such field; search has"),
    (("--config.arch_lr=0.1",),
     "--config.arch_lr is now --config.search.arch_lr"),
    (("--config.data.batch_size=abc",), "--config.data.batch_size=abc"),
    (("--config.data.sampler=gpu",),
     "config.data.sampler='gpu': must be one of ['auto', 'device', 'host']"),
    (("--config.derive.rule=best",),
     "config.derive.rule='best': must be one of"),
    (("--config.retrain.ensemble_size=3",),
     "config.retrain.ensemble_size=3: a search run retrains one network"),
])
def test_launcher_refuses_config_mistakes_in_one_line(tmp_path, overrides,
                                                      message):
  result = launch.search(tmp_path / "run", *overrides, check=False)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and message in last, result.stderr[-2000:]
  assert "Traceback" not in result.stderr


def test_launcher_refuses_a_workdir_that_is_a_file(tmp_path):
  path = tmp_path / "file"
  path.write_text("not a directory")
  result = launch.search(path, check=False)
  assert result.returncode == 1
  assert "is a file, not a directory" in result.stderr
