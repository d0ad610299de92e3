"""The evaluation protocol: seeds, splits, baselines, our searched model.

Every model sees the same split of a seed (stratified 60/20/20, encoder
statistics from train), makes every choice on validation (early stopping,
regularisation strength, boosting rounds, grid settings), and is scored once
on test; no test label reaches a choice (``tests/test_protocol.py`` flips
them all and checks that every choice stays). Each model's validation
budget (settings it chose among) is reported in its ``details``:

* ``logistic_regression``: L2 logistic regression on the encoded features;
  the inverse strength C is chosen on validation AUC.
* ``lightgbm``: gradient-boosted trees (the optional ``baselines`` extra)
  over a grid of leaves, learning rate and minimum child size
  (``config.lightgbm_*``), each with boosting rounds chosen by early
  stopping on validation AUC.
* ``mlp``: the network with no neighbours: every borrower a one-node graph.
* ``gcn``: a plain two-layer GCN (one GCN op per layer, every feature).
* ``graphsage``: a two-layer GraphSAGE-style network (neighbours' mean plus
  a root weight on the borrower's own state).

The fixed networks (mlp, gcn, graphsage) are trained over a grid of widths
(``config.baselines.fixed_width_ratios`` of ``hidden_dim``) and weight decays
(``config.baselines.fixed_weight_decays``; the model has no dropout) on the
patent's linear embedding and keep the setting of the best validation AUC.

On ours' terms (:data:`MATCHED`), so that each of ours' advantages can be
read apart from the search:

* ``lightgbm_bagged``: LightGBM's chosen setting fitted on as many bagging
  seeds as ours has retrained members, their probabilities averaged.
* ``mlp_matched``, ``graphsage_matched``: the MLP and GraphSAGE on ours'
  embedding menu, choosing their width and the retrain's weight decay on
  validation, ``retrain.ensemble_size`` members averaged.
* ``supernet``: the patent's supernet trained without search (every
  feature, every op, gates fixed at 1), under the same terms: the search
  switched off, all else equal.

Ours and its controls:

* ``searched``: ours: bilevel search, derive, retrain (the patent's ops);
  the retrain's weight decay is chosen on validation among
  ``config.retrain.weight_decays``, as the fixed networks' is.
* ``searched_extended``: the same over the extended space (also SAGE-style
  and no-neighbour ops).
* ``searched_isolated``: ours on one-node graphs (no edges at all), on
  every graph kind: the no-graph member the ensemble may choose.
* ``searched_selected``: of the searched models a seed ran, the one with
  the best validation AUC (the choice of search space, made on validation
  like every other choice). It costs nothing more.
* ``searched_ensemble``: the mean of the probabilities of the searched
  models of the seed, over the subset of them (one model included) whose
  mean has the best validation AUC: independently searched and trained
  networks averaged, the choice made on validation. It costs nothing more
  than its members and is our headline row.
* ``searched_linear``: ``searched`` on the patent's linear embedding
  alone (what the embedding menu adds; not an ensemble member).
* ``random_architecture``: networks drawn at random from ``searched``'s
  space, each retrained as ours (:func:`random_control`).
* ``searched_one_member``: ``searched`` with its first retrained member
  alone (what averaging the members adds).

The searched models embed every feature by the kinds of
``config.space.feature_embeddings`` (the evaluation's config offers all
three); the plain fixed networks keep the patent's linear embedding.

The neural models share the readout, head, optimizer and early stopping.

Every row keeps its model's validation and test probabilities and its
``calibration``: a map fitted on that model's validation probabilities alone
(``calibration.fit_calibration``) and the test Brier score, expected
calibration error and log loss before and after it. The fairness report of
a seed (:func:`fairness_reports`) groups the test rows by a sensitive column
(``config.data.sensitive_column``; the public sets' own by default:
:data:`SENSITIVE_COLUMNS`) and reads each model's approvals at the scoring
policy's bands (``scoring.DEFAULT_BANDS``) of its calibrated probabilities.
Both are reports: no choice of any model reads them.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import itertools
import os
import platform
import time
from typing import Any, Callable, Sequence

import chex
import jax
import numpy as np
import pandas as pd
from absl import logging
from scipy import stats
from sklearn import linear_model
from sklearn import metrics as sk_metrics

from credit_nas_jax import calibration as calibration_lib
from credit_nas_jax import config as config_lib
from credit_nas_jax import data as data_lib
from credit_nas_jax import datasets
from credit_nas_jax import experiment
from credit_nas_jax import fairness as fairness_lib
from credit_nas_jax import files
from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import metrics as metrics_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import pipeline
from credit_nas_jax import scoring
from credit_nas_jax import search as search_lib

MODELS = ("logistic_regression", "lightgbm", "lightgbm_bagged", "mlp",
          "mlp_matched", "gcn", "graphsage", "graphsage_matched", "supernet",
          "searched", "searched_extended", "searched_isolated",
          "searched_linear", "random_architecture", "searched_one_member",
          "searched_ensemble")
# ``searched`` with its first retrained member alone: what averaging the
# members adds (:func:`one_member`).
ONE_MEMBER = "searched_one_member"
# Public sets that hold the same borrowers (credit: the feature-similarity
# graph of taiwan's 30,000 card holders).
SAME_BORROWERS = (("credit", "taiwan"),)
# The control of the search: networks drawn at random from the patent's
# space, each retrained as ours (:func:`random_control`).
RANDOM = "random_architecture"
# The most networks a compute-matched random control draws.
RANDOM_ARCHITECTURES_CAP = 16
BASELINES = ("logistic_regression", "lightgbm", "mlp", "gcn", "graphsage")
# The baselines on ours' terms (:func:`train_matched`, ``lightgbm_bagged``):
# the embedding menu, the retrain's weight decays and as many averaged
# members as ours; they read the fields ours reads.
MATCHED = ("lightgbm_bagged", "mlp_matched", "graphsage_matched", "supernet")
BAGGED = "lightgbm_bagged"
# The op kind of every fixed network.
_FIXED_KINDS = {"mlp": "self", "gcn": "gcn", "graphsage": "sage",
                "mlp_matched": "self", "graphsage_matched": "sage"}
# Apart in a bagged member's seed from the next evaluation seed's.
_MEMBER_SEED_STRIDE = 7919
SEARCHED = ("searched", "searched_extended", "searched_isolated")
# Ours on the patent's linear embedding alone: what the embedding menu adds
# (not an ensemble member).
LINEAR = "searched_linear"
# The models that run on one-node graphs whatever the set's graph.
ISOLATED = ("mlp", "mlp_matched", "searched_isolated")
SELECTED = "searched_selected"
ENSEMBLE = "searched_ensemble"
OURS = ENSEMBLE
# The settings only our searched models read (the baselines train on the
# linear embedding alone, over their own grids): a stored seed whose config
# differs from a run's in these alone keeps its baselines' rows.
OURS_ONLY_FIELDS = ("space.feature_embeddings", "space.embedding_bins",
                    "space.embedding_frequencies", "space.embedding_sigma",
                    "retrain.ensemble_size", "retrain.weight_decays")
# Settings that shape only the reports, never a row: a stored seed whose
# config differs in these alone keeps every row.
REPORT_ONLY_FIELDS = ("data.sensitive_column", "data.sensitive_bins")
LR_STRENGTHS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
# The public sets' sensitive columns and bins (SOURCES.md's columns; taiwan's
# SEX is 1 for male, 2 for female; credit's Age is already binary, 1 for a
# borrower under 25, row for row taiwan's AGE < 25): dataset -> (column,
# inner bin edges).
SENSITIVE_COLUMNS = {"german": ("Gender", ()), "taiwan": ("SEX", ()),
                     "credit": ("Age", ())}
NO_SENSITIVE_COLUMN = "none"


@dataclasses.dataclass
class ModelResult:
  """One model on one seed: test metrics and what it chose on validation."""

  model: str
  graph: str
  test: dict[str, float]
  validation_auc: float
  seconds: float
  roc: dict[str, list[float]]
  details: dict[str, Any] = dataclasses.field(default_factory=dict)
  # Validation and test probabilities: the ensemble's choice, the
  # calibration map and the fairness report read them.
  scores: dict[str, list[float]] = dataclasses.field(default_factory=dict)
  # The calibration map of the validation probabilities and the test
  # figures before and after it (:func:`calibrate`).
  calibration: dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def isolated(dataset: data_lib.Dataset) -> data_lib.Dataset:
  """The same borrowers and split with every edge removed."""
  empty = np.zeros(0, np.int64)
  return dataclasses.replace(dataset, graph=graphs_lib.BorrowerGraph.from_edges(
      dataset.labels.shape[0], empty, empty))


def load_dataset(config: config_lib.Config | Any) -> data_lib.Dataset:
  """The dataset ``config.data.dataset`` names: a public set or a team's table
  (with its k-NN graph kind), else a synthetic book."""
  config = config_lib.typed(config)
  if config.data.dataset == "table" or config.data.dataset in datasets.SPECS:
    return datasets.load_from_config(config)
  return pipeline.load_dataset(config)


def machine() -> str:
  """The device, cores, architecture and jax version, for a results table."""
  device = jax.devices()[0]
  kind = (device.platform if device.device_kind == device.platform
          else f"{device.platform} ({device.device_kind})")
  return (f"{kind}, {os.cpu_count()} cores, {platform.machine()}, "
          f"jax {jax.__version__}")


def roc_points(labels: np.ndarray, scores: np.ndarray,
               max_points: int = 200) -> dict[str, list[float]]:
  """The ROC curve, thinned to at most ``max_points`` points."""
  fpr, tpr, _ = sk_metrics.roc_curve(labels, scores)
  keep = np.unique(np.linspace(0, fpr.size - 1, min(max_points, fpr.size))
                   .round().astype(int))
  return {"fpr": np.round(fpr[keep], 5).tolist(),
          "tpr": np.round(tpr[keep], 5).tolist()}


def _result(model: str, graph: str, labels: np.ndarray,
            scores: dict[str, np.ndarray], validation_auc: float,
            start: float, details: dict[str, Any] | None = None
            ) -> ModelResult:
  """A model's row: metrics and ROC of its test probabilities
  (``scores["test"]`` against the test ``labels``), and every probability
  of ``scores`` kept (both splits', and a first member's)."""
  test = np.asarray(scores["test"])
  return ModelResult(model, graph,
                     metrics_lib.classification_metrics(labels, test),
                     float(validation_auc), time.perf_counter() - start,
                     roc_points(labels, test), details or {},
                     {split: np.round(np.asarray(value, np.float64),
                                      7).tolist()
                      for split, value in scores.items()})


def _split_labels(dataset: data_lib.Dataset) -> dict[str, np.ndarray]:
  """The validation and test labels."""
  return {split: dataset.labels[dataset.splits[split]]
          for split in ("validation", "test")}


def calibrate(scores: dict[str, Sequence[float]],
              labels: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
  """A row's ``calibration``: the map fitted on the validation
  probabilities and labels alone, and the test figures before and after.

  Args:
    scores: the row's ``validation`` and ``test`` probabilities.
    labels: the same splits' labels (the test ones are only measured).
    seed: the shuffle of the map's choosing folds.

  Returns:
    ``method``, ``map`` (``calibration.fit_calibration``) and ``test``
    (``before`` and ``after``: Brier, ECE and log loss).
  """
  fitted = calibration_lib.fit_calibration(
      labels["validation"], np.asarray(scores["validation"], np.float64),
      seed=seed)
  return {"method": fitted["method"], "map": fitted,
          "test": calibration_lib.calibration_report(
              fitted, labels["test"], np.asarray(scores["test"],
                                                 np.float64))}


def calibrated_test(row: dict[str, Any]) -> np.ndarray:
  """A row's test probabilities through its calibration map."""
  return calibration_lib.apply_map(row["calibration"]["map"],
                                   np.asarray(row["scores"]["test"]))


def fit_logistic_regression(dataset: data_lib.Dataset) -> ModelResult:
  """L2 logistic regression; C chosen on validation AUC."""
  start = time.perf_counter()
  x, y, splits = dataset.node_features, dataset.labels, dataset.splits
  best, validation_aucs = None, []
  for strength in LR_STRENGTHS:
    fitted = linear_model.LogisticRegression(C=strength, max_iter=5000).fit(
        x[splits["train"]], y[splits["train"]])
    auc = sk_metrics.roc_auc_score(
        y[splits["validation"]],
        fitted.predict_proba(x[splits["validation"]])[:, 1])
    validation_aucs.append(float(auc))
    if best is None or auc > best[0]:
      best = (auc, strength, fitted)
  auc, strength, fitted = best
  scores = {split: fitted.predict_proba(x[splits[split]])[:, 1]
            for split in ("validation", "test")}
  return _result("logistic_regression", "none", y[splits["test"]], scores,
                 auc, start, {"C": strength, "budget": len(LR_STRENGTHS),
                              "validation_aucs": validation_aucs})


def lightgbm_available() -> bool:
  try:
    import lightgbm  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def lightgbm_grid(config: config_lib.Config) -> list[dict[str, Any]]:
  """LightGBM settings a config's grid tries (leaves, rate, child size)."""
  return [{"num_leaves": int(leaves), "learning_rate": float(rate),
           "min_child_samples": int(child)}
          for leaves, rate, child in itertools.product(
              config.baselines.lightgbm_num_leaves, config.baselines.lightgbm_learning_rates,
              config.baselines.lightgbm_min_child_samples)]


def _boosted_trees(x: np.ndarray, y: np.ndarray,
                   splits: dict[str, np.ndarray], params: dict[str, Any],
                   seed: int):
  """One LightGBM classifier of ``params`` (its rows and columns bagged by
  ``seed``), its rounds chosen by early stopping on validation AUC."""
  import lightgbm  # pylint: disable=g-import-not-at-top
  classifier = lightgbm.LGBMClassifier(
      n_estimators=2000, subsample=0.8, subsample_freq=1,
      colsample_bytree=0.8, random_state=seed, deterministic=True,
      force_row_wise=True, verbose=-1, **params)
  validation_set = (x[splits["validation"]], y[splits["validation"]])
  # lightgbm >= 4.6 names the validation set eval_X, eval_y.
  if "eval_X" in inspect.signature(classifier.fit).parameters:
    evaluation_args = dict(zip(("eval_X", "eval_y"), validation_set))
  else:
    evaluation_args = {"eval_set": [validation_set]}
  classifier.fit(x[splits["train"]], y[splits["train"]], eval_metric="auc",
                 callbacks=[lightgbm.early_stopping(100, verbose=False)],
                 **evaluation_args)
  return classifier


def fit_lightgbm(dataset: data_lib.Dataset, seed: int,
                 grid: Sequence[dict[str, Any]] = ({},),
                 members: int = 1) -> ModelResult:
  """Gradient-boosted trees: every setting of ``grid`` with its rounds
  chosen by early stopping on validation AUC; the best on validation kept.
  With ``members`` above 1 (``lightgbm_bagged``), the chosen setting is
  fitted ``members`` - 1 more times on other bagging seeds, each stopped on
  validation, and the row is the mean of their probabilities, as ours is
  of its retrained members.

  An empty setting is the single default (15 leaves, rate 0.03, 20 rows).
  """
  start = time.perf_counter()
  x, y, splits = dataset.node_features, dataset.labels, dataset.splits
  def probabilities(classifier):
    return {split: classifier.predict_proba(x[splits[split]])[:, 1]
            for split in ("validation", "test")}

  best, tried = None, []
  for setting in grid:
    params = {"num_leaves": 15, "learning_rate": 0.03,
              "min_child_samples": 20, **setting}
    classifier = _boosted_trees(x, y, splits, params, seed)
    scores = probabilities(classifier)
    auc = sk_metrics.roc_auc_score(y[splits["validation"]],
                                   scores["validation"])
    tried.append({**params, "rounds": int(classifier.best_iteration_ or 2000),
                  "validation_auc": float(auc)})
    if best is None or auc > best[0]:
      best = (auc, params, scores, tried[-1])
  auc, params, scores, chosen = best
  details = {**{k: v for k, v in chosen.items() if k != "validation_auc"},
             "budget": len(tried), "grid": tried}
  if members == 1:
    return _result("lightgbm", "none", y[splits["test"]], scores, auc, start,
                   details)
  bagged = [scores] + [
      probabilities(_boosted_trees(x, y, splits, params,
                                   seed + _MEMBER_SEED_STRIDE * member))
      for member in range(1, members)]
  scores = {split: np.mean([s[split] for s in bagged], axis=0)
            for split in ("validation", "test")}
  details["members"] = [
      {"validation_auc": float(sk_metrics.roc_auc_score(
          y[splits["validation"]], s["validation"]))} for s in bagged]
  details["settings"] = details.pop("grid")
  return _result(BAGGED, "none", y[splits["test"]], scores,
                 sk_metrics.roc_auc_score(y[splits["validation"]],
                                          scores["validation"]),
                 start, details)


def fixed_architecture(inputs: model_lib.Architecture, kind: str,
                       width_ratio: float) -> model_lib.Architecture:
  """A network without search over the input entries of ``inputs`` (a
  supernet: every feature, by each of its embedding kinds), one op of
  ``kind`` a layer, ``width_ratio`` times D wide."""
  width = max(1, int(round(width_ratio * inputs.hidden_dim)))
  layers = len(inputs.layer_ops)
  return dataclasses.replace(
      inputs, layer_ops=((width,),) * layers,
      layer_op_names=((kind,),) * layers, layer_op_kinds=((kind,),) * layers,
      searchable=False, readout_searchable=False, pooled_readout=True)


def _seed_experiment(dataset: data_lib.Dataset,
                     config: config_lib.Config, seed: int,
                     search_space: str = "patent",
                     embeddings: bool = True) -> experiment.Experiment:
  """The experiment core over one seed's dataset (without ``embeddings``:
  the patent's linear feature embedding alone)."""
  changes = {"seed": seed, "space.name": search_space}
  if not embeddings:
    changes["space.feature_embeddings"] = ("linear",)
  return experiment.prepare(config_lib.replace(config, changes), dataset)


def _test_result(model: str, graph: str,
                 trained: tuple[experiment.Experiment, chex.ArrayTree,
                                model_lib.Architecture],
                 history: list[dict], start: float,
                 details: dict[str, Any] | None = None) -> ModelResult:
  """Scores a retrain's best weights (``trained``: its experiment, the
  weights, the network) once on test (and on validation, for the
  calibration map)."""
  exp, weights, arch = trained
  scores = {split: experiment.evaluate(exp, weights, {}, arch, split)[1]
            for split in ("validation", "test")}
  labels = exp.dataset.labels[exp.dataset.splits["test"]]
  best = max(history, key=lambda r: r["val_auc"])
  return _result(model, graph, labels, scores, best["val_auc"], start,
                 {"retrain_steps": history[-1]["step"],
                  "best_step": best["step"],
                  "validation_aucs": [r["val_auc"] for r in history],
                  **(details or {})})


def fixed_grid(config: config_lib.Config) -> list[dict[str, float]]:
  """The (width ratio, weight decay) settings a fixed baseline network
  tries."""
  return [{"width_ratio": float(r), "weight_decay": float(d)}
          for r in config.baselines.fixed_width_ratios
          for d in config.baselines.fixed_weight_decays]


def reusable_rows(stored_config: dict[str, Any], config: dict[str, Any],
                  rows: Sequence[dict]) -> dict[str, dict]:
  """The stored rows of one seed that a run of ``config`` keeps: all of
  them under the same config, the baselines' (:data:`BASELINES`) where the
  configs differ only in :data:`OURS_ONLY_FIELDS`, else none; fields of
  :data:`REPORT_ONLY_FIELDS` never count. Both are
  nested dicts (``Config.to_dict``), compared field by field."""
  stored_config, config = (config_lib.flatten(c)
                           for c in (stored_config, config))
  differing = {k for k in set(stored_config) | set(config)
               if stored_config.get(k) != config.get(k)}
  differing -= set(REPORT_ONLY_FIELDS)
  if not differing:
    return {r["model"]: r for r in rows}
  if differing <= set(OURS_ONLY_FIELDS):
    return {r["model"]: r for r in rows if r["model"] in BASELINES}
  return {}


def retrain_weight_decays(config: config_lib.Config
                          ) -> tuple[float, ...]:
  """The weight decays a searched model's retrain chooses among on
  validation: ``config.retrain.weight_decays``, or (empty) the one
  ``retrain_weight_decay``."""
  grid = tuple(config.retrain.weight_decays)
  return tuple(float(d) for d in grid) or (
      float(config.retrain.weight_decay),)


def _with_weight_decay(exp: experiment.Experiment,
                       weight_decay: float) -> experiment.Experiment:
  """The experiment with its retrains' decoupled weight decay replaced."""
  return dataclasses.replace(exp, config=config_lib.replace(
      exp.config, {"retrain.weight_decay": float(weight_decay)}))


def _best_on_validation(settings: Sequence[dict[str, Any]],
                        train: Callable[[dict[str, Any]],
                                        tuple[Any, list[dict]]]):
  """Trains every setting (``train(setting)``: (what it trained, its
  retrain history)) and keeps the one of the best validation AUC.

  Returns:
    (the best setting, what it trained, its history, every setting tried
    with its validation AUC and best step).
  """
  best, tried = None, []
  for setting in settings:
    trained, history = train(setting)
    record = max(history, key=lambda r: r["val_auc"])
    tried.append({**setting, "validation_auc": record["val_auc"],
                  "best_step": record["step"]})
    if best is None or record["val_auc"] > best[0]:
      best = (record["val_auc"], setting, trained, history)
  return (*best[1:], tried)


def _members_result(model: str, graph: str, exp: experiment.Experiment,
                    members: Sequence[Member], start: float,
                    details: dict[str, Any],
                    scores: dict[str, np.ndarray] | None = None
                    ) -> ModelResult:
  """A derived network retrained once or more: the mean of its members'
  probabilities (one member is the network itself); its validation AUC is
  the mean's, test scored once. Keeps both splits' probabilities (the
  ensemble's choice reads them)."""
  if scores is None:  # else the members' probabilities, computed already
    scores = members_probabilities(exp, members)
  labels = _split_labels(exp.dataset)
  validation_auc = sk_metrics.roc_auc_score(labels["validation"],
                                            scores["validation"])
  result = _result(model, graph, labels["test"], scores,
                   validation_auc, start,
                   {**details, "retrain_members": [
                       {"retrain_steps": m.history[-1]["step"],
                        "best_step": m.best_step,
                        "validation_auc": max(r["val_auc"]
                                              for r in m.history)}
                       for m in members]})
  return result


def train_fixed(name: str, dataset: data_lib.Dataset,
                config: config_lib.Config, seed: int,
                graph: str) -> ModelResult:
  """Trains one of the fixed-network baselines from scratch over its grid
  (:func:`fixed_grid`) on the linear embedding and keeps the setting of the
  best validation AUC."""
  start = time.perf_counter()
  exp = _seed_experiment(dataset, config, seed, embeddings=False)
  key = jax.random.fold_in(experiment.run_keys(seed)["init"],
                           MODELS.index(name))
  def train(setting):
    arch = fixed_architecture(exp.supernet, _FIXED_KINDS[name],
                              setting["width_ratio"])
    run = _with_weight_decay(exp, setting["weight_decay"])
    state = experiment.init_retrain_state(run.config, key, arch)
    state, history = experiment.retrain(run, state, arch)
    return (run, state, arch), history

  setting, (run, state, arch), history, tried = _best_on_validation(
      fixed_grid(config), train)
  return _test_result(name, graph, (run, state.best_weights, arch), history,
                      start,
                      {**setting, "budget": len(tried), "grid": tried})


def train_matched(name: str, dataset: data_lib.Dataset,
                  config: config_lib.Config, seed: int,
                  graph: str) -> ModelResult:
  """A fixed network on ours' terms (:data:`MATCHED`): the embedding menu
  ours searches over, the retrain's weight decays (and for the MLP and
  GraphSAGE the fixed widths) chosen on the first member's validation AUC,
  then ``retrain.ensemble_size`` members averaged, every member from the
  keys ours uses. The supernet trains every feature and op, gates at 1:
  the search switched off, all else equal."""
  start = time.perf_counter()
  exp = _seed_experiment(dataset, config, seed)
  decays = retrain_weight_decays(exp.config)
  if name == "supernet":
    settings = [{"weight_decay": d} for d in decays]
    def arch_of(setting):
      del setting  # one network
      return dataclasses.replace(exp.supernet, searchable=False)
  else:
    settings = [{"width_ratio": float(r), "weight_decay": d}
                for r in config.baselines.fixed_width_ratios for d in decays]
    def arch_of(setting):
      return fixed_architecture(exp.supernet, _FIXED_KINDS[name],
                                setting["width_ratio"])
  def initial_state(run, arch, member_keys):
    return experiment.init_retrain_state(run.config, member_keys["retrain"],
                                         arch)
  run, setting, members, tried = retrain_members(
      exp, experiment.run_keys(seed), settings, arch_of, initial_state)
  return _members_result(name, graph, run, members, start,
                         {**setting, "budget": len(tried), "settings": tried,
                          "embeddings": sorted(set(
                              members[0].arch.column_embeddings))})


@dataclasses.dataclass
class Searched:
  """One searched model before its retrain: the seed's experiment, the
  search's final state, the derived network, the derive's trials on
  validation, the search's timing and the run's keys."""

  exp: experiment.Experiment
  state: search_lib.SearchState
  derived: search_lib.DerivedArchitecture
  trials: list[dict]
  timing: dict[str, float]
  keys: dict[str, jax.Array]


def search_and_derive(name: str, dataset: data_lib.Dataset,
                      config: config_lib.Config, seed: int,
                      log_path: str) -> Searched:
  """Ours up to the derived network: bilevel search (its records in
  ``log_path``, a JSON line per block) and the derive on validation.
  ``name`` picks the space: ``searched_extended`` the extended one, any
  other the patent's."""
  exp = _seed_experiment(
      dataset, config, seed,
      "extended" if name == "searched_extended" else "patent",
      embeddings=name != LINEAR)
  keys = experiment.run_keys(seed)
  state = search_lib.init_search_state(
      keys["init"], exp.supernet, experiment.hyperparameters_of(exp.config))
  # A rerun of this model searches from the start: its old records go.
  log = pipeline.RunLog(log_path, keep=lambda record: False)
  try:
    state, timing = experiment.search(
        exp, state, keys=keys, on_block=lambda s, metrics, step: log.write(
            {"phase": "search", "step": step, **metrics}))
  finally:
    log.close()
  derived, trials = experiment.derive(exp, state, keys=keys)
  return Searched(exp, state, derived, trials, timing, keys)


@dataclasses.dataclass
class Member:
  """One retrain of a derived network: its best weights on validation, its
  history (a record per evaluation) and its network."""

  weights: chex.ArrayTree
  history: list[dict]
  arch: model_lib.Architecture

  @property
  def best_step(self) -> int:
    return max(self.history, key=lambda r: r["val_auc"])["step"]


def members_probabilities(exp: experiment.Experiment,
                          members: Sequence[Member]
                          ) -> dict[str, np.ndarray]:
  """The mean of the retrained members' probabilities on validation and
  test, and with several members the first one's alone
  (``first_member_validation``, ``first_member_test``: for ONE_MEMBER)."""
  each = {split: [experiment.evaluate(exp, m.weights, {}, m.arch, split)[1]
                  for m in members]
          for split in ("validation", "test")}
  scores = {split: np.mean(value, axis=0) for split, value in each.items()}
  if len(members) > 1:
    scores.update({f"first_member_{split}": value[0]
                   for split, value in each.items()})
  return scores


def retrain_members(exp: experiment.Experiment, keys: dict[str, jax.Array],
                    settings: Sequence[dict[str, Any]],
                    arch_of: Callable[[dict[str, Any]], model_lib.Architecture],
                    initial_state: Callable[..., Any]
                    ) -> tuple[experiment.Experiment, dict[str, Any],
                               list[Member], list[dict[str, Any]]]:
  """A network's retrains as ours are made: the first member under every
  setting (its ``weight_decay``, its network ``arch_of(setting)``), the
  setting of the best validation AUC kept, then ``retrain.ensemble_size`` -
  1 more members under it (other initial weights and batch order:
  ``experiment.member_keys``). ``initial_state(run, arch, member_keys)``
  is a member's fresh retrain state.

  Returns:
    (the experiment with the chosen decay, the chosen setting, the members,
    every setting tried with its validation AUC and best step).
  """
  def retrain_member(run, arch, member):
    member_keys = experiment.member_keys(keys, member)
    state, history = experiment.retrain(
        run, initial_state(run, arch, member_keys), arch, keys=member_keys)
    return Member(state.best_weights, history, arch)

  def first_member(setting):
    run = _with_weight_decay(exp, setting["weight_decay"])
    member = retrain_member(run, arch_of(setting), 0)
    return (run, member), member.history

  setting, (run, first), _, tried = _best_on_validation(settings,
                                                         first_member)
  members = [first] + [
      retrain_member(run, first.arch, member)
      for member in range(1, int(exp.config.retrain.ensemble_size))]
  return run, setting, members, tried


def retrain_derived(searched: Searched
                    ) -> tuple[experiment.Experiment, list[Member],
                               list[dict[str, Any]]]:
  """The derived network's retrains (:func:`retrain_members`) under the
  search's config, its weights cut from the supernet's initialisation
  (``experiment.retrain_state``), the weight decay chosen among
  :func:`retrain_weight_decays`.

  Returns:
    (the experiment with the chosen decay, the members, every decay tried
    with its validation AUC).
  """
  derived = searched.derived
  run, _, members, decays = retrain_members(
      searched.exp, searched.keys,
      [{"weight_decay": d} for d in retrain_weight_decays(searched.exp.config)],
      lambda setting: derived.arch,
      lambda run, arch, member_keys: experiment.retrain_state(
          run, derived, member_keys))
  return run, members, decays


def search_and_retrain(name: str, dataset: data_lib.Dataset,
                       config: config_lib.Config, seed: int,
                       graph: str, log_path: str) -> ModelResult:
  """Ours: bilevel search, derive, retrain (``retrain_ensemble_size``
  members, the mean of their probabilities), test."""
  start = time.perf_counter()
  searched = search_and_derive(name, dataset, config, seed, log_path)
  exp, state, derived = searched.exp, searched.state, searched.derived
  run, members, decays = retrain_derived(searched)
  probe = exp.maker.training_batch("test", 0)
  supernet_ms = experiment.inference_milliseconds(
      state.weights, state.alphas, exp.supernet, probe)
  # One network's inference (the model runs each member once).
  derived_ms = experiment.inference_milliseconds(
      members[0].weights, {}, derived.arch, probe)
  trials = searched.trials
  details = {"budget": (len(trials) or 1) + len(decays) - 1,
             "weight_decay": run.config.retrain.weight_decay,
             "weight_decays": decays,
             "feature_gates": derived.feature_gates,
             "kept_features": list(derived.kept_features),
             "chosen_ops": list(derived.chosen_ops),
             "pooled_readout": derived.arch.pooled_readout,
             "readout_gate": derived.readout_gate,
             "derive_trials": trials,
             "search_seconds": searched.timing["search_seconds"],
             "supernet_inference_ms": supernet_ms,
             "derived_inference_ms": derived_ms,
             "inference_speedup": supernet_ms / derived_ms}
  return _members_result(name, graph, exp, members, start, details)


def draws_another(config: config_lib.Config, drawn: int,
                         seconds: float, budget_seconds: float | None) -> bool:
  """Whether the random control draws another network: up to
  ``config.baselines.random_architectures``, or where that is 0 until the
  drawn networks' ``seconds`` reach ``budget_seconds`` (ours), at least 2
  and at most ``RANDOM_ARCHITECTURES_CAP`` (2 without a budget)."""
  wanted = config.baselines.random_architectures
  if wanted:
    return drawn < wanted
  if drawn < 2:
    return True
  return (budget_seconds is not None and drawn < RANDOM_ARCHITECTURES_CAP
          and seconds < budget_seconds)


def random_control(dataset: data_lib.Dataset, config: config_lib.Config,
                   seed: int, graph: str,
                   budget_seconds: float | None) -> ModelResult:
  """The random-architecture control of ``searched``: networks drawn
  uniformly from the same space (``search.random_architecture``: features
  kept, ops, readout), each retrained exactly as ours is
  (:func:`retrain_derived`: the weight decay chosen on validation, the same
  members and keys), the one with the best validation AUC (of its members'
  mean) kept and tested once. It draws as many networks as our search,
  derive and retrain took seconds on this seed (``budget_seconds``; see
  :func:`draws_another`).
  """
  start = time.perf_counter()
  exp = _seed_experiment(dataset, config, seed)
  keys = experiment.run_keys(seed)
  rng = np.random.default_rng([seed, 0x52414E44])
  labels = exp.dataset.labels[exp.dataset.splits["validation"]]
  drawn, best = [], None
  while draws_another(config, len(drawn),
                             time.perf_counter() - start, budget_seconds):
    derived = search_lib.random_architecture(exp.supernet, rng)
    run, members, decays = retrain_derived(
        Searched(exp, None, derived, [], {}, keys))
    scores = members_probabilities(run, members)
    auc = float(sk_metrics.roc_auc_score(labels, scores["validation"]))
    drawn.append({"kept_features": list(derived.kept_features),
                  "chosen_ops": list(derived.chosen_ops),
                  "pooled_readout": derived.arch.pooled_readout,
                  "weight_decay": run.config.retrain.weight_decay,
                  "validation_auc": auc})
    if best is None or auc > best[0]:
      best = (auc, run, members, derived, decays, scores)
  _, run, members, derived, decays, scores = best
  details = {"budget": len(drawn) * len(decays),
             "architectures": drawn, "budget_seconds": budget_seconds,
             "weight_decay": run.config.retrain.weight_decay,
             "kept_features": list(derived.kept_features),
             "chosen_ops": list(derived.chosen_ops),
             "pooled_readout": derived.arch.pooled_readout}
  return _members_result(RANDOM, graph, run, members, start, details,
                         scores)


def ensemble_on_validation(rows: Sequence[dict],
                           dataset: data_lib.Dataset) -> ModelResult:
  """Ours, averaged: the mean probability of the subset of searched models
  (each subset tried, single models included) with the best validation AUC;
  test scored once.

  Raises:
    ValueError: no searched model of the seed kept its probabilities.
  """
  start = time.perf_counter()
  members = [r for r in rows if r["model"] in SEARCHED and r.get("scores")]
  if not members:
    raise ValueError(f"{ENSEMBLE} averages searched models: run some of "
                     f"{list(SEARCHED)} on the seed first")
  labels = {split: dataset.labels[dataset.splits[split]]
            for split in ("validation", "test")}
  tried, best = [], None
  for size in range(1, len(members) + 1):
    for subset in itertools.combinations(members, size):
      mean = np.mean([r["scores"]["validation"] for r in subset], axis=0)
      auc = float(sk_metrics.roc_auc_score(labels["validation"], mean))
      tried.append({"members": [r["model"] for r in subset],
                    "validation_auc": auc})
      if best is None or auc > best[0]:
        best = (auc, subset)
  auc, subset = best
  scores = {split: np.mean([r["scores"][split] for r in subset], axis=0)
            for split in ("validation", "test")}
  graph = "+".join(dict.fromkeys(r["graph"] for r in subset))
  result = _result(ENSEMBLE, graph, labels["test"], scores, auc, start,
                   {"members": [r["model"] for r in subset],
                    "budget": len(tried), "grid": tried})
  # Its cost is every search it chose among (counted once in the total:
  # :func:`compute_seconds`).
  result.details["member_seconds"] = {r["model"]: r["seconds"]
                                      for r in members}
  result.seconds += sum(result.details["member_seconds"].values())
  return result


def one_member(searched: dict, dataset: data_lib.Dataset) -> ModelResult:
  """``searched`` (a row) with its first retrained member alone instead of
  the mean of its members: the same search, derive and weight decay; no
  compute of its own.

  Raises:
    ValueError: the row kept no first member (it retrained one network).
  """
  start = time.perf_counter()
  if "first_member_validation" not in searched.get("scores", {}):
    raise ValueError(f"{ONE_MEMBER} needs searched's members: set "
                     "config.retrain.ensemble_size above 1 and run searched "
                     "on the seed first")
  scores = {split: np.asarray(searched["scores"][f"first_member_{split}"])
            for split in ("validation", "test")}
  labels = _split_labels(dataset)
  result = _result(ONE_MEMBER, searched["graph"], labels["test"], scores,
                   sk_metrics.roc_auc_score(labels["validation"],
                                            scores["validation"]), start,
                   {"budget": searched["details"]["budget"],
                    "member_seconds": {"searched": searched["seconds"]}})
  result.seconds += searched["seconds"]
  return result


def compute_seconds(rows: Sequence[dict]) -> float:
  """The model compute of ``rows`` in seconds, each model run counted once:
  an ensemble row counts its own seconds and those of the members whose
  rows are not in ``rows``."""
  present = {(r["seed"], r["model"]) for r in rows}
  return sum(
      r["seconds"] - sum(seconds for model, seconds in
                         r["details"].get("member_seconds", {}).items()
                         if (r["seed"], model) in present)
      for r in rows)


def default_models() -> tuple[str, ...]:
  """Every model (LightGBM where it is installed). Ours on no graph runs
  on relation graphs too: it is how the ensemble learns, on validation,
  that a set's graph is worth nothing (german's relations cost the GCN a
  tenth of AUC)."""
  return tuple(m for m in MODELS if m != "lightgbm" or lightgbm_available())


def evaluate_seed(dataset: data_lib.Dataset, config: config_lib.Config,
                  seed: int, models: Sequence[str], graph: str,
                  out_dir: str, done: dict[str, dict] | None = None,
                  on_result: Callable[[dict], None] | None = None
                  ) -> list[dict]:
  """Runs ``models`` on one seed's dataset; ``done`` rows are kept as they
  are (a resumed evaluation). ``graph`` names the dataset's edges.

  Returns:
    One row per model: seed, model, graph, test metrics, ROC points,
    validation AUC, seconds, the model's choices, its validation and test
    probabilities and its calibration (:func:`calibrate`); ``on_result``
    gets each new row as it finishes.
  """
  unknown = sorted(set(models) - set(MODELS))
  if unknown:
    raise ValueError(f"unknown models {unknown}; expected some of "
                     f"{list(MODELS)}")
  config = config_lib.typed(config)
  if config.baselines is None:  # a search config: the default grids
    config = dataclasses.replace(config,
                                 baselines=config_lib.BaselinesConfig())
  done = dict(done or {})
  lonely = None
  begin = time.perf_counter()
  for index, name in enumerate(models):
    if name in done:
      continue
    logging.info("seed %d: %s (model %d of %d), %.0fs into the seed", seed,
                 name, index + 1, len(models), time.perf_counter() - begin)
    data, edges = dataset, graph
    if name in ISOLATED:
      lonely = lonely or isolated(dataset)
      data, edges = lonely, "isolated"
    result = _run_model(name, data, config, seed, edges, out_dir, done)
    result.calibration = calibrate(result.scores, _split_labels(dataset),
                                   seed)
    logging.info("seed %d: %s done: validation AUC %.4f, test AUC %.4f, "
                 "budget %s (%.0fs; %.0fs into the seed)", seed, name,
                 result.validation_auc, result.test["auc"],
                 result.details.get("budget"), result.seconds,
                 time.perf_counter() - begin)
    done[name] = {"seed": seed, **result.to_json()}
    if on_result:
      on_result(done[name])
  return [done[name] for name in models]


def _run_model(name: str, dataset: data_lib.Dataset,
               config: config_lib.Config, seed: int, graph: str,
               out_dir: str, done: dict[str, dict]) -> ModelResult:
  """One model of :func:`evaluate_seed` on its dataset; the rows built
  from others' (the ensemble, one member, the random control's budget)
  read the seed's ``done`` rows."""
  if name == ENSEMBLE:
    return ensemble_on_validation(list(done.values()), dataset)
  if name == "logistic_regression":
    return fit_logistic_regression(dataset)
  if name in ("lightgbm", BAGGED):
    return fit_lightgbm(dataset, seed, lightgbm_grid(config),
                        1 if name == "lightgbm"
                        else int(config.retrain.ensemble_size))
  if name == ONE_MEMBER:
    return one_member(done.get("searched", {}), dataset)
  if name == RANDOM:
    return random_control(dataset, config, seed, graph,
                          done.get("searched", {}).get("seconds"))
  if name in SEARCHED + (LINEAR,):
    return search_and_retrain(
        name, dataset, config, seed, graph,
        os.path.join(out_dir, f"search_{name}.jsonl"))
  if name in MATCHED:
    return train_matched(name, dataset, config, seed, graph)
  return train_fixed(name, dataset, config, seed, graph)


def select_on_validation(rows: Sequence[dict]) -> list[dict]:
  """Adds, per seed, a ``searched_selected`` row: the searched model of the
  best validation AUC (its seconds: all the searches it chose among)."""
  by_seed: dict[int, list[dict]] = {}
  for row in rows:
    if row["model"] in SEARCHED:
      by_seed.setdefault(row["seed"], []).append(row)
  selected = []
  for seed, candidates in sorted(by_seed.items()):
    best = max(candidates, key=lambda r: r["validation_auc"])
      # Its cost (and its budget) is every search it chose among.
    selected.append({**best, "model": SELECTED,
                     "seconds": sum(r["seconds"] for r in candidates),
                     "details": {**best["details"], "selected": best["model"],
                                 "budget": sum(r["details"].get("budget", 1)
                                               for r in candidates)}})
  return list(rows) + selected


def results_frame(rows: Sequence[dict]) -> pd.DataFrame:
  """One row per (seed, model): test AUC/KS/Gini, validation AUC, seconds."""
  return pd.DataFrame([{
      "seed": r["seed"], "model": r["model"], "graph": r["graph"],
      "auc": r["test"]["auc"], "ks": r["test"]["ks"],
      "gini": r["test"]["gini"], "val_auc": r["validation_auc"],
      "budget": r["details"].get("budget", 1),
      "seconds": r["seconds"]} for r in rows])


def summarize(frame: pd.DataFrame, ours: str = OURS) -> pd.DataFrame:
  """Mean and standard deviation over seeds, and the paired per-seed AUC
  difference of ``ours`` minus each model (seeds both ran)."""
  grouped = frame.groupby("model", sort=False)
  summary = grouped.agg(
      graph=("graph", "first"), seeds=("seed", "nunique"),
      auc_mean=("auc", "mean"), auc_std=("auc", "std"),
      ks_mean=("ks", "mean"), ks_std=("ks", "std"),
      gini_mean=("gini", "mean"), gini_std=("gini", "std"),
      budget=("budget", "median"), seconds=("seconds", "mean"))
  pivot = frame.pivot(index="seed", columns="model", values="auc")
  if ours in pivot:
    pivot = pivot.dropna(subset=[ours])
    differences = pivot[[ours]].to_numpy() - pivot.to_numpy()
    paired = pd.DataFrame(differences, index=pivot.index,
                          columns=pivot.columns)
    summary["delta_auc_mean"] = paired.mean()
    summary["delta_auc_std"] = paired.std()
    summary["delta_auc_se"] = paired.std() / np.sqrt(paired.count())
    summary["delta_auc_p"] = pd.Series(
        {m: _paired_p(paired[m].dropna().to_numpy()) for m in paired})
  return summary.fillna({c: 0.0 for c in summary.columns
                         if c != "delta_auc_p"})


def _paired_p(differences: np.ndarray) -> float:
  """The two-sided p-value of a paired t test over seeds (differences of
  one model's AUC minus another's, seed by seed); NaN under 2 seeds or
  where every difference is the same."""
  if differences.size < 2 or np.ptp(differences) == 0:
    return float("nan")
  return float(stats.ttest_1samp(differences, 0.0).pvalue)


def paired_comparison(frame: pd.DataFrame, first: str,
                      second: str) -> dict[str, float] | None:
  """``first`` minus ``second`` in test AUC over the seeds both ran: the
  mean, its standard error, the paired t test's p-value and the seeds
  (None where they share no seed)."""
  pivot = frame.pivot(index="seed", columns="model", values="auc")
  if first not in pivot or second not in pivot:
    return None
  differences = (pivot[first] - pivot[second]).dropna().to_numpy()
  if not differences.size:
    return None
  se = (differences.std(ddof=1) / np.sqrt(differences.size)
        if differences.size > 1 else float("nan"))
  return {"mean": float(differences.mean()), "se": float(se),
          "p": _paired_p(differences), "seeds": int(differences.size)}


def search_against_random(frame: pd.DataFrame) -> str | None:
  """One line: ``searched`` against the random-architecture control, paired
  over seeds, saying so where the search does not beat it (a difference
  not above 0 at p < 0.05)."""
  compared = paired_comparison(frame, "searched", RANDOM)
  if compared is None:
    return None
  beats = compared["mean"] > 0 and compared["p"] < 0.05
  return (f"- searched - {RANDOM} (paired test AUC over "
          f"{compared['seeds']} seeds): {compared['mean']:+.4f} +- "
          f"{compared['se']:.4f} (standard error), paired t test p = "
          f"{compared['p']:.3g}: "
          + ("the search beats random architectures of its space on this "
             "set." if beats else "the search does NOT beat random "
             "architectures of its space on this set."))


def markdown_table(summary: pd.DataFrame, ours: str = OURS) -> str:
  """The summary as a markdown table (mean +- std over seeds)."""
  lines = [f"| model | graph | test AUC | KS | Gini | {ours} - model "
           "(paired AUC +- s.e., paired t p) | validation budget | "
           "seconds/seed |",
           "|---|---|---|---|---|---|---|---|"]
  for name, row in summary.iterrows():
    delta = ("" if name == ours or "delta_auc_mean" not in row
             else f"{row.delta_auc_mean:+.4f} +- {row.delta_auc_se:.4f}"
             + ("" if np.isnan(row.delta_auc_p)
                else f" (p {row.delta_auc_p:.2g})"))
    lines.append(
        f"| {name} | {row.graph} | {row.auc_mean:.4f} +- {row.auc_std:.4f} "
        f"| {row.ks_mean:.4f} +- {row.ks_std:.4f} "
        f"| {row.gini_mean:.4f} +- {row.gini_std:.4f} | {delta} "
        f"| {row.budget:.0f} | {row.seconds:.0f} |")
  return "\n".join(lines)


def combined_table(summaries: dict[str, pd.DataFrame],
                   minutes: dict[str, float]) -> str:
  """Test AUC (mean +- std over seeds) of every model on every dataset,
  with each dataset's compute minutes."""
  names = list(summaries)
  models = [m for m in MODELS + (SELECTED,)
            if any(m in summary.index for summary in summaries.values())]
  lines = ["| model | " + " | ".join(names) + " |",
           "|---|" + "---|" * len(names)]
  for model in models:
    cells = []
    for name in names:
      summary = summaries[name]
      if model not in summary.index:
        cells.append("-")
        continue
      row = summary.loc[model]
      best = summary.drop(index=[m for m in summary.index
                                 if m.startswith("searched")]).auc_mean.max()
      mark = "**" if model == OURS and row.auc_mean >= best else ""
      cells.append(f"{mark}{row.auc_mean:.4f} +- {row.auc_std:.4f}{mark}")
    lines.append(f"| {model} | " + " | ".join(cells) + " |")
  lines.append("| compute (min) | " + " | ".join(
      f"{minutes[name]:.1f}" for name in names) + " |")
  shared = [group for group in SAME_BORROWERS if set(group) <= set(names)]
  lines += [f"\n{' and '.join(group)} are the same borrowers (UCI default "
            "of credit card clients) with another graph: not independent "
            "evidence." for group in shared]
  return "\n".join(lines)


def _counts(values) -> dict[str, int]:
  return dict(collections.Counter(values))


def searched_facts(rows: Sequence[dict],
                   model: str = SELECTED) -> dict[str, Any]:
  """What our search chose over the seeds: how often each feature was kept
  (by any of its embeddings), how often each embedding kind was, the chosen
  ops, and the derived model's inference speedup; for the ensemble, how
  often each searched model was a member."""
  ours = [r for r in rows if r["model"] == model]
  if not ours:
    return {}
  if model == ENSEMBLE:
    return {"seeds": len(ours), "member_counts": _counts(
        m for r in ours for m in r["details"]["members"])}
  kept: dict[str, int] = {}
  for r in ours:
    for name in r["details"]["feature_gates"]:
      kept.setdefault(model_lib.feature_of(name), 0)
    for name in dict.fromkeys(model_lib.feature_of(n)
                              for n in r["details"]["kept_features"]):
      kept[name] += 1
  embeddings = _counts(
      name.partition(model_lib.EMBEDDING_SEPARATOR)[2] or "linear"
      for r in ours for name in r["details"]["kept_features"])
  ops = _counts(" / ".join(r["details"]["chosen_ops"]) for r in ours)
  speedups = [r["details"]["inference_speedup"] for r in ours]
  selected = _counts(r["details"]["selected"] for r in ours
                     if "selected" in r["details"])
  return {"seeds": len(ours), "kept_feature_counts": kept,
          "kept_embedding_counts": embeddings,
          "chosen_ops_counts": ops, "selected_counts": selected,
          "pooled_readout_count": sum(
              r["details"].get("pooled_readout", True) for r in ours),
          "inference_speedup_median": float(np.median(speedups)),
          "supernet_inference_ms_median": float(np.median(
              [r["details"]["supernet_inference_ms"] for r in ours])),
          "derived_inference_ms_median": float(np.median(
              [r["details"]["derived_inference_ms"] for r in ours]))}


def write_json(path: str, value: Any) -> None:
  """Writes JSON atomically (a killed run never leaves half a file)."""
  files.write_json(path, value, indent=1)


def sensitive_setting(config: config_lib.Config
                      ) -> tuple[str, tuple[float, ...]] | None:
  """The fairness report's (column, bins) of a config: its
  ``data.sensitive_column`` and ``data.sensitive_bins``, empty naming the
  public set's own (:data:`SENSITIVE_COLUMNS`); None for no report
  ("none", or a dataset without a default)."""
  column = config.data.sensitive_column
  if column == NO_SENSITIVE_COLUMN:
    return None
  if column:
    return column, tuple(config.data.sensitive_bins)
  return SENSITIVE_COLUMNS.get(config.data.dataset)


def sensitive_values(dataset: data_lib.Dataset, split: str,
                     column: str) -> np.ndarray | None:
  """A split's values of a column of the table before encoding (a model
  feature or not), or None where the table lacks it."""
  if column not in dataset.raw_features.columns:
    return None
  return dataset.raw_features[column].to_numpy()[dataset.splits[split]]


def fairness_reports(rows: Sequence[dict], dataset: data_lib.Dataset,
                     config: config_lib.Config) -> dict[str, Any] | None:
  """Per model, ``fairness.sensitive_report`` of one seed's test rows:
  approvals at ``scoring.DEFAULT_BANDS`` of the model's calibrated
  probabilities, AUC, true and false positive rates by group.

  Args:
    rows: the seed's rows (:func:`evaluate_seed`); a row without
      probabilities or calibration is left out.
    dataset: the seed's borrowers and split.
    config: the sensitive column (:func:`sensitive_setting`).

  Returns:
    ``column``, ``bins``, ``bands``, ``models`` (model -> report, without
    its messages) and ``messages`` (each once), or None where the config
    asks for no report.
  """
  setting = sensitive_setting(config_lib.typed(config))
  if setting is None:
    return None
  column, bins = setting
  values = sensitive_values(dataset, "test", column)
  labels = dataset.labels[dataset.splits["test"]]
  reports, messages = {}, []
  for row in rows:
    if not (row.get("scores") and row.get("calibration")):
      continue
    probabilities = calibrated_test(row)
    approved = scoring.decide(probabilities,
                              scoring.DEFAULT_BANDS) != scoring.REFUSE
    report = fairness_lib.sensitive_report(column, values, approved,
                                           labels=labels,
                                           scores=probabilities, bins=bins)
    messages += [m for m in report.pop("messages") if m not in messages]
    reports[row["model"]] = report
  return {"column": column, "bins": [float(b) for b in bins],
          "bands": [list(band) for band in scoring.DEFAULT_BANDS],
          "models": reports, "messages": messages}


def reliability_curves(rows: Sequence[dict], dataset: data_lib.Dataset
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Per model of one seed: the test labels and calibrated test
  probabilities (``plotting.plot_reliability``'s curves)."""
  labels = dataset.labels[dataset.splits["test"]]
  return {row["model"]: (labels, calibrated_test(row)) for row in rows
          if row.get("scores") and row.get("calibration")}


def calibration_frame(rows: Sequence[dict]) -> pd.DataFrame:
  """One row per (seed, model) with a calibration: its method and the test
  Brier score, ECE and log loss before and after."""
  records = []
  for r in rows:
    if not r.get("calibration"):
      continue
    test = r["calibration"]["test"]
    records.append({"seed": r["seed"], "model": r["model"],
                    "method": r["calibration"]["method"],
                    **{f"{metric}_{when}": test[when][metric]
                       for when in ("before", "after")
                       for metric in ("brier", "ece", "log_loss")}})
  return pd.DataFrame(records)


def calibration_table(frame: pd.DataFrame) -> str:
  """:func:`calibration_frame` as markdown: mean over seeds of each test
  figure before -> after, and how often each map was chosen."""
  lines = ["| model | map chosen on validation (seeds) | test Brier | "
           "test ECE | test log loss |", "|---|---|---|---|---|"]
  if frame.empty:
    return "\n".join(lines)
  for model, group in frame.groupby("model", sort=False):
    methods = ", ".join(f"{k} {v}" for k, v in
                        group["method"].value_counts().items())
    cells = [f"{group[f'{m}_before'].mean():.4f} -> "
             f"{group[f'{m}_after'].mean():.4f}"
             for m in ("brier", "ece", "log_loss")]
    lines.append(f"| {model} | {methods} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _mean_of(values: Sequence[float | None]) -> str:
  """The mean of the values that are there, or '-'."""
  present = [v for v in values if v is not None]
  return f"{np.mean(present):.3f}" if present else "-"


def fairness_table(seeds: Sequence[dict[str, Any]]) -> str:
  """The fairness reports of some seeds (:func:`fairness_reports`) as
  markdown: per model, the demographic-parity and equal-opportunity
  differences, then per group the count, approval rate, AUC, TPR and FPR of
  ours and of the baselines (the searched members are in the ensemble);
  means over seeds."""
  lines = ["| model | group | test rows | approval rate | AUC | TPR | FPR |",
           "|---|---|---|---|---|---|---|"]
  differences = ["| model | demographic-parity difference | "
                 "equal-opportunity difference |", "|---|---|---|"]
  models = list(dict.fromkeys(m for s in seeds for m in s["models"]))
  for model in models:
    reports = [s["models"][model] for s in seeds if model in s["models"]]
    differences.append(
        f"| {model} | "
        + _mean_of([r["demographic_parity_difference"] for r in reports])
        + " | "
        + _mean_of([r["equal_opportunity_difference"] for r in reports])
        + " |")
    if model != OURS and model not in BASELINES:
      continue
    groups = list(dict.fromkeys(g for r in reports for g in r["groups"]))
    for group in groups:
      cells = [r["groups"][group] for r in reports if group in r["groups"]]
      lines.append(f"| {model} | {group} | "
                   f"{np.mean([c['count'] for c in cells]):.0f} | "
                   + " | ".join(
                       _mean_of([c.get(k) for c in cells])
                       for k in ("approval_rate", "auc", "tpr", "fpr"))
                   + " |")
  return "\n".join(differences) + "\n\n" + "\n".join(lines)
