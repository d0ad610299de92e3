r"""Searches, derives, retrains and evaluates a credit-scoring GCN.

  python experiments/search.py --workdir=/tmp/credit_nas
  python experiments/search.py --workdir=/tmp/credit_nas \
      --config=experiments/configs/default.py --config.search.second_order=True

Writes the resolved config, metrics.jsonl, alphas.csv, alphas.png,
architecture.json, test_metrics.json, search_cost.json, model/ and
tensorboard/ into --workdir; watch a run with

  tensorboard --logdir=/tmp/credit_nas

and trace search steps 101 to 200 (into --workdir/profile) with
--config.runtime.profile_steps=101,200.

Several processes (hosts, or processes on one machine) run one search over
all their devices; each gets the same flags but its --process_id, and
--config.runtime.num_devices=0 uses every device of every process:

  python experiments/search.py --workdir=/shared/run \
      --config.runtime.num_devices=0 --coordinator=host0:1234 --num_processes=2 \
      --process_id=0   # and --process_id=1 on the other host

Process 0 writes every file; the work directory must be shared (the others
read its checkpoints to resume).
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
                               "Directory for every output of the run.",
                               required=True)
_FRESH = flags.DEFINE_bool(
    "fresh", False,
    "Discard the run in --workdir and start over (default: resume it).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "Multi-host: address:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1,
                                      "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0,
                                   "Multi-host: this process's index.")
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "heartbeat_timeout_seconds", 60,
    "Multi-host: seconds without a heartbeat after which the other processes "
    "stop with an error naming the silent one.")
config_lib.check_flags(sys.argv)  # before the config flag reads them
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(_CONFIG_DIR, "default.py"),
    "Config file; override fields with --config.GROUP.FIELD=value "
    "(groups and fields: credit_nas_jax/config.py).")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments: {argv[1:]}")
  if os.path.exists(_WORKDIR.value) and not os.path.isdir(_WORKDIR.value):
    sys.exit(f"error: --workdir={_WORKDIR.value} is a file, not a directory")
  # The run's modules load once the flags and the config have checked, so
  # that a mistake is refused without waiting for them.
  # pylint: disable=g-import-not-at-top
  from credit_nas_jax import checkpoint
  from credit_nas_jax import parallel
  from credit_nas_jax import pipeline
  from credit_nas_jax import train
  # pylint: enable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  try:
    parallel.initialize_distributed(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
        heartbeat_timeout_seconds=_HEARTBEAT_TIMEOUT.value)
    pipeline.run_experiment(config_lib.typed(_CONFIG.value), _WORKDIR.value, fresh=_FRESH.value)
  except (ValueError, checkpoint.CheckpointError,
          train.NonFiniteError) as error:
    logging.error("%s", error)
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser(_CONFIG))
