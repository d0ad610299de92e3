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
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
from absl import logging

from credit_nas_jax import data as data_lib
from credit_nas_jax import metrics as metrics_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import pipeline
from credit_nas_jax import search as search_lib
from credit_nas_jax import train as train_lib

# Config fields that list the values a sweep takes; an empty tuple keeps the
# base config's single value.
SWEPT_FLOATS = search_lib.HYPERPARAMETERS + ("gate_threshold",)


@dataclasses.dataclass(frozen=True)
class Member:
  """One grid member: a seed and a value of every swept float."""

  index: int
  seed: int
  settings: dict[str, float]

  def config(self, base: ml_collections.ConfigDict
             ) -> ml_collections.ConfigDict:
    """The config that runs this member alone through the launcher."""
    config = ml_collections.ConfigDict(base.to_dict())
    config.seed = self.seed
    for name, value in self.settings.items():
      config[name] = value
    return config


def grid_members(config: ml_collections.ConfigDict) -> list[Member]:
  """The grid: seeds x every swept float, in a fixed order."""
  axes = {name: tuple(config[f"sweep_{name}"]) or (float(config[name]),)
          for name in SWEPT_FLOATS}
  seeds = tuple(config.sweep_seeds) or (config.seed,)
  members = []
  for values in itertools.product(*axes.values()):
    for seed in seeds:
      members.append(Member(len(members), int(seed),
                            dict(zip(axes, map(float, values)))))
  return members


def _sweep_step_fn(states, train_batches, val_batches, seed_slot, *, arch,
                   second_order, arch_warmup_steps, vmap_width):
  """The search step over stacked members, each with its seed's batches.

  ``jax.lax.map`` runs the members ``vmap_width`` at a time, vmapped, and the
  groups one after another inside the same program; a narrower width lowers
  the peak activation memory of the step.
  """

  def member(args):
    state, slot = args
    pick = lambda tree: jax.tree.map(lambda x: x[slot], tree)
    return search_lib.search_step_fn(
        state, pick(train_batches), pick(val_batches), arch=arch,
        second_order=second_order, arch_warmup_steps=arch_warmup_steps)

  return jax.lax.map(member, (states, seed_slot), batch_size=vmap_width)


sweep_step = jax.jit(
    _sweep_step_fn,
    static_argnames=("arch", "second_order", "arch_warmup_steps",
                     "vmap_width"),
    donate_argnums=0)


def vmap_width_for(config: ml_collections.ConfigDict, members: int) -> int:
  """Members vmapped at once: the config's width, or 0 for all of them."""
  if config.sweep_vmap_width > 0:
    return min(config.sweep_vmap_width, members)
  return members


@functools.partial(jax.jit, static_argnames=("arch",))
def _sweep_logits(weights, alphas, batch, arch):
  return jax.vmap(lambda w, a: model_lib.apply(w, a, batch, arch))(weights,
                                                                   alphas)


@functools.partial(jax.jit, static_argnames=("arch",))
def _init_stacked(keys, hyperparameters, arch):
  return jax.vmap(lambda k, h: search_lib.init_search_state(k, arch, h))(
      keys, hyperparameters)


def _init_states(members: list[Member], arch: model_lib.Architecture):
  """Stacked search states; member i starts exactly as a lone run would."""
  keys = jnp.stack([jax.random.split(jax.random.key(m.seed))[0]
                    for m in members])
  hyper = {name: jnp.asarray([m.settings[name] for m in members], jnp.float32)
           for name in search_lib.HYPERPARAMETERS}
  return _init_stacked(keys, hyper, arch)


def _stack(trees):
  return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def _available_bytes() -> int:
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def chunk_size(num_members: int, bytes_per_member: int, available: int,
               cap: int, memory_share: float = 0.5) -> int:
  """Members per chunk: what fits in ``memory_share`` of memory, capped."""
  fits = max(1, int(available * memory_share) // max(bytes_per_member, 1))
  return max(1, min(num_members, cap, fits))


def _bytes_per_member(arch, maker, config) -> int:
  """Memory of one member's step, from XLA's analysis of the compiled step."""
  state = _init_states([Member(0, config.seed, {n: float(config[n]) for n in
                                                SWEPT_FLOATS})], arch)
  batch = _stack([maker.training_batch("train", 0)])
  compiled = sweep_step.lower(
      state, batch, batch, jnp.zeros(1, jnp.int32), arch=arch,
      second_order=config.second_order,
      arch_warmup_steps=config.arch_warmup_steps, vmap_width=1).compile()
  analysis = compiled.memory_analysis()
  if analysis is None:
    return sum(x.nbytes for x in jax.tree.leaves(state)) * 8
  return int(analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
             + analysis.output_size_in_bytes)


def _run_chunk(members, arch, config, makers, seeds, compiled=None):
  """Searches one chunk of members; returns their final states (numpy).

  ``seeds`` lists the distinct seeds of the whole grid, so every chunk has
  the same shapes and reuses the program compiled for the first one.
  """
  states = _init_states(members, arch)
  slot = jnp.asarray([seeds.index(m.seed) for m in members], jnp.int32)

  def batches(step):
    return (_stack([makers[s].training_batch("train", step) for s in seeds]),
            _stack([makers[s].training_batch("validation", step)
                    for s in seeds]))

  train_batches, val_batches = batches(0)
  compile_seconds = 0.0
  if compiled is None:
    compile_start = time.perf_counter()
    compiled = sweep_step.lower(
        states, train_batches, val_batches, slot, arch=arch,
        second_order=config.second_order,
        arch_warmup_steps=config.arch_warmup_steps,
        vmap_width=vmap_width_for(config, len(members))).compile()
    compile_seconds = time.perf_counter() - compile_start
  start = time.perf_counter()
  for step in range(config.search_steps):
    states, metrics = compiled(states, train_batches, val_batches, slot)
    if step + 1 < config.search_steps:
      train_batches, val_batches = batches(step + 1)
    if (step + 1) % config.log_every == 0 or step + 1 == config.search_steps:
      loss = np.asarray(metrics["val_loss"])
      logging.info("sweep step %d/%d: validation loss median %.4f "
                   "(min %.4f, max %.4f) over %d members", step + 1,
                   config.search_steps, np.nanmedian(loss), np.nanmin(loss),
                   np.nanmax(loss), len(members))
  states = jax.block_until_ready(states)
  return (jax.tree.map(np.asarray, states), compiled, compile_seconds,
          time.perf_counter() - start)


def _member_state(states, i):
  return jax.tree.map(lambda x: x[i], states)


def _supernet_validation_auc(states, members, arch, makers):
  """Validation AUC of every member's supernet, seed groups vmapped."""
  aucs = np.full(len(members), np.nan)
  for seed in sorted({m.seed for m in members}):
    idx = [i for i, m in enumerate(members) if m.seed == seed]
    weights = jax.tree.map(lambda x: x[np.array(idx)], states.weights)
    alphas = jax.tree.map(lambda x: x[np.array(idx)], states.alphas)
    logits, labels = [], []
    for batch in makers[seed].evaluation_batches("validation"):
      real = batch.globals["borrower"] >= 0
      logits.append(np.asarray(_sweep_logits(weights, alphas, batch,
                                             arch))[:, real])
      labels.append(batch.globals["label"][real])
    logits, labels = np.concatenate(logits, 1), np.concatenate(labels)
    for row, i in enumerate(idx):
      if np.isfinite(logits[row]).all():
        aucs[i] = metrics_lib.classification_metrics(
            labels, 1 / (1 + np.exp(-logits[row].astype(np.float64))))["auc"]
  return aucs


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


def run_sweep(config: ml_collections.ConfigDict,
              workdir: str) -> pd.DataFrame:
  """Runs the grid, derives every member, retrains the best; writes reports.

  Returns:
    The leaderboard, one row per member.
  """
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=2)
  members = grid_members(config)
  dataset = pipeline.load_dataset(config)
  arch = pipeline.supernet_for(config, dataset)
  makers = {seed: data_lib.BatchMaker(dataset, config.batch_size,
                                      tuple(config.fanouts), seed)
            for seed in {m.seed for m in members}}
  start = time.perf_counter()
  per_member = _bytes_per_member(arch, makers[members[0].seed], config)
  size = chunk_size(len(members), per_member, _available_bytes(),
                    config.sweep_max_chunk)
  chunks = [members[i:i + size] for i in range(0, len(members), size)]
  logging.info("sweep: %d members in %d chunk(s) of %d (about %.1f MiB per "
               "member; cap %d), %d vmapped at a time", len(members),
               len(chunks), size, per_member / 2**20, config.sweep_max_chunk,
               vmap_width_for(config, size))
  seeds = sorted(makers)
  states_parts, compile_seconds, run_seconds, compiled = [], 0.0, 0.0, None
  for number, chunk in enumerate(chunks):
    padded = chunk + [chunk[-1]] * (size - len(chunk))
    states, compiled, compiled_in, ran_in = _run_chunk(
        padded, arch, config, makers, seeds, compiled)
    states_parts.append(jax.tree.map(lambda x, n=len(chunk): x[:n], states))
    compile_seconds += compiled_in
    run_seconds += ran_in
    logging.info("chunk %d/%d done in %.1fs", number + 1, len(chunks), ran_in)
  states = jax.tree.map(lambda *xs: np.concatenate(xs), *states_parts)
  search_wall = time.perf_counter() - start

  aucs = _supernet_validation_auc(states, members, arch, makers)
  rows = []
  for i, member in enumerate(members):
    state = _member_state(states, i)
    report = search_lib.nonfinite_report(state)
    derived = search_lib.derive_architecture(
        state.alphas, arch, member.settings["gate_threshold"])
    rows.append({
        "member": i, "seed": member.seed, **member.settings,
        "supernet_val_auc": aucs[i],
        "kept_features": ",".join(derived.kept_features),
        "chosen_ops": ",".join(derived.chosen_ops),
        **{f"gate/{k}": v for k, v in derived.feature_gates.items()},
        "diverged": report or "",
    })
  leaderboard = pd.DataFrame(rows)

  order = leaderboard.sort_values("supernet_val_auc", ascending=False,
                                  na_position="last")
  leaderboard["retrained_val_auc"] = np.nan
  for i in order["member"].head(config.sweep_top_k):
    member, state = members[i], _member_state(states, i)
    derived = search_lib.derive_architecture(
        state.alphas, arch, member.settings["gate_threshold"])
    retrain_key = jax.random.split(jax.random.key(member.seed))[1]
    weights, _ = train_lib.retrain(
        retrain_key, derived.arch, makers[member.seed],
        steps=config.retrain_steps, learning_rate=config.retrain_lr,
        weight_decay=config.retrain_weight_decay,
        eval_every=config.eval_every, patience=config.patience)
    leaderboard.loc[i, "retrained_val_auc"] = train_lib.evaluate_split(
        weights, {}, makers[member.seed], "validation", derived.arch)["auc"]
    logging.info("member %d retrained: validation AUC %.4f", i,
                 leaderboard.loc[i, "retrained_val_auc"])

  leaderboard = leaderboard.sort_values("supernet_val_auc", ascending=False,
                                        na_position="last")
  leaderboard.to_csv(os.path.join(workdir, "leaderboard.csv"), index=False)
  _write_markdown(leaderboard, os.path.join(workdir, "leaderboard.md"))
  stability = stability_table(leaderboard, arch)
  stability.to_csv(os.path.join(workdir, "stability.csv"), index=False)
  _write_markdown(stability, os.path.join(workdir, "stability.md"))
  plot_stability(stability, os.path.join(workdir, "stability.png"))
  best = stability.sort_values("val_auc_mean", ascending=False).iloc[0]
  best_group = leaderboard
  for name in SWEPT_FLOATS:
    best_group = best_group[best_group[name] == best[name]]
  spread = {
      "settings": {k: float(best[k]) for k in SWEPT_FLOATS},
      "seeds": int(len(best_group)),
      "val_auc_mean": float(best_group["supernet_val_auc"].mean()),
      "val_auc_std": float(best_group["supernet_val_auc"].std(ddof=0)),
      "val_auc_min": float(best_group["supernet_val_auc"].min()),
      "val_auc_max": float(best_group["supernet_val_auc"].max()),
  }
  with open(os.path.join(workdir, "auc_spread.json"), "w") as f:
    json.dump(spread, f, indent=2)
  cost: dict[str, Any] = {
      "members": len(members),
      "chunks": len(chunks),
      "chunk_size": size,
      "vmap_width": vmap_width_for(config, size),
      "bytes_per_member_estimate": per_member,
      "compile_seconds": compile_seconds,
      "search_run_seconds": run_seconds,
      "wall_seconds": search_wall,
      "seconds_per_member": search_wall / len(members),
      "device_kind": jax.devices()[0].device_kind,
      "jax_version": jax.__version__,
  }
  with open(os.path.join(workdir, "sweep_cost.json"), "w") as f:
    json.dump(cost, f, indent=2)
  logging.info("sweep done: %d members, %.1fs wall (%.2fs per member)",
               len(members), search_wall, cost["seconds_per_member"])
  return leaderboard
