"""Differentiable architecture search for graph-based credit scoring."""

from credit_nas_jax.checkpoint import CheckpointError
from credit_nas_jax.checkpoint import CheckpointManager
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
from credit_nas_jax.scoring import score_applicants
from credit_nas_jax.scoring import Scorecard
from credit_nas_jax.search import derive_architecture
from credit_nas_jax.search import init_search_state
from credit_nas_jax.search import search_step
from credit_nas_jax.search import SearchState
from credit_nas_jax.sweep import run_sweep
from credit_nas_jax.synthetic import generate_lending_book

__all__ = (
    "Architecture",
    "BatchBudget",
    "BatchMaker",
    "BorrowerGraph",
    "CheckpointError",
    "CheckpointManager",
    "Dataset",
    "Experiment",
    "FEATURE_COLUMNS",
    "NodeEncoder",
    "RecordError",
    "Scorecard",
    "SearchState",
    "apply",
    "classification_metrics",
    "dataset_from_book",
    "derive_architecture",
    "extract_features",
    "extract_features_from_files",
    "extract_features_with_rejects",
    "generate_lending_book",
    "init",
    "init_search_state",
    "load_model",
    "ModelMember",
    "prepare_experiment",
    "read_records",
    "run_experiment",
    "run_keys",
    "run_sweep",
    "sample_graphs",
    "save_ensemble",
    "save_model",
    "score_applicants",
    "search_step",
    "supernet_architecture",
)
