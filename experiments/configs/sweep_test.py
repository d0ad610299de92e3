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
  sweep_fields = sweep.get_config()
  for name in sweep_fields:
    if name.startswith("sweep_"):
      config[name] = sweep_fields[name]

  # Grid.
  config.sweep_seeds = (0, 1)
  config.sweep_arch_lr = (3e-2, 1e-2)
  config.sweep_max_chunk = 3  # forces two chunks, the second padded
  config.sweep_vmap_width = 2  # and two vmapped groups inside a chunk
  config.sweep_top_k = 1
  return config
