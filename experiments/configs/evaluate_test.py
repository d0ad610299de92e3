"""The evaluation protocol shrunk for tests: seconds per seed.

  python experiments/evaluate.py --dataset=synthetic --seeds=2 \
      --config=experiments/configs/evaluate_test.py
"""

import ml_collections

from experiments.configs import test


def get_config() -> ml_collections.ConfigDict:
  config = test.get_config()
  config.derive = "validation"
  config.fixed_width_ratio = 2.0
  return config
