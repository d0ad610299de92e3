"""A sweep: 8 seeds x 2 architecture learning rates, one vmapped program.

  python experiments/sweep.py --workdir=/tmp/credit_nas_sweep
  python experiments/sweep.py --workdir=/tmp/sweep \
      --config.sweep.zero_one_weight="(0.0, 0.1)"
"""

import dataclasses

import ml_collections

from credit_nas_jax import config as config_lib
from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """The default search, swept over seeds and the alpha learning rate."""
  config = default.get_config()
  config.sweep = ml_collections.ConfigDict(
      dataclasses.asdict(config_lib.SweepConfig()))

  # Grid: seeds x every non-empty tuple below (empty: the single value above).
  config.sweep.seeds = tuple(range(8))
  config.sweep.weight_lr = ()
  config.sweep.weight_decay = ()
  config.sweep.arch_lr = (3e-2, 1e-2)
  config.sweep.arch_weight_decay = ()
  config.sweep.zero_one_weight = ()
  config.sweep.gate_threshold = ()

  # Execution and reports.
  config.sweep.max_chunk = 64  # most members one chunk may hold
  # Members vmapped at once inside the program (0: all); a narrower width
  # runs the groups in sequence and lowers peak activation memory.
  config.sweep.vmap_width = 0
  config.sweep.top_k = 2  # best members derived and retrained
  # Of those, the ones of best retrained validation AUC averaged into
  # WORKDIR/ensemble_model: -1 every retrained member, 0 no ensemble.
  config.sweep.ensemble_size = -1

  # Members are derived by the threshold rule, as fixed gates of one shape
  # (config.sweep.gate_threshold may vary it).
  config.derive.rule = "threshold"

  # A lighter search than the default, since it runs 16 times.
  config.data.num_borrowers = 10_000
  config.data.batch_size = 64
  config.space.hidden_dim = 32
  config.search.steps = 300
  return config
