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

from credit_nas_jax import data as data_lib
from credit_nas_jax import metrics as metrics_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import search as search_lib


class TrainState(struct.PyTreeNode):
  """Weights of a fixed network and their optimizer state."""

  step: jax.Array
  weights: chex.ArrayTree
  opt_state: optax.OptState
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def init_train_state(key: jax.Array, arch: model_lib.Architecture,
                     tx: optax.GradientTransformation) -> TrainState:
  """Fresh weights for ``arch`` (trained from scratch)."""
  weights, _ = model_lib.init(key, arch)
  return TrainState(step=jnp.zeros((), jnp.int32), weights=weights,
                    opt_state=tx.init(weights), tx=tx)


def train_step_fn(state: TrainState, batch: jraph.GraphsTuple, *,
                  arch: model_lib.Architecture
                  ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step of the fixed network on a training batch."""
  loss, grads = jax.value_and_grad(search_lib.batch_loss)(
      state.weights, {}, batch, arch)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.weights)
  metrics = {"train_loss": loss,
             "finite": jnp.isfinite(loss) & jnp.isfinite(
                 optax.tree.norm(grads))}
  return state.replace(step=state.step + 1,
                       weights=optax.apply_updates(state.weights, updates),
                       opt_state=opt_state), metrics


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
            on_eval: Callable[[dict], None] | None = None
            ) -> tuple[chex.ArrayTree, list[dict]]:
  """Trains ``arch`` from scratch with early stopping on validation AUC.

  Returns:
    (best weights by validation AUC, history of evaluations).
  """
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)
  state = init_train_state(key, arch, tx)
  best_auc, best_weights, waited, history = -np.inf, None, 0, []
  start = time.perf_counter()
  for step in range(steps):
    state, metrics = train_step(state, maker.training_batch("train", step),
                                arch=arch)
    last = step + 1 == steps
    if (step + 1) % eval_every and not last:
      continue
    if not bool(metrics["finite"]):
      raise NonFiniteError(f"retrain step {step + 1}: training loss or "
                           "gradient is not finite")
    validation = evaluate_split(state.weights, {}, maker, "validation", arch)
    record = {"step": step + 1, "train_loss": float(metrics["train_loss"]),
              "val_auc": validation["auc"],
              "val_log_loss": validation["log_loss"],
              "seconds": time.perf_counter() - start}
    history.append(record)
    if on_eval:
      on_eval(record)
    logging.info("retrain step %d: train loss %.4f, validation AUC %.4f",
                 record["step"], record["train_loss"], record["val_auc"])
    if validation["auc"] > best_auc:
      best_auc, waited = validation["auc"], 0
      best_weights = jax.tree.map(np.array, state.weights)
    else:
      waited += 1
      if waited >= patience:
        logging.info("early stop at step %d (best validation AUC %.4f)",
                     step + 1, best_auc)
        break
  return jax.tree.map(jnp.asarray, best_weights), history
