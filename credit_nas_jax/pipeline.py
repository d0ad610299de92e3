"""The whole method, end to end, with its files: the main job's launcher layer.

:func:`run_experiment` is what ``experiments/search.py`` calls: it composes
the experiment core (:mod:`credit_nas_jax.experiment`) and writes into the
work directory:

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
from credit_nas_jax import experiment
from credit_nas_jax import model as model_lib
from credit_nas_jax import model_io
from credit_nas_jax import parallel
from credit_nas_jax import plotting
from credit_nas_jax import search as search_lib
from credit_nas_jax import synthetic

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


def _write_json_atomic(path: str, value: Any) -> None:
  """Writes JSON through a temporary file and a rename."""
  temporary = path + ".tmp"
  _write_json(temporary, value)
  os.replace(temporary, path)


def run_experiment(config: ml_collections.ConfigDict, workdir: str, *,
                   fresh: bool = False) -> dict[str, Any]:
  """Search, derive, retrain and evaluate; writes every output to workdir.

  The work itself is :mod:`credit_nas_jax.experiment`'s; this function only
  composes it with the run's files. A work directory that already holds
  checkpoints of the same config is resumed from its newest checkpoint, and
  ends exactly as an uninterrupted run would; ``fresh`` discards it and
  starts over.

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
  mesh = None
  if config.num_devices != 1:
    mesh = parallel.data_mesh(config.num_devices)
    logging.info("data-parallel over %d devices: global batch %d graphs",
                 mesh.size, mesh.size * config.batch_size)
  exp = experiment.prepare(config, dataset, mesh=mesh)
  arch = exp.supernet
  logging.info("sampling neighbourhoods on the %s", exp.plan.sampler)
  place = (lambda tree: tree) if mesh is None else (
      lambda tree: parallel.replicate(tree, mesh))
  keys = experiment.run_keys(config.seed)
  state = search_lib.init_search_state(keys["init"], arch,
                                       experiment.hyperparameters_of(config))
  checkpoints = checkpoint_lib.CheckpointManager(
      os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
  restored = checkpoints.restore_latest("search", state)
  gate_rows, last_retrain = [{"step": 0, **gate_row(state, arch)}], 0
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

  window = {"seconds": 0.0, "steps": 0}

  def on_search_block(state, metrics, step):
    """Logs every log_every steps, checkpoints every checkpoint_every."""
    last = step == config.search_steps
    window["seconds"] += metrics.pop("block_seconds")
    window["steps"] = step - gate_rows[-1]["step"]
    if step % config.log_every == 0 or last:
      rate = window["steps"] / max(window["seconds"], 1e-9)
      window["seconds"] = 0.0
      gates = gate_row(state, arch)
      gate_rows.append({"step": step, **gates})
      log.write({"phase": "search", "step": step, "steps_per_second": rate,
                 **metrics, **gates})
      logging.info(
          "search step %d/%d: train loss %.4f, validation loss %.4f, "
          "%.1f steps/s; gates %s", step, config.search_steps,
          metrics["train_loss"], metrics["val_loss"], rate,
          " ".join(f"{k.split('/')[1]}={v:.3f}" for k, v in gates.items()
                   if k.startswith("feature/")))
    if step % config.checkpoint_every == 0 or last:
      checkpoints.save("search", step, jax.device_get(state),
                       {"gate_rows": gate_rows})

  log = RunLog(os.path.join(workdir, "metrics.jsonl"), keep)
  try:
    state, timing = experiment.search(exp, place(state),
                                      on_block=on_search_block, keys=keys)
    gates = pd.DataFrame(gate_rows)
    gates.to_csv(os.path.join(workdir, "alphas.csv"), index=False)
    plotting.plot_gate_trajectories(gates, os.path.join(workdir,
                                                        "alphas.png"))
    supernet_validation, _ = experiment.evaluate(
        exp, state.weights, state.alphas, arch, "validation", keys=keys)

    derived, trials = experiment.derive(exp, state, keys=keys)
    _write_json(os.path.join(workdir, "architecture.json"),
                {**derived.to_json(), "derive_trials": trials,
                 "supernet_validation_auc": supernet_validation["auc"]})
    logging.info("derived: features %s, ops %s", derived.kept_features,
                 derived.chosen_ops)

    retrain_start = time.perf_counter()
    train_state = experiment.retrain_state(exp, derived, keys)
    resumed = checkpoints.restore_latest("retrain", train_state)
    if resumed:
      train_state = resumed[1]
      logging.info("retrain resumed from its checkpoint at step %d",
                   resumed[0])

    def on_retrain_block(train_state, record, step):
      log.write({"phase": "retrain", **record})
      checkpoints.save("retrain", step, jax.device_get(train_state), {})

    train_state, history = experiment.retrain(
        exp, place(train_state), derived.arch, keys=keys,
        on_block=on_retrain_block)
    weights = train_state.best_weights
    retrain_seconds = time.perf_counter() - retrain_start
  finally:
    log.close()

  test, _ = experiment.evaluate(exp, weights, {}, derived.arch, "test",
                                keys=keys)
  validation, _ = experiment.evaluate(exp, weights, {}, derived.arch,
                                      "validation", keys=keys)
  _write_json(os.path.join(workdir, "test_metrics.json"),
              {"test": test, "validation": validation,
               "supernet_validation": supernet_validation})
  model_io.save_model(
      os.path.join(workdir, "model"), derived.arch,
      jax.device_get(weights), dataset.encoder, tuple(config.fanouts),
      {"architecture": derived.to_json(), "test_metrics": test,
       "config": config.to_dict()})

  probe = exp.maker.training_batch("test", 0)
  bare = experiment.bare_search_step_seconds(exp, state)
  loop = 1 / max(timing["search_steps_per_second"], 1e-12)
  cost = {
      "device_kind": jax.devices()[0].device_kind,
      "platform": jax.devices()[0].platform,
      "jax_version": jax.__version__,
      "sampler": exp.plan.sampler,
      **timing,
      "search_loop_seconds_per_step": loop,
      "bare_search_step_seconds": bare,
      "loop_over_bare_step": loop / bare,
      "resumed": bool(restored),
      "resumed_in_retrain": last_retrain > 0,
      "retrain_seconds": retrain_seconds,
      "retrain_steps": history[-1]["step"] if history else int(
          train_state.step),
      "total_seconds": time.perf_counter() - start,
      "supernet_inference_ms_per_batch": experiment.inference_milliseconds(
          state.weights, state.alphas, arch, probe),
      "derived_inference_ms_per_batch": experiment.inference_milliseconds(
          weights, {}, derived.arch, probe),
      "inference_batch_size": config.batch_size,
  }
  cost["inference_speedup"] = (cost["supernet_inference_ms_per_batch"]
                               / cost["derived_inference_ms_per_batch"])
  _write_json_atomic(os.path.join(workdir, "search_cost.json"), cost)
  logging.info("search loop %.2f ms/step against the bare step's %.2f ms "
               "(%.2fx)", 1000 * loop, 1000 * bare, loop / bare)
  logging.info("test: AUC %.4f, KS %.4f, Gini %.4f, log loss %.4f",
               test["auc"], test["ks"], test["gini"], test["log_loss"])
  return test
