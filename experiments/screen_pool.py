r"""The mean of every network several screens trained, against the baselines
on the same splits: how far ensembling our searched networks can go.

  python experiments/screen_pool.py --dataset=credit \
      --screens=runs/screen_a,runs/screen_b --seeds=100,101,102,103,104 \
      --workdir=runs/pool

--screens: workdirs of experiments/screen_retrain.py runs on --dataset and
the same seeds, of distinct folder names (their saved probabilities; a
variant whose validation probabilities repeat another's to the bit, such
as a reference two screens share, counts once and is logged). Per seed,
LightGBM and logistic regression are fitted on the same split with the
evaluation's validation budgets (--config); each pooled variant is scored
alone, and so are two pooled models: "pool_all" (the mean of every pooled
variant's probabilities) and "pool_top<k>" (the mean of the --top
variants with the best validation AUC: chosen on validation alone).
Writes --workdir/rows.jsonl (a row per seed and model, with the pools'
members), pool.csv and pool.md (validation and test AUC, and the
differences from --reference, LightGBM or logistic regression, paired by
seed) and pool.png (a row a model of ours: its paired validation and test
differences, mean +- std).

The pool is an analysis, not a model of the evaluation: it costs every
screen's compute, far past the evaluation's budget, and it is meant to
bound what averaging more of our networks could add.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from credit_nas_jax import evaluation
from credit_nas_jax import plotting
from credit_nas_jax import screening
from experiments import screen_flags

# --dataset, --seeds and --config, listed by --help with the flags below.
flags.adopt_module_key_flags(screen_flags)
_SCREENS = flags.DEFINE_list(
    "screens", [], "Workdirs of screen_retrain.py runs on --dataset.")
_TOP = flags.DEFINE_integer(
    "top", 3, "Variants, best on validation, in the pool_top model.")
_REFERENCE = flags.DEFINE_enum(
    "reference", "lightgbm", list(screening.POOL_BASELINES),
    "The baseline the differences are paired against.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/pool",
                               "Directory for the results.")


def main(argv):
  """Pools every seed's screens first (a missing one fails before any
  fitting), then fits the baselines and scores the pools seed by seed."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  dataset_name = screen_flags.DATASET.value
  seeds = screen_flags.dataset_and_seeds(dataset_name,
                                         screen_flags.SEEDS.value)
  if not _SCREENS.value:
    raise app.UsageError("--screens: name at least one screen workdir")
  if _TOP.value < 1:
    raise app.UsageError(f"--top={_TOP.value}: expected at least 1")
  if not evaluation.lightgbm_available():
    raise app.UsageError("LightGBM is not installed: pip install -e "
                         "\".[baselines]\"")
  try:
    pools = {seed: screening.pooled_probabilities(_SCREENS.value, seed)
             for seed in seeds}
  except (FileNotFoundError, ValueError) as error:
    raise app.UsageError(str(error)) from None
  workdir = _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  rows = []
  for seed, pool in pools.items():
    start = time.perf_counter()
    for left_out, kept in pool.duplicates.items():
      logging.info("seed %d: %s repeats %s, pooled once", seed, left_out,
                   kept)
    config = screen_flags.seed_config(screen_flags.CONFIG.value,
                                      dataset_name, seed)
    try:
      seed_rows = screening.pool_seed(evaluation.load_dataset(config), config,
                                      seed, pool.probabilities, _TOP.value)
    except ValueError as error:
      raise app.UsageError(str(error)) from None
    rows += seed_rows
    test = {row["variant"]: row["test_auc"] for row in seed_rows}
    logging.info("seed %d: %d variants pooled; top %d on validation: %s; "
                 "test AUC: lightgbm %.4f, pool_all %.4f, %s %.4f (%.0fs)",
                 seed, len(pool.probabilities), _TOP.value,
                 ", ".join(seed_rows[-1]["members"]), test["lightgbm"],
                 test["pool_all"], seed_rows[-1]["variant"],
                 seed_rows[-1]["test_auc"], time.perf_counter() - start)
  with open(os.path.join(workdir, "rows.jsonl"), "w") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")
  summary = screening.summarize(rows, _REFERENCE.value)
  summary.to_csv(os.path.join(workdir, "pool.csv"))
  table = screening.markdown_table(summary, _REFERENCE.value,
                                   with_seconds=False)
  with open(os.path.join(workdir, "pool.md"), "w") as f:
    f.write(f"{dataset_name}, seeds {seeds}, screens "
            f"{', '.join(_SCREENS.value)}; {evaluation.machine()}.\n\n"
            f"{table}\n")
  # The plot shows ours against the reference (the other baseline's row,
  # often far off, would squeeze ours into a corner; it is in the table).
  other = [m for m in screening.POOL_BASELINES if m != _REFERENCE.value]
  plotting.plot_paired_differences(
      summary.drop(index=other), _REFERENCE.value,
      os.path.join(workdir, "pool.png"),
      f"{dataset_name}: ours against {_REFERENCE.value}, seeds "
      f"{','.join(map(str, seeds))}")
  print(table)


if __name__ == "__main__":
  app.run(main)
