"""Screens of a searched model's settings: one search a seed for every set
of search overrides, paired variants."""

import dataclasses
import json
import math

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

import launch  # pylint: disable=g-bad-import-order
import protocol_helpers
from credit_nas_jax import evaluation
from credit_nas_jax import experiment
from credit_nas_jax import model
from credit_nas_jax import pipeline
from credit_nas_jax import screening

VARIANTS = {"as_configured": {},
            "short_alone": {"retrain_steps": 5, "retrain_ensemble_size": 1},
            "short_search": {"search_steps": 6}}


@pytest.fixture(scope="module")
def config():
  return protocol_helpers.tiny_protocol_config()


@pytest.fixture(scope="module")
def dataset(config):
  return pipeline.load_dataset(config)


@pytest.fixture(scope="module")
def screened(config, dataset, tmp_path_factory):
  """The screen as it is and with the test labels flipped, counting the
  searches it ran."""
  searches = []
  original = evaluation.search_and_derive

  def counted(*args, **kwargs):
    searches.append(args[0])
    return original(*args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(evaluation, "search_and_derive", counted)
    rows = [screening.screen_seed(
        data, config, 0, "searched", VARIANTS,
        str(tmp_path_factory.mktemp(name) / "search.jsonl"))
            for name, data in (("as_is", dataset),
                               ("flipped", protocol_helpers.flip_test_labels(dataset)))]
  return rows, searches


def test_one_search_serves_every_variant_of_one_search_setting(screened):
  rows, searches = screened
  # Two screens of one seed, each two searches: the retrain variants share.
  assert searches == ["searched"] * 4
  as_is = rows[0]
  assert [r["variant"] for r in as_is] == list(VARIANTS)
  assert as_is[0]["search_seconds"] == as_is[1]["search_seconds"]
  assert as_is[2]["search_seconds"] != as_is[0]["search_seconds"]
  # The overrides act: two members of up to 10 steps, then one of 5.
  assert len(as_is[0]["best_steps"]) == 2 and max(as_is[0]["last_steps"]) > 5
  assert as_is[1]["last_steps"] == [5]
  # The search variant retrains as the reference does, after its own search.
  assert len(as_is[2]["best_steps"]) == 2
  assert as_is[2]["validation_auc"] != as_is[0]["validation_auc"]


def test_search_groups_split_variants_by_their_search_overrides():
  groups = screening.search_groups({
      "a": {}, "b": {"retrain_steps": 5}, "c": {"embedding_bins": 16},
      "d": {"embedding_bins": 16, "patience": 2}, "e": {"search_steps": 6}})
  assert groups == [({}, ["a", "b"]), ({"embedding_bins": 16}, ["c", "d"]),
                    ({"search_steps": 6}, ["e"])]


def test_the_reference_variant_is_the_evaluations_model(screened, config,
                                                        dataset, tmp_path):
  reference = screened[0][0][0]
  row = evaluation.search_and_retrain(
      "searched", dataset, config, 0, "relations",
      str(tmp_path / "search.jsonl"))
  assert reference["validation_auc"] == pytest.approx(row.validation_auc,
                                                      abs=1e-6)
  assert reference["test_auc"] == pytest.approx(row.test["auc"], abs=1e-6)
  assert reference["weight_decay"] == row.details["weight_decay"]


def test_no_screen_figure_but_test_auc_reads_test_labels(screened):
  as_is, flipped = screened[0]
  for row, other in zip(as_is, flipped):
    assert other["test_auc"] == pytest.approx(1 - row["test_auc"], abs=1e-6)
    for field in ("validation_auc", "weight_decay", "best_steps",
                  "last_steps"):
      assert row[field] == other[field], field


@pytest.mark.parametrize("variants, message", [
    ({}, "at least one variant"),
    ({"a": {}, "b": {"split_seed": 5}},
     r"variant 'b': overrides \['split_seed'\] change the borrowers"),
    ({"a": {"knn_k": 3}}, r"variant 'a': overrides \['knn_k'\]"),
    ({"a": {"embedding_binz": 3}},
     r"variant 'a': no config field \['embedding_binz'\]"),
    ({"a": 3}, "variant 'a': expected an object"),
    ({"a/b": {}}, "variant 'a/b': a name of letters"),
])
def test_variants_are_checked_before_any_search(config, variants, message):
  with pytest.raises(ValueError, match=message):
    screening.check_variants(variants, config)


@pytest.fixture(scope="module")
def searched(config, dataset, tmp_path_factory):
  return evaluation.search_and_derive(
      "searched", dataset, config, 0,
      str(tmp_path_factory.mktemp("searched") / "search.jsonl"))


def test_retrain_refuses_a_search_setting_and_a_bad_value(searched):
  with pytest.raises(ValueError, match=r"retrain overrides \['hidden_dim'\]"):
    evaluation.retrain_derived(searched, {"hidden_dim": 8})
  with pytest.raises(ValueError, match="retrain_average_span"):
    evaluation.retrain_derived(searched, {"retrain_average_span": -1.0})
  with pytest.raises(ValueError, match="retrain_member_variants"):
    evaluation.retrain_derived(searched,
                               {"retrain_member_variants": ["deeper"]})


def test_unlike_members_are_variants_of_the_derived_network(searched):
  run, members, _ = evaluation.retrain_derived(
      searched, {"retrain_ensemble_size": 3,
                 "retrain_member_variants": ["wide_path", "tree_bins"]})
  arch = searched.derived.arch
  assert [m.variant for m in members] == ["derived", "wide_path",
                                          "tree_bins"]
  assert members[0].arch == arch and "wide" not in members[0].weights
  assert members[1].arch == dataclasses.replace(arch, wide=True)
  assert set(members[1].weights) == set(members[0].weights) | {"wide"}
  train = run.dataset.splits["train"]
  assert members[2].arch == model.with_tree_bins(
      arch, run.dataset.node_features[train], run.dataset.labels[train],
      experiment.embedding_options(run.config))
  # The model is the mean of every member on its own network.
  probabilities = evaluation.members_probabilities(run, members)
  for split in ("validation", "test"):
    np.testing.assert_allclose(probabilities[split], np.mean(
        [experiment.evaluate(run, m.weights, {}, m.arch, split)[1]
         for m in members], axis=0), rtol=1e-6)


def test_summary_pairs_each_variant_with_the_reference_by_seed():
  rows = [{"seed": s, "variant": v, "validation_auc": val, "test_auc": test,
           "seconds": 2.0, "search_seconds": 3.0}
          for s, v, val, test in [(0, "ref", 0.70, 0.60), (1, "ref", 0.80, 0.62),
                                  (0, "new", 0.72, 0.61), (1, "new", 0.81, 0.66),
                                  (2, "new", 0.50, 0.50)]]
  summary = screening.summarize(rows, "ref")
  assert list(summary.index) == ["ref", "new"]
  new = summary.loc["new"]
  assert new.seeds == 3
  # Seed 2 has no reference: it counts in the mean, not in the pairs.
  assert new.validation_diff_mean == pytest.approx(0.015)
  assert new.test_diff_mean == pytest.approx(0.025)
  assert new.test_diff_std == pytest.approx(math.sqrt(2) * 0.015)
  assert summary.loc["ref"].validation_diff_mean == 0
  table = screening.markdown_table(summary, "ref")
  assert "| new | 3 |" in table and "+- " in table
  assert table.splitlines()[2].endswith("| 3.0 | 2.0 |")
  bare = screening.markdown_table(summary, "ref", with_seconds=False)
  assert "retrain s" not in bare and bare.splitlines()[1] == "|---" * 6 + "|"
  assert bare.splitlines()[2].count("|") == 7
  with pytest.raises(ValueError, match="reference variant 'old'"):
    screening.summarize(rows, "old")


def test_a_mixture_is_the_mean_of_its_variants_probabilities(tmp_path):
  labels = np.array([0, 1, 0, 1, 1, 0], np.float32)
  a = np.array([0.1, 0.2, 0.9, 0.8, 0.7, 0.3])
  b = np.array([0.5, 0.9, 0.1, 0.6, 0.2, 0.4])
  for name, p in (("a", a), ("b", b)):
    np.savez(tmp_path / f"seed_7_{name}.npz", validation=p, test=1 - p)
  rows = screening.mixture_rows(
      str(tmp_path), {7: {"validation": labels, "test": labels}},
      {"ab": ["a", "b"], "a": ["a"]})
  assert [(r["seed"], r["variant"]) for r in rows] == [(7, "ab"), (7, "a")]
  mean = (a + b) / 2
  assert rows[0]["validation_auc"] == pytest.approx(
      sk_metrics.roc_auc_score(labels, mean))
  assert rows[0]["test_auc"] == pytest.approx(
      sk_metrics.roc_auc_score(labels, 1 - mean))
  assert rows[1]["validation_auc"] == pytest.approx(
      sk_metrics.roc_auc_score(labels, a))


def test_the_pool_counts_a_shared_variant_once_and_picks_on_validation(
    tmp_path):
  labels = np.array([0, 1, 0, 1, 1, 0], np.float32)
  good = np.array([0.1, 0.8, 0.2, 0.9, 0.7, 0.3])
  poor = np.array([0.6, 0.4, 0.5, 0.5, 0.3, 0.7])
  perfect_on_test = labels.astype(np.float64)
  saved = {"a": {"ref": (good, good), "x": (poor, perfect_on_test)},
           "b": {"ref": (good, good), "y": (good[::-1], poor)}}
  for screen, variants in saved.items():
    (tmp_path / screen / "probabilities").mkdir(parents=True)
    for name, (validation, test) in variants.items():
      np.savez(tmp_path / screen / "probabilities" / f"seed_3_{name}.npz",
               validation=validation, test=test)
  pool = screening.pooled_probabilities(
      [str(tmp_path / "a"), str(tmp_path / "b")], 3)
  pooled = pool.probabilities
  assert sorted(pooled) == ["a/ref", "a/x", "b/y"]
  assert pool.duplicates == {"b/ref": "a/ref"}
  split_labels = {"validation": labels, "test": labels}
  *alone, everything, top = screening.pool_rows(pooled, split_labels, 3,
                                                top=2)
  assert [r["variant"] for r in alone] == ["a/ref", "a/x", "b/y"]
  assert alone[1]["test_auc"] == 1.0
  assert everything["variant"] == "pool_all" and top["variant"] == "pool_top2"
  assert everything["test_auc"] == pytest.approx(sk_metrics.roc_auc_score(
      labels, (good + perfect_on_test + poor) / 3))
  # x is perfect on test but worst on validation: the top two leave it out.
  assert top["members"] == ["a/ref", "b/y"]
  assert top["validation_auc"] == pytest.approx(sk_metrics.roc_auc_score(
      labels, (good + good[::-1]) / 2))
  flipped = {"validation": labels, "test": 1 - labels}
  assert screening.pool_rows(pooled, flipped, 3, top=2)[-1]["members"] == (
      top["members"])
  # More than there are: named by what it holds.
  assert screening.pool_rows(pooled, split_labels, 3, top=5)[-1][
      "variant"] == "pool_top3"
  with pytest.raises(FileNotFoundError, match="no saved probabilities"):
    screening.pooled_probabilities([str(tmp_path / "c")], 3)
  with pytest.raises(FileNotFoundError, match="no saved probabilities of "
                     "seed 4"):
    screening.pooled_probabilities([str(tmp_path / "a")], 4)
  (tmp_path / "other" / "a" / "probabilities").mkdir(parents=True)
  with pytest.raises(ValueError, match=r"screens \['a'\] are named twice"):
    screening.pooled_probabilities(
        [str(tmp_path / "a"), str(tmp_path / "other" / "a")], 3)
  with pytest.raises(ValueError, match="seed 4: no saved probabilities"):
    screening.pool_rows({}, split_labels, 4, top=2)


def test_a_pool_seed_fits_the_baselines_and_refuses_other_rows(config,
                                                               dataset):
  rows = {split: dataset.splits[split].size for split in screening.SPLITS}
  rng = np.random.default_rng(0)
  pooled = {"s/v": {split: rng.random(n) for split, n in rows.items()}}
  seed_rows = screening.pool_seed(dataset, config, 0, pooled, top=1)
  assert [r["variant"] for r in seed_rows] == [
      *screening.POOL_BASELINES, "s/v", "pool_all", "pool_top1"]
  labels = dataset.labels[dataset.splits["test"]]
  assert seed_rows[2]["test_auc"] == pytest.approx(
      sk_metrics.roc_auc_score(labels, pooled["s/v"]["test"]))
  short = {"s/v": {**pooled["s/v"], "test": pooled["s/v"]["test"][:-1]}}
  with pytest.raises(ValueError, match="s/v's test probabilities"):
    screening.pool_seed(dataset, config, 0, short, top=1)


def test_launcher_writes_the_screen(tmp_path):
  config = launch.os.path.join(launch.ROOT, "experiments", "configs",
                               "evaluate_test.py")
  result = launch.run(
      "screen_retrain.py", "--dataset=synthetic", "--model=searched_isolated",
      "--seeds=100", f"--config={config}", "--config.num_borrowers=400",
      "--config.search_steps=10", "--config.arch_warmup_steps=3",
      "--config.retrain_steps=10", "--config.eval_every=5",
      "--variants=" + json.dumps({"ref": {}, "avg": {
          "retrain_average_span": 2.0}}),
      "--mixtures=" + json.dumps({"both": ["ref", "avg"]}),
      f"--workdir={tmp_path}")
  assert "| avg | 1 |" in result.stdout and "| both | 1 |" in result.stdout
  rows = [json.loads(line) for line in
          (tmp_path / "rows.jsonl").read_text().splitlines()]
  assert [(r["seed"], r["variant"]) for r in rows] == [(100, "ref"),
                                                       (100, "avg")]
  assert (tmp_path / "screen.csv").stat().st_size > 0
  assert (tmp_path / "screen.png").read_bytes()[:4] == b"\x89PNG"
  assert "searched_isolated, seeds [100]" in (tmp_path / "screen.md").read_text()
  saved = dict(np.load(tmp_path / "probabilities" / "seed_100_ref.npz"))
  assert set(saved) == {"validation", "test"}
  pool = launch.run(
      "screen_pool.py", "--dataset=synthetic", "--seeds=100", "--top=1",
      f"--config={config}", "--config.num_borrowers=400",
      f"--screens={tmp_path}", f"--workdir={tmp_path / 'pool'}")
  for variant in ("lightgbm", "logistic_regression", "pool_all",
                  "pool_top1", f"{tmp_path.name}/ref"):
    assert f"| {variant} | 1 |" in pool.stdout, pool.stdout
  pooled = [json.loads(line) for line in
            (tmp_path / "pool" / "rows.jsonl").read_text().splitlines()]
  assert len(pooled[-2]["members"]) == 2 and len(pooled[-1]["members"]) == 1
  assert (tmp_path / "pool" / "pool.png").read_bytes()[:4] == b"\x89PNG"
  missing = launch.run("screen_pool.py", f"--screens={tmp_path / 'none'}",
                       "--dataset=synthetic", f"--config={config}",
                       f"--workdir={tmp_path / 'pool'}", check=False)
  assert missing.returncode != 0 and "no saved probabilities" in (
      missing.stderr)
  mixed = launch.run("screen_retrain.py", "--mixtures={\"m\": [\"x\"]}",
                     f"--workdir={tmp_path}", check=False)
  assert mixed.returncode != 0 and "--mixtures must map" in mixed.stderr
  refused = launch.run("screen_retrain.py", "--variants={\"a\": {\"seed\": 1}}",
                       f"--workdir={tmp_path}", check=False)
  assert refused.returncode != 0
  assert "variant 'a': overrides ['seed'] change the borrowers" in (
      refused.stderr)
