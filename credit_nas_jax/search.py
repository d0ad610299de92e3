"""Bilevel architecture search: the search state, the step, and derive.

The network weights step on training batches; the architecture weights
(alphas) step on validation batches. Each has its own optax optimizer and
state (two states: ``optax.multi_transform`` would advance the idle group's
state on every call). The float hyperparameters that sweeps vary live in the
state as arrays (``optax.inject_hyperparams``), so the whole search can be
vmapped over a grid.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax
from flax import struct

from credit_nas_jax import model as model_lib
from credit_nas_jax import ops

NONFINITE_QUANTITIES = ("training loss", "validation loss",
                        "weight gradient", "alpha gradient")
HYPERPARAMETERS = ("weight_lr", "weight_decay", "arch_lr", "arch_weight_decay",
                   "zero_one_weight")


class SearchState(struct.PyTreeNode):
  """Everything the search carries from step to step.

  Attributes:
    step: number of search steps taken.
    weights: network weights.
    alphas: architecture weights.
    weight_opt_state: optimizer state of the weights (holds their learning
      rate and weight decay as arrays).
    arch_opt_state: optimizer state of the alphas (likewise).
    zero_one_weight: weight of the zero-one regulariser on the gates.
    nonfinite_step: the first step whose loss or gradient was not finite,
      -1 while all were; kept on the device so no step waits for the host.
    nonfinite_flags: which quantities were not finite at that step (bits of
      ``NONFINITE_QUANTITIES``).
    weight_tx: optimizer of the weights (static).
    arch_tx: optimizer of the alphas (static).
  """

  step: jax.Array
  weights: chex.ArrayTree
  alphas: chex.ArrayTree
  weight_opt_state: optax.OptState
  arch_opt_state: optax.OptState
  zero_one_weight: jax.Array
  nonfinite_step: jax.Array
  nonfinite_flags: jax.Array
  weight_tx: optax.GradientTransformation = struct.field(pytree_node=False)
  arch_tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @property
  def hyperparameters(self) -> dict[str, jax.Array]:
    """The float hyperparameters of this state, as arrays."""
    weight = self.weight_opt_state.hyperparams
    arch = self.arch_opt_state.hyperparams
    return {"weight_lr": weight["learning_rate"],
            "weight_decay": weight["weight_decay"],
            "arch_lr": arch["learning_rate"],
            "arch_weight_decay": arch["weight_decay"],
            "zero_one_weight": self.zero_one_weight}


WEIGHT_EPS_ROOT = 1e-16


@functools.cache
def optimizers() -> tuple[optax.GradientTransformation,
                          optax.GradientTransformation]:
  """(weight optimizer, alpha optimizer), both AdamW.

  Built once, so that states made at different times share the same static
  fields and a jitted step compiles once (the retrain uses the weight
  optimizer too). Learning rates and weight decays are injected per state
  (:func:`with_hyperparams`); until then they are NaN, so a state left
  without them fails at its first step.
  """
  # eps_root keeps the second-order gradient through a weight step finite
  # where a weight's gradient, and so its second moment, is exactly zero
  # (d sqrt(v) / dv is infinite at 0); 1e-16 moves no update measurably.
  weight_tx = optax.inject_hyperparams(optax.adamw)(
      learning_rate=float("nan"), weight_decay=float("nan"),
      eps_root=WEIGHT_EPS_ROOT)
  arch_tx = optax.inject_hyperparams(optax.adamw)(
      learning_rate=float("nan"), weight_decay=float("nan"))
  return weight_tx, arch_tx


def with_hyperparams(opt_state: optax.OptState,
                     **values: float | jax.Array) -> optax.OptState:
  """An injected optimizer's state with ``values`` set.

  The optimizer is an ``optax.inject_hyperparams`` one: its
  hyperparameters are state, not static, so one compiled step serves every
  setting.

  Raises:
    ValueError: a name the optimizer does not inject.
  """
  hyperparams = dict(opt_state.hyperparams)
  unknown = sorted(set(values) - set(hyperparams))
  if unknown:
    raise ValueError(f"the optimizer injects {sorted(hyperparams)}, not "
                     f"{unknown}")
  for name, value in values.items():
    hyperparams[name] = jnp.asarray(value, dtype=jnp.float32)
  return opt_state._replace(hyperparams=hyperparams)


def init_search_state(key: jax.Array, arch: model_lib.Architecture,
                      hyperparameters: Mapping[str, Any]) -> SearchState:
  """A fresh search state; vmappable over ``key`` and ``hyperparameters``.

  Args:
    key: the initialisation key.
    arch: the supernet architecture.
    hyperparameters: every name in ``HYPERPARAMETERS``, floats or arrays.
  """
  missing = sorted(set(HYPERPARAMETERS) - set(hyperparameters))
  if missing:
    raise ValueError(f"missing hyperparameters {missing}")
  weight_tx, arch_tx = optimizers()
  weights, alphas = model_lib.init(key, arch)
  weight_opt_state = with_hyperparams(
      weight_tx.init(weights), learning_rate=hyperparameters["weight_lr"],
      weight_decay=hyperparameters["weight_decay"])
  arch_opt_state = with_hyperparams(
      arch_tx.init(alphas), learning_rate=hyperparameters["arch_lr"],
      weight_decay=hyperparameters["arch_weight_decay"])
  return SearchState(
      step=jnp.zeros((), jnp.int32), weights=weights, alphas=alphas,
      weight_opt_state=weight_opt_state, arch_opt_state=arch_opt_state,
      zero_one_weight=jnp.asarray(hyperparameters["zero_one_weight"],
                                  jnp.float32),
      nonfinite_step=jnp.full((), -1, jnp.int32),
      nonfinite_flags=jnp.zeros((), jnp.int32),
      weight_tx=weight_tx, arch_tx=arch_tx)


def batch_loss(weights: chex.ArrayTree, alphas: chex.ArrayTree,
               graphs: jraph.GraphsTuple, arch: model_lib.Architecture,
               gates: dict[str, jax.Array] | None = None) -> jax.Array:
  """Mean cross-entropy over the real graphs of a padded batch.

  ``graphs`` may carry a leading shard axis (``nodes`` [shards, N, C]): the
  loss is then the mean over the real graphs of all shards, the same as over
  one batch holding them all. Sharded over a mesh's data axis, each device
  runs its shards and the compiler adds up the gradients.
  """
  if graphs.nodes.ndim == 3:
    sums, counts = jax.vmap(
        lambda g: model_lib.masked_bce_sum(
            model_lib.apply(weights, alphas, g, arch, gates), g))(graphs)
    return jnp.sum(sums) / jnp.maximum(jnp.sum(counts), 1.0)
  return model_lib.masked_bce(
      model_lib.apply(weights, alphas, graphs, arch, gates), graphs)


def zero_one_penalty(alphas: chex.ArrayTree,
                     arch: model_lib.Architecture) -> jax.Array:
  """-mean((gate - 0.5)^2): pushes every gate towards 0 or 1."""
  gates = jax.tree.leaves(model_lib.gate_values(alphas, arch.gate_function))
  flat = jnp.concatenate([g.reshape(-1) for g in gates])
  return -jnp.mean(jnp.square(flat - 0.5))


def _arch_objective(alphas, weights, graphs, arch, zero_one_weight):
  loss = batch_loss(weights, alphas, graphs, arch)
  return loss + zero_one_weight * zero_one_penalty(alphas, arch), loss


def unrolled_weights(state: SearchState, alphas: chex.ArrayTree,
                     train_batch: jraph.GraphsTuple,
                     arch: model_lib.Architecture, steps: int = 1
                     ) -> chex.ArrayTree:
  """The weights after ``steps`` of the weight optimizer's own updates
  (AdamW with the state's moments, learning rate and decoupled decay:
  ``weight_tx.update`` then ``optax.apply_updates``) on ``train_batch``, as
  a function of ``alphas``: the inner problem a second-order hypergradient
  differentiates through. The steps reuse the one training batch."""
  def one(carry, _):
    weights, opt_state = carry
    grads = jax.grad(batch_loss)(weights, alphas, train_batch, arch)
    updates, opt_state = state.weight_tx.update(grads, opt_state, weights)
    return (optax.apply_updates(weights, updates), opt_state), None

  (weights, _), _ = jax.lax.scan(
      one, (state.weights, state.weight_opt_state), None, length=steps)
  return weights


def alpha_gradient(state: SearchState, train_batch: jraph.GraphsTuple,
                   val_batch: jraph.GraphsTuple, arch: model_lib.Architecture,
                   second_order: bool, unroll_steps: int = 1
                   ) -> tuple[jax.Array, chex.ArrayTree]:
  """(validation loss, d objective / d alphas).

  First order: the gradient at the current weights. Second order: the exact
  gradient through ``unroll_steps`` real weight-optimizer steps
  (:func:`unrolled_weights`: AdamW with its state, the step the weights
  then take), by reverse-mode autodiff; its memory grows with the steps
  (each keeps its weights, moments and activations).
  """
  if not second_order:
    (_, val_loss), grads = jax.value_and_grad(_arch_objective, has_aux=True)(
        state.alphas, state.weights, val_batch, arch, state.zero_one_weight)
    return val_loss, grads

  def unrolled(alphas):
    stepped = unrolled_weights(state, alphas, train_batch, arch,
                               unroll_steps)
    return _arch_objective(alphas, stepped, val_batch, arch,
                           state.zero_one_weight)

  (_, val_loss), grads = jax.value_and_grad(unrolled, has_aux=True)(
      state.alphas)
  return val_loss, grads


def arch_update(state: SearchState, train_batch: jraph.GraphsTuple,
                val_batch: jraph.GraphsTuple, arch: model_lib.Architecture,
                second_order: bool = False, unroll_steps: int = 1
                ) -> tuple[SearchState, dict[str, jax.Array]]:
  """One optimizer step of the alphas on a validation batch."""
  val_loss, alpha_grads = alpha_gradient(state, train_batch, val_batch, arch,
                                         second_order, unroll_steps)
  updates, arch_opt_state = state.arch_tx.update(
      alpha_grads, state.arch_opt_state, state.alphas)
  alphas = optax.apply_updates(state.alphas, updates)
  metrics = {"val_loss": val_loss,
             "alpha_grad_norm": optax.tree.norm(alpha_grads)}
  return state.replace(alphas=alphas, arch_opt_state=arch_opt_state), metrics


def weight_update(state: SearchState, train_batch: jraph.GraphsTuple,
                  arch: model_lib.Architecture
                  ) -> tuple[SearchState, dict[str, jax.Array]]:
  """One optimizer step of the network weights on a training batch."""
  train_loss, weight_grads = jax.value_and_grad(batch_loss)(
      state.weights, state.alphas, train_batch, arch)
  updates, weight_opt_state = state.weight_tx.update(
      weight_grads, state.weight_opt_state, state.weights)
  weights = optax.apply_updates(state.weights, updates)
  metrics = {"train_loss": train_loss,
             "weight_grad_norm": optax.tree.norm(weight_grads)}
  return state.replace(weights=weights,
                       weight_opt_state=weight_opt_state), metrics


def search_step_fn(state: SearchState, train_batch: jraph.GraphsTuple,
                   val_batch: jraph.GraphsTuple, *,
                   arch: model_lib.Architecture,
                   second_order: bool = False,
                   arch_warmup_steps: int = 0,
                   alphas_move: bool | None = None,
                   unroll_steps: int = 1,
                   ) -> tuple[SearchState, dict[str, jax.Array]]:
  """One bilevel step: alphas on validation, then weights on training.

  During the first ``arch_warmup_steps`` steps the alphas stay where they
  are: their gradient means little before the weights have learnt anything.
  ``alphas_move`` (static) fixes that choice for a caller that has made it
  already: a sweep decides it once for all its members, outside their
  ``vmap``, where a batched predicate would turn the ``cond`` into a select
  that computes both branches. None decides it here, from ``state.step``.
  """
  def warm_up(state):
    # The alphas stay; the validation loss is still reported.
    val_loss = batch_loss(state.weights, state.alphas, val_batch, arch)
    return state, {"val_loss": val_loss,
                   "alpha_grad_norm": jnp.zeros_like(val_loss)}

  def move(state):
    return arch_update(state, train_batch, val_batch, arch, second_order,
                       unroll_steps)

  if alphas_move is None:
    state, arch_metrics = jax.lax.cond(state.step >= arch_warmup_steps, move,
                                       warm_up, state)
  else:
    state, arch_metrics = (move if alphas_move else warm_up)(state)
  state, weight_metrics = weight_update(state, train_batch, arch)
  metrics = {**arch_metrics, **weight_metrics}
  flags = sum(
      jnp.where(jnp.isfinite(metrics[name]), 0, 1 << bit)
      for bit, name in enumerate(("train_loss", "val_loss",
                                  "weight_grad_norm", "alpha_grad_norm")))
  first = (state.nonfinite_step < 0) & (flags > 0)
  return state.replace(
      step=state.step + 1,
      nonfinite_step=jnp.where(first, state.step + 1, state.nonfinite_step),
      nonfinite_flags=jnp.where(first, flags, state.nonfinite_flags),
  ), metrics


def nonfinite_report(state: SearchState) -> str | None:
  """A message naming the first non-finite step and quantities, or None."""
  step = int(state.nonfinite_step)
  if step < 0:
    return None
  flags = int(state.nonfinite_flags)
  names = [n for bit, n in enumerate(NONFINITE_QUANTITIES) if flags >> bit & 1]
  return f"search step {step}: {', '.join(names)} not finite"


search_step = jax.jit(
    search_step_fn,
    static_argnames=("arch", "second_order", "arch_warmup_steps",
                     "unroll_steps"),
    donate_argnums=0)


def predict_logits(weights: chex.ArrayTree, alphas: chex.ArrayTree,
                   graphs: jraph.GraphsTuple,
                   arch: model_lib.Architecture,
                   gates: dict[str, jax.Array] | None = None) -> jax.Array:
  """Logits of every graph of a padded batch (padding graphs included);
  ``gates`` fix the gates (see :func:`model.apply`)."""
  return model_lib.apply(weights, alphas, graphs, arch, gates)


predict_step = jax.jit(predict_logits, static_argnames=("arch",))


@dataclasses.dataclass(frozen=True)
class DerivedArchitecture:
  """The result of derive: the network to retrain and every gate value."""

  arch: model_lib.Architecture
  feature_gates: dict[str, float]
  kept_features: tuple[str, ...]
  op_gates: tuple[dict[str, float], ...]
  chosen_ops: tuple[str, ...]
  threshold: float
  readout_gate: float | None = None

  def to_json(self) -> dict:
    return {
        "threshold": self.threshold,
        "features": [{"name": name, "gate": gate,
                      "kept": name in self.kept_features}
                     for name, gate in self.feature_gates.items()],
        "layers": [{"ops": gates, "chosen": chosen}
                   for gates, chosen in zip(self.op_gates, self.chosen_ops)],
        "kept_features": list(self.kept_features),
        "chosen_ops": list(self.chosen_ops),
        "readout_gate": self.readout_gate,
        "pooled_readout": self.arch.pooled_readout,
        "network": dataclasses.asdict(self.arch),
    }


def feature_threshold(threshold: float, gate_function: str,
                      num_features: int) -> float:
  """The gate a feature needs to be kept.

  Sigmoid gates are compared with ``threshold`` itself. Softmax gates share
  one unit among the G features (each starts at 1/G), so the threshold is
  read relative to that share: 2 * threshold / G (1/G at 0.5, the uniform
  share).
  """
  if gate_function == "softmax":
    return 2 * threshold / num_features
  return threshold


def _cut_network(supernet: model_lib.Architecture, kept: np.ndarray,
                 chosen: Sequence[int],
                 pooled: bool) -> model_lib.Architecture:
  """The fixed network of the supernet's ``kept`` feature groups, op
  ``chosen[l]`` of layer l, and the readout ``pooled`` or not."""
  inputs = model_lib.with_groups(supernet, kept)
  pick = lambda layers: tuple((options[j],) for options, j in zip(layers,
                                                                  chosen))
  return model_lib.Architecture(
      column_groups=inputs.column_groups,
      input_columns=inputs.input_columns,
      column_embeddings=inputs.column_embeddings,
      column_settings=inputs.column_settings,
      group_names=inputs.group_names,
      layer_ops=pick(supernet.layer_ops),
      layer_op_names=pick(supernet.layer_op_names),
      hidden_dim=supernet.hidden_dim,
      gate_function=supernet.gate_function,
      searchable=False,
      layer_op_kinds=pick(supernet.layer_op_kinds),
      pooled_readout=pooled)


def derive_architecture(alphas: chex.ArrayTree,
                        supernet: model_lib.Architecture,
                        threshold: float, *,
                        num_features: int | None = None,
                        pooled_readout: bool | None = None,
                        ops: Sequence[int] | None = None,
                        features: Sequence[int] | None = None
                        ) -> DerivedArchitecture:
  """Keeps features whose gate >= threshold (at least the best one), the
  strongest op of every layer, and the pooled readout where it is searched
  and its gate >= threshold.

  ``num_features`` keeps that many features of the highest gates instead,
  ``features`` (group indices) exactly those, ``pooled_readout`` decides
  the readout and ``ops`` (an op index per layer) the ops instead (see
  :func:`derive_by_validation`). Softmax feature gates are thresholded
  relative to their uniform share (:func:`feature_threshold`).
  """
  gates = jax.tree.map(np.asarray,
                       model_lib.gate_values(alphas, supernet.gate_function))
  feature_gates = gates["features"]
  if features is not None:
    kept = np.sort(np.asarray(features, dtype=int))
  elif num_features is not None:
    kept = np.sort(np.argsort(-feature_gates, kind="stable")[:num_features])
  else:
    kept = np.flatnonzero(feature_gates >= feature_threshold(
        threshold, supernet.gate_function, feature_gates.size))
  if kept.size == 0:
    kept = np.array([int(np.argmax(feature_gates))])
  chosen = ([int(np.argmax(layer_gates)) for layer_gates in gates["ops"]]
            if ops is None else [int(j) for j in ops])
  readout_gate = None
  pooled = supernet.pooled_readout
  if supernet.readout_searchable:
    readout_gate = float(gates["readout"][0])
    pooled = (readout_gate >= threshold if pooled_readout is None
              else pooled_readout)
  return DerivedArchitecture(
      arch=_cut_network(supernet, kept, chosen, pooled),
      feature_gates={n: float(g) for n, g in zip(supernet.group_names,
                                                  feature_gates)},
      kept_features=tuple(supernet.group_names[g] for g in kept),
      op_gates=tuple({n: float(g) for n, g in zip(names, layer_gates)}
                     for names, layer_gates in zip(supernet.layer_op_names,
                                                   gates["ops"])),
      chosen_ops=tuple(names[j] for names, j in zip(supernet.layer_op_names,
                                                    chosen)),
      readout_gate=readout_gate,
      threshold=float(threshold))


_CLOSED = -1e4  # an alpha whose sigmoid (or softmax share) is 0


def _op_trials(alphas, validation_auc):
  """Every combination of one op per layer (all features open), scored."""
  trials = []
  num_layers, num_ops = np.asarray(alphas["ops"]).shape
  for combination in itertools.product(range(num_ops), repeat=num_layers):
    closed_ops = np.full((num_layers, num_ops), _CLOSED, np.float32)
    closed_ops[np.arange(num_layers), combination] = np.asarray(
        alphas["ops"])[np.arange(num_layers), combination]
    trials.append({"ops": combination, "alphas": jnp.asarray(closed_ops),
                   "validation_auc": float(validation_auc(
                       dict(alphas, ops=jnp.asarray(closed_ops))))})
  return trials


@dataclasses.dataclass(frozen=True)
class _Evidence:
  """How derive candidates are told apart: their validation AUC, and with
  ``confidence`` z > 0 the standard error of two candidates' difference."""

  validation_auc: Callable[[chex.ArrayTree], float]
  difference_se: Callable[[chex.ArrayTree, chex.ArrayTree], float] | None
  confidence: float


def _feature_count(alphas, supernet, threshold, fractions, evidence):
  """The top-k features by gate (and the readout, where searched) chosen on
  validation: (the best trial, the gate order, every trial)."""
  validation_auc = evidence.validation_auc
  confidence, difference_se = evidence.confidence, evidence.difference_se
  feature_gates = np.asarray(model_lib.gate_values(
      alphas, supernet.gate_function)["features"])
  count = feature_gates.size
  candidates = {max(1, int(np.ceil(f * count))) for f in fractions}
  candidates.add(max(1, int((feature_gates >= feature_threshold(
      threshold, supernet.gate_function, count)).sum())))
  order = np.argsort(-feature_gates, kind="stable")
  readouts = (True, False) if supernet.readout_searchable else (None,)
  trials, candidate_alphas = [], []
  for k in sorted(candidates):
    closed = np.asarray(alphas["features"]).copy()
    closed[order[k:]] = _CLOSED
    for pooled in readouts:
      trial = dict(alphas, features=jnp.asarray(closed))
      if pooled is False:
        trial["readout"] = jnp.full_like(alphas["readout"], _CLOSED)
      trials.append({"num_features": k, "pooled_readout": pooled,
                     "validation_auc": float(validation_auc(trial))})
      candidate_alphas.append(trial)
  top = max(range(len(trials)),
            key=lambda i: (trials[i]["validation_auc"],
                           -trials[i]["num_features"]))
  best = trials[top]
  if confidence > 0:
    # The most features whose AUC is not surely below the best's.
    level = [i for i, t in enumerate(trials)
             if t["validation_auc"] >= best["validation_auc"]
             - confidence * float(difference_se(candidate_alphas[top],
                                                candidate_alphas[i]))]
    best = max((trials[i] for i in level),
               key=lambda t: (t["num_features"], t["validation_auc"]))
  return best, order, trials


def _weak_features(best_alphas, best_auc, kept, supernet, min_feature_gain,
                   evidence):
  """(The gate groups of the kept features whose closing, all of a
  feature's embeddings at once, costs under ``min_feature_gain``: with a
  confidence, its gain plus z standard errors; each closing's trial)."""
  validation_auc = evidence.validation_auc
  confidence, difference_se = evidence.confidence, evidence.difference_se
  trials = []
  features = {}  # feature -> its kept gate groups (one per embedding kind)
  for group in kept:
    features.setdefault(model_lib.feature_of(supernet.group_names[group]),
                        []).append(group)
  if not (min_feature_gain > 0 and len(features) > 1):
    return [], trials
  base = np.asarray(best_alphas["features"])
  gains, bounds = {}, {}
  for name, groups in features.items():
    # A feature's embeddings stand in for one another: closed one at a
    # time, each would look dispensable; the feature is closed whole.
    closed = base.copy()
    closed[groups] = _CLOSED
    auc = float(validation_auc(dict(best_alphas,
                                    features=jnp.asarray(closed))))
    gains[name] = best_auc - auc
    trial = {"closed_feature": name, "validation_auc": auc,
             "gain": gains[name]}
    # The gain's upper bound: the feature goes if even that is small.
    bounds[name] = gains[name]
    if confidence > 0:
      trial["gain_se"] = float(difference_se(
          best_alphas, dict(best_alphas, features=jnp.asarray(closed))))
      bounds[name] += confidence * trial["gain_se"]
    trials.append(trial)
  weak = [n for n in features if bounds[n] < min_feature_gain]
  if len(weak) == len(features):  # keep the feature that matters most
    weak.remove(max(weak, key=gains.get))
  return [g for n in weak for g in features[n]], trials


def derive_by_validation(alphas: chex.ArrayTree,
                         supernet: model_lib.Architecture, threshold: float,
                         validation_auc: Callable[[chex.ArrayTree], float],
                         fractions: Sequence[float] = (0.2, 0.4, 0.6, 0.8,
                                                       1.0),
                         min_feature_gain: float = 0.0,
                         difference_se: Callable[[chex.ArrayTree,
                                                  chex.ArrayTree], float]
                         | None = None,
                         confidence: float = 0.0
                         ) -> tuple[DerivedArchitecture, list[dict]]:
  """Derives with the ops, the number of features and the pooled readout
  chosen on validation.

  Gates are ranked, not thresholded: the validation loss can pull every
  gate down at once (a regulariser on an overfitting supernet), and then a
  fixed threshold keeps too few features and the op gates are too close to
  tell apart. Each candidate is scored by ``validation_auc`` of the
  supernet with the other gates closed (one shot, no retraining): first
  every combination of one op per layer (all features open), then, with the
  best ops, the top k features by gate (k from ``fractions`` of all and
  from the threshold), with and without the pooled readout where it is
  searched. Last, every kept feature is closed alone (all its embeddings'
  gates at once): one whose closing costs less than ``min_feature_gain``
  validation AUC is dropped (a gate
  ranks a feature by how the supernet leans on it, which can keep a column
  that carries no signal; the validation AUC tells them apart). The best
  is derived.

  With ``confidence`` z > 0 and ``difference_se`` (the standard error of
  the validation AUC difference of two candidates, on the same borrowers),
  closing features needs evidence: the number kept is the largest whose AUC
  is within z standard errors of the best (with its better readout, where
  that is searched), and a feature is dropped only if its gain plus z
  standard errors is below ``min_feature_gain``. On a small
  validation split most one-shot differences are noise, and choosing on
  them picks the candidate that fits the split's noise best; on a large one
  the errors are small and the rule is the plain best.

  Returns:
    (the derived architecture, every candidate with its validation AUC).
  """
  if not confidence >= 0:
    raise ValueError(f"confidence must be >= 0, got {confidence}")
  if confidence > 0 and difference_se is None:
    raise ValueError("a confidence needs difference_se, the standard error "
                     "of two candidates' AUC difference")
  alphas = dict(alphas)
  op_trials = _op_trials(alphas, validation_auc)
  best_ops = max(op_trials, key=lambda t: t["validation_auc"])
  alphas["ops"] = best_ops["alphas"]
  evidence = _Evidence(validation_auc, difference_se, confidence)
  best, order, trials = _feature_count(alphas, supernet, threshold,
                                       fractions, evidence)
  kept = list(np.sort(order[:best["num_features"]]))
  base = np.asarray(alphas["features"]).copy()
  base[order[best["num_features"]:]] = _CLOSED
  best_alphas = dict(alphas, features=jnp.asarray(base))
  if best["pooled_readout"] is False:
    best_alphas["readout"] = jnp.full_like(alphas["readout"], _CLOSED)
  dropped, closings = _weak_features(best_alphas, best["validation_auc"],
                                     kept, supernet, min_feature_gain,
                                     evidence)
  trials += closings
  derived = derive_architecture(alphas, supernet, threshold,
                                pooled_readout=best["pooled_readout"],
                                ops=best_ops["ops"],
                                features=[g for g in kept
                                          if g not in dropped])
  names = [[n[j] for n, j in zip(supernet.layer_op_names, t["ops"])]
           for t in op_trials]
  return derived, [{"ops": n, "validation_auc": t["validation_auc"]}
                   for n, t in zip(names, op_trials)] + trials


def architecture_count(supernet: model_lib.Architecture) -> int:
  """How many networks the derive can give: every non-empty set of feature
  groups, times one op a layer, times the readout where it is searched."""
  count = 2 ** supernet.num_groups - 1
  for names in supernet.layer_op_names:
    count *= len(names)
  return count * (2 if supernet.readout_searchable else 1)


def random_architecture(supernet: model_lib.Architecture,
                        rng: np.random.Generator) -> DerivedArchitecture:
  """A network drawn uniformly from what the derive can give (see
  :func:`architecture_count`): a uniform non-empty set of feature groups
  (each kept with probability 1/2, drawn again if none is), a uniform op
  per layer, and the pooled readout on or off with probability 1/2 where it
  is searched. The random-architecture control of a search; its gates are
  the untrained supernet's (all 0.5), not evidence.

  Raises:
    ValueError: the space holds a single network (nothing to draw).
  """
  if architecture_count(supernet) < 2:
    raise ValueError("the search space holds one network: a random "
                     "architecture control has nothing to draw")
  kept = np.zeros(0, int)
  while not kept.size:
    kept = np.flatnonzero(rng.random(supernet.num_groups) < 0.5)
  ops = [int(rng.integers(len(names))) for names in supernet.layer_op_names]
  pooled = (bool(rng.random() < 0.5) if supernet.readout_searchable
            else None)
  alphas = {"features": jnp.zeros(supernet.num_groups),
            "ops": [jnp.zeros(len(names)) for names in supernet.layer_op_names]}
  if supernet.readout_searchable:
    alphas["readout"] = jnp.zeros(1)
  return derive_architecture(alphas, supernet, 0.5, features=kept, ops=ops,
                             pooled_readout=pooled)


def derived_gates(derived: DerivedArchitecture,
                  supernet: model_lib.Architecture) -> dict[str, jax.Array]:
  """The derived network as fixed gates of its supernet: 1 on the kept
  features, one-hot on the chosen ops, the readout gate 1 or 0."""
  kept = set(derived.kept_features)
  gates = {
      "features": jnp.asarray([float(n in kept)
                               for n in supernet.group_names]),
      "ops": [jnp.asarray([float(n == chosen) for n in names])
              for names, chosen in zip(supernet.layer_op_names,
                                       derived.chosen_ops)]}
  if supernet.readout_searchable:
    gates["readout"] = jnp.asarray([float(derived.arch.pooled_readout)])
  return gates


def threshold_gates(alphas: chex.ArrayTree, supernet: model_lib.Architecture,
                    threshold: jax.Array) -> dict[str, jax.Array]:
  """:func:`derive_architecture`'s threshold rule as fixed gates, traceable
  (a sweep derives every member inside one program)."""
  gates = model_lib.gate_values(alphas, supernet.gate_function)
  features = gates["features"]
  keep = features >= feature_threshold(threshold, supernet.gate_function,
                                       features.shape[0])
  keep = keep | ((~jnp.any(keep)) & (jnp.arange(features.shape[0])
                                     == jnp.argmax(features)))
  ops = jax.nn.one_hot(jnp.argmax(gates["ops"], axis=-1),
                       gates["ops"].shape[-1])
  fixed = {"features": keep.astype(jnp.float32),
           "ops": [ops[layer] for layer in range(ops.shape[0])]}
  if supernet.readout_searchable:
    fixed["readout"] = (gates["readout"] >= threshold).astype(jnp.float32)
  return fixed


def slice_weights(weights: chex.ArrayTree, supernet: model_lib.Architecture,
                  derived: DerivedArchitecture) -> chex.ArrayTree:
  """The derived network's weights cut out of supernet-shaped weights.

  The derived network with these weights computes what the supernet
  computes under :func:`derived_gates`: the closed gates multiply their
  parts by zero.
  """
  kept_groups = [supernet.group_names.index(n) for n in derived.kept_features]
  entries = [c for c, g in enumerate(supernet.column_groups)
             if g in kept_groups]
  starts = np.cumsum((0,) + supernet.entry_widths)
  rows = np.concatenate([np.arange(starts[c], starts[c + 1])
                         for c in entries])
  embed = {"w": weights["feature_embed"]["w"][rows],
           "b": weights["feature_embed"]["b"][np.asarray(kept_groups)]}
  if not derived.arch.linear_only:
    embed["encoders"] = [weights["feature_embed"]["encoders"][c]
                         for c in entries]
  layers = []
  for layer, (params, names, widths, kinds) in enumerate(zip(
      weights["gcn"], supernet.layer_op_names, supernet.layer_ops,
      supernet.layer_op_kinds)):
    j = names.index(derived.chosen_ops[layer])
    start = sum(widths[:j])
    block = slice(start, start + widths[j])
    cut = {"w1": params["w1"][:, block], "b1": params["b1"][block],
           "w2": params["w2"][block], "b2": params["b2"][j:j + 1]}
    if ops.GCN_OPS[kinds[j]].root:
      cut["w1_root"] = params["w1_root"][:, ops.root_columns(widths, kinds,
                                                             j)]
    layers.append(cut)
  head = dict(weights["head"])
  if not derived.arch.pooled_readout:
    head["w1"] = head["w1"][:supernet.hidden_dim]
  return {"feature_embed": embed, "gcn": layers, "head": head}


def open_ops(alphas: chex.ArrayTree) -> tuple[int, ...] | None:
  """The open op of every layer of a derive candidate's alphas (the others
  closed), or None where some layer has more than one open."""
  is_open = np.asarray(alphas["ops"]) > _CLOSED / 2
  if (is_open.sum(axis=1) != 1).any():
    return None
  return tuple(int(j) for j in is_open.argmax(axis=1))


def one_op_network(alphas: chex.ArrayTree, weights: chex.ArrayTree,
                   supernet: model_lib.Architecture, ops: Sequence[int]
                   ) -> tuple[model_lib.Architecture, chex.ArrayTree]:
  """The supernet cut to one op a layer (``ops``: an op index per layer),
  every feature and the readout kept: (its architecture, its weights).

  Under :func:`one_op_gates` it computes what the supernet computes with
  every other op's gate closed, without running the closed ops: the
  derive scores its feature and readout candidates on it.
  """
  every = range(supernet.num_groups)
  cut = derive_architecture(
      alphas, supernet, 0.0, ops=ops, features=every,
      pooled_readout=True if supernet.readout_searchable else None)
  return cut.arch, slice_weights(weights, supernet, cut)


def one_op_gates(alphas: chex.ArrayTree, supernet: model_lib.Architecture,
                 ops: Sequence[int]) -> dict[str, jax.Array]:
  """A candidate's gates on :func:`one_op_network`: its feature and readout
  gates, and each layer's gate of its one op (the values the supernet
  gives them, softmax shares included)."""
  gates = model_lib.gate_values(alphas, supernet.gate_function)
  cut = {"features": gates["features"],
         "ops": [gates["ops"][layer, j:j + 1] for layer, j in enumerate(ops)]}
  if supernet.readout_searchable:
    cut["readout"] = gates["readout"]
  return cut
