"""Hyperparameter sweeps as one vmapped program.

A grid is the product of seeds and float hyperparameters. Every member's
search state is stacked along a leading axis and one jit-compiled step,
``jax.vmap`` of the search step, advances all members at once; the float
hyperparameters are arrays inside each member's optimizer states
(``optax.inject_hyperparams``), so they vary across the axis like data.
Members that share a seed share their batches: the batches of the distinct
seeds are stacked once per step and each member picks its own inside the
program. Structural settings (D, op ratios, fanouts) stay static. How many members
run vmapped at once is a setting (``sweep_vmap_width``); the rest run one
group after another inside the same program (``jax.lax.map``).

Grids that do not fit in memory run in equal chunks (the last one padded
with repeats, so the program compiles once); the chunk size comes from the
compiled step's memory analysis and the device's memory, capped by config.

The retrained members of best validation AUC form an ensemble (the mean of
their probabilities), saved as ``<workdir>/ensemble_model`` in the model
format (``model_io``) and scored like any model. Every choice reads
validation figures only; the test labels are never read.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from absl import logging

from credit_nas_jax import config as config_lib
from credit_nas_jax import experiment
from credit_nas_jax import files
from credit_nas_jax import metrics as metrics_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import model_io
from credit_nas_jax import parallel
from credit_nas_jax import pipeline
from credit_nas_jax import progress
from credit_nas_jax import sampling
from credit_nas_jax import search as search_lib
from credit_nas_jax import train as train_lib

# Config fields that list the values a sweep takes; an empty tuple keeps the
# base config's single value.
SWEPT_FLOATS = search_lib.HYPERPARAMETERS + ("gate_threshold",)
# Where each swept float lives in a run's config.
SWEPT_PATHS = {**{name: f"search.{name}" for name in search_lib.HYPERPARAMETERS},
               "gate_threshold": "derive.gate_threshold"}
ENSEMBLE_DIR = "ensemble_model"


@dataclasses.dataclass(frozen=True)
class Member:
  """One grid member: a seed and a value of every swept float."""

  index: int
  seed: int
  settings: dict[str, float]

  def config(self, base: config_lib.Config) -> config_lib.Config:
    """The config that runs this member alone through the launcher."""
    return config_lib.replace(base, {
        "seed": self.seed, "sweep": None,
        **{SWEPT_PATHS[name]: value for name, value in self.settings.items()}})


def grid_members(config: config_lib.Config) -> list[Member]:
  """The grid: seeds x every swept float, in a fixed order."""
  axes = {name: getattr(config.sweep, name) or (
      config_lib.get(config, SWEPT_PATHS[name]),) for name in SWEPT_FLOATS}
  seeds = tuple(config.sweep.seeds) or (config.seed,)
  members = []
  for values in itertools.product(*axes.values()):
    for seed in seeds:
      members.append(Member(len(members), int(seed),
                            dict(zip(axes, map(float, values)))))
  return members


def _sweep_block_fn(states, arrays, seed_keys, seed_slot, stop, *,
                    program, vmap_width):
  """``program.length`` search steps of every member as one scan.

  Every step samples the batches of each distinct seed once, on the device
  (the keys of a lone run of that seed), and each member picks its own
  inside the program; ``jax.lax.map`` runs the members ``vmap_width`` at a
  time, vmapped, one group after another.
  """
  arch, plan = program.arch, program.plan

  def batches(split, step):
    return jax.vmap(lambda key: sampling.training_batch(
        arrays, split, step, key, batch_size=plan.batch_size,
        fanouts=plan.fanouts))(seed_keys)

  def step_fn(states):
    step = states.step[0]  # every member is at the same step
    train, val = batches("train", step), batches("validation", step)

    def members(alphas_move):
      def member(args):
        state, slot = args
        pick = lambda tree: jax.tree.map(lambda x: x[slot], tree)
        return search_lib.search_step_fn(
            state, pick(train), pick(val), arch=arch,
            second_order=plan.second_order, unroll_steps=plan.unroll_steps,
            alphas_move=alphas_move)

      return lambda states: jax.lax.map(member, (states, seed_slot),
                                        batch_size=vmap_width)

    # The warm-up switch is the same for every member: decided here, outside
    # their vmap, so a warm-up step computes no alpha gradient.
    return jax.lax.cond(step >= plan.arch_warmup_steps, members(True),
                        members(False), states)

  return experiment.scan_steps(lambda s, _: step_fn(s), states,
                               lambda s: s.step[0] < stop, program.length)


sweep_block = jax.jit(_sweep_block_fn,
                      static_argnames=("program", "vmap_width"),
                      donate_argnums=0)


def vmap_width_for(config: config_lib.Config, members: int) -> int:
  """Members vmapped at once: the config's width, or 0 for all of them."""
  if config.sweep.vmap_width > 0:
    return min(config.sweep.vmap_width, members)
  return members


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


@functools.partial(jax.jit, static_argnames=("arch",))
def _init_stacked(keys, hyperparameters, arch):
  return jax.vmap(lambda k, h: search_lib.init_search_state(k, arch, h))(
      keys, hyperparameters)


def _init_states(members: list[Member], arch: model_lib.Architecture):
  """Stacked search states; member i starts exactly as a lone run would."""
  keys = _stack([experiment.run_keys(m.seed)["init"] for m in members])
  hyper = {name: jnp.asarray([m.settings[name] for m in members], jnp.float32)
           for name in search_lib.HYPERPARAMETERS}
  return _init_stacked(keys, hyper, arch)


def chunk_size(num_members: int, bytes_per_member: int, available: int,
               cap: int, memory_share: float = 0.5) -> int:
  """Members per chunk: what fits in ``memory_share`` of memory, capped."""
  fits = max(1, int(available * memory_share) // max(bytes_per_member, 1))
  return max(1, min(num_members, cap, fits))


def _bytes_per_member(exp: experiment.Experiment) -> int:
  """Memory of one member: its state (weights, alphas, two Adam moments
  each) and its step's activations."""
  weights, alphas = model_lib.init_shapes(exp.supernet)
  state = sum(int(np.prod(x.shape)) * 4
              for x in jax.tree.leaves((weights, alphas)))
  return 3 * state + experiment.step_bytes(
      exp.supernet, exp.plan.batch_size, exp.plan.fanouts,
      exp.dataset.node_features.shape[1])


def _search_chunk(members, exp, seeds, compiled=None, beat=lambda: None):
  """Searches one chunk of members; returns their final states.

  ``seeds`` lists the distinct seeds of the whole grid, so every chunk has
  the same shapes and reuses the program compiled for the first one;
  ``beat`` is called at each progress line.
  """
  config = exp.config
  states = _init_states(members, exp.supernet)
  slot = jnp.asarray([seeds.index(m.seed) for m in members], jnp.int32)
  seed_keys = _stack([experiment.run_keys(s)["search_batches"]
                      for s in seeds])
  length = experiment.block_length(config)
  total = int(config.search.steps)
  compile_seconds = 0.0
  if compiled is None:
    compile_start = time.perf_counter()
    compiled = sweep_block.lower(
        states, exp.arrays, seed_keys, slot, jnp.int32(total),
        program=experiment.Program(exp.supernet, exp.plan, length),
        vmap_width=vmap_width_for(config, len(members))).compile()
    compile_seconds = time.perf_counter() - compile_start
  start = time.perf_counter()
  for step in range(0, total, length):
    stop = min(step + length, total)
    states, metrics = compiled(states, exp.arrays, seed_keys, slot,
                               jnp.int32(stop))
    if stop % config.runtime.log_every == 0 or stop == total:
      loss = np.asarray(metrics["val_loss"])
      logging.info("sweep step %d/%d: validation loss median %.4f "
                   "(min %.4f, max %.4f) over %d members; %s in this chunk",
                   stop, total, np.nanmedian(loss), np.nanmin(loss),
                   np.nanmax(loss), len(members),
                   progress.rate_and_time_left(
                       stop, total, time.perf_counter() - start))
      beat()
  states = jax.block_until_ready(states)
  return states, compiled, compile_seconds, time.perf_counter() - start


def _member_state(states, i):
  return jax.tree.map(lambda x: x[i], states)


@functools.partial(jax.jit, static_argnames=("program",))
def _validation_aucs(weights, alphas, gates, arrays, eval_keys, *, program):
  """Validation AUC of every member's network, vmapped on the device."""
  labels = arrays.labels[arrays.splits["validation"]]

  def one(w, a, g, key):
    logits = experiment._split_logits_fn(  # pylint: disable=protected-access
        w, a, g, arrays, key, split="validation", program=program)
    return metrics_lib.roc_auc_from_logits(logits, labels)

  return jax.vmap(one)(weights, alphas, gates, eval_keys)


def _supernet_validation_auc(states, members, exp):
  """Validation AUC of every member's supernet (NaN where it diverged)."""
  keys = _stack([experiment.run_keys(m.seed)["evaluation"] for m in members])
  aucs = np.asarray(_validation_aucs(states.weights, states.alphas, None,
                                     exp.arrays, keys,
                                     program=experiment.Program(
                                         exp.supernet, exp.plan)),
                    np.float64)
  diverged = np.asarray(states.nonfinite_step) >= 0
  return np.where(diverged, np.nan, aucs)


def _sweep_retrain_block_fn(states, arrays, keys, gates, stop, *, program):
  """``program.length`` retrain steps of every member as one scan, then each
  member's validation AUC and early-stopping update.

  The block's end is the same for every member, so it is decided outside
  their vmap (a ``cond`` that skips the steps past it, or every step once
  all members have stopped); a member that early stopping has ended keeps
  its carry (a select), as a lone run of it stops.
  """
  member_step = jax.vmap(lambda state, k, g: experiment.retrain_step_fn(
      state, arrays, k, g, program=program))

  def step_fn(states, _):
    stepped, metrics = member_step(states, keys, gates)
    keep = lambda new, old: jnp.where(
        states.stopped.reshape(states.stopped.shape + (1,) * (new.ndim - 1)),
        old, new)
    return jax.tree.map(keep, stepped, states), metrics

  running = lambda s: (jnp.max(s.step) < stop) & ~jnp.all(s.stopped)
  states, metrics = experiment.scan_steps(step_fn, states, running,
                                          program.length)
  states, validation = jax.vmap(
      lambda state, k, g: experiment.validation_update(
          state, arrays, k, g, program=program))(states, keys, gates)
  return states, {**metrics, **validation}


sweep_retrain_block = jax.jit(_sweep_retrain_block_fn,
                              static_argnames=("program",), donate_argnums=0)


def retrain_members(exp: experiment.Experiment, members: list[Member],
                    states: search_lib.SearchState, beat=lambda: None
                    ) -> tuple[np.ndarray, train_lib.TrainState]:
  """Derives and retrains members as one vmapped program.

  Each member's derived network is its supernet with fixed gates (the
  threshold rule, :func:`search.threshold_gates`), so members of different
  architectures share shapes; weights start from the supernet initialised
  with the member's retrain key, as a lone run's derived network does.

  Returns:
    (validation AUC of each member's best weights, the stacked states,
    whose ``best_weights`` are the members' retrained weights). ``beat`` is
    called at each progress line.
  """
  config, arch = exp.config, exp.supernet
  keys = _stack([experiment.run_keys(m.seed) for m in members])
  thresholds = jnp.asarray([m.settings["gate_threshold"] for m in members])
  gates = jax.vmap(lambda a, t: search_lib.threshold_gates(a, arch, t))(
      states.alphas, thresholds)
  train_states = jax.vmap(lambda key: experiment.init_retrain_state(
      config, key, arch, model_lib.init(key, arch)[0]))(keys["retrain"])
  every = experiment.eval_interval(config, exp.dataset)
  total = int(config.retrain.steps)
  program = experiment.Program(arch, exp.plan, every,
                               int(config.retrain.patience))
  step, start = 0, time.perf_counter()
  while step < total and not bool(np.all(train_states.stopped)):
    step = min(step + every, total)
    train_states, record = sweep_retrain_block(
        train_states, exp.arrays, keys, gates, jnp.int32(step),
        program=program)
    logging.info("sweep retrain step %d/%d: validation AUC %s; %s (the first "
                 "block holds the compile)", step, total,
                 np.round(np.asarray(record["val_auc"]), 4).tolist(),
                 progress.rate_and_time_left(step, total,
                                             time.perf_counter() - start))
    beat()
  return np.asarray(train_states.best_auc, np.float64), train_states


def ensemble_size_of(config: config_lib.Config) -> int:
  """Members of the sweep's ensemble: ``config.sweep.ensemble_size``; -1
  (the default) is every retrained member (``sweep.top_k``); 0 saves no
  ensemble (the config's check keeps it in -1..top_k)."""
  size = config.sweep.ensemble_size
  return config.sweep.top_k if size == -1 else size


def choose_ensemble(retrained_val_auc: np.ndarray, size: int) -> list[int]:
  """Positions of the ``size`` retrained members of highest validation AUC,
  best first (ties: the earlier position); a member whose AUC is not finite
  (it diverged) is never chosen, so fewer may come back."""
  aucs = np.asarray(retrained_val_auc, np.float64)
  order = np.argsort(-np.where(np.isfinite(aucs), aucs, -np.inf),
                     kind="stable")
  return [int(i) for i in order[:size] if np.isfinite(aucs[i])]


def validation_probabilities(exp: experiment.Experiment,
                             networks: list[model_io.ModelMember],
                             keys: dict[str, jax.Array]) -> np.ndarray:
  """[networks, validation borrowers] good-credit probabilities of derived
  networks, every network on the same neighbourhoods (``keys``), as the
  members of a saved ensemble are scored."""
  return np.stack([experiment.evaluate(exp, weights, {}, arch, "validation",
                                       keys=keys)[1]
                   for arch, weights in networks])


def _save_ensemble(exp, members, derived, retrained, train_states, size,
                   workdir):
  """Chooses the ensemble among the retrained members on validation, saves
  it and returns its summary (None when no member qualifies).

  ``members``, ``derived``, ``retrained`` and ``train_states`` are those of
  the retrained members, position by position.
  """
  chosen = choose_ensemble(retrained, size)
  if not chosen:
    logging.warning("no ensemble: no retrained member has a finite "
                    "validation AUC")
    return None
  networks = [model_io.ModelMember(derived[j].arch, search_lib.slice_weights(
      jax.tree.map(lambda x, j=j: x[j], train_states.best_weights),
      exp.supernet, derived[j])) for j in chosen]
  # The members share the best member's neighbourhoods here, as they share
  # the saved sampling seed when scored.
  seed = members[chosen[0]].seed
  probabilities = validation_probabilities(exp, networks,
                                           experiment.run_keys(seed))
  labels = exp.dataset.labels[exp.dataset.splits["validation"]]

  def auc(scores):
    return metrics_lib.classification_metrics(labels, scores)["auc"]

  rows = [{"member": members[j].index, "seed": members[j].seed,
           **members[j].settings,
           "retrained_val_auc": float(retrained[j]),
           "val_auc": auc(p),
           "architecture": derived[j].to_json()}
          for j, p in zip(chosen, probabilities)]
  summary = {"model_dir": ENSEMBLE_DIR, "sampling_seed": seed,
             "val_auc": auc(probabilities.mean(axis=0)),
             "members": [{k: v for k, v in row.items() if k != "architecture"}
                         for row in rows]}
  logging.info("ensemble of members %s (chosen by retrained validation AUC "
               "%s): validation AUC %.4f, its members' %s on the same "
               "neighbourhoods", [r["member"] for r in rows],
               [round(r["retrained_val_auc"], 4) for r in rows],
               summary["val_auc"], [round(r["val_auc"], 4) for r in rows])
  if parallel.is_writer():
    model_io.save_ensemble(
        os.path.join(workdir, ENSEMBLE_DIR), networks, exp.dataset.encoder,
        tuple(exp.config.data.fanouts),
        {"ensemble": "mean of the members' probabilities",
         "validation_auc": summary["val_auc"], "members": rows,
         "config": exp.config.to_dict()}, sampling_seed=seed)
  return summary


def _write_markdown(frame: pd.DataFrame, path: str) -> None:
  header = "| " + " | ".join(frame.columns) + " |"
  rule = "|" + "---|" * len(frame.columns)
  rows = ["| " + " | ".join(
      f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
          for row in frame.itertuples(index=False)]
  with open(path, "w") as f:
    f.write("\n".join([header, rule, *rows]) + "\n")


def stability_table(leaderboard: pd.DataFrame,
                    arch: model_lib.Architecture) -> pd.DataFrame:
  """Per setting (all swept floats but the seed): how often, across seeds,
  each feature is kept and each layer's op chosen."""
  setting_columns = list(SWEPT_FLOATS)
  rows = []
  for setting, group in leaderboard.groupby(setting_columns, sort=True):
    row = dict(zip(setting_columns, setting))
    row["seeds"] = len(group)
    for name in arch.group_names:
      row[f"keep/{name}"] = group["kept_features"].apply(
          lambda kept, n=name: n in kept.split(",")).mean()
    for layer, names in enumerate(arch.layer_op_names):
      chosen = group["chosen_ops"].str.split(",").str[layer]
      for op in names:
        row[f"layer{layer + 1}/{op}"] = (chosen == op).mean()
    row["val_auc_mean"] = group["supernet_val_auc"].mean()
    row["val_auc_std"] = group["supernet_val_auc"].std(ddof=0)
    rows.append(row)
  return pd.DataFrame(rows)


def plot_stability(stability: pd.DataFrame, path: str) -> None:
  """Heatmap: settings x (features kept, ops chosen), share of seeds."""
  from credit_nas_jax import plotting  # pylint: disable=g-import-not-at-top
  del plotting  # selects the non-interactive backend
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  columns = [c for c in stability.columns
             if c.startswith("keep/") or c.startswith("layer")]
  labels = [", ".join(f"{k}={stability.iloc[i][k]:.3g}"
                      for k in SWEPT_FLOATS
                      if stability[k].nunique() > 1) or "base"
            for i in range(len(stability))]
  figure, axis = plt.subplots(figsize=(1 + 0.7 * len(columns),
                                       1.5 + 0.45 * len(stability)))
  image = axis.imshow(stability[columns].to_numpy(float), vmin=0, vmax=1,
                      cmap="viridis", aspect="auto")
  axis.set_xticks(range(len(columns)), columns, rotation=60, ha="right",
                  fontsize=8)
  axis.set_yticks(range(len(labels)), labels, fontsize=8)
  for (r, c), value in np.ndenumerate(stability[columns].to_numpy(float)):
    axis.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
              color="white" if value < 0.6 else "black")
  figure.colorbar(image, label="share of seeds")
  axis.set_title("Architecture stability across seeds")
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def run_sweep(config: config_lib.Config,
              workdir: str) -> pd.DataFrame:
  """Runs the grid, derives every member, retrains the best and saves the
  ensemble of the best retrained; writes reports.

  Returns:
    The leaderboard, one row per member.
  """
  with progress.Heartbeat() as heartbeat:
    return _run_sweep(config_lib.typed(config), workdir, heartbeat)


def _write_text(path: str, write) -> None:
  """Process 0 writes ``path`` through a temporary file and a rename."""
  if not parallel.is_writer():
    return
  with files.atomic_path(path) as temporary:
    write(temporary)


def _write_json(path: str, value: Any) -> None:
  """Process 0 writes ``value`` as JSON to ``path``."""
  if parallel.is_writer():
    files.write_json(path, value)


def _run_sweep(config, workdir, heartbeat):
  """run_sweep under a heartbeat that names each stage."""
  if config.sweep is None:
    raise ValueError("config.sweep: a sweep needs the sweep group (its grid; "
                     "experiments/configs/sweep.py)")
  experiment.refuse_evaluation_settings(config, "a sweep member")
  if parallel.is_writer():
    os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, "config.json"), config.to_dict())
  members = grid_members(config)
  heartbeat.stage("loading the dataset")
  dataset = pipeline.load_dataset(config)
  heartbeat.stage("placing the data on the device")
  exp = experiment.prepare(config, dataset)
  if exp.plan.sampler != "device":
    raise ValueError("a sweep samples on the device; this graph does not "
                     "fit there (config.data.sampler)")
  states, cost = _search_grid(exp, members, heartbeat)
  leaderboard, derived_all = _leaderboard(exp, members, states)
  ensemble = _retrain_top(exp, members, states, derived_all, leaderboard,
                          workdir, heartbeat)
  leaderboard = leaderboard.sort_values("supernet_val_auc", ascending=False,
                                        na_position="last")
  heartbeat.stage("writing the reports")
  _write_reports(leaderboard, exp.supernet, ensemble, workdir)
  _write_json(os.path.join(workdir, "sweep_cost.json"), cost)
  logging.info("sweep done: %d members, %.1fs wall (%.2fs per member)",
               len(members), cost["wall_seconds"], cost["seconds_per_member"])
  return leaderboard


def _search_grid(exp, members, heartbeat):
  """Every member's search, in equal chunks of one compiled program;
  (the stacked states, the search's cost)."""
  config = exp.config
  start = time.perf_counter()
  per_member = _bytes_per_member(exp)
  size = chunk_size(len(members), per_member,
                    experiment.available_device_bytes(),
                    config.sweep.max_chunk)
  chunks = [members[i:i + size] for i in range(0, len(members), size)]
  logging.info("sweep: %d members in %d chunk(s) of %d (about %.1f MiB per "
               "member; cap %d), %d vmapped at a time", len(members),
               len(chunks), size, per_member / 2**20, config.sweep.max_chunk,
               vmap_width_for(config, size))
  seeds = sorted({m.seed for m in members})
  states_parts, compile_seconds, run_seconds, compiled = [], 0.0, 0.0, None
  heartbeat.stage("compiling the sweep's search")
  for number, chunk in enumerate(chunks):
    padded = chunk + [chunk[-1]] * (size - len(chunk))
    states, compiled, compiled_in, ran_in = _search_chunk(
        padded, exp, seeds, compiled, beat=heartbeat.beat)
    states_parts.append(jax.tree.map(lambda x, n=len(chunk): x[:n], states))
    compile_seconds += compiled_in
    run_seconds += ran_in
    logging.info("chunk %d/%d done in %.1fs; %s", number + 1, len(chunks),
                 ran_in, progress.rate_and_time_left(
                     number + 1, len(chunks), run_seconds, "chunks"))
    heartbeat.stage(f"searching chunk {number + 2}/{len(chunks)}"
                    if number + 1 < len(chunks) else
                    "deriving every member")
  states = jax.tree.map(lambda *xs: np.concatenate(xs), *states_parts)
  wall = time.perf_counter() - start
  return states, {
      "members": len(members), "chunks": len(chunks), "chunk_size": size,
      "vmap_width": vmap_width_for(config, size),
      "bytes_per_member_estimate": per_member,
      "compile_seconds": compile_seconds, "search_run_seconds": run_seconds,
      "wall_seconds": wall, "seconds_per_member": wall / len(members),
      "device_kind": jax.devices()[0].device_kind,
      "jax_version": jax.__version__}


def _leaderboard(exp, members, states):
  """A row per member (its supernet's validation AUC, derived network and
  gates) and every member's derived architecture."""
  aucs = _supernet_validation_auc(states, members, exp)
  rows, derived_all = [], []
  for i, member in enumerate(members):
    state = _member_state(states, i)
    report = search_lib.nonfinite_report(state)
    derived = search_lib.derive_architecture(
        state.alphas, exp.supernet, member.settings["gate_threshold"])
    derived_all.append(derived)
    rows.append({
        "member": i, "seed": member.seed, **member.settings,
        "supernet_val_auc": aucs[i],
        "kept_features": ",".join(derived.kept_features),
        "chosen_ops": ",".join(derived.chosen_ops),
        **{f"gate/{k}": v for k, v in derived.feature_gates.items()},
        "diverged": report or "",
    })
  leaderboard = pd.DataFrame(rows)
  leaderboard["retrained_val_auc"] = np.nan
  leaderboard["in_ensemble"] = False
  return leaderboard, derived_all


def _retrain_top(exp, members, states, derived_all, leaderboard, workdir,
                 heartbeat):
  """Retrains the ``top_k`` members of best supernet validation AUC as one
  program and saves the ensemble of the best retrained (the leaderboard
  gains their figures); returns the ensemble's summary, or None."""
  order = leaderboard.sort_values("supernet_val_auc", ascending=False,
                                  na_position="last")
  top = [int(i) for i in order["member"].head(exp.config.sweep.top_k)]
  ensemble, size = None, ensemble_size_of(exp.config)
  if top:
    start = time.perf_counter()
    top_states = jax.tree.map(lambda x: x[np.asarray(top)], states)
    heartbeat.stage(f"retraining the top {len(top)} members (compiling)")
    retrained, train_states = retrain_members(
        exp, [members[i] for i in top], top_states, beat=heartbeat.beat)
    leaderboard.loc[top, "retrained_val_auc"] = retrained
    logging.info("top %d members retrained in one program (%.1fs): "
                 "validation AUC %s", len(top), time.perf_counter() - start,
                 np.round(retrained, 4).tolist())
    if size:
      heartbeat.stage("choosing and saving the ensemble")
      ensemble = _save_ensemble(
          exp, [members[i] for i in top], [derived_all[i] for i in top],
          retrained, train_states, size, workdir)
    if ensemble:
      leaderboard.loc[[m["member"] for m in ensemble["members"]],
                      "in_ensemble"] = True
  stale = os.path.join(workdir, ENSEMBLE_DIR)
  if ensemble is None and parallel.is_writer() and os.path.isdir(stale):
    # An earlier sweep's ensemble would pass for this one's.
    shutil.rmtree(stale)
    logging.info("removed %s: an earlier sweep's; this one saved no "
                 "ensemble", stale)
  return ensemble


def _write_reports(leaderboard, arch, ensemble, workdir):
  """leaderboard, stability (table and plot) and auc_spread.json."""
  _write_text(os.path.join(workdir, "leaderboard.csv"),
              lambda path: leaderboard.to_csv(path, index=False))
  _write_text(os.path.join(workdir, "leaderboard.md"),
              lambda path: _write_markdown(leaderboard, path))
  stability = stability_table(leaderboard, arch)
  _write_text(os.path.join(workdir, "stability.csv"),
              lambda path: stability.to_csv(path, index=False))
  _write_text(os.path.join(workdir, "stability.md"),
              lambda path: _write_markdown(stability, path))
  _write_text(os.path.join(workdir, "stability.png"),
              lambda path: plot_stability(stability, path))
  best = stability.sort_values("val_auc_mean", ascending=False).iloc[0]
  best_group = leaderboard
  for name in SWEPT_FLOATS:
    best_group = best_group[best_group[name] == best[name]]
  aucs = best_group["supernet_val_auc"]
  _write_json(os.path.join(workdir, "auc_spread.json"), {
      "settings": {k: float(best[k]) for k in SWEPT_FLOATS},
      "seeds": int(len(best_group)), "val_auc_mean": float(aucs.mean()),
      "val_auc_std": float(aucs.std(ddof=0)),
      "val_auc_min": float(aucs.min()), "val_auc_max": float(aucs.max()),
      "ensemble": ensemble})
