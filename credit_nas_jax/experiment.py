"""The experiment core: search, derive, retrain and evaluate on the device.

A run is a function of a config, a dataset and a seed. The search and the
retrain are ``lax.scan`` over blocks of steps: each step samples its own
batches on the device (:mod:`credit_nas_jax.sampling`), keyed by
``fold_in(key, step)``; optimizer states, the early-stopping bests and the
non-finite guard ride in the carry. The host touches a run only between
blocks, through an optional callback (logging, checkpoints): nothing here
reads or writes a file. ``pipeline``, the evaluation protocol and the sweep
compose these functions and write the outputs.

Every key of a run comes from :func:`run_keys`.

Where a graph does not fit on the device (``sampler="host"``), the same
blocks scan over batches that the host sampler built for the block.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np
from absl import logging

from credit_nas_jax import config as config_lib
from credit_nas_jax import data as data_lib
from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import metrics as metrics_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import ops
from credit_nas_jax import sampling
from credit_nas_jax import search as search_lib
from credit_nas_jax import train as train_lib

# Share of the device's free memory the graph arrays may take before the
# run falls back to the host sampler.
DEVICE_GRAPH_SHARE = 0.5


def run_keys(seed: int) -> dict[str, jax.Array]:
  """Every key of a run, named by use, from its seed."""
  names = ("init", "retrain", "search_batches", "retrain_batches",
           "evaluation")
  return dict(zip(names, jax.random.split(jax.random.key(seed),
                                          len(names))))


def member_keys(keys: dict[str, jax.Array],
                member: int) -> dict[str, jax.Array]:
  """The keys of member ``member`` of a retrained ensemble.

  Member 0 keeps the run's keys; the others fold their index into the
  retrain keys: their initial weights differ, and with the device sampler
  their batch order too (the host sampler's batches follow the config's
  seed, the same for every member).

  Args:
    keys: the run's keys (:func:`run_keys`).
    member: the member's index, from 0.

  Returns:
    ``keys`` with the member's "retrain" and "retrain_batches".
  """
  if member == 0:
    return keys
  return {**keys, **{name: jax.random.fold_in(keys[name], member)
                     for name in ("retrain", "retrain_batches")}}


@dataclasses.dataclass(frozen=True)
class Plan:
  """Static settings of a run's compiled programs (hashable).

  Attributes:
    batch_size: graphs per step (per shard).
    fanouts: neighbours sampled per hop (zeros for a graph without edges).
    sampler: "device" or "host".
    num_shards: shards of a data-parallel batch (1: an unstacked batch).
    sharding: the data-axis sharding of stacked shards, or None.
    second_order: the exact second-order alpha gradient.
    unroll_steps: its real weight-optimizer steps.
    arch_warmup_steps: search steps before the alphas move.
  """

  batch_size: int
  fanouts: tuple[int, ...]
  sampler: str = "device"
  num_shards: int = 1
  sharding: Any = None
  second_order: bool = False
  unroll_steps: int = 1
  arch_warmup_steps: int = 0


@dataclasses.dataclass(frozen=True)
class Program:
  """What a compiled block or scoring program is specialised on: its one
  static argument (hashable).

  Attributes:
    arch: the network.
    plan: the run's static settings.
    length: steps of a block (0: not a block).
    patience: the retrain's early-stopping patience, in evaluations.
  """

  arch: model_lib.Architecture
  plan: Plan
  length: int = 0
  patience: int = 0


@dataclasses.dataclass
class Experiment:
  """A config's dataset and programs' settings, ready to run.

  Attributes:
    config: the run's config.
    dataset: the host dataset.
    supernet: the search space.
    plan: static settings.
    arrays: the dataset on the device (the device sampler's input), or None.
    maker: the host sampler (always: tests, benchmarks, host runs).
  """

  config: config_lib.Config
  dataset: data_lib.Dataset
  supernet: model_lib.Architecture
  plan: Plan
  arrays: sampling.GraphArrays | None
  maker: data_lib.BatchMaker


def candidate_ops(config: config_lib.Config
                  ) -> tuple[tuple[float, ...], tuple[str, ...]]:
  """(expansion ratios, kinds) of the candidate ops of a config's space."""
  ratios = config.space.op_ratios
  kinds = ("gcn",) * len(ratios)
  if config.space.name == "extended":
    extra = config.space.extra_op_ratio
    return ratios + (extra, extra), kinds + ("sage", "self")
  return ratios, kinds


def op_layout_for(name: str, backend: str | None = None) -> str:
  """The op layout a config names; "auto": fused on an accelerator, the
  separate products on a CPU (each measured fastest there)."""
  if name == "auto":
    return "separate" if (backend or jax.default_backend()) == "cpu" else (
        "fused")
  if name not in model_lib.OP_LAYOUTS:
    raise ValueError(f"unknown op layout {name!r}; expected 'auto' or one "
                     f"of {list(model_lib.OP_LAYOUTS)}")
  return name


def supernet_for(config: config_lib.Config,
                 dataset: data_lib.Dataset) -> model_lib.Architecture:
  """The supernet architecture of a config over a dataset's features; the
  non-linear embeddings are fitted on the training rows alone."""
  ratios, kinds = candidate_ops(config)
  encoder = dataset.encoder
  embeddings = model_lib.embedding_entries(
      encoder.column_groups,
      [bool(encoder.categories and encoder.categories[i])
       for i in range(len(encoder.features))],
      encoder.features,
      dataset.node_features[dataset.splits["train"]],
      dataset.labels[dataset.splits["train"]],
      config.space.feature_embeddings, embedding_options(config))
  return model_lib.supernet_architecture(
      dataset.encoder.column_groups, dataset.encoder.features,
      hidden_dim=config.space.hidden_dim, op_ratios=ratios,
      num_layers=config.space.num_gcn_layers, gate_function=config.space.gate_function,
      op_kinds=kinds, readout_searchable=config.space.name == "extended",
      op_layout=op_layout_for(config.space.op_layout), embeddings=embeddings)


def embedding_options(config: config_lib.Config
                      ) -> ops.EmbeddingOptions:
  """The non-linear embedding kinds' settings of a config."""
  return ops.EmbeddingOptions(
      bins=config.space.embedding_bins,
      frequencies=config.space.embedding_frequencies,
      sigma=config.space.embedding_sigma)


def hyperparameters_of(config: config_lib.Config) -> dict[str, float]:
  """The float hyperparameters a sweep may vary, read from a config."""
  return {name: getattr(config.search, name)
          for name in search_lib.HYPERPARAMETERS}


def available_device_bytes(device: jax.Device | None = None) -> int:
  """Free memory of a device (the host's free memory for a CPU)."""
  device = device or jax.local_devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def step_bytes(arch: model_lib.Architecture, batch_size: int,
               fanouts: tuple[int, ...], num_columns: int) -> int:
  """A rough upper bound of one search step's activation memory."""
  budget = graphs_lib.BatchBudget.for_batch(batch_size, fanouts)
  widest = max(sum(widths) for widths in arch.layer_ops) + arch.hidden_dim
  per_node = 4 * (num_columns + 1 + widest * len(arch.layer_ops))
  # Forward and backward of two batches (training and validation), twice
  # over for the second-order gradient: a factor of eight is generous.
  return 8 * budget.n_node * per_node


def choose_sampler(config: config_lib.Config,
                   dataset: data_lib.Dataset, arch: model_lib.Architecture,
                   fanouts: tuple[int, ...], available: int) -> str:
  """The sampler a config gets; fails before any compile where even one
  step's batch cannot fit the device.

  Raises:
    ValueError: a step larger than the device, or a graph too large for
      ``sampler="device"``.
  """
  columns = dataset.node_features.shape[1]
  unroll = config.search.unroll_steps if config.search.second_order else 1
  # Reverse mode through an unroll keeps every step's activations.
  needed = unroll * step_bytes(arch, config.data.batch_size, fanouts,
                               columns)
  if needed > available:
    raise ValueError(
        f"one search step needs about {needed / 2**30:.1f} GiB with "
        f"batch_size={config.data.batch_size}, fanouts={tuple(fanouts)} and "
        f"{unroll} unrolled weight step(s), more than the device's "
        f"{available / 2**30:.1f} GiB free; lower config.data.batch_size, "
        "config.data.fanouts or config.search.unroll_steps")
  graph = sampling.graph_bytes(dataset.labels.shape[0],
                               dataset.graph.indices.size, columns)
  fits = graph + needed <= DEVICE_GRAPH_SHARE * available
  if config.data.sampler == "device" and not fits:
    raise ValueError(
        f"the graph takes {graph / 2**30:.1f} GiB on the device, over "
        f"{DEVICE_GRAPH_SHARE:.0%} of its {available / 2**30:.1f} GiB free; "
        "set config.data.sampler='host' (or 'auto')")
  if config.data.sampler == "auto":
    return "device" if fits else "host"
  return config.data.sampler


def refuse_evaluation_settings(config: config_lib.Config,
                               launcher: str) -> None:
  """Refuses the evaluation's own retrain settings where ``launcher``
  retrains one network with one weight decay: ``retrain_ensemble_size``
  other than 1, a ``retrain_weight_decays`` grid.

  Raises:
    ValueError: one line naming the field and where it is used.
  """
  if config.retrain.ensemble_size != 1:
    raise ValueError(
        f"config.retrain.ensemble_size={config.retrain.ensemble_size}: "
        f"{launcher} retrains one network; the evaluation "
        "(experiments/evaluate.py) averages retrained members, and a sweep "
        "saves an ensemble model (config.sweep.ensemble_size)")
  decays = tuple(config.retrain.weight_decays)
  if decays:
    raise ValueError(
        f"config.retrain.weight_decays={decays!r}: {launcher} retrains "
        f"with config.retrain.weight_decay ({config.retrain.weight_decay}); "
        "the evaluation (experiments/evaluate.py) chooses among them on "
        "validation")


def prepare(config: config_lib.Config | Any, dataset: data_lib.Dataset, *,
            mesh: jax.sharding.Mesh | None = None,
            seed: int | None = None) -> Experiment:
  """The supernet, plan and device arrays of a config over a dataset.

  ``mesh`` shards every step's batch over its data axis (stacked shards, one
  per device); ``seed`` overrides ``config.seed`` for the host sampler.
  ``config`` may be a ``ConfigDict`` (a launcher's), checked here once.
  """
  config = config_lib.typed(config)
  arch = supernet_for(config, dataset)
  has_edges = dataset.graph.indices.size > 0
  fanouts = config.data.fanouts
  if not has_edges:  # one-node graphs: pad for one node, not the worst case
    fanouts = (0,) * len(fanouts)
  sampler = choose_sampler(config, dataset, arch, fanouts,
                           available_device_bytes())
  sharding, shards = None, 1
  if mesh is not None:
    from credit_nas_jax import parallel  # pylint: disable=g-import-not-at-top
    sharding = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(parallel.DATA_AXIS))
    shards = mesh.size
  plan = Plan(batch_size=config.data.batch_size, fanouts=fanouts, sampler=sampler,
              num_shards=shards, sharding=sharding,
              second_order=config.search.second_order,
              unroll_steps=config.search.unroll_steps,
              arch_warmup_steps=config.search.arch_warmup_steps)
  arrays = None
  if sampler == "device":
    arrays = sampling.graph_arrays(dataset)
    if mesh is not None:
      arrays = jax.device_put(arrays, jax.sharding.NamedSharding(
          mesh, jax.sharding.PartitionSpec()))
    else:
      arrays = jax.device_put(arrays)
  maker = data_lib.BatchMaker(dataset, config.data.batch_size, tuple(fanouts),
                              config.seed if seed is None else seed)
  return Experiment(config, dataset, arch, plan, arrays, maker)


def block_length(config: config_lib.Config) -> int:
  """Search steps per block: the logging and checkpoint intervals' gcd."""
  return math.gcd(config.runtime.log_every, config.runtime.checkpoint_every)


# The search ------------------------------------------------------------------


def _training_batch(arrays, split, step, key, plan):
  batch = sampling.training_batch(arrays, split, step, key,
                                  batch_size=plan.batch_size,
                                  fanouts=plan.fanouts,
                                  num_shards=plan.num_shards)
  if plan.sharding is not None:
    batch = jax.lax.with_sharding_constraint(batch, plan.sharding)
  return batch


def scan_steps(step_fn: Callable[[Any, Any], tuple[Any, Any]], state: Any,
               runs: Callable[[Any], jax.Array], length: int,
               xs: Any = None) -> tuple[Any, Any]:
  """Up to ``length`` steps as one ``lax.scan``: the search's, the
  retrain's and a sweep's blocks.

  A step runs where ``runs(state)`` holds (a scalar predicate: a block's
  last steps past the run's end, or past early stopping, are skipped by a
  ``cond``, never computed); ``xs`` are per-step inputs (host batches) or
  None.

  Returns:
    (the state, the metrics of the last step taken; zeros if none was).
  """
  first = None if xs is None else jax.tree.map(lambda x: x[0], xs)
  shapes = jax.eval_shape(step_fn, state, first)[1]
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  def body(carry, x):
    state, last = carry
    return jax.lax.cond(runs(state), lambda s: step_fn(s, x),
                        lambda s: (s, last), state), None

  (state, metrics), _ = jax.lax.scan(body, (state, zeros), xs, length=length)
  return state, metrics


def _search_block_fn(state: search_lib.SearchState,
                     arrays: sampling.GraphArrays | None, key: jax.Array,
                     stop: jax.Array, host_batches: Any = None, *,
                     program: Program
                     ) -> tuple[search_lib.SearchState, dict[str, jax.Array]]:
  """``program.length`` search steps (those before ``stop``) as one scan.

  Returns the state and the metrics of the last step taken.
  """
  arch, plan = program.arch, program.plan

  def step_fn(state, batches):
    if batches is None:
      batches = (_training_batch(arrays, "train", state.step, key, plan),
                 _training_batch(arrays, "validation", state.step, key,
                                 plan))
    return search_lib.search_step_fn(
        state, *batches, arch=arch, second_order=plan.second_order,
        unroll_steps=plan.unroll_steps,
        arch_warmup_steps=plan.arch_warmup_steps)

  return scan_steps(step_fn, state, lambda s: s.step < stop, program.length,
                    host_batches)


search_block = jax.jit(_search_block_fn, static_argnames=("program",),
                       donate_argnums=0)


def host_search_batches(exp: Experiment, start: int, length: int) -> Any:
  """A block's training and validation batches from the host sampler,
  stacked on a leading step axis."""
  def one(split, step):
    if exp.plan.num_shards > 1:
      return exp.maker.sharded_training_batch(split, step,
                                              exp.plan.num_shards)
    return exp.maker.training_batch(split, step)

  steps = range(start, start + length)
  stack = lambda trees: jax.tree.map(lambda *xs: np.stack(xs), *trees)
  return (stack([one("train", s) for s in steps]),
          stack([one("validation", s) for s in steps]))


BlockCallback = Callable[[Any, dict[str, float], int], None]


# The timing of a search that had no step left to run.
_NO_SEARCH_TIMING = {"compile_seconds": 0.0, "search_seconds": 0.0,
                     "host_callback_seconds": 0.0,
                     "search_steps_per_second": float("nan")}


def _stop_if_nonfinite(state: search_lib.SearchState) -> None:
  """Raises train.NonFiniteError where a search block went non-finite."""
  report = search_lib.nonfinite_report(state)
  if report:
    raise train_lib.NonFiniteError(
        f"{report}; stopping. The last good checkpoint is kept; lower the "
        "learning rates or check the data.")


def search(exp: Experiment, state: search_lib.SearchState, *,
           on_block: BlockCallback | None = None,
           keys: dict[str, jax.Array] | None = None
           ) -> tuple[search_lib.SearchState, dict[str, float]]:
  """Runs the bilevel search from ``state.step`` to ``search_steps``.

  Blocks of :func:`block_length` steps run on the device; after each,
  ``on_block(state, metrics, step)`` may log or checkpoint; ``metrics`` are
  the last step's, with the block's wall seconds as ``block_seconds``. A block whose
  state went non-finite stops the run (the callback is not called for it).

  Returns:
    (final state, timing: compile and run seconds, steps per second).

  Raises:
    train.NonFiniteError: naming the first non-finite step and quantities.
  """
  config, plan = exp.config, exp.plan
  keys = keys or run_keys(config.seed)
  length = block_length(config)
  step = int(state.step)
  total = int(config.search.steps)

  def batches_for(start):
    if plan.sampler == "host":
      return host_search_batches(exp, start, length)
    return None

  if step >= total:
    return state, dict(_NO_SEARCH_TIMING)
  compile_start = time.perf_counter()
  compiled = search_block.lower(
      state, exp.arrays, keys["search_batches"], jnp.int32(total),
      batches_for(step),
      program=Program(exp.supernet, plan, length)).compile()
  compile_seconds = time.perf_counter() - compile_start
  run_start = time.perf_counter()
  first_step = step
  block_start, host_seconds = run_start, 0.0
  while step < total:
    stop = min(step + length, total)
    state, metrics = compiled(state, exp.arrays, keys["search_batches"],
                              jnp.int32(stop), batches_for(step))
    step = stop
    metrics = jax.tree.map(float, metrics)
    now = time.perf_counter()
    metrics["block_seconds"], block_start = now - block_start, now
    _stop_if_nonfinite(state)
    if on_block:
      on_block(state, metrics, step)
      block_start = time.perf_counter()
      host_seconds += block_start - now
  jax.block_until_ready(state)
  seconds = time.perf_counter() - run_start - host_seconds
  return state, {"compile_seconds": compile_seconds,
                 "search_seconds": seconds,
                 "host_callback_seconds": host_seconds,
                 "search_steps_per_second": (step - first_step) / max(
                     seconds, 1e-9)}


# Scoring ---------------------------------------------------------------------


def _split_logits_fn(weights, alphas, gates, arrays, key, *, split: str,
                     program: Program):
  """Logits of every borrower of ``split``, in order."""
  batch, rows = program.plan.batch_size, arrays.splits[split]
  logits = sampling.map_split(
      lambda graphs: model_lib.apply(weights, alphas, graphs, program.arch,
                                     gates)[:batch],
      arrays, rows, sampling.SPLIT_STREAMS[split], key, batch_size=batch,
      fanouts=program.plan.fanouts)
  return logits.reshape(-1)[:rows.shape[0]]


split_logits_device = jax.jit(_split_logits_fn,
                              static_argnames=("split", "program"))


def split_logits(exp: Experiment, weights: chex.ArrayTree,
                 alphas: chex.ArrayTree, arch: model_lib.Architecture,
                 split: str, *, gates: Any = None,
                 keys: dict[str, jax.Array] | None = None) -> np.ndarray:
  """Logits of every borrower of ``split`` in split order (float64)."""
  if exp.plan.sampler == "device":
    keys = keys or run_keys(exp.config.seed)
    plan = dataclasses.replace(exp.plan, num_shards=1, sharding=None)
    return np.asarray(split_logits_device(
        weights, alphas, gates, exp.arrays, keys["evaluation"], split=split,
        program=Program(arch, plan)), np.float64)
  out = []
  for batch in exp.maker.evaluation_batches(split):
    logits = search_lib.predict_step(weights, alphas, batch, arch, gates)
    out.append(np.asarray(logits)[batch.globals["borrower"] >= 0])
  return np.concatenate(out).astype(np.float64)


def evaluate(exp: Experiment, weights: chex.ArrayTree,
             alphas: chex.ArrayTree, arch: model_lib.Architecture,
             split: str, *, gates: Any = None,
             keys: dict[str, jax.Array] | None = None
             ) -> tuple[dict[str, float], np.ndarray]:
  """(metrics, scores) of a network on every borrower of ``split``."""
  logits = split_logits(exp, weights, alphas, arch, split, gates=gates,
                        keys=keys)
  scores = 1 / (1 + np.exp(-logits))
  labels = exp.dataset.labels[exp.dataset.splits[split]]
  return metrics_lib.classification_metrics(labels, scores), scores


# Derive ----------------------------------------------------------------------


def _validation_scorer(exp: Experiment, state: search_lib.SearchState,
                       keys: dict[str, jax.Array] | None
                       ) -> Callable[[chex.ArrayTree], np.ndarray]:
  """The derive's scorer: a candidate's alphas -> the supernet's validation
  probabilities under its gates.

  Each candidate is scored once (the standard errors reuse its scores).
  Every candidate has one op a layer; the op candidates are scored once
  each, on the supernet's program. A combination of ops met a second time
  (the chosen ops: every feature and readout candidate has them) is scored
  on the supernet cut to those ops (:func:`search.one_op_network`, compiled
  once), the same function up to float rounding without the closed ops'
  work.
  """
  scored, seen_ops = {}, set()

  @functools.cache
  def cut(ops):
    return search_lib.one_op_network(state.alphas, state.weights,
                                     exp.supernet, ops)

  def scores(alphas):
    leaves, treedef = jax.tree_util.tree_flatten(alphas)
    key = (treedef, *((np.asarray(leaf).dtype.str, np.shape(leaf),
                       np.asarray(leaf).tobytes()) for leaf in leaves))
    if key in scored:
      return scored[key]
    ops = search_lib.open_ops(alphas)
    if ops is not None and ops in seen_ops:
      arch, weights = cut(ops)
      scored[key] = evaluate(
          exp, weights, {}, arch, "validation", keys=keys,
          gates=search_lib.one_op_gates(alphas, exp.supernet, ops))[1]
    else:
      scored[key] = evaluate(exp, state.weights, alphas, exp.supernet,
                             "validation", keys=keys)[1]
      seen_ops.add(ops)
    return scored[key]

  return scores


def derive(exp: Experiment, state: search_lib.SearchState, *,
           keys: dict[str, jax.Array] | None = None
           ) -> tuple[search_lib.DerivedArchitecture, list[dict]]:
  """The derived network by the config's rule: gates over the threshold,
  or ops, number of features and readout chosen on validation."""
  config = exp.config
  if config.derive.rule == "threshold":
    return search_lib.derive_architecture(state.alphas, exp.supernet,
                                          config.derive.gate_threshold), []
  labels = exp.dataset.labels[exp.dataset.splits["validation"]]
  scores = _validation_scorer(exp, state, keys)
  derived, trials = search_lib.derive_by_validation(
      state.alphas, exp.supernet, config.derive.gate_threshold,
      lambda alphas: metrics_lib.classification_metrics(
          labels, scores(alphas))["auc"],
      min_feature_gain=float(config.derive.min_feature_gain),
      difference_se=lambda a, b: metrics_lib.auc_difference_se(
          labels, scores(a), scores(b)),
      confidence=float(config.derive.confidence))
  best_ops = max((t for t in trials if "ops" in t),
                 key=lambda t: t["validation_auc"])
  logging.info("derive on validation: ops %s (AUC %.4f)",
               "/".join(best_ops["ops"]), best_ops["validation_auc"])
  return derived, trials


# Retrain ---------------------------------------------------------------------


def init_retrain_state(config: config_lib.Config, key: jax.Array,
                       arch: model_lib.Architecture,
                       weights: chex.ArrayTree | None = None
                       ) -> train_lib.TrainState:
  """A train state with the config's retrain learning rate and weight decay.

  The weights are fresh from ``key``, or ``weights``. The optimizer is the
  search's weight AdamW, its values state, not static: retrains of one
  network at any setting share one compiled program.
  """
  return train_lib.init_train_state(
      key, arch, search_lib.optimizers()[0], weights,
      learning_rate=float(config.retrain.lr),
      weight_decay=float(config.retrain.weight_decay))


def retrain_step_fn(state: train_lib.TrainState, arrays, keys, gates,
                    batch: Any = None, *, program: Program
                    ) -> tuple[train_lib.TrainState, dict[str, jax.Array]]:
  """One retrain step, on ``batch`` or (None) a batch the device samples
  with the retrain's batch key."""
  if batch is None:
    batch = _training_batch(arrays, "train", state.step,
                            keys["retrain_batches"], program.plan)
  return train_lib.train_step_fn(state, batch, arch=program.arch,
                                 gates=gates)


def validation_update(state: train_lib.TrainState, arrays, keys, gates, *,
                      program: Program) -> tuple[train_lib.TrainState,
                                                 dict[str, jax.Array]]:
  """The validation AUC and log loss of the weights (device sampler), and
  the early-stopping update they make."""
  scoring = Program(program.arch, dataclasses.replace(
      program.plan, num_shards=1, sharding=None))
  logits = _split_logits_fn(state.weights, {}, gates, arrays,
                            keys["evaluation"], split="validation",
                            program=scoring)
  labels = arrays.labels[arrays.splits["validation"]]
  auc = metrics_lib.roc_auc_from_logits(logits, labels)
  state = train_lib.early_stopping_update(state, auc, program.patience)
  return state, {"val_auc": auc,
                 "val_log_loss": metrics_lib.log_loss_from_logits(logits,
                                                                  labels)}


def _retrain_block_fn(state: train_lib.TrainState, arrays, keys, gates,
                      stop: jax.Array, host_batches: Any = None, *,
                      program: Program
                      ) -> tuple[train_lib.TrainState, dict[str, jax.Array]]:
  """Up to ``program.length`` retrain steps, then (device sampler) the
  validation AUC and the early-stopping update; all inside one program."""
  state, metrics = scan_steps(
      lambda s, batch: retrain_step_fn(s, arrays, keys, gates, batch,
                                       program=program),
      state, lambda s: (s.step < stop) & ~s.stopped, program.length,
      host_batches)
  if arrays is None:
    return state, metrics
  state, validation = validation_update(state, arrays, keys, gates,
                                        program=program)
  return state, {**metrics, **validation}


retrain_block = jax.jit(_retrain_block_fn, static_argnames=("program",),
                        donate_argnums=0)


def _host_retrain_batches(exp, start, length):
  steps = range(start, start + length)
  trees = [exp.maker.sharded_training_batch("train", s, exp.plan.num_shards)
           if exp.plan.num_shards > 1 else exp.maker.training_batch("train",
                                                                    s)
           for s in steps]
  return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def eval_interval(config: config_lib.Config,
                  dataset: data_lib.Dataset) -> int:
  """Retrain steps between validation evaluations: ``eval_every``, and with
  ``config.retrain.eval_each_epoch`` at most one epoch of the training rows (german's
  600 rows are 5 steps of 128: 100 steps would be 21 epochs, long past a
  small table's best)."""
  every = int(config.retrain.eval_every)
  if config.retrain.eval_each_epoch:
    epoch = math.ceil(dataset.splits["train"].size / int(config.data.batch_size))
    every = max(1, min(every, epoch))
  return every


def retrain(exp: Experiment, state: train_lib.TrainState,
            arch: model_lib.Architecture, *, gates: Any = None,
            keys: dict[str, jax.Array] | None = None,
            on_block: BlockCallback | None = None
            ) -> tuple[train_lib.TrainState, list[dict]]:
  """Trains a fixed network from ``state`` with early stopping on
  validation AUC, in blocks of :func:`eval_interval` steps.

  ``gates`` fixes a supernet-shaped network's gates (a derived network as
  a masked supernet). After every block, ``on_block(state, record, step)``
  may log or checkpoint.

  Returns:
    (final state: ``best_weights`` are the weights to keep, the history of
    evaluations).

  Raises:
    train.NonFiniteError: a non-finite loss or gradient.
  """
  config, plan = exp.config, exp.plan
  keys = keys or run_keys(config.seed)
  length = eval_interval(config, exp.dataset)
  total = int(config.retrain.steps)
  start = time.perf_counter()
  history = []
  step = int(state.step)
  host = plan.sampler == "host"
  program = Program(arch, plan, length, int(config.retrain.patience))
  while step < total and not bool(state.stopped):
    stop = min(step + length, total)
    state, metrics = retrain_block(
        state, exp.arrays, keys, gates, jnp.int32(stop),
        _host_retrain_batches(exp, step, length) if host else None,
        program=program)
    step = stop
    if int(state.nonfinite_step) >= 0:
      raise train_lib.NonFiniteError(
          f"retrain step {int(state.nonfinite_step)}: training loss or "
          "weight gradient not finite")
    if host:
      validation, _ = evaluate(exp, state.weights, {}, arch, "validation",
                               gates=gates, keys=keys)
      state = train_lib.early_stopping_update(
          state, jnp.float32(validation["auc"]), int(config.retrain.patience))
      metrics = {**metrics, "val_auc": validation["auc"],
                 "val_log_loss": validation["log_loss"]}
    record = {"step": step, **jax.tree.map(float, metrics),
              "seconds": time.perf_counter() - start}
    history.append(record)
    logging.info("retrain step %d: train loss %.4f, validation AUC %.4f "
                 "(of at most %d steps)", step, record["train_loss"],
                 record["val_auc"], total)
    if bool(state.stopped):
      logging.info("early stop at step %d (best validation AUC %.4f)", step,
                   float(state.best_auc))
    if on_block:
      on_block(state, record, step)
  return state, history


def retrain_state(exp: Experiment, derived: search_lib.DerivedArchitecture,
                  keys: dict[str, jax.Array]) -> train_lib.TrainState:
  """The derived network's fresh retrain state: its weights cut from a
  supernet initialised with the retrain key, so a sweep that retrains the
  masked supernet from the same key starts from the same weights."""
  weights, _ = model_lib.init(keys["retrain"], exp.supernet)
  return init_retrain_state(
      exp.config, keys["retrain"], derived.arch,
      search_lib.slice_weights(weights, exp.supernet, derived))


# Cost ------------------------------------------------------------------------


def bare_search_step_seconds(exp: Experiment, state: search_lib.SearchState,
                             repeats: int = 20) -> float:
  """Median seconds of the compiled search step on one fixed batch pair
  (no sampling): the floor the search loop is compared with."""
  keys = run_keys(exp.config.seed)
  if exp.plan.sampler == "device":
    fetch = jax.jit(_training_batch, static_argnames=("split", "plan"))
    train, val = (fetch(exp.arrays, split=split, step=jnp.int32(0),
                        key=keys["search_batches"], plan=exp.plan)
                  for split in ("train", "validation"))
  else:
    train, val = jax.tree.map(lambda x: x[0],
                              host_search_batches(exp, 0, 1))
  step = jax.jit(search_lib.search_step_fn,
                 static_argnames=("arch", "second_order", "unroll_steps",
                                  "arch_warmup_steps"))
  kwargs = dict(arch=exp.supernet, second_order=exp.plan.second_order,
                unroll_steps=exp.plan.unroll_steps,
                arch_warmup_steps=exp.plan.arch_warmup_steps)
  jax.block_until_ready(step(state, train, val, **kwargs))
  times = []
  for _ in range(repeats):
    begin = time.perf_counter()
    jax.block_until_ready(step(state, train, val, **kwargs))
    times.append(time.perf_counter() - begin)
  return float(np.median(times))


def inference_milliseconds(weights: chex.ArrayTree, alphas: chex.ArrayTree,
                           arch: model_lib.Architecture,
                           batch: jraph.GraphsTuple,
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
