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
  config.data.num_borrowers = 600
  config.data.fanouts = (4, 2)
  config.data.batch_size = 32

  # Supernet.
  config.space.hidden_dim = 16

  # Search and retrain.
  config.search.steps = 20
  config.search.arch_warmup_steps = 5
  config.runtime.log_every = 5
  config.retrain.steps = 20
  config.retrain.eval_every = 10
  config.runtime.checkpoint_every = 5
  return config
