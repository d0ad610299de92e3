r"""Runs a hyperparameter grid as one vmapped search program.

  python experiments/sweep.py --workdir=/tmp/credit_nas_sweep
  python experiments/sweep.py --workdir=/tmp/sweep \
      --config.sweep_seeds="(0,1,2,3)" --config.sweep_zero_one_weight="(0.0, 0.1)"

Writes leaderboard.csv/.md, stability.csv/.md/.png, auc_spread.json,
sweep_cost.json and ensemble_model/ (the best retrained members, chosen on
validation; config.sweep_ensemble_size of them, -1: all sweep_top_k) into
--workdir. Score the ensemble like any model:

  python experiments/score.py --model_dir=/tmp/sweep/ensemble_model ...
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

from credit_nas_jax import sweep

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Directory for the sweep's reports.",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(_CONFIG_DIR, "sweep.py"),
    "Sweep config file; override fields with --config.name=value.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  sweep.run_sweep(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
