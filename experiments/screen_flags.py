"""Flags the screen launchers share (screen_retrain.py, screen_pool.py):
the dataset, the split seeds and the evaluation's config, and their
checks."""

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


def dataset_and_seeds() -> tuple[str, list[int]]:
  """--dataset and --seeds, checked (a UsageError names the bad value)."""
  if DATASET.value not in pipeline.DATASETS:
    raise app.UsageError(f"unknown dataset {DATASET.value!r}; expected one "
                         f"of {list(pipeline.DATASETS)}")
  try:
    seeds = [int(s) for s in SEEDS.value]
  except ValueError:
    raise app.UsageError(f"--seeds must be integers: {SEEDS.value}") from None
  if not seeds:
    raise app.UsageError("--seeds: name at least one split seed")
  return DATASET.value, seeds


def seed_config(seed: int) -> ml_collections.ConfigDict:
  """--config on --dataset with ``seed``'s split."""
  config = ml_collections.ConfigDict(CONFIG.value.to_dict())
  config.dataset, config.seed, config.split_seed = DATASET.value, seed, seed
  return config
