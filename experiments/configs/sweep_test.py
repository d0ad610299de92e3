"""A tiny sweep for tests.

  python experiments/sweep.py --workdir=/tmp/sweep_test \
      --config=experiments/configs/sweep_test.py
"""

import ml_collections

from experiments.configs import sweep
from experiments.configs import test


def get_config() -> ml_collections.ConfigDict:
  """The test config with the sweep fields: 2 seeds x 2 alpha rates."""
  config = test.get_config()
  config.sweep = sweep.get_config().sweep
  config.derive.rule = "threshold"

  # Grid.
  config.sweep.seeds = (0, 1)
  config.sweep.arch_lr = (3e-2, 1e-2)
  config.sweep.max_chunk = 3  # forces two chunks, the second padded
  config.sweep.vmap_width = 2  # and two vmapped groups inside a chunk
  config.sweep.top_k = 1
  return config
