"""One run of the method: search, derive, retrain, evaluate.

:func:`run` is a function of a config, a dataset, the run's keys and its
hooks: it returns every value the run makes and writes nothing. What a
launcher does around it (logging, checkpoints, TensorBoard, profiles, the
heartbeat) it does in :class:`Hooks`, called between device blocks; the
main job (:mod:`credit_nas_jax.pipeline`) composes it with the run's files.
The evaluation protocol and the sweep compose the same steps
(:mod:`credit_nas_jax.experiment`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import chex
import jax

from credit_nas_jax import config as config_lib
from credit_nas_jax import data as data_lib
from credit_nas_jax import experiment
from credit_nas_jax import search as search_lib
from credit_nas_jax import train as train_lib


class HookError(RuntimeError):
  """A hook raised: the run stopped after its last finished block (whose
  checkpoint, if a hook wrote one, is intact)."""


def _ignore(*args: Any) -> None:
  del args


@dataclasses.dataclass(frozen=True)
class Hooks:
  """What a run calls between blocks; none of them changes a value.

  Attributes:
    stage: (what starts) before each stage, for a heartbeat.
    search_start: (the step the search starts from) before its first block.
    search_block: (state, the block's last-step metrics, step) after each
      search block.
    search_end: (the final search state) once the search has ended, or
      stopped on an error.
    derived: (derived architecture, derive trials, supernet validation
      metrics) once the network is derived.
    retrain_block: (train state, the block's record, step) after each
      retrain block.
  """

  stage: Callable[[str], None] = _ignore
  search_start: Callable[[int], None] = _ignore
  search_block: Callable[[Any, dict[str, float], int], None] = _ignore
  search_end: Callable[[Any], None] = _ignore
  derived: Callable[[Any, list[dict], dict[str, float]], None] = _ignore
  retrain_block: Callable[[Any, dict[str, float], int], None] = _ignore

  def call(self, name: str, *args: Any) -> None:
    """Calls hook ``name``; a hook that raises stops the run, named."""
    try:
      getattr(self, name)(*args)
    except Exception as error:  # pylint: disable=broad-except
      raise HookError(f"the {name} hook raised {type(error).__name__}: "
                      f"{error}") from error


@dataclasses.dataclass
class RunResult:
  """Everything a run makes.

  Attributes:
    exp: the prepared experiment (dataset, supernet, plan).
    search_state: the search's final state.
    timing: the search's seconds (compile, search, host callbacks).
    supernet_validation: the searched supernet's validation metrics.
    derived: the derived architecture.
    trials: the derive's candidates and their validation AUCs (derive on
      validation; empty for the threshold rule).
    train_state: the retrain's final state (``best_weights``: the model).
    history: the retrain's evaluations.
    retrain_seconds: the retrain's wall seconds.
    test: the retrained model's test metrics.
    validation: its validation metrics.
  """

  exp: experiment.Experiment
  search_state: search_lib.SearchState
  timing: dict[str, float]
  supernet_validation: dict[str, float]
  derived: search_lib.DerivedArchitecture
  trials: list[dict]
  train_state: train_lib.TrainState
  history: list[dict]
  retrain_seconds: float
  test: dict[str, float]
  validation: dict[str, float]

  @property
  def weights(self) -> chex.ArrayTree:
    """The retrained model's weights (its best on validation)."""
    return self.train_state.best_weights


def run(config: config_lib.Config | Any, dataset: data_lib.Dataset,
        hooks: Hooks = Hooks(), *, keys: dict[str, jax.Array] | None = None,
        mesh: jax.sharding.Mesh | None = None,
        search_state: search_lib.SearchState | None = None,
        restore_retrain: Callable[[train_lib.TrainState],
                                  train_lib.TrainState | None] | None = None,
        ) -> RunResult:
  """Search, derive, retrain and evaluate one config on one dataset.

  Args:
    config: the run's config (a ``ConfigDict`` is checked here).
    dataset: the borrowers.
    hooks: called between blocks (:class:`Hooks`).
    keys: the run's keys (default: :func:`experiment.run_keys` of
      ``config.seed``).
    mesh: shards every step's batch over its data axis.
    search_state: a state to resume the search from (a checkpoint's).
    restore_retrain: given the retrain's fresh state, the state to resume
      it from, or None (a checkpoint's; the fresh state is its template).

  Returns:
    Every value the run made (:class:`RunResult`).

  Raises:
    HookError: a hook raised.
    train.NonFiniteError: a non-finite loss or gradient.
  """
  exp = experiment.prepare(config, dataset, mesh=mesh)
  keys = keys or experiment.run_keys(exp.config.seed)
  place = (lambda tree: tree) if mesh is None else (
      lambda tree: _replicate(tree, mesh))
  if search_state is None:
    search_state = search_lib.init_search_state(
        keys["init"], exp.supernet,
        experiment.hyperparameters_of(exp.config))
  state, timing = _search(exp, place(search_state), keys, hooks)
  hooks.call("stage", "evaluating the supernet and deriving the "
             "architecture")
  supernet_validation, _ = experiment.evaluate(
      exp, state.weights, state.alphas, exp.supernet, "validation",
      keys=keys)
  derived, trials = experiment.derive(exp, state, keys=keys)
  hooks.call("derived", derived, trials, supernet_validation)

  start = time.perf_counter()
  train_state, history = _retrain(exp, derived, keys, hooks, place,
                                  restore_retrain)
  retrain_seconds = time.perf_counter() - start

  hooks.call("stage", "evaluating the retrained model")
  test, validation = (experiment.evaluate(
      exp, train_state.best_weights, {}, derived.arch, split, keys=keys)[0]
                      for split in ("test", "validation"))
  return RunResult(exp, state, timing, supernet_validation, derived, trials,
                   train_state, history, retrain_seconds, test, validation)


def _retrain(exp, derived, keys, hooks, place, restore_retrain):
  """The derived network's retrain from a fresh state, or from the state
  ``restore_retrain`` gives (a checkpoint's)."""
  train_state = experiment.retrain_state(exp, derived, keys)
  if restore_retrain is not None:
    train_state = restore_retrain(train_state) or train_state
  hooks.call("stage", f"compiling the retrain ({exp.config.retrain.steps} "
             "steps, validation every "
             f"{experiment.eval_interval(exp.config, exp.dataset)})")
  return experiment.retrain(
      exp, place(train_state), derived.arch, keys=keys,
      on_block=lambda *args: hooks.call("retrain_block", *args))


def _search(exp, state, keys, hooks):
  """The search between its start and end hooks (the end hook runs even
  where the search stops on an error)."""
  hooks.call("stage", f"compiling the search ({exp.config.search.steps} "
             f"steps in blocks of {experiment.block_length(exp.config)})")
  hooks.call("search_start", int(state.step))
  try:
    state, timing = experiment.search(
        exp, state, keys=keys,
        on_block=lambda *args: hooks.call("search_block", *args))
  finally:
    hooks.call("search_end", state)
  return state, timing


def _replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  from credit_nas_jax import parallel  # pylint: disable=g-import-not-at-top
  return parallel.replicate(tree, mesh)
