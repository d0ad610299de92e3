"""Default search on the embedded synthetic lending book.

  python experiments/search.py --workdir=/tmp/credit_nas
  python experiments/search.py --workdir=/tmp/credit_nas \
      --config.search.arch_lr=1e-2 --config.space.name=extended

The groups and every field's meaning: ``credit_nas_jax/config.py`` (the
defaults are its dataclasses'): data, space, search, derive, retrain,
runtime.
"""

import ml_collections

from credit_nas_jax import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  """The default config: about 3 minutes on a 2-core CPU."""
  return config_lib.to_config_dict(config_lib.Config())
