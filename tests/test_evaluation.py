"""The evaluation protocol: baselines, our models, summaries, the launcher."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics

import launch  # pylint: disable=g-bad-import-order
from credit_nas_jax import data
from credit_nas_jax import evaluation
from credit_nas_jax import pipeline
from experiments.configs import evaluate_test

EVAL_CONFIG = os.path.join(launch.ROOT, "experiments", "configs",
                           "evaluate_test.py")


@pytest.fixture(scope="module")
def config():
  config = evaluate_test.get_config()
  # Shorter runs than the tiny config: these tests check what runs and what
  # is reported, not how good the models get.
  config.search.steps = 10
  config.search.arch_warmup_steps = 3
  config.retrain.steps = 10
  config.retrain.eval_every = 5
  return config


@pytest.fixture(scope="module")
def dataset(config):
  return pipeline.load_dataset(config)


def test_isolated_drops_every_edge_and_keeps_the_split(dataset):
  alone = evaluation.isolated(dataset)
  assert dataset.graph.indices.size > 0
  assert alone.graph.indices.size == 0
  assert alone.graph.num_nodes == dataset.graph.num_nodes
  for split in dataset.splits:
    np.testing.assert_array_equal(alone.splits[split], dataset.splits[split])
  # Batches of one-node graphs are padded for one node a graph, not for
  # the fanouts' worst case, and hold the same borrowers.
  maker = data.BatchMaker(alone, 8, (4, 2), seed=0)
  assert maker.fanouts == (0, 0)
  assert maker.budget.n_node == 9 and maker.budget.n_edge == 0
  batch = maker.training_batch("train", 0)
  wide = data.BatchMaker(dataset, 8, (4, 2), seed=0).training_batch("train", 0)
  np.testing.assert_array_equal(batch.globals["borrower"],
                                wide.globals["borrower"])
  np.testing.assert_array_equal(batch.n_node[:8], np.ones(8))


def test_logistic_regression_chooses_its_strength_on_validation(dataset):
  result = evaluation.fit_logistic_regression(dataset)
  assert result.details["C"] in evaluation.LR_STRENGTHS
  assert 0.5 < result.test["auc"] <= 1.0
  assert result.test["count"] == dataset.splits["test"].size
  assert result.roc["fpr"][0] == 0.0 and result.roc["tpr"][-1] == 1.0


@pytest.mark.skipif(not evaluation.lightgbm_available(),
                    reason="lightgbm (the baselines extra) not installed")
def test_lightgbm_stops_on_validation(dataset):
  result = evaluation.fit_lightgbm(dataset, seed=0)
  assert 1 <= result.details["rounds"] < 2000
  assert 0.5 < result.test["auc"] <= 1.0
  assert result.details["budget"] == 1


@pytest.mark.skipif(not evaluation.lightgbm_available(),
                    reason="lightgbm (the baselines extra) not installed")
def test_lightgbm_keeps_the_grid_setting_best_on_validation(dataset,
                                                            config):
  config = config.copy_and_resolve_references()
  config.baselines.lightgbm_num_leaves = (3, 15)
  config.baselines.lightgbm_min_child_samples = (5, 40)
  grid = evaluation.lightgbm_grid(config)
  assert len(grid) == 2 * 2 * len(config.baselines.lightgbm_learning_rates)
  result = evaluation.fit_lightgbm(dataset, 0, grid)
  tried = result.details["grid"]
  assert [{k: t[k] for k in grid[0]} for t in tried] == grid
  best = max(tried, key=lambda t: t["validation_auc"])
  assert result.validation_auc == best["validation_auc"]
  assert result.details["num_leaves"] == best["num_leaves"]
  assert result.details["budget"] == len(grid)


@pytest.mark.skipif(not evaluation.lightgbm_available(),
                    reason="lightgbm (the baselines extra) not installed")
def test_bagged_lightgbm_averages_members_of_the_chosen_setting(dataset,
                                                                config):
  grid = evaluation.lightgbm_grid(config)
  single = evaluation.fit_lightgbm(dataset, 0, grid)
  bagged = evaluation.fit_lightgbm(dataset, 0, grid, members=3)
  assert bagged.model == evaluation.BAGGED
  # The same setting, chosen on the same validation AUCs.
  assert bagged.details["settings"] == single.details["grid"]
  assert bagged.details["learning_rate"] == single.details["learning_rate"]
  assert bagged.details["budget"] == len(grid)
  members = bagged.details["members"]
  assert len(members) == 3 and len({m["validation_auc"] for m in members}) == 3
  assert members[0]["validation_auc"] == pytest.approx(single.validation_auc)
  labels = dataset.labels[dataset.splits["validation"]]
  assert bagged.validation_auc == pytest.approx(
      sk_metrics.roc_auc_score(labels, bagged.scores["validation"]))


def test_unknown_model_is_named(dataset, config, tmp_path):
  with pytest.raises(ValueError, match="unknown models.*'forest'"):
    evaluation.evaluate_seed(dataset, config, 0, ("forest",), "relations",
                             str(tmp_path))


def test_summary_pairs_seeds():
  frame = pd.DataFrame({
      "seed": [0, 0, 1, 1, 2, 2], "model": ["searched", "gcn"] * 3,
      "graph": ["relations"] * 6, "auc": [0.80, 0.75, 0.70, 0.69, 0.90, 0.80],
      "ks": [0.5] * 6, "gini": [0.6] * 6, "val_auc": [0.7] * 6,
      "budget": [31, 4] * 3, "seconds": [1.0] * 6})
  summary = evaluation.summarize(frame, ours="searched")
  assert summary.loc["gcn", "delta_auc_mean"] == pytest.approx(
      np.mean([0.05, 0.01, 0.10]))
  assert summary.loc["gcn", "delta_auc_std"] == pytest.approx(
      np.std([0.05, 0.01, 0.10], ddof=1))
  assert summary.loc["searched", "auc_mean"] == pytest.approx(0.8)
  table = evaluation.markdown_table(summary, ours="searched")
  assert "| gcn | relations | 0.7467 +- 0.0551" in table
  differences = [0.05, 0.01, 0.10]
  assert summary.loc["gcn", "delta_auc_se"] == pytest.approx(
      np.std(differences, ddof=1) / np.sqrt(3))
  p = stats.ttest_rel([0.80, 0.70, 0.90], [0.75, 0.69, 0.80]).pvalue
  assert summary.loc["gcn", "delta_auc_p"] == pytest.approx(p)
  # Mean +- standard error (p), then budget and seconds.
  assert f"+0.0533 +- 0.0260 (p {p:.2g}) | 4 | 1 |" in table


def test_search_against_random_says_when_the_search_does_not_win():
  def frame(searched, random):
    n = len(searched)
    return pd.DataFrame({"seed": list(range(n)) * 2,
                         "model": ["searched"] * n + [evaluation.RANDOM] * n,
                         "auc": list(searched) + list(random)})
  wins = evaluation.search_against_random(
      frame([0.80, 0.82, 0.81, 0.83], [0.75, 0.76, 0.76, 0.77]))
  assert "+0.0550 +- 0.0029" in wins and "beats random" in wins
  level = evaluation.search_against_random(
      frame([0.80, 0.76, 0.81], [0.79, 0.78, 0.80]))
  assert "does NOT beat random" in level
  compared = evaluation.paired_comparison(
      frame([0.80, 0.76, 0.81], [0.79, 0.78, 0.80]), "searched",
      evaluation.RANDOM)
  assert compared["seeds"] == 3 and compared["mean"] == pytest.approx(0.0)
  assert compared["p"] == pytest.approx(1.0)
  assert evaluation.search_against_random(
      frame([0.8], [0.7]).query("model == 'searched'")) is None


def _row(seed, model, val_auc, auc, seconds=1.0):
  return {"seed": seed, "model": model, "graph": "relations",
          "validation_auc": val_auc, "seconds": seconds,
          "test": {"auc": auc, "ks": 0.4, "gini": 2 * auc - 1},
          "details": {}}


def test_selection_uses_validation_not_test():
  rows = [_row(0, "searched", 0.70, 0.90), _row(0, "searched_extended", 0.75,
                                                0.60, seconds=2.0),
          _row(1, "searched", 0.80, 0.70), _row(1, "searched_extended", 0.60,
                                                0.95),
          _row(0, "gcn", 0.99, 0.99)]
  selected = [r for r in evaluation.select_on_validation(rows)
              if r["model"] == evaluation.SELECTED]
  assert [(r["seed"], r["details"]["selected"], r["test"]["auc"])
          for r in selected] == [(0, "searched_extended", 0.60),
                                 (1, "searched", 0.70)]
  assert selected[0]["seconds"] == 3.0  # both searches are its cost


def test_compute_counts_each_model_run_once():
  ensemble = _row(0, evaluation.ENSEMBLE, 0.8, 0.8, seconds=3.5)
  ensemble["details"] = {"member_seconds": {"searched": 1.0,
                                            "searched_extended": 2.0}}
  rows = [_row(0, "searched", 0.7, 0.7, seconds=1.0),
          _row(0, "searched_extended", 0.7, 0.7, seconds=2.0), ensemble]
  assert evaluation.compute_seconds(rows) == pytest.approx(3.5)
  # A member whose row is not there is counted through the ensemble.
  assert evaluation.compute_seconds(rows[1:]) == pytest.approx(3.5)


def test_launcher_writes_tables_and_resumes(tmp_path):
  args = ("--dataset=synthetic", "--seeds=2",
          "--models=logistic_regression,mlp,searched",
          f"--config={EVAL_CONFIG}", "--config.search.steps=10",
          "--config.search.arch_warmup_steps=3", "--config.retrain.steps=10",
          "--config.retrain.eval_every=5", "--config.baselines.fixed_width_ratios=(1.0,)",
          # One retrain per searched model, the default (the protocol test
          # runs two).
          "--config.retrain.ensemble_size=1",
          f"--workdir={tmp_path}")
  first = launch.run("evaluate.py", *args)
  directory = tmp_path / "synthetic"
  for name in ("seed_0.json", "seed_1.json", "results.md", "summary.json",
               "roc.png"):
    assert (directory / name).stat().st_size > 0, name
  assert "| searched | relations |" in first.stdout
  summary = json.loads((directory / "summary.json").read_text())
  assert {r["model"] for r in summary["summary"]} == {
      "logistic_regression", "mlp", "searched", "searched_selected"}
  assert all(r["seeds"] == 2 for r in summary["summary"])
  seed0 = (directory / "seed_0.json").read_text()
  second = launch.run("evaluate.py", *args)
  assert "seed 0: mlp" not in second.stderr  # resumed, not rerun
  assert (directory / "seed_0.json").read_text() == seed0
  # A change only ours reads keeps the baselines' rows and runs ours again.
  third = launch.run("evaluate.py", *args, "--config.space.embedding_bins=3",
                     "--seeds=1")
  assert "seed 0: mlp" not in third.stderr
  assert "seed 0: searched (model 3 of 3)" in third.stderr
  assert "keeping its baselines' rows ['logistic_regression', 'mlp']" in (
      third.stderr)
  stored = json.loads((directory / "seed_0.json").read_text())
  assert stored["config"]["space"]["embedding_bins"] == 3
  assert ([r for r in stored["rows"] if r["model"] == "mlp"]
          == [r for r in json.loads(seed0)["rows"] if r["model"] == "mlp"])


def test_launcher_names_the_renamed_flag(tmp_path):
  result = launch.run("evaluate.py", f"--out_dir={tmp_path}", check=False)
  assert result.returncode != 0
  assert "--out_dir was renamed --workdir" in result.stderr


def test_launcher_evaluates_a_table(tmp_path):
  table = launch.write_table_book(tmp_path, 300)
  launch.run("evaluate.py", "--dataset=table", "--seeds=1",
             "--models=logistic_regression,mlp", f"--config={EVAL_CONFIG}",
             f"--config.data.table_path={table}", "--config.data.label_column=bad",
             "--config.data.bad_value=1", "--config.data.knn_k=3",
             f"--workdir={tmp_path / 'out'}")
  results = (tmp_path / "out" / "table" / "results.md").read_text()
  assert "### table (knn3 graph, 1 seeds)" in results
  assert "| logistic_regression | none |" in results


def test_launcher_rejects_unknown_dataset(tmp_path):
  result = launch.run("evaluate.py", "--dataset=mnist",
                      f"--workdir={tmp_path}", check=False)
  assert result.returncode != 0
  assert "unknown datasets ['mnist']" in result.stderr


def test_launcher_refuses_a_bad_config_before_any_model(tmp_path):
  result = launch.run("evaluate.py", "--dataset=synthetic",
                      "--models=logistic_regression",
                      "--config.space.feature_embeddings=linear,spline",
                      f"--workdir={tmp_path}", check=False)
  assert result.returncode != 0
  assert "config.space.feature_embeddings=('linear', 'spline'): must hold" in (
      result.stderr)
  assert not (tmp_path / "synthetic").exists()


def test_combined_table_marks_ours_where_it_matches_the_best_baseline():
  def summary(ours_auc):
    frame = pd.DataFrame({
        "seed": [0, 0, 1, 1], "model": ["searched_ensemble", "gcn"] * 2,
        "graph": ["relations"] * 4, "auc": [ours_auc, 0.7, ours_auc, 0.72],
        "ks": [0.4] * 4, "gini": [0.5] * 4, "val_auc": [0.7] * 4,
        "budget": [1] * 4, "seconds": [60.0] * 4})
    return evaluation.summarize(frame)
  table = evaluation.combined_table({"a": summary(0.8), "b": summary(0.6)},
                                    {"a": 2.0, "b": 3.0})
  assert "| model | a | b |" in table
  assert "| searched_ensemble | **0.8000 +- 0.0000** | 0.6000 +- 0.0000 |" in (
      table)
  assert "| gcn | 0.7100 +- 0.0141 | 0.7100 +- 0.0141 |" in table
  assert "| compute (min) | 2.0 | 3.0 |" in table
  assert "same borrowers" not in table
  table = evaluation.combined_table(
      {"credit": summary(0.8), "taiwan": summary(0.6)},
      {"credit": 2.0, "taiwan": 3.0})
  assert "credit and taiwan are the same borrowers" in table
