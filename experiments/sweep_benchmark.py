r"""Sweep cost per member against one run alone, same settings, one process.

  python experiments/sweep_benchmark.py
  python experiments/sweep_benchmark.py --members=32 --batch_size=1024 \
      --hidden_dim=100 --steps=50

Times the search loop (device sampling included, compile timed apart) of
one lone run, then of a vmapped sweep of --members members (seeds x two alpha
learning rates), and prints JSON and a markdown row.
"""

import json

from absl import app
from absl import flags
import jax

from credit_nas_jax import config as config_lib
from credit_nas_jax import experiment
from credit_nas_jax import pipeline
from credit_nas_jax import search as search_lib
from credit_nas_jax import sweep
from experiments.configs import sweep as sweep_config

_MEMBERS = flags.DEFINE_integer("members", 8, "Grid members (even).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Graphs per batch.")
_HIDDEN = flags.DEFINE_integer("hidden_dim", 32, "D.")
_STEPS = flags.DEFINE_integer("steps", 30, "Search steps timed.")
_BORROWERS = flags.DEFINE_integer("num_borrowers", 10_000, "Book size.")
_WIDTH = flags.DEFINE_integer(
    "vmap_width", 0, "Members vmapped at once (0: the backend's default).")
_OUTPUT = flags.DEFINE_string("output", None, "Optional JSON output file.")


def main(argv):
  del argv
  config = sweep_config.get_config()
  config.data.batch_size = _BATCH.value
  config.space.hidden_dim = _HIDDEN.value
  config.search.steps = _STEPS.value
  config.data.num_borrowers = _BORROWERS.value
  config.runtime.log_every = _STEPS.value
  config.search.arch_warmup_steps = 0
  config.sweep.seeds = tuple(range(_MEMBERS.value // 2))
  config.sweep.arch_lr = (3e-2, 1e-2)
  config.runtime.checkpoint_every = _STEPS.value
  config.sweep.vmap_width = _WIDTH.value
  config = config_lib.typed(config)
  exp = experiment.prepare(config, pipeline.load_dataset(config))
  members = sweep.grid_members(config)
  keys = experiment.run_keys(config.seed)
  state = search_lib.init_search_state(
      keys["init"], exp.supernet, experiment.hyperparameters_of(config))
  _, lone = experiment.search(exp, state, keys=keys)

  _, _, sweep_compile, sweep_run = sweep._search_chunk(  # pylint: disable=protected-access
      members, exp, sorted({m.seed for m in members}))
  row = {
      "device_kind": jax.devices()[0].device_kind,
      "jax_version": jax.__version__,
      "members": len(members),
      "vmap_width": sweep.vmap_width_for(config, len(members)),
      "batch_size": config.data.batch_size,
      "hidden_dim": config.space.hidden_dim,
      "steps": config.search.steps,
      "lone_compile_seconds": lone["compile_seconds"],
      "lone_search_seconds": lone["search_seconds"],
      "sweep_compile_seconds": sweep_compile,
      "sweep_search_seconds": sweep_run,
      "sweep_seconds_per_member": sweep_run / len(members),
  }
  row["per_member_over_lone"] = (row["sweep_seconds_per_member"]
                                 / row["lone_search_seconds"])
  print(json.dumps(row, indent=2))
  print("| device | members | batch | D | steps | lone s | sweep s | "
        "sweep s/member | per member / lone |")
  print("|---|---|---|---|---|---|---|---|---|")
  print(f"| {row['device_kind']} | {row['members']} | {row['batch_size']} | "
        f"{row['hidden_dim']} | {row['steps']} | "
        f"{row['lone_search_seconds']:.2f} | {row['sweep_search_seconds']:.2f}"
        f" | {row['sweep_seconds_per_member']:.2f} | "
        f"{row['per_member_over_lone']:.2f} |")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(row, f, indent=2)


if __name__ == "__main__":
  app.run(main)
