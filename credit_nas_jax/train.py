"""Retraining the derived network, and scoring whole splits."""

from __future__ import annotations

import time
from typing import Callable, Iterable

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax
from absl import logging
from flax import struct

from credit_nas_jax import checkpoint as checkpoint_lib
from credit_nas_jax import data as data_lib
from credit_nas_jax import metrics as metrics_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import search as search_lib


class TrainState(struct.PyTreeNode):
  """Weights of a fixed network, their optimizer state, a non-finite guard."""

  step: jax.Array
  weights: chex.ArrayTree
  opt_state: optax.OptState
  nonfinite_step: jax.Array
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def init_train_state(key: jax.Array, arch: model_lib.Architecture,
                     tx: optax.GradientTransformation) -> TrainState:
  """Fresh weights for ``arch`` (trained from scratch)."""
  weights, _ = model_lib.init(key, arch)
  return TrainState(step=jnp.zeros((), jnp.int32), weights=weights,
                    opt_state=tx.init(weights),
                    nonfinite_step=jnp.full((), -1, jnp.int32), tx=tx)


def train_step_fn(state: TrainState, batch: jraph.GraphsTuple, *,
                  arch: model_lib.Architecture
                  ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step of the fixed network on a training batch."""
  loss, grads = jax.value_and_grad(search_lib.batch_loss)(
      state.weights, {}, batch, arch)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.weights)
  finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
  first = (state.nonfinite_step < 0) & ~finite
  return state.replace(
      step=state.step + 1,
      weights=optax.apply_updates(state.weights, updates),
      opt_state=opt_state,
      nonfinite_step=jnp.where(first, state.step + 1, state.nonfinite_step),
  ), {"train_loss": loss}


train_step = jax.jit(train_step_fn, static_argnames=("arch",),
                     donate_argnums=0)


def predict_scores(weights: chex.ArrayTree, alphas: chex.ArrayTree,
                   batches: Iterable[jraph.GraphsTuple],
                   arch: model_lib.Architecture
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(borrower rows, labels, scores) of every real graph of the batches."""
  rows, labels, scores = [], [], []
  for batch in batches:
    logits = np.asarray(search_lib.predict_step(weights, alphas, batch, arch))
    real = batch.globals["borrower"] >= 0
    rows.append(batch.globals["borrower"][real])
    labels.append(batch.globals["label"][real])
    scores.append(1 / (1 + np.exp(-logits[real].astype(np.float64))))
  return np.concatenate(rows), np.concatenate(labels), np.concatenate(scores)


def evaluate_split(weights, alphas, maker: data_lib.BatchMaker, split: str,
                   arch: model_lib.Architecture) -> dict[str, float]:
  """Metrics of a network on every borrower of ``split``."""
  _, labels, scores = predict_scores(weights, alphas,
                                     maker.evaluation_batches(split), arch)
  return metrics_lib.classification_metrics(labels, scores)


class NonFiniteError(FloatingPointError):
  """A loss or gradient became NaN or infinite."""


def retrain(key: jax.Array, arch: model_lib.Architecture,
            maker: data_lib.BatchMaker, *, steps: int, learning_rate: float,
            weight_decay: float, eval_every: int, patience: int,
            on_eval: Callable[[dict], None] | None = None,
            checkpoints: checkpoint_lib.CheckpointManager | None = None,
            batch_fn: Callable[[str, int], jraph.GraphsTuple] | None = None,
            place: Callable[[chex.ArrayTree], chex.ArrayTree] | None = None
            ) -> tuple[chex.ArrayTree, list[dict]]:
  """Trains ``arch`` from scratch with early stopping on validation AUC.

  With ``checkpoints``, the state is saved at every evaluation and the run
  resumes from the newest retrain checkpoint, exactly. ``batch_fn`` and
  ``place`` make the training batches and place the state (data-parallel
  runs shard the one and replicate the other).

  Returns:
    (best weights by validation AUC, history of evaluations).
  """
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)
  state = init_train_state(key, arch, tx)
  best_weights = jax.tree.map(np.array, state.weights)  # state is donated
  progress = {"best_auc": None, "waited": 0, "history": [], "stopped": False}
  restored = (checkpoints.restore_latest(
      "retrain", {"state": state, "best": best_weights})
              if checkpoints else None)
  if restored:
    step, tree, progress = restored
    state, best_weights = tree["state"], tree["best"]
    logging.info("retrain resumed from its checkpoint at step %d", step)
  batch_fn = batch_fn or maker.training_batch
  state = place(state) if place else state
  start = time.perf_counter()
  step = int(state.step)
  while step < steps and not progress["stopped"]:
    state, metrics = train_step(state, batch_fn("train", step), arch=arch)
    step += 1
    if step % eval_every and step != steps:
      continue
    if int(state.nonfinite_step) >= 0:
      raise NonFiniteError(f"retrain step {int(state.nonfinite_step)}: "
                           "training loss or weight gradient not finite")
    validation = evaluate_split(state.weights, {}, maker, "validation", arch)
    record = {"step": step, "train_loss": float(metrics["train_loss"]),
              "val_auc": validation["auc"],
              "val_log_loss": validation["log_loss"],
              "seconds": time.perf_counter() - start}
    progress["history"].append(record)
    if on_eval:
      on_eval(record)
    logging.info("retrain step %d: train loss %.4f, validation AUC %.4f",
                 step, record["train_loss"], record["val_auc"])
    if progress["best_auc"] is None or validation["auc"] > progress[
        "best_auc"]:
      progress["best_auc"], progress["waited"] = validation["auc"], 0
      best_weights = jax.tree.map(np.array, state.weights)
    else:
      progress["waited"] += 1
      if progress["waited"] >= patience:
        progress["stopped"] = True
        logging.info("early stop at step %d (best validation AUC %.4f)",
                     step, progress["best_auc"])
    if checkpoints:
      checkpoints.save("retrain", step, jax.device_get(
          {"state": state, "best": best_weights}), progress)
  return jax.tree.map(jnp.asarray, best_weights), progress["history"]
