"""The protocol's fairness: no test label reaches any choice of any model."""

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

import protocol_helpers  # pylint: disable=g-bad-import-order
from credit_nas_jax import config as config_lib
from credit_nas_jax import evaluation
from credit_nas_jax import model
from credit_nas_jax import pipeline

# What depends on the machine's clock, not on the data.
_TIMING = ("search_seconds", "supernet_inference_ms", "derived_inference_ms",
           "inference_speedup", "member_seconds", "budget_seconds")


def _choices(row):
  """Everything a model chose or measured on validation (no test, no clock)."""
  details = {k: v for k, v in row["details"].items() if k not in _TIMING}
  return {"validation_auc": row["validation_auc"], **details}


@pytest.fixture(scope="module")
def config():
  return protocol_helpers.tiny_protocol_config()


@pytest.fixture(scope="module")
def dataset(config):
  return pipeline.load_dataset(config)


@pytest.fixture(scope="module")
def models():
  return tuple(m for m in evaluation.MODELS
               if m != "lightgbm" or evaluation.lightgbm_available())


@pytest.fixture(scope="module")
def runs(config, dataset, models, tmp_path_factory):
  """Every model on one seed, as it is and with the test labels flipped."""
  return [evaluation.evaluate_seed(
      data, config, 0, models, "relations",
      str(tmp_path_factory.mktemp(name)))
          for name, data in (("as_is", dataset),
                             ("flipped", protocol_helpers.flip_test_labels(dataset)))]


def test_every_model_runs_on_one_seed(runs, dataset, config, models,
                                      tmp_path):
  rows = runs[0]
  assert [r["model"] for r in rows] == list(models)
  by_model = {r["model"]: r for r in rows}
  assert by_model["mlp"]["graph"] == "isolated"
  assert by_model["mlp_matched"]["graph"] == "isolated"
  assert by_model["graphsage_matched"]["graph"] == "relations"
  assert by_model["searched_isolated"]["graph"] == "isolated"
  assert by_model["searched"]["graph"] == "relations"
  for row in rows:
    assert row["seed"] == 0
    assert 0.0 <= row["test"]["auc"] <= 1.0
    assert row["test"]["count"] == dataset.splits["test"].size
  extended = by_model["searched_extended"]["details"]
  # A gate per (feature, embedding kind); every feature has its linear one.
  assert {model.feature_of(n) for n in extended["feature_gates"]} == set(
      dataset.encoder.features)
  assert set(dataset.encoder.features) <= set(extended["feature_gates"])
  assert any(":periodic" in n for n in extended["feature_gates"])
  assert extended["readout_gate"] is not None
  # Every op combination and feature count was scored on validation.
  assert len([t for t in extended["derive_trials"] if "ops" in t]) == 25
  # Features close on evidence: a feature went if and only if its gain plus
  # z standard errors is below the minimum gain.
  z, least = config.derive.confidence, config.derive.min_feature_gain
  assert z > 0 and least > 0
  closing = [t for t in extended["derive_trials"] if "closed_feature" in t]
  assert closing and any(t["gain_se"] > 0 for t in closing)
  bounds = {t["closed_feature"]: t["gain"] + z * t["gain_se"]
            for t in closing}
  kept = {model.feature_of(n) for n in extended["kept_features"]}
  if any(bound >= least for bound in bounds.values()):  # not all weak
    assert {n for n, bound in bounds.items() if bound >= least} == (
        kept & set(bounds))
  assert by_model["searched"]["details"]["readout_gate"] is None
  # Ours on the linear embedding reads no other kind; the matched
  # baselines read ours' whole menu.
  assert not any(":" in n for n in
                 by_model[evaluation.LINEAR]["details"]["feature_gates"])
  menu = sorted(config.space.feature_embeddings)
  for name in evaluation.MATCHED[1:]:
    assert by_model[name]["details"]["embeddings"] == menu, name
  # Finished models are kept as they are when a seed is resumed.
  again = evaluation.evaluate_seed(dataset, config, 0, models, "relations",
                                   str(tmp_path), done=by_model,
                                   on_result=lambda row: pytest.fail("rerun"))
  assert again == rows


def test_searched_rows_average_their_retrained_members(runs, config,
                                                       dataset):
  size = config.retrain.ensemble_size
  assert size > 1  # the protocol's config exercises the members' mean
  labels = dataset.labels[dataset.splits["validation"]]
  for name in evaluation.SEARCHED + evaluation.MATCHED[1:]:
    row = next(r for r in runs[0] if r["model"] == name)
    members = row["details"]["retrain_members"]
    assert len(members) == size
    # Each member stopped on validation by itself, from its own weights.
    assert all(0 < m["best_step"] <= m["retrain_steps"] for m in members)
    assert len({m["validation_auc"] for m in members}) == size, name
    # The row is the mean of the members: its validation AUC is the mean's.
    assert row["validation_auc"] == pytest.approx(
        sk_metrics.roc_auc_score(labels, row["scores"]["validation"]),
        abs=1e-6)
    assert len(row["scores"]["test"]) == row["test"]["count"]
    # The first member tried every decay; the best on validation was kept
    # and the other members retrained with it.
    decays = row["details"].get("weight_decays") or row["details"][
        "settings"]
    assert sorted({d["weight_decay"] for d in decays}) == sorted(
        config.retrain.weight_decays)
    chosen = max(decays, key=lambda d: d["validation_auc"])
    assert row["details"]["weight_decay"] == chosen["weight_decay"]
    assert members[0]["validation_auc"] == pytest.approx(
        chosen["validation_auc"])


def test_the_ensemble_is_the_best_subset_on_validation(runs):
  by_model = {r["model"]: r for r in runs[0]}
  ensemble = by_model[evaluation.ENSEMBLE]
  searched = {m: by_model[m]["validation_auc"] for m in evaluation.SEARCHED}
  assert set(ensemble["details"]["members"]) <= set(searched)
  assert ensemble["details"]["budget"] == 7  # the non-empty subsets of 3
  # At least as good on validation as its best member alone.
  assert ensemble["validation_auc"] >= max(searched.values()) - 1e-5


def test_the_flip_reaches_every_test_score(runs):
  for row, flipped in zip(*runs):
    assert flipped["test"]["auc"] == pytest.approx(1 - row["test"]["auc"],
                                                   abs=1e-9), row["model"]


def test_every_choice_and_validation_figure_ignores_test_labels(runs):
  for row, flipped in zip(*runs):
    assert row["model"] == flipped["model"]
    assert _choices(row) == _choices(flipped), row["model"]


def test_every_model_reports_its_validation_budget(runs, config):
  budgets = {row["model"]: row["details"]["budget"] for row in runs[0]}
  assert budgets["logistic_regression"] == len(evaluation.LR_STRENGTHS)
  for name in ("mlp", "gcn", "graphsage"):
    assert budgets[name] == len(config.baselines.fixed_width_ratios) * len(
        config.baselines.fixed_weight_decays)
  decays = len(config.retrain.weight_decays)
  assert budgets["supernet"] == decays
  for name in ("mlp_matched", "graphsage_matched"):
    assert budgets[name] == len(config.baselines.fixed_width_ratios) * decays
  if "lightgbm" in budgets:
    assert budgets["lightgbm"] == len(evaluation.lightgbm_grid(config)) == 2
    assert budgets[evaluation.BAGGED] == budgets["lightgbm"]
  # Ours: every derive candidate, then every retrain weight decay, scored
  # on validation.
  for name in evaluation.SEARCHED + (evaluation.LINEAR,):
    row = next(r for r in runs[0] if r["model"] == name)
    assert len(row["details"]["derive_trials"]) > 1
    assert budgets[name] == len(row["details"]["derive_trials"]) + len(
        config.retrain.weight_decays) - 1
  # The random control: each drawn network retrained as ours is (every
  # decay, then the members), the best of them on validation kept.
  random = next(r for r in runs[0] if r["model"] == evaluation.RANDOM)
  drawn = random["details"]["architectures"]
  assert len(drawn) == config.baselines.random_architectures == 2
  assert budgets[evaluation.RANDOM] == len(drawn) * len(
      config.retrain.weight_decays)
  assert len(random["details"]["retrain_members"]) == (
      config.retrain.ensemble_size)
  assert random["validation_auc"] == pytest.approx(
      max(d["validation_auc"] for d in drawn))
  # Ours with its first member alone: the same search, no compute of its
  # own (counted once in the total), its own probabilities.
  single = next(r for r in runs[0] if r["model"] == evaluation.ONE_MEMBER)
  searched = next(r for r in runs[0] if r["model"] == "searched")
  assert budgets[evaluation.ONE_MEMBER] == budgets["searched"]
  assert evaluation.compute_seconds([searched, single]) == pytest.approx(
      single["seconds"])
  assert single["scores"]["test"] == searched["scores"]["first_member_test"]
  assert single["scores"]["test"] != searched["scores"]["test"]
  # The chosen setting is the grid's best on validation.
  for row in runs[0]:
    if "grid" in row["details"]:
      best = max(t["validation_auc"] for t in row["details"]["grid"])
      assert row["validation_auc"] == pytest.approx(best)
      assert len(row["details"]["grid"]) == row["details"]["budget"]
  assert np.isfinite([r["validation_auc"] for r in runs[0]]).all()


def test_baselines_do_not_read_the_fields_only_ours_reads(runs, config,
                                                          dataset, models,
                                                          tmp_path):
  config = config_lib.typed(config)
  changed = config_lib.replace(config, {
      "space.feature_embeddings": ("linear", "periodic"),
      "space.embedding_bins": 3,
      "space.embedding_frequencies": config.space.embedding_frequencies + 3,
      "space.embedding_sigma": 2.0, "retrain.ensemble_size": 1,
      "retrain.weight_decays": (1.0,)})
  differing = {k for k in evaluation.OURS_ONLY_FIELDS
               if config_lib.get(changed, k) != config_lib.get(config, k)}
  assert differing == set(evaluation.OURS_ONLY_FIELDS)
  baselines = [m for m in models if m in evaluation.BASELINES]
  again = evaluation.evaluate_seed(dataset, changed, 0, baselines,
                                   "relations", str(tmp_path))
  before = {r["model"]: r for r in runs[0]}
  for row in again:
    assert _choices(row) == _choices(before[row["model"]]), row["model"]
    assert row["test"] == before[row["model"]]["test"], row["model"]


def test_a_seed_keeps_the_rows_its_config_change_leaves_valid():
  rows = [{"model": m} for m in ("lightgbm", "mlp", "supernet", "searched",
                                 "searched_ensemble")]
  config = {"seed": 0, "space": {"hidden_dim": 8, "embedding_bins": 4}}
  assert evaluation.reusable_rows(config, dict(config), rows) == {
      r["model"]: r for r in rows}
  kept = evaluation.reusable_rows(
      config, {**config, "space": {"hidden_dim": 8, "embedding_bins": 8}},
      rows)
  # The supernet trains on ours' terms (the embedding menu): not kept.
  assert sorted(kept) == ["lightgbm", "mlp"]
  assert evaluation.reusable_rows(
      config, {**config, "space": {"hidden_dim": 16, "embedding_bins": 4}},
      rows) == {}
  assert evaluation.reusable_rows(
      config, {"space": {"embedding_bins": 4}}, rows) == {}
