"""The evaluation's reports: every row's calibration (fitted on validation
alone), the fairness report by a sensitive column, their tables, and the
launcher's calibration.png, fairness.json and results sections."""

import dataclasses
import json
import os

import launch  # pylint: disable=g-bad-import-order
import numpy as np
import pandas as pd
import pytest

import protocol_helpers  # pylint: disable=g-bad-import-order
from credit_nas_jax import calibration
from credit_nas_jax import config as config_lib
from credit_nas_jax import datasets
from credit_nas_jax import evaluation
from credit_nas_jax import fairness
from credit_nas_jax import metrics
from credit_nas_jax import pipeline
from credit_nas_jax import scoring

EVAL_CONFIG = os.path.join(launch.ROOT, "experiments", "configs",
                           "evaluate_test.py")
MODELS = ("logistic_regression", "mlp")


@pytest.fixture(scope="module")
def config():
  """The protocol's tiny config, one setting per fixed network."""
  return config_lib.replace(
      config_lib.typed(protocol_helpers.tiny_protocol_config()),
      {"baselines.fixed_width_ratios": (1.0,)})


@pytest.fixture(scope="module")
def dataset(config):
  return pipeline.load_dataset(config)


@pytest.fixture(scope="module")
def runs(config, dataset, tmp_path_factory):
  """Two models on one seed as they are, and the first with the test labels
  flipped."""
  return [evaluation.evaluate_seed(data, config, 0, models, "relations",
                                   str(tmp_path_factory.mktemp(name)))
          for name, data, models in (
              ("as_is", dataset, MODELS),
              ("flipped", protocol_helpers.flip_test_labels(dataset),
               MODELS[:1]))]


def _labels(dataset, split):
  return dataset.labels[dataset.splits[split]]


def test_every_row_keeps_its_probabilities_and_calibration(runs, dataset):
  for row in runs[0]:
    scores = row["scores"]
    for split in ("validation", "test"):
      assert len(scores[split]) == dataset.splits[split].size, row["model"]
    fitted = calibration.check_map(row["calibration"]["map"])
    assert fitted["rows"] == dataset.splits["validation"].size
    assert row["calibration"]["method"] == fitted["method"]
    # The figures are the map's on the kept test probabilities.
    expected = calibration.calibration_report(
        fitted, _labels(dataset, "test"), np.asarray(scores["test"]))
    assert row["calibration"]["test"] == expected
    assert row["test"]["auc"] == pytest.approx(
        metrics.classification_metrics(
            _labels(dataset, "test"), np.asarray(scores["test"]))["auc"],
        abs=1e-6)
    # The map fits the validation probabilities: never worse there.
    validation = calibration.calibration_report(
        fitted, _labels(dataset, "validation"),
        np.asarray(scores["validation"]))
    assert (validation["after"]["log_loss"]
            <= validation["before"]["log_loss"] + 1e-12)


def test_the_map_cannot_read_test_labels(runs, dataset):
  for row, flipped in zip(*runs):
    assert row["calibration"]["map"] == flipped["calibration"]["map"]
    assert row["scores"] == flipped["scores"], row["model"]
    # The flip reached the test figures, so the test above can fail.
    assert (row["calibration"]["test"]["before"]["log_loss"]
            != flipped["calibration"]["test"]["before"]["log_loss"])
  # Every row's map, fitted again with every test label flipped.
  labels = {split: dataset.labels[dataset.splits[split]]
            for split in ("validation", "test")}
  flipped_labels = {**labels, "test": 1 - labels["test"]}
  for row in runs[0]:
    assert evaluation.calibrate(row["scores"], flipped_labels, 0)["map"] == (
        row["calibration"]["map"])


def test_the_ensemble_row_is_calibrated_too(runs, config, dataset, tmp_path):
  done = {"searched": {**runs[0][0], "model": "searched"},
          "searched_extended": {**runs[0][1], "model": "searched_extended"}}
  rows = evaluation.evaluate_seed(
      dataset, config, 0, ("searched", "searched_extended",
                           evaluation.ENSEMBLE), "relations", str(tmp_path),
      done=done, on_result=lambda row: None)
  ensemble = rows[-1]
  members = [done[m] for m in ensemble["details"]["members"]]
  for split in ("validation", "test"):
    np.testing.assert_allclose(
        ensemble["scores"][split],
        np.mean([m["scores"][split] for m in members], axis=0), atol=1e-6)
  assert ensemble["calibration"]["map"] == calibration.fit_calibration(
      _labels(dataset, "validation"),
      np.asarray(ensemble["scores"]["validation"]), seed=0)


def test_stored_rows_differing_in_the_report_fields_alone_are_kept():
  rows = [{"model": m} for m in ("mlp", "searched")]
  stored = {"seed": 0, "data": {"sensitive_column": "", "knn_k": 3}}
  asked = {"seed": 0, "data": {"sensitive_column": "Age",
                               "sensitive_bins": [30.0], "knn_k": 3}}
  assert sorted(evaluation.reusable_rows(stored, asked, rows)) == [
      "mlp", "searched"]


def _with_column(dataset, name, values):
  """The dataset with one more column in its table before encoding."""
  raw = dataset.raw_features.copy()
  raw[name] = values
  return dataclasses.replace(dataset, raw_features=raw)


def test_fairness_reports_group_the_test_rows(runs, config, dataset):
  rng = np.random.default_rng(0)
  gender = rng.choice(np.array(["f", "m"], dtype=object),
                      dataset.labels.size)
  data = _with_column(dataset, "gender", gender)
  asked = config_lib.replace(config, {"data.sensitive_column": "gender"})
  report = evaluation.fairness_reports(runs[0], data, asked)
  assert report["column"] == "gender" and report["messages"] == []
  assert list(report["models"]) == list(MODELS)
  test_gender = gender[dataset.splits["test"]]
  labels = _labels(dataset, "test")
  for row in runs[0]:
    probabilities = calibration.apply_map(row["calibration"]["map"],
                                          np.asarray(row["scores"]["test"]))
    approved = probabilities >= scoring.DEFAULT_BANDS[-1][1]
    expected = fairness.sensitive_report("gender", test_gender, approved,
                                         labels=labels, scores=probabilities)
    expected.pop("messages")
    assert report["models"][row["model"]] == expected
    groups = report["models"][row["model"]]["groups"]
    assert sum(g["count"] for g in groups.values()) == labels.size
  table = evaluation.fairness_table([report])
  assert "| logistic_regression | f |" in table
  assert "| mlp | demographic-parity" not in table


def test_fairness_faults_are_one_line_each_and_the_rest_is_kept(
    runs, config, dataset):
  test_rows = dataset.splits["test"].size
  ages = np.full(dataset.labels.size, 40.0)
  ages[dataset.splits["test"][:10]] = 20.0  # ten test rows under 25
  data = _with_column(_with_column(dataset, "age", ages), "branch", "north")
  cases = {"SEX": "is not in the table", "branch": "is constant",
           "age": "'(-inf, 25)' has 10 rows, under 30"}
  for column, message in cases.items():
    asked = config_lib.replace(config, {
        "data.sensitive_column": column,
        "data.sensitive_bins": (25.0,) if column == "age" else ()})
    report = evaluation.fairness_reports(runs[0], data, asked)
    assert len(report["messages"]) == 1, column
    assert message in report["messages"][0] and "\n" not in (
        report["messages"][0])
    assert repr(column) in report["messages"][0]
    assert list(report["models"]) == list(MODELS)
  groups = report["models"]["mlp"]["groups"]
  assert groups["(-inf, 25)"] == {"count": 10}
  assert groups["[25, inf)"]["count"] == test_rows - 10


def test_the_public_sets_name_their_own_sensitive_columns(config):
  for name, (column, bins) in evaluation.SENSITIVE_COLUMNS.items():
    asked = config_lib.replace(config, {"data.dataset": name})
    assert evaluation.sensitive_setting(asked) == (column, bins)
    path = os.path.join(datasets.resolve_data_dir(),
                        datasets.SPECS[name].table.name)
    if os.path.exists(path):  # the real header holds the column
      assert column in pd.read_csv(path, nrows=0).columns, name
  assert evaluation.sensitive_setting(config) is None  # the synthetic book
  assert evaluation.sensitive_setting(config_lib.replace(config, {
      "data.dataset": "german", "data.sensitive_column": "none"})) is None
  assert evaluation.sensitive_setting(config_lib.replace(config, {
      "data.dataset": "credit", "data.sensitive_column": "Age",
      "data.sensitive_bins": (30, 60)})) == ("Age", (30.0, 60.0))


@pytest.mark.parametrize("changes,message", [
    ({"data.sensitive_column": "Age", "data.sensitive_bins": (50, 25)},
     r"config.data.sensitive_bins=\(50.0, 25.0\): must be increasing"),
    ({"data.sensitive_column": "Age",
      "data.sensitive_bins": (25, float("nan"))}, "must be increasing"),
    ({"data.sensitive_bins": (25,)}, "name it with config.data."
     "sensitive_column"),
    ({"data.sensitive_column": "Age\n"}, "must be a column name"),
])
def test_bad_sensitive_settings_are_one_line(config, changes, message):
  with pytest.raises(ValueError, match=message) as error:
    config_lib.replace(config, changes)
  assert "\n" not in str(error.value).replace("Age\\n", "")


def test_calibration_table_reads_every_row(runs):
  frame = evaluation.calibration_frame(runs[0] + [{"model": "old", "seed": 0}])
  assert list(frame["model"]) == list(MODELS)
  table = evaluation.calibration_table(frame)
  row = runs[0][0]["calibration"]
  assert (f"| logistic_regression | {row['method']} 1 | "
          f"{row['test']['before']['brier']:.4f} -> "
          f"{row['test']['after']['brier']:.4f} |") in table


def test_launcher_writes_the_calibration_and_fairness_reports(tmp_path):
  rows = 600
  table = launch.write_table_book(tmp_path, rows)
  test_rows = round(0.2 * rows)
  result = launch.run(
      "evaluate.py", "--dataset=table", "--seeds=1",
      "--models=logistic_regression", f"--config={EVAL_CONFIG}",
      f"--config.data.table_path={table}", "--config.data.label_column=bad",
      "--config.data.bad_value=1", "--config.data.knn_k=0",
      "--config.data.sensitive_column=income",
      "--config.data.sensitive_bins=(0, 1.5)", f"--workdir={tmp_path / 'out'}")
  directory = tmp_path / "out" / "table"
  assert (directory / "calibration.png").read_bytes()[:4] == b"\x89PNG"
  results = (directory / "results.md").read_text()
  assert "| model | map chosen on validation (seeds) |" in results
  assert "Fairness by 'income' in bins [0.0, 1.5]" in results
  assert "| logistic_regression | (-inf, 0) |" in results
  stored = json.loads((directory / "fairness.json").read_text())
  assert (stored[0]["column"], stored[0]["seed"]) == ("income", 0)
  groups = stored[0]["models"]["logistic_regression"]["groups"]
  assert sum(g["count"] for g in groups.values()) == test_rows
  # The few incomes over 1.5 standard deviations: one line naming the group,
  # the other groups' rates still written.
  assert groups["[1.5, inf)"]["count"] < 30 and len(groups["[1.5, inf)"]) == 1
  assert groups["[0, 1.5)"]["approval_rate"] is not None
  small = [line for line in result.stderr.splitlines()
           if "sensitive column 'income' group '[1.5, inf)'" in line]
  assert len(small) == 1 and "under 30" in small[0]
  assert "'[1.5, inf)' has" in results
  seed = json.loads((directory / "seed_0.json").read_text())
  assert seed["rows"][0]["calibration"]["method"] in calibration.METHODS
