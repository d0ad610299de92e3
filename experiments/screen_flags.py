"""Flags the screen launchers share (screen_retrain.py, screen_pool.py):
the dataset, the split seeds and the evaluation's config, and their
checks (which take the values: only a launcher's main reads flags)."""

import os

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

from credit_nas_jax import pipeline

DATASET = flags.DEFINE_string(
    "dataset", "synthetic",
    f"One dataset: {', '.join(pipeline.DATASETS)}.")
SEEDS = flags.DEFINE_list(
    "seeds", ["100", "101", "102"],
    "Split seeds; the default avoids the evaluation's seeds 0 to 4.")
CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs", "evaluate.py"),
    "The evaluation's config file; override fields with "
    "--config.name=value.")


def dataset_and_seeds(dataset: str, seeds: list[str]) -> list[int]:
  """The --seeds of --dataset as integers, both checked (a UsageError names
  the bad value)."""
  if dataset not in pipeline.DATASETS:
    raise app.UsageError(f"unknown dataset {dataset!r}; expected one of "
                         f"{list(pipeline.DATASETS)}")
  try:
    numbers = [int(s) for s in seeds]
  except ValueError:
    raise app.UsageError(f"--seeds must be integers: {seeds}") from None
  if not numbers:
    raise app.UsageError("--seeds: name at least one split seed")
  return numbers


def seed_config(config: ml_collections.ConfigDict, dataset: str,
                seed: int) -> ml_collections.ConfigDict:
  """A copy of ``config`` on ``dataset`` with ``seed``'s split."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.dataset, config.seed, config.split_seed = dataset, seed, seed
  return config
