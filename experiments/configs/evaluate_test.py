"""The evaluation protocol shrunk for tests: seconds per seed.

  python experiments/evaluate.py --dataset=synthetic --seeds=2 \
      --config=experiments/configs/evaluate_test.py
"""

import dataclasses

import ml_collections

from credit_nas_jax import config as config_lib
from experiments.configs import test


def get_config() -> ml_collections.ConfigDict:
  config = test.get_config()
  config.derive.rule = "validation"
  config.derive.confidence = 2.0
  config.space.feature_embeddings = ("linear", "piecewise", "periodic")
  config.space.embedding_bins = 4
  config.space.embedding_frequencies = 2
  # Grids of two settings each, so every choice is exercised.
  config.baselines = ml_collections.ConfigDict(
      dataclasses.asdict(config_lib.BaselinesConfig()))
  config.baselines.lightgbm_num_leaves = (7,)
  config.baselines.lightgbm_learning_rates = (0.03, 0.1)
  config.baselines.lightgbm_min_child_samples = (20,)
  config.baselines.fixed_width_ratios = (1.0, 2.0)
  config.baselines.fixed_weight_decays = (1e-4,)
  config.retrain.ensemble_size = 2
  config.retrain.weight_decays = (1e-4, 1.0)
  return config
