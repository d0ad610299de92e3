"""The evaluation protocol shrunk for tests: seconds per seed.

  python experiments/evaluate.py --dataset=synthetic --seeds=2 \
      --config=experiments/configs/evaluate_test.py
"""

import ml_collections

from experiments.configs import test


def get_config() -> ml_collections.ConfigDict:
  config = test.get_config()
  config.derive = "validation"
  config.derive_confidence = 2.0
  config.feature_embeddings = ("linear", "piecewise", "periodic")
  config.embedding_bins = 4
  config.embedding_frequencies = 2
  # Grids of two settings each, so every choice is exercised.
  config.lightgbm_num_leaves = (7,)
  config.lightgbm_learning_rates = (0.03, 0.1)
  config.lightgbm_min_child_samples = (20,)
  config.fixed_width_ratios = (1.0, 2.0)
  config.fixed_weight_decays = (1e-4,)
  config.retrain_ensemble_size = 2
  config.retrain_weight_decays = (1e-4, 1.0)
  return config
