"""Training a fixed network: its state, step and early stopping.

The retrain loop itself is :func:`credit_nas_jax.experiment.retrain`.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import jraph
import optax
from flax import struct

from credit_nas_jax import model as model_lib
from credit_nas_jax import search as search_lib


class TrainState(struct.PyTreeNode):
  """A fixed network's training: weights, optimizer state, early stopping.

  Attributes:
    step: optimizer steps taken.
    weights: the network weights (evaluated, and kept by early stopping).
    opt_state: their optimizer state.
    nonfinite_step: first step whose loss or gradient was not finite, -1
      while all were.
    best_weights: the weights of the best validation AUC so far.
    best_auc: that AUC (-inf before the first evaluation).
    waited: evaluations since the best one.
    stopped: early stopping has ended the training.
    tx: the optimizer (static).
  """

  step: jax.Array
  weights: chex.ArrayTree
  opt_state: optax.OptState
  nonfinite_step: jax.Array
  best_weights: chex.ArrayTree
  best_auc: jax.Array
  waited: jax.Array
  stopped: jax.Array
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def init_train_state(key: jax.Array, arch: model_lib.Architecture,
                     tx: optax.GradientTransformation,
                     weights: chex.ArrayTree | None = None,
                     **hyperparams: float) -> TrainState:
  """Fresh weights for ``arch`` (trained from scratch), or ``weights``.

  ``hyperparams`` set the values of an injected optimizer
  (``optax.inject_hyperparams``: learning rate, weight decay).
  """
  if weights is None:
    weights, _ = model_lib.init(key, arch)
  opt_state = tx.init(weights)
  if hyperparams:
    opt_state = search_lib.with_hyperparams(opt_state, **hyperparams)
  return TrainState(step=jnp.zeros((), jnp.int32), weights=weights,
                    opt_state=opt_state,
                    nonfinite_step=jnp.full((), -1, jnp.int32),
                    best_weights=jax.tree.map(jnp.copy, weights),
                    best_auc=jnp.full((), -jnp.inf, jnp.float32),
                    waited=jnp.zeros((), jnp.int32),
                    stopped=jnp.zeros((), bool), tx=tx)


def train_step_fn(state: TrainState, batch: jraph.GraphsTuple, *,
                  arch: model_lib.Architecture,
                  gates: dict[str, jax.Array] | None = None
                  ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step of the fixed network on a training batch.

  ``gates`` fixes the gates of a supernet-shaped network (a derived
  network as a masked supernet); None trains ``arch`` as it is.
  """
  loss, grads = jax.value_and_grad(search_lib.batch_loss)(
      state.weights, {}, batch, arch, gates)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.weights)
  finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
  first = (state.nonfinite_step < 0) & ~finite
  return state.replace(
      step=state.step + 1,
      weights=optax.apply_updates(state.weights, updates),
      opt_state=opt_state,
      nonfinite_step=jnp.where(first, state.step + 1, state.nonfinite_step),
  ), {"train_loss": loss}


def early_stopping_update(state: TrainState, auc: jax.Array,
                          patience: int) -> TrainState:
  """Keeps the weights of a new best validation AUC (``auc``: the current
  weights'); stops after ``patience`` evaluations without one."""
  improved = auc > state.best_auc
  waited = jnp.where(improved, 0, state.waited + 1)
  return state.replace(
      best_weights=jax.tree.map(lambda new, old: jnp.where(improved, new, old),
                                state.weights, state.best_weights),
      best_auc=jnp.where(improved, auc, state.best_auc),
      waited=waited, stopped=state.stopped | (waited >= patience))


train_step = jax.jit(train_step_fn,
                     static_argnames=("arch",),
                     donate_argnums=0)


class NonFiniteError(FloatingPointError):
  """A loss or gradient became NaN or infinite."""
