"""A tiny CPU run for tests: seconds, not minutes.

  python experiments/search.py --workdir=/tmp/credit_nas_test \
      --config=experiments/configs/test.py
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """The default config shrunk: few borrowers, small net, few steps."""
  config = default.get_config()

  # Data.
  config.num_borrowers = 600
  config.fanouts = (4, 2)
  config.batch_size = 32

  # Supernet.
  config.hidden_dim = 16

  # Search and retrain.
  config.search_steps = 20
  config.arch_warmup_steps = 5
  config.log_every = 5
  config.retrain_steps = 20
  config.eval_every = 10
  config.checkpoint_every = 5
  return config
