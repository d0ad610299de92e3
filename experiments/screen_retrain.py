r"""Screens settings of a searched model against a reference, paired by seed.

  python experiments/screen_retrain.py --dataset=credit \
      --model=searched_extended --workdir=runs/screen \
      --variants='{"as_evaluated": {}, "average": {"retrain_average_span": 1}}'
  python experiments/screen_retrain.py --dataset=lending \
      --model=searched_isolated --seeds=100,101,102,103,104 \
      --variants='{"as_evaluated": {}, "bins16": {"embedding_bins": 16}}'

--variants: a JSON object of variant names to config overrides; the first
is the reference. Per seed, --model is searched and derived under the
evaluation's config (--config, override fields with --config.name=value)
once for each distinct set of search overrides, and the derived network
retrained under each variant's retrain fields (retrain_steps, retrain_lr,
the weight decays, retrain_average_span, retrain_ensemble_size,
eval_every, eval_each_epoch, patience): variants differing only there
share a search and their difference is the retrain setting's alone.
Fields that change the rows, split or graph are refused. Writes
--workdir/rows.jsonl (a row per seed and variant, appended as each
finishes), screen.csv and screen.md (validation and test AUC, differences
from the reference paired by seed, search and retrain seconds) and
screen.png (a row a variant: its paired validation and test differences,
mean +- std). Each variant's validation and test probabilities are kept in
--workdir/probabilities/ (npz); --mixtures='{"both": ["a", "b"]}' adds rows
for the mean of several variants' probabilities (an ensemble of unlike
members, no extra training), paired like the rest.

Adopting a setting is a choice: read the validation columns, on seeds the
evaluation does not use (the default, 100 to 102; the evaluation runs 0 to
--seeds - 1).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import jax
import ml_collections

from credit_nas_jax import evaluation
from credit_nas_jax import plotting
from credit_nas_jax import progress
from credit_nas_jax import screening
from experiments import screen_flags

# --dataset, --seeds and --config, listed by --help with the flags below.
flags.adopt_module_key_flags(screen_flags)
_MODEL = flags.DEFINE_enum("model", "searched_extended",
                           list(evaluation.SEARCHED),
                           "Which searched model to screen.")
_VARIANTS = flags.DEFINE_string(
    "variants", '{"as_configured": {}}',
    "JSON object: variant name -> config overrides; the first is the "
    "reference.")
_MIXTURES = flags.DEFINE_string(
    "mixtures", "{}",
    "JSON object: mixture name -> variants whose probabilities it averages "
    "(rows beside the variants'; no extra training).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/screen",
                               "Directory for the results.")


def parse_variants(text: str, config: ml_collections.ConfigDict) -> dict:
  """--variants as a dict, checked (:func:`screening.check_variants`)."""
  try:
    variants = json.loads(text)
  except json.JSONDecodeError as error:
    raise app.UsageError(f"--variants is not JSON: {error}") from None
  if not isinstance(variants, dict):
    raise app.UsageError("--variants must be a JSON object of variant names "
                         "to config overrides")
  try:
    screening.check_variants(variants, config)
  except ValueError as error:
    raise app.UsageError(f"--variants: {error}") from None
  return variants


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  dataset_name = screen_flags.DATASET.value
  seeds = screen_flags.dataset_and_seeds(dataset_name,
                                         screen_flags.SEEDS.value)
  variants = parse_variants(_VARIANTS.value, screen_flags.CONFIG.value)
  reference = next(iter(variants))
  try:
    mixtures = json.loads(_MIXTURES.value)
  except json.JSONDecodeError as error:
    raise app.UsageError(f"--mixtures is not JSON: {error}") from None
  if not isinstance(mixtures, dict) or any(
      not isinstance(m, list) or not m or set(m) - set(variants)
      for m in mixtures.values()):
    raise app.UsageError(f"--mixtures must map names to non-empty lists of "
                         f"variants of --variants ({list(variants)}): "
                         f"{_MIXTURES.value}")
  evaluated = sorted(set(seeds) & set(range(5)))
  if evaluated:
    logging.warning("seeds %s are the evaluation's own splits: a setting "
                    "chosen on them has seen its test rows' neighbours",
                    evaluated)
  workdir = _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir",
                    os.path.join(workdir, "xla_cache"))
  rows_path = os.path.join(workdir, "rows.jsonl")
  probabilities_dir = os.path.join(workdir, "probabilities")
  os.makedirs(probabilities_dir, exist_ok=True)
  start, rows, labels = time.perf_counter(), [], {}

  def on_row(row):
    with open(rows_path, "a") as f:
      f.write(json.dumps(row) + "\n")
    logging.info("seed %d, %s: validation AUC %.4f, test AUC %.4f, decay "
                 "%g, best steps %s (%.0fs)", row["seed"], row["variant"],
                 row["validation_auc"], row["test_auc"], row["weight_decay"],
                 row["best_steps"], row["seconds"])

  for index, seed in enumerate(seeds):
    config = screen_flags.seed_config(screen_flags.CONFIG.value,
                                      dataset_name, seed)
    dataset = evaluation.load_dataset(config)
    labels[seed] = {split: dataset.labels[dataset.splits[split]]
                    for split in screening.SPLITS}
    rows += screening.screen_seed(
        dataset, config, seed, _MODEL.value, variants,
        os.path.join(workdir, f"search_seed_{seed}.jsonl"), on_row=on_row,
        probabilities_dir=probabilities_dir)
    elapsed = time.perf_counter() - start
    logging.info("seed %d done (%d of %d) after %s; about %s left", seed,
                 index + 1, len(seeds), progress.duration_text(elapsed),
                 progress.duration_text(elapsed / (index + 1)
                                        * (len(seeds) - index - 1)))
    jax.clear_caches()
  rows += screening.mixture_rows(probabilities_dir, labels, mixtures)
  summary = screening.summarize(rows, reference)
  summary.to_csv(os.path.join(workdir, "screen.csv"))
  table = screening.markdown_table(summary, reference)
  with open(os.path.join(workdir, "screen.md"), "w") as f:
    f.write(f"{dataset_name}, {_MODEL.value}, seeds {seeds}; "
            f"{evaluation.machine()}.\n\n{table}\n")
  plotting.plot_paired_differences(
      summary, reference, os.path.join(workdir, "screen.png"),
      f"{dataset_name}, {_MODEL.value}: paired differences from "
      f"{reference}, seeds {','.join(map(str, seeds))}")
  print(table, flush=True)


if __name__ == "__main__":
  app.run(main)
