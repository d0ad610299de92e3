"""The whole method, end to end, with its files: the main job's launcher layer.

:func:`run_experiment` is what ``experiments/search.py`` calls: it composes
the experiment core (:mod:`credit_nas_jax.experiment`) and writes into the
work directory:

* ``config.json``: the resolved config;
* ``metrics.jsonl``: one JSON record per logged search or retrain step;
* ``alphas.csv`` and ``alphas.png``: gate values over the search;
* ``architecture.json``: the derived architecture with every gate value;
* ``test_metrics.json``: the retrained model's test metrics, and its
  calibration's Brier score, ECE and log loss before and after, on the
  validation and test rows, and the test rows' score PSI against the
  training population;
* ``calibration.png``: the reliability diagram of the test rows before and
  after calibration;
* ``search_cost.json``: device, versions, compile and run seconds, and the
  inference cost of the derived model against the supernet;
* ``model/``: the saved model (see :mod:`credit_nas_jax.model_io`), with
  its calibration map (fitted on the validation rows alone,
  :mod:`credit_nas_jax.calibration`) and its training population (score
  and feature bins, :mod:`credit_nas_jax.stability`);
* ``tensorboard/``: the same metrics as TensorBoard scalars (losses, gate
  trajectories, steps per second, validation and test AUC) and the run's
  hyperparameters: ``tensorboard --logdir=WORKDIR``;
* ``profile/``: with ``config.runtime.profile_steps=(a, b)``, a ``jax.profiler``
  trace of search steps a to b (TensorBoard's profile plugin, or xprof).

In a multi-process run every process computes, only process 0 writes, and
the others wait at a barrier where they need what it wrote.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
import pandas as pd
from absl import logging

from credit_nas_jax import calibration as calibration_lib
from credit_nas_jax import checkpoint as checkpoint_lib
from credit_nas_jax import config as config_lib
from credit_nas_jax import data as data_lib
from credit_nas_jax import datasets as datasets_lib
from credit_nas_jax import experiment
from credit_nas_jax import files
from credit_nas_jax import metric_writers
from credit_nas_jax import model as model_lib
from credit_nas_jax import model_io
from credit_nas_jax import parallel
from credit_nas_jax import plotting
from credit_nas_jax import progress
from credit_nas_jax import run as run_lib
from credit_nas_jax import search as search_lib
from credit_nas_jax import stability as stability_lib
from credit_nas_jax import synthetic

DATASETS = ("synthetic", "synthetic_graph", "table") + tuple(sorted(
    datasets_lib.SPECS))
RUN_OUTPUTS = ("config.json", "metrics.jsonl", "alphas.csv", "alphas.png",
               "architecture.json", "test_metrics.json", "calibration.png",
               "search_cost.json", "model", "checkpoints", "tensorboard",
               "profile")


def get_config_from_json(path: str) -> ml_collections.ConfigDict:
  """The config a run wrote to ``config.json``."""
  with open(path) as f:
    values = json.load(f)
  return ml_collections.ConfigDict(
      {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_dataset(config: config_lib.Config | Any) -> data_lib.Dataset:
  """The dataset a config names."""
  config = config_lib.typed(config)
  if config.data.dataset == "synthetic":
    book = synthetic.generate_lending_book(config.data.data_seed,
                                           config.data.num_borrowers)
    return data_lib.dataset_from_book(book, split_seed=config.data.split_seed)
  if config.data.dataset == "synthetic_graph":
    book = synthetic.generate_borrower_graph(
        config.data.data_seed, config.data.num_borrowers, mean_links=config.data.mean_links)
    return data_lib.dataset_from_graph_book(book,
                                            split_seed=config.data.split_seed)
  if config.data.dataset in datasets_lib.SPECS or config.data.dataset == "table":
    return datasets_lib.load_from_config(config)
  raise ValueError(f"unknown dataset {config.data.dataset!r}; expected one of "
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


TENSORBOARD_DIR = "tensorboard"
PROFILE_DIR = "profile"


def _check_workdir(config: config_lib.Config, workdir: str) -> None:
  """Raises WorkdirConflictError where workdir holds another config's run."""
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    return
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


def prepare_workdir(config: config_lib.Config, workdir: str,
                    fresh: bool) -> None:
  """Creates the work directory, or checks that it holds this config's run.

  Every process checks; process 0 alone discards (``fresh``) and writes
  ``config.json``; all leave together once the directory is ready.

  Raises:
    WorkdirConflictError: the directory holds a run of another config and
      ``fresh`` is not set.
  """
  if not fresh:
    _check_workdir(config, workdir)
  parallel.barrier("workdir checked")
  if parallel.is_writer():
    if fresh and os.path.isdir(workdir):
      for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        if name in RUN_OUTPUTS:
          (shutil.rmtree if os.path.isdir(path) else os.remove)(path)
    os.makedirs(workdir, exist_ok=True)
    files.write_json(os.path.join(workdir, "config.json"), config.to_dict())
  parallel.barrier("workdir ready")


def tensorboard_scalars(record: dict[str, Any]) -> dict[str, float]:
  """A metrics.jsonl record as TensorBoard tags: ``<phase>/<metric>``, and
  gates as ``gates/feature/<group>`` and ``gates/layer<k>/<op>``."""
  scalars = {}
  for key, value in record.items():
    if key in ("phase", "step") or isinstance(value, bool) or not isinstance(
        value, (int, float)):
      continue
    scalars[f"gates/{key}" if "/" in key else f"{record['phase']}/{key}"] = (
        value)
  return scalars


class RunMetrics:
  """A run's metrics: ``metrics.jsonl`` and the TensorBoard run beside it.

  On resume the JSONL keeps the records ``keep`` accepts and the event files
  are rebuilt from them, so both read as if the run had never stopped. A
  process other than the writer (``write=False``) records nothing.

  Args:
    workdir: the run's directory.
    keep: which earlier records stay (see :class:`RunLog`).
    hyperparameters: the run's config values, for TensorBoard's HPARAMS.
    initial: TensorBoard scalars at step 0 (the gates before the search),
      written before the kept records so every run's points are in order.
    write: whether this process writes.
  """

  def __init__(self, workdir: str, keep: Callable[[dict], bool],
               hyperparameters: dict[str, Any],
               initial: dict[str, float] | None = None, write: bool = True):
    self._log = self._board = None
    if not write:
      return
    path = os.path.join(workdir, "metrics.jsonl")
    self._log = RunLog(path, keep)
    logdir = os.path.join(workdir, TENSORBOARD_DIR)
    shutil.rmtree(logdir, ignore_errors=True)
    self._board = metric_writers.TensorBoardWriter(logdir)
    self._board.write_hparams(hyperparameters)
    if initial:
      self._board.write_scalars(0, initial)
    with open(path) as f:
      for line in f:
        if line.strip():
          record = json.loads(line)
          self._board.write_scalars(record["step"],
                                    tensorboard_scalars(record))

  def write(self, record: dict[str, Any]) -> None:
    """One record: a JSONL line and its TensorBoard scalars."""
    if self._log is not None:
      self._log.write(record)
      self._board.write_scalars(record["step"], tensorboard_scalars(record))

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    """Scalars for TensorBoard alone (the final test metrics)."""
    if self._board is not None:
      self._board.write_scalars(step, scalars)

  def close(self) -> None:
    """Flushes and closes both files."""
    if self._log is not None:
      self._log.close()
      self._board.close()


def profile_range(config: config_lib.Config
                  ) -> tuple[int, int] | None:
  """The search steps ``(first, last)`` to trace, or None (the config's
  check has made sure they are two steps ``1 <= a <= b``)."""
  return config.runtime.profile_steps or None


class SearchProfile:
  """A ``jax.profiler`` trace of the search blocks that cover steps
  ``first`` to ``last`` (steps count from 1; a block ends at ``done``).

  Args:
    steps: ``(first, last)``, or None for no trace.
    block: search steps per block.
    directory: where the trace goes (TensorBoard's profile plugin layout).
    enabled: whether this process traces (the writer alone).
  """

  def __init__(self, steps: tuple[int, int] | None, block: int,
               directory: str, enabled: bool = True):
    self.steps, self.block, self.directory = steps, block, directory
    self.enabled = enabled and steps is not None
    self.active = False

  def before_block(self, done: int) -> None:
    """Starts the trace when the next block holds the first step."""
    if self.enabled and not self.active and (
        done < self.steps[0] <= done + self.block):
      logging.info("profiling search steps %d to %d into %s", *self.steps,
                   self.directory)
      jax.profiler.start_trace(self.directory)
      self.active = True

  def after_block(self, done: int) -> None:
    """Stops the trace once the last step ran (the state is on the host)."""
    if self.active and done >= self.steps[1]:
      self.stop()

  def stop(self) -> None:
    """Ends the trace, if one runs; no later block is traced."""
    if self.active:
      jax.profiler.stop_trace()
      self.active, self.enabled = False, False
      logging.info("profile written to %s (open it with TensorBoard's "
                   "profile plugin or xprof)", self.directory)


def _write_gates(gate_rows: list[dict], workdir: str) -> None:
  """alphas.csv and alphas.png, each through a temporary file."""
  gates = pd.DataFrame(gate_rows)
  for name, write in (
      ("alphas.csv", lambda path: gates.to_csv(path, index=False)),
      ("alphas.png", lambda path: plotting.plot_gate_trajectories(gates,
                                                                  path))):
    with files.atomic_path(os.path.join(workdir, name)) as temporary:
      write(temporary)


def _cost_probes(exp: experiment.Experiment, state: search_lib.SearchState,
                 weights: Any, derived_arch: model_lib.Architecture,
                 loop: float) -> dict[str, float]:
  """The bare search step's seconds and both networks' inference time."""
  probe = exp.maker.training_batch("test", 0)
  bare = experiment.bare_search_step_seconds(exp, state)
  logging.info("search loop %.2f ms/step against the bare step's %.2f ms "
               "(%.2fx)", 1000 * loop, 1000 * bare, loop / bare)
  supernet = experiment.inference_milliseconds(state.weights, state.alphas,
                                               exp.supernet, probe)
  derived = experiment.inference_milliseconds(weights, {}, derived_arch,
                                              probe)
  return {"bare_search_step_seconds": bare,
          "loop_over_bare_step": loop / bare,
          "supernet_inference_ms_per_batch": supernet,
          "derived_inference_ms_per_batch": derived,
          "inference_batch_size": exp.config.data.batch_size,
          "inference_speedup": supernet / derived}


def run_experiment(config: config_lib.Config | Any, workdir: str, *,
                   fresh: bool = False) -> dict[str, Any]:
  """Search, derive, retrain and evaluate; writes every output to workdir.

  The work itself is :mod:`credit_nas_jax.experiment`'s; this function only
  composes it with the run's files. A work directory that already holds
  checkpoints of the same config is resumed from its newest checkpoint, and
  ends exactly as an uninterrupted run would; ``fresh`` discards it and
  starts over. In a multi-process run (``parallel.initialize_distributed``)
  every process runs this function and process 0 writes the files.

  Returns:
    The test metrics of the retrained derived model.
  """
  with progress.Heartbeat() as heartbeat:
    return _run_experiment(config_lib.typed(config), workdir, fresh,
                           heartbeat)


class _RunFiles:
  """The main job's hooks: logs, checkpoints, TensorBoard, the profile and
  the heartbeat, between the run's blocks (process 0 writes)."""

  def __init__(self, config: config_lib.Config, workdir: str,
               arch: model_lib.Architecture, template: Any,
               heartbeat: progress.Heartbeat):
    self.config, self.workdir, self.arch = config, workdir, arch
    self.heartbeat, self.writer = heartbeat, parallel.is_writer()
    self.profile = SearchProfile(profile_range(config),
                                 experiment.block_length(config),
                                 os.path.join(workdir, PROFILE_DIR),
                                 self.writer)
    # Every process reads the checkpoints (the work directory is shared),
    # and none goes on before all have: process 0 writes from there on.
    self.checkpoints = checkpoint_lib.CheckpointManager(
        os.path.join(workdir, "checkpoints"),
        keep=config.runtime.keep_checkpoints)
    self.restored = self.checkpoints.restore_latest("search", template)
    self.gate_rows = [{"step": 0, **gate_row(template, arch)}]
    self.last_retrain, step = 0, -1  # a fresh run keeps no earlier records
    if self.restored:
      step, _, facts = self.restored
      self.gate_rows = facts["gate_rows"]
      retrain_steps = self.checkpoints.steps("retrain")
      self.last_retrain = retrain_steps[-1] if retrain_steps else 0
      logging.info("resuming the search from its checkpoint at step %d",
                   step)
    parallel.barrier("search checkpoint read")
    keep = lambda record: record["step"] <= (
        step if record["phase"] == "search" else self.last_retrain)
    self.metrics_log = RunMetrics(
        workdir, keep, config.to_dict(),
        {f"gates/{k}": v for k, v in self.gate_rows[0].items()
         if k != "step"}, write=self.writer)
    self.window = {"seconds": 0.0}
    self.clock = {"since": None, "from": 0, "start": 0.0}

  def hooks(self) -> run_lib.Hooks:
    return run_lib.Hooks(
        stage=self.heartbeat.stage, search_start=self.profile.before_block,
        search_block=self.search_block, search_end=self.search_end,
        derived=self.derived, retrain_block=self.retrain_block)

  def search_block(self, state, metrics, step):
    """Logs every log_every steps, checkpoints every checkpoint_every."""
    self.heartbeat.beat()
    self.profile.after_block(step)
    total, runtime = self.config.search.steps, self.config.runtime
    last = step == total
    self.window["seconds"] += metrics.pop("block_seconds")
    if step % runtime.log_every == 0 or last:
      steps = step - self.gate_rows[-1]["step"]
      rate = steps / max(self.window["seconds"], 1e-9)
      self.window["seconds"] = 0.0
      gates = gate_row(state, self.arch)
      self.gate_rows.append({"step": step, **gates})
      self.metrics_log.write({"phase": "search", "step": step,
                              "steps_per_second": rate, **metrics, **gates})
      left = (total - step) / rate if rate > 0 else math.inf
      logging.info(
          "search step %d/%d: train loss %.4f, validation loss %.4f, "
          "%.1f steps/s, %s left; gates %s", step, total,
          metrics["train_loss"], metrics["val_loss"], rate,
          progress.duration_text(left) if left < math.inf else "unknown",
          " ".join(f"{k.split('/')[1]}={v:.3f}" for k, v in gates.items()
                   if k.startswith("feature/")))
    if self.writer and (step % runtime.checkpoint_every == 0 or last):
      self.checkpoints.save("search", step, jax.device_get(state),
                            {"gate_rows": self.gate_rows})
    self.profile.before_block(step)
    self.heartbeat.beat()

  def search_end(self, state):
    del state
    self.profile.stop()
    if self.writer:
      _write_gates(self.gate_rows, self.workdir)

  def derived(self, derived, trials, supernet_validation):
    if self.writer:
      files.write_json(
          os.path.join(self.workdir, "architecture.json"),
          {**derived.to_json(), "derive_trials": trials,
           "supernet_validation_auc": supernet_validation["auc"]})
    logging.info("derived: features %s, ops %s", derived.kept_features,
                 derived.chosen_ops)
    self.clock["start"] = time.perf_counter()

  def restore_retrain(self, fresh):
    resumed = self.checkpoints.restore_latest("retrain", fresh)
    parallel.barrier("retrain checkpoint read")
    if not resumed:
      return None
    logging.info("retrain resumed from its checkpoint at step %d", resumed[0])
    self.clock["from"] = int(resumed[1].step)
    return resumed[1]

  def retrain_block(self, train_state, record, step):
    """Logs the retrain's rate (its first block holds the compile) and
    checkpoints it at every evaluation."""
    self.heartbeat.beat()
    now, total = time.perf_counter(), self.config.retrain.steps
    clock = self.clock
    if clock["since"] is None:
      clock["since"], clock["from"] = now, step
      logging.info("retrain %d/%d steps: first block, with its compile, in "
                   "%s", step, total,
                   progress.duration_text(now - clock["start"]))
    else:
      done, seconds = step - clock["from"], now - clock["since"]
      record = {**record, "steps_per_second": done / max(seconds, 1e-9)}
      logging.info("retrain %d/%d steps: %s (early stopping may end it "
                   "sooner)", step, total, progress.rate_and_time_left(
                       done, total - clock["from"], seconds))
    self.metrics_log.write({"phase": "retrain", **record})
    if self.writer:
      self.checkpoints.save("retrain", step, jax.device_get(train_state), {})


def _load_and_place(config, heartbeat):
  """The dataset, logged, and the data mesh (None for one device)."""
  start = time.perf_counter()
  heartbeat.stage("loading the dataset")
  dataset = load_dataset(config)
  logging.info("data: %d borrowers (%s), %d relation edges, %.1fs",
               dataset.labels.shape[0],
               ", ".join(f"{k} {v.size}" for k, v in dataset.splits.items()),
               dataset.graph.indices.size // 2, time.perf_counter() - start)
  mesh = None
  if config.runtime.num_devices != 1:
    mesh = parallel.data_mesh(config.runtime.num_devices)
    logging.info("data-parallel over %d devices: global batch %d graphs "
                 "(%d process(es))", mesh.size,
                 mesh.size * config.data.batch_size, jax.process_count())
  heartbeat.stage("placing the data on the devices")
  return dataset, mesh


def _run_experiment(config, workdir, fresh, heartbeat):
  """run_experiment under a heartbeat that names each stage."""
  experiment.refuse_evaluation_settings(config, "a search run")
  prepare_workdir(config, workdir, fresh)
  start = time.perf_counter()
  dataset, mesh = _load_and_place(config, heartbeat)
  arch = experiment.supernet_for(config, dataset)
  keys = experiment.run_keys(config.seed)
  template = search_lib.init_search_state(
      keys["init"], arch, experiment.hyperparameters_of(config))
  out = _RunFiles(config, workdir, arch, template, heartbeat)
  try:
    result = run_lib.run(
        config, dataset, out.hooks(), keys=keys, mesh=mesh,
        search_state=out.restored[1] if out.restored else None,
        restore_retrain=out.restore_retrain)
    logging.info("sampling neighbourhoods on the %s", result.exp.plan.sampler)
    out.metrics_log.write_scalars(
        int(result.train_state.step),
        {**{f"test/{k}": v for k, v in result.test.items()},
         **{f"validation/{k}": v for k, v in result.validation.items()},
         "supernet_validation/auc": result.supernet_validation["auc"]})
  finally:
    out.metrics_log.close()
  heartbeat.stage("calibrating on validation, keeping the training "
                  "population")
  monitoring = fit_monitoring(result, dataset, keys)
  if out.writer:
    _write_model(result, dataset, workdir, monitoring)
  _write_cost(result, out, mesh, start, heartbeat, workdir)
  test = result.test
  logging.info("test: AUC %.4f, KS %.4f, Gini %.4f, log loss %.4f",
               test["auc"], test["ks"], test["gini"], test["log_loss"])
  return test


def _feature_columns(dataset: data_lib.Dataset, split: str
                     ) -> dict[str, np.ndarray]:
  """Every encoded feature's values before encoding, on ``split``'s rows."""
  rows = dataset.raw_features.iloc[dataset.splits[split]]
  return {name: rows[name].to_numpy() for name in dataset.encoder.features}


def fit_monitoring(result: run_lib.RunResult, dataset: data_lib.Dataset,
                   keys: dict[str, jax.Array]) -> dict[str, Any]:
  """The retrained model's calibration map, fitted on the validation rows
  alone, and its training population, with their figures.

  Args:
    result: the run.
    dataset: its borrowers.
    keys: the run's keys (the evaluation's sampling).

  Returns:
    ``calibration`` (the map), ``population``, ``report`` (for
    test_metrics.json) and ``test`` (the test labels and scores).
  """
  exp, arch = result.exp, result.derived.arch
  scores, labels = {}, {}
  for split in data_lib.SPLITS:
    _, scores[split] = experiment.evaluate(exp, result.weights, {}, arch,
                                           split, keys=keys)
    labels[split] = dataset.labels[dataset.splits[split]]
  calibration = calibration_lib.fit_calibration(
      labels["validation"], scores["validation"], seed=exp.config.seed)
  encoder = dataset.encoder
  categorical = [name for index, name in enumerate(encoder.features)
                 if encoder.categories and encoder.categories[index]]
  population = stability_lib.fit_population(
      scores["train"], _feature_columns(dataset, "train"), categorical)
  test_stability = stability_lib.stability_report(
      population, scores["test"], _feature_columns(dataset, "test"))
  report = {
      "method": calibration["method"], "ece_bins": calibration_lib.BINS,
      "out_of_fold_log_loss": calibration["out_of_fold_log_loss"],
      **{split: calibration_lib.calibration_report(
          calibration, labels[split], scores[split])
         for split in ("validation", "test")},
      "test_score_psi": test_stability["score"]["psi"]}
  before, after = report["test"]["before"], report["test"]["after"]
  logging.info("calibration: %s map on %d validation rows; test ECE %.4f -> "
               "%.4f, Brier %.4f -> %.4f, log loss %.4f -> %.4f; test score "
               "PSI %.4f", calibration["method"], calibration["rows"],
               before["ece"], after["ece"], before["brier"], after["brier"],
               before["log_loss"], after["log_loss"],
               report["test_score_psi"])
  return {"calibration": calibration, "population": population,
          "report": report, "test": (labels["test"], scores["test"])}


def _write_model(result: run_lib.RunResult, dataset: data_lib.Dataset,
                 workdir: str, monitoring: dict[str, Any]) -> None:
  """test_metrics.json, calibration.png and the saved model."""
  files.write_json(os.path.join(workdir, "test_metrics.json"),
                   {"test": result.test, "validation": result.validation,
                    "supernet_validation": result.supernet_validation,
                    "calibration": monitoring["report"]})
  labels, scores = monitoring["test"]
  calibration = monitoring["calibration"]
  with files.atomic_path(os.path.join(workdir, "calibration.png")) as path:
    plotting.plot_reliability(
        {"before calibration": (labels, scores),
         f"after ({calibration['method']})": (
             labels, calibration_lib.apply_map(calibration, scores))},
        path, "Reliability of the test rows")
  config = result.exp.config
  model_io.write_model(os.path.join(workdir, "model"), model_io.SavedModel(
      (model_io.ModelMember(result.derived.arch,
                            jax.device_get(result.weights)),),
      dataset.encoder, tuple(config.data.fanouts),
      {"architecture": result.derived.to_json(), "test_metrics": result.test,
       "calibration": monitoring["report"]["test"],
       "config": config.to_dict()},
      sampling_seed=config.seed, calibration=calibration,
      population=monitoring["population"]))


def _write_cost(result, out, mesh, start, heartbeat, workdir) -> None:
  """search_cost.json (a finished run launched again keeps its own)."""
  cost_path = os.path.join(workdir, "search_cost.json")
  timing, history = result.timing, result.history
  if out.restored and not history and timing["search_seconds"] == 0 and (
      os.path.exists(cost_path)):
    logging.info("the run in %s was complete; its search_cost.json is kept",
                 workdir)
    return
  loop = 1 / max(timing["search_steps_per_second"], 1e-12)
  cost = {
      "device_kind": jax.devices()[0].device_kind,
      "platform": jax.devices()[0].platform,
      "jax_version": jax.__version__,
      "processes": jax.process_count(),
      "devices": mesh.size if mesh is not None else 1,
      "sampler": result.exp.plan.sampler,
      **timing,
      "search_loop_seconds_per_step": loop,
      "resumed": bool(out.restored),
      "resumed_in_retrain": out.last_retrain > 0,
      "retrain_seconds": result.retrain_seconds,
      "retrain_steps": history[-1]["step"] if history else int(
          result.train_state.step),
      "total_seconds": time.perf_counter() - start,
  }
  if result.exp.config.runtime.cost_probes:
    heartbeat.stage("timing the search step and inference")
    cost.update(_cost_probes(result.exp, result.search_state, result.weights,
                             result.derived.arch, loop))
  if out.writer:
    files.write_json(cost_path, cost)
