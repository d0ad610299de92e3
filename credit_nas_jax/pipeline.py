"""The whole method, end to end: data, search, derive, retrain, evaluate.

:func:`run_experiment` is what ``experiments/search.py`` calls. It writes into
the work directory:

* ``config.json``: the resolved config;
* ``metrics.jsonl``: one JSON record per logged search or retrain step;
* ``alphas.csv`` and ``alphas.png``: gate values over the search;
* ``architecture.json``: the derived architecture with every gate value;
* ``test_metrics.json``: the retrained model's test metrics;
* ``search_cost.json``: device, versions, compile and run seconds, and the
  inference cost of the derived model against the supernet;
* ``model/``: the saved model (see :mod:`credit_nas_jax.model_io`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
import pandas as pd
from absl import logging

from credit_nas_jax import checkpoint as checkpoint_lib
from credit_nas_jax import data as data_lib
from credit_nas_jax import datasets as datasets_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import model_io
from credit_nas_jax import parallel
from credit_nas_jax import plotting
from credit_nas_jax import search as search_lib
from credit_nas_jax import synthetic
from credit_nas_jax import train as train_lib

DATASETS = ("synthetic", "synthetic_graph") + tuple(sorted(
    datasets_lib.SPECS))
RUN_OUTPUTS = ("config.json", "metrics.jsonl", "alphas.csv", "alphas.png",
               "architecture.json", "test_metrics.json", "search_cost.json",
               "model", "checkpoints")


def get_config_from_json(path: str) -> ml_collections.ConfigDict:
  """The config a run wrote to ``config.json``."""
  with open(path) as f:
    values = json.load(f)
  return ml_collections.ConfigDict(
      {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_dataset(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """The dataset a config names."""
  if config.dataset == "synthetic":
    book = synthetic.generate_lending_book(config.data_seed,
                                           config.num_borrowers)
    return data_lib.dataset_from_book(book, split_seed=config.split_seed)
  if config.dataset == "synthetic_graph":
    book = synthetic.generate_borrower_graph(
        config.data_seed, config.num_borrowers, mean_links=config.mean_links)
    return data_lib.dataset_from_graph_book(book,
                                            split_seed=config.split_seed)
  if config.dataset in datasets_lib.SPECS:
    return datasets_lib.load_table_dataset(
        config.dataset, data_dir=config.data_dir,
        split_seed=config.split_seed, knn_k=config.knn_k,
        use_edges=config.use_edges)
  raise ValueError(f"unknown dataset {config.dataset!r}; expected one of "
                   f"{list(DATASETS)}")


SEARCH_SPACES = ("patent", "extended")


def candidate_ops(config: ml_collections.ConfigDict
                  ) -> tuple[tuple[float, ...], tuple[str, ...]]:
  """(expansion ratios, kinds) of the candidate ops of a config's space."""
  ratios = tuple(float(r) for r in config.op_ratios)
  kinds = ("gcn",) * len(ratios)
  space = config.get("search_space", "patent")
  if space == "extended":
    extra = float(config.get("extra_op_ratio", 2.0))
    return ratios + (extra, extra), kinds + ("sage", "self")
  if space != "patent":
    raise ValueError(f"unknown search space {space!r}; expected one of "
                     f"{list(SEARCH_SPACES)}")
  return ratios, kinds


def supernet_for(config: ml_collections.ConfigDict,
                 dataset: data_lib.Dataset) -> model_lib.Architecture:
  """The supernet architecture of a config over a dataset's features."""
  ratios, kinds = candidate_ops(config)
  return model_lib.supernet_architecture(
      dataset.encoder.column_groups, dataset.encoder.features,
      hidden_dim=config.hidden_dim, op_ratios=ratios,
      num_layers=config.num_gcn_layers, gate_function=config.gate_function,
      op_kinds=kinds,
      readout_searchable=config.get("search_space", "patent") == "extended")


def hyperparameters_of(config: ml_collections.ConfigDict) -> dict[str, float]:
  """The float hyperparameters a sweep may vary, read from a config."""
  return {name: float(config[name]) for name in search_lib.HYPERPARAMETERS}


def gate_row(state: search_lib.SearchState,
             arch: model_lib.Architecture) -> dict[str, float]:
  """Gate values of a state, flattened for ``alphas.csv``."""
  gates = jax.tree.map(np.asarray,
                       model_lib.gate_values(state.alphas, arch.gate_function))
  row = {f"feature/{n}": float(g)
         for n, g in zip(arch.group_names, gates["features"])}
  for layer, (names, values) in enumerate(zip(arch.layer_op_names,
                                              gates["ops"])):
    row.update({f"layer{layer + 1}/{n}": float(g)
                for n, g in zip(names, values)})
  if "readout" in gates:
    row["readout/pooled"] = float(gates["readout"][0])
  return row


class RunLog:
  """``metrics.jsonl``: appends records, flushing each; on resume it first
  drops the records written after the checkpoint being resumed from."""

  def __init__(self, path: str, keep: Callable[[dict], bool] | None = None):
    if keep is not None and os.path.exists(path):
      with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
      with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records if keep(r))
    self._file = open(path, "a")

  def write(self, record: dict[str, Any]) -> None:
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class WorkdirConflictError(ValueError):
  """The work directory holds a run of another config."""


def _check_finite(state: search_lib.SearchState) -> None:
  report = search_lib.nonfinite_report(state)
  if report:
    raise train_lib.NonFiniteError(
        f"{report}; stopping. The last good checkpoint is kept; lower the "
        "learning rates or check the data.")


def run_search(state: search_lib.SearchState, maker: data_lib.BatchMaker,
               arch: model_lib.Architecture, config: ml_collections.ConfigDict,
               log: RunLog, *,
               checkpoints: checkpoint_lib.CheckpointManager | None = None,
               gate_rows: list[dict] | None = None,
               batch_fn: Callable[[str, int], Any] | None = None
               ) -> tuple[search_lib.SearchState, list[dict],
                          dict[str, float]]:
  """Runs the bilevel search loop from ``state.step`` to ``search_steps``.

  Every ``checkpoint_every`` steps and at the end, the state is checked for
  non-finite values and saved (with the gate rows so far). ``batch_fn(split,
  step)`` makes the batches (default: the maker's single-device batches).

  Returns:
    (final state, gate rows for ``alphas.csv``, timing facts).
  """
  batch_fn = batch_fn or maker.training_batch
  step = int(state.step)
  gate_rows = list(gate_rows or [{"step": step, **gate_row(state, arch)}])
  # Lowering and compiling are timed apart from running.
  compile_start = time.perf_counter()
  train_batch = batch_fn("train", step)
  val_batch = batch_fn("validation", step)
  compiled = search_lib.search_step.lower(
      state, train_batch, val_batch, arch=arch,
      second_order=config.second_order,
      arch_warmup_steps=config.arch_warmup_steps).compile()
  compile_seconds = time.perf_counter() - compile_start
  run_start = time.perf_counter()
  window_start, window_steps, first_step = run_start, 0, step
  input_seconds = 0.0
  while step < config.search_steps:
    state, metrics = compiled(state, train_batch, val_batch)
    step += 1
    window_steps += 1
    if step < config.search_steps:
      # Built while the device runs the step just dispatched (asynchronous
      # dispatch), so input and compute overlap.
      input_start = time.perf_counter()
      train_batch = batch_fn("train", step)
      val_batch = batch_fn("validation", step)
      input_seconds += time.perf_counter() - input_start
    last = step == config.search_steps
    if step % config.log_every == 0 or last:
      _check_finite(state)
      metrics = jax.tree.map(float, metrics)
      now = time.perf_counter()
      rate = window_steps / (now - window_start)
      window_start, window_steps = now, 0
      gates = gate_row(state, arch)
      gate_rows.append({"step": step, **gates})
      log.write({"phase": "search", "step": step, "steps_per_second": rate,
                 **metrics, **gates})
      feature_text = " ".join(
          f"{k.split('/')[1]}={v:.3f}" for k, v in gates.items()
          if k.startswith("feature/"))
      logging.info("search step %d/%d: train loss %.4f, validation loss "
                   "%.4f, %.1f steps/s; gates %s", step, config.search_steps,
                   metrics["train_loss"], metrics["val_loss"], rate,
                   feature_text)
    if checkpoints and (step % config.checkpoint_every == 0 or last):
      _check_finite(state)
      checkpoints.save("search", step, jax.device_get(state),
                       {"gate_rows": gate_rows})
  jax.block_until_ready(state)
  search_seconds = time.perf_counter() - run_start
  timing = {"compile_seconds": compile_seconds,
            "search_seconds": search_seconds,
            "input_seconds": input_seconds,
            "search_steps_per_second": (step - first_step) / max(
                search_seconds, 1e-9)}
  return state, gate_rows, timing


DERIVE_RULES = ("threshold", "validation")


def derive(state: search_lib.SearchState, arch: model_lib.Architecture,
           maker: data_lib.BatchMaker, config: ml_collections.ConfigDict
           ) -> tuple[search_lib.DerivedArchitecture, list[dict]]:
  """The derived network by the config's rule: gates over the threshold, or
  the number of features and the readout chosen on validation."""
  rule = config.get("derive", "threshold")
  if rule == "threshold":
    return search_lib.derive_architecture(state.alphas, arch,
                                          config.gate_threshold), []
  if rule != "validation":
    raise ValueError(f"unknown derive rule {rule!r}; expected one of "
                     f"{list(DERIVE_RULES)}")
  derived, trials = search_lib.derive_by_validation(
      state.alphas, arch, config.gate_threshold,
      lambda alphas: train_lib.evaluate_split(state.weights, alphas, maker,
                                              "validation", arch)["auc"])
  best_ops = max((t for t in trials if "ops" in t),
                 key=lambda t: t["validation_auc"])
  logging.info("derive on validation: ops %s (AUC %.4f); (features, pooled "
               "readout: AUC) %s", "/".join(best_ops["ops"]),
               best_ops["validation_auc"], ", ".join(
                   f"{t['num_features']}, {t['pooled_readout']}: "
                   f"{t['validation_auc']:.4f}"
                   for t in trials if "num_features" in t))
  return derived, trials


def inference_milliseconds(weights, alphas, arch, batch,
                           repeats: int = 20) -> float:
  """Median milliseconds of one jitted forward pass over ``batch``."""
  jax.block_until_ready(search_lib.predict_step(weights, alphas, batch, arch))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(search_lib.predict_step(weights, alphas, batch,
                                                  arch))
    times.append(time.perf_counter() - start)
  return 1000 * float(np.median(times))


def _write_json(path: str, value: Any) -> None:
  with open(path, "w") as f:
    json.dump(value, f, indent=2)


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str,
                    fresh: bool) -> None:
  """Creates the work directory, or checks that it holds this config's run.

  Raises:
    WorkdirConflictError: the directory holds a run of another config and
      ``fresh`` is not set.
  """
  config_path = os.path.join(workdir, "config.json")
  if fresh and os.path.isdir(workdir):
    for name in os.listdir(workdir):
      path = os.path.join(workdir, name)
      if name in RUN_OUTPUTS:
        (shutil.rmtree if os.path.isdir(path) else os.remove)(path)
  elif os.path.exists(config_path):
    with open(config_path) as f:
      stored = json.load(f)
    requested = json.loads(json.dumps(config.to_dict()))
    differing = sorted(k for k in set(stored) | set(requested)
                       if stored.get(k) != requested.get(k))
    if differing:
      details = ", ".join(f"{k}: {stored.get(k)!r} there, {requested.get(k)!r}"
                          " requested" for k in differing)
      raise WorkdirConflictError(
          f"{workdir} holds a run with another config ({details}); use a new "
          "--workdir, or --fresh to discard that run")
  os.makedirs(workdir, exist_ok=True)
  _write_json(config_path, config.to_dict())


def run_experiment(config: ml_collections.ConfigDict, workdir: str, *,
                   fresh: bool = False) -> dict[str, Any]:
  """Search, derive, retrain and evaluate; writes every output to workdir.

  A work directory that already holds checkpoints of the same config is
  resumed from its newest checkpoint, and ends exactly as an uninterrupted
  run would; ``fresh`` discards it and starts over.

  Returns:
    The test metrics of the retrained derived model.
  """
  prepare_workdir(config, workdir, fresh)
  start = time.perf_counter()
  dataset = load_dataset(config)
  logging.info("data: %d borrowers (%s), %d relation edges, %.1fs",
               dataset.labels.shape[0],
               ", ".join(f"{k} {v.size}" for k, v in dataset.splits.items()),
               dataset.graph.indices.size // 2, time.perf_counter() - start)
  arch = supernet_for(config, dataset)
  maker = data_lib.BatchMaker(dataset, config.batch_size,
                              tuple(config.fanouts), config.seed)
  init_key, retrain_key = jax.random.split(jax.random.key(config.seed))
  state = search_lib.init_search_state(init_key, arch,
                                       hyperparameters_of(config))
  batch_fn, place = maker.training_batch, lambda tree: tree
  if config.num_devices != 1:
    mesh = parallel.data_mesh(config.num_devices)
    shards = parallel.local_shards(mesh)
    batch_fn = lambda split, step: parallel.shard_batch(
        maker.sharded_training_batch(split, step, mesh.size, shards), mesh)
    place = lambda tree: parallel.replicate(tree, mesh)
    logging.info("data-parallel over %d devices: global batch %d graphs",
                 mesh.size, mesh.size * config.batch_size)
  checkpoints = checkpoint_lib.CheckpointManager(
      os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
  restored = checkpoints.restore_latest("search", state)
  gate_rows, last_retrain = None, 0
  if restored:
    step, state, facts = restored
    gate_rows = facts["gate_rows"]
    retrain_steps = checkpoints.steps("retrain")
    last_retrain = retrain_steps[-1] if retrain_steps else 0
    logging.info("resuming the search from its checkpoint at step %d", step)
  else:
    step = -1  # a fresh run keeps no earlier records

  def keep(record):
    """Records written before the checkpoints being resumed from."""
    limit = step if record["phase"] == "search" else last_retrain
    return record["step"] <= limit

  log = RunLog(os.path.join(workdir, "metrics.jsonl"), keep)
  try:
    state, gate_rows, timing = run_search(place(state), maker, arch, config,
                                          log, checkpoints=checkpoints,
                                          gate_rows=gate_rows,
                                          batch_fn=batch_fn)
    gates = pd.DataFrame(gate_rows)
    gates.to_csv(os.path.join(workdir, "alphas.csv"), index=False)
    plotting.plot_gate_trajectories(gates, os.path.join(workdir,
                                                        "alphas.png"))
    supernet_validation = train_lib.evaluate_split(
        state.weights, state.alphas, maker, "validation", arch)

    derived, trials = derive(state, arch, maker, config)
    _write_json(os.path.join(workdir, "architecture.json"),
                {**derived.to_json(), "derive_trials": trials,
                 "supernet_validation_auc": supernet_validation["auc"]})
    logging.info("derived: features %s, ops %s", derived.kept_features,
                 derived.chosen_ops)

    retrain_start = time.perf_counter()
    weights, history = train_lib.retrain(
        retrain_key, derived.arch, maker, steps=config.retrain_steps,
        learning_rate=config.retrain_lr,
        weight_decay=config.retrain_weight_decay,
        eval_every=config.eval_every, patience=config.patience,
        on_eval=lambda r: log.write({"phase": "retrain", **r}),
        checkpoints=checkpoints, batch_fn=batch_fn, place=place)
    retrain_seconds = time.perf_counter() - retrain_start
  finally:
    log.close()

  test = train_lib.evaluate_split(weights, {}, maker, "test", derived.arch)
  validation = train_lib.evaluate_split(weights, {}, maker, "validation",
                                        derived.arch)
  _write_json(os.path.join(workdir, "test_metrics.json"),
              {"test": test, "validation": validation,
               "supernet_validation": supernet_validation})
  model_io.save_model(
      os.path.join(workdir, "model"), derived.arch, weights, dataset.encoder,
      tuple(config.fanouts),
      {"architecture": derived.to_json(), "test_metrics": test,
       "config": config.to_dict()})

  probe = maker.training_batch("test", 0)
  cost = {
      "device_kind": jax.devices()[0].device_kind,
      "platform": jax.devices()[0].platform,
      "jax_version": jax.__version__,
      **timing,
      "resumed": bool(restored),
      "resumed_in_retrain": last_retrain > 0,
      "retrain_seconds": retrain_seconds,
      "retrain_steps": history[-1]["step"] if history else 0,
      "total_seconds": time.perf_counter() - start,
      "supernet_inference_ms_per_batch": inference_milliseconds(
          state.weights, state.alphas, arch, probe),
      "derived_inference_ms_per_batch": inference_milliseconds(
          weights, {}, derived.arch, probe),
      "inference_batch_size": config.batch_size,
  }
  cost["inference_speedup"] = (cost["supernet_inference_ms_per_batch"]
                               / cost["derived_inference_ms_per_batch"])
  _write_json(os.path.join(workdir, "search_cost.json"), cost)
  logging.info("test: AUC %.4f, KS %.4f, Gini %.4f, log loss %.4f",
               test["auc"], test["ks"], test["gini"], test["log_loss"])
  return test
