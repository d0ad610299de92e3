r"""Runs a hyperparameter grid as one vmapped search program.

  python experiments/sweep.py --workdir=/tmp/credit_nas_sweep
  python experiments/sweep.py --workdir=/tmp/sweep \
      --config.sweep.seeds="(0,1,2,3)" --config.sweep.zero_one_weight="(0.0, 0.1)"

Writes leaderboard.csv/.md, stability.csv/.md/.png, auc_spread.json,
sweep_cost.json and ensemble_model/ (the best retrained members, chosen on
validation; config.sweep.ensemble_size of them, -1: all sweep_top_k) into
--workdir. Score the ensemble like any model:

  python experiments/score.py --model_dir=/tmp/sweep/ensemble_model ...
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from credit_nas_jax import config as config_lib

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Directory for the sweep's reports.",
                               required=True)
config_lib.check_flags(sys.argv)  # before the config flag reads them
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(_CONFIG_DIR, "sweep.py"),
    "Sweep config file; override fields with --config.GROUP.FIELD=value "
    "(groups and fields: credit_nas_jax/config.py).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Loaded once the flags and the config have checked, so that a mistake is
  # refused without waiting for it.
  from credit_nas_jax import sweep  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  sweep.run_sweep(config_lib.typed(_CONFIG.value), _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser(_CONFIG))
