"""Differentiable architecture search for graph-based credit scoring.

``import credit_nas_jax`` imports nothing heavy: each name below is imported
from its module the first time it is read (PEP 562), so a caller that only
needs, say, ``credit_nas_jax.model`` does not pay for pandas, scikit-learn,
matplotlib or TensorBoard (tests/test_imports.py checks it). Submodules are
imported as usual (``from credit_nas_jax import pipeline``) and can also be
read as attributes of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name: (module, attribute in that module).
_EXPORTS = {
    "CheckpointError": ("checkpoint", "CheckpointError"),
    "CheckpointManager": ("checkpoint", "CheckpointManager"),
    "Config": ("config", "Config"),
    "BatchMaker": ("data", "BatchMaker"),
    "Dataset": ("data", "Dataset"),
    "dataset_from_book": ("data", "dataset_from_book"),
    "Experiment": ("experiment", "Experiment"),
    "prepare_experiment": ("experiment", "prepare"),
    "run_keys": ("experiment", "run_keys"),
    "extract_features": ("features", "extract_features"),
    "extract_features_from_files": ("features", "extract_features_from_files"),
    "extract_features_with_rejects": ("features",
                                      "extract_features_with_rejects"),
    "FEATURE_COLUMNS": ("features", "FEATURE_COLUMNS"),
    "read_records": ("features", "read_records"),
    "RecordError": ("features", "RecordError"),
    "BatchBudget": ("graphs", "BatchBudget"),
    "BorrowerGraph": ("graphs", "BorrowerGraph"),
    "NodeEncoder": ("graphs", "NodeEncoder"),
    "sample_graphs": ("graphs", "sample_graphs"),
    "classification_metrics": ("metrics", "classification_metrics"),
    "apply": ("model", "apply"),
    "Architecture": ("model", "Architecture"),
    "init": ("model", "init"),
    "supernet_architecture": ("model", "supernet_architecture"),
    "load_model": ("model_io", "load_model"),
    "ModelMember": ("model_io", "ModelMember"),
    "save_ensemble": ("model_io", "save_ensemble"),
    "save_model": ("model_io", "save_model"),
    "run_experiment": ("pipeline", "run_experiment"),
    "Hooks": ("run", "Hooks"),
    "score_applicants": ("scoring", "score_applicants"),
    "Scorecard": ("scoring", "Scorecard"),
    "derive_architecture": ("search", "derive_architecture"),
    "init_search_state": ("search", "init_search_state"),
    "search_step": ("search", "search_step"),
    "SearchState": ("search", "SearchState"),
    "run_sweep": ("sweep", "run_sweep"),
    "generate_lending_book": ("synthetic", "generate_lending_book"),
}

__all__ = tuple(sorted(_EXPORTS, key=str.lower))


def __getattr__(name: str):
  """Imports an exported name, or a submodule, on first access."""
  if name in _EXPORTS:
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"),
                    attribute)
    globals()[name] = value  # later reads skip this hook
    return value
  if not name.startswith("_"):
    try:
      return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
      if error.name != f"{__name__}.{name}":
        raise  # the submodule exists; something it imports does not
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
  from credit_nas_jax.checkpoint import CheckpointError
  from credit_nas_jax.checkpoint import CheckpointManager
  from credit_nas_jax.config import Config
  from credit_nas_jax.data import BatchMaker
  from credit_nas_jax.data import Dataset
  from credit_nas_jax.data import dataset_from_book
  from credit_nas_jax.experiment import Experiment
  from credit_nas_jax.experiment import prepare as prepare_experiment
  from credit_nas_jax.experiment import run_keys
  from credit_nas_jax.features import extract_features
  from credit_nas_jax.features import extract_features_from_files
  from credit_nas_jax.features import extract_features_with_rejects
  from credit_nas_jax.features import FEATURE_COLUMNS
  from credit_nas_jax.features import read_records
  from credit_nas_jax.features import RecordError
  from credit_nas_jax.graphs import BatchBudget
  from credit_nas_jax.graphs import BorrowerGraph
  from credit_nas_jax.graphs import NodeEncoder
  from credit_nas_jax.graphs import sample_graphs
  from credit_nas_jax.metrics import classification_metrics
  from credit_nas_jax.model import apply
  from credit_nas_jax.model import Architecture
  from credit_nas_jax.model import init
  from credit_nas_jax.model import supernet_architecture
  from credit_nas_jax.model_io import load_model
  from credit_nas_jax.model_io import ModelMember
  from credit_nas_jax.model_io import save_ensemble
  from credit_nas_jax.model_io import save_model
  from credit_nas_jax.pipeline import run_experiment
  from credit_nas_jax.run import Hooks
  from credit_nas_jax.scoring import score_applicants
  from credit_nas_jax.scoring import Scorecard
  from credit_nas_jax.search import derive_architecture
  from credit_nas_jax.search import init_search_state
  from credit_nas_jax.search import search_step
  from credit_nas_jax.search import SearchState
  from credit_nas_jax.sweep import run_sweep
  from credit_nas_jax.synthetic import generate_lending_book
