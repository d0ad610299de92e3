r"""The evaluation protocol: every model on every seed of a dataset.

  python experiments/evaluate.py --dataset=german --seeds=5
  python experiments/evaluate.py --dataset=german,credit,taiwan,lending,synthetic
  python experiments/evaluate.py --dataset=taiwan --models=searched,gcn \
      --config.data.knn_k=0
  python experiments/evaluate.py --dataset=table \
      --config.data.table_path=/path/book.parquet --config.data.label_column=status \
      --config.data.bad_value=default --config.data.id_column=loan_id

For each seed k: a stratified 60/20/20 split (seed k), every model trained
with its choices made on validation, and the test set scored once. Writes
into --workdir/<dataset>/: seed_<k>.json (every model's test metrics, ROC
curve and choices), results.md (mean +- std over seeds and the paired
per-seed AUC differences of ours against each model, the calibration table
and the fairness tables), summary.json, roc.png, calibration.png (the
reliability of every model's test probabilities after the calibration map
fitted on its validation probabilities, pooled over seeds) and fairness.json
(per seed and model, approvals at the scoring bands, AUC, true and false
positive rates by group of --config.data.sensitive_column, with optional
--config.data.sensitive_bins; german Gender, taiwan SEX and credit Age (1
under 25) by default; "none": no report); with several datasets also
--workdir/all.md (test AUC of every model on every dataset). Compiled
programs are kept in --workdir/xla_cache (--compilation_cache; delete it
freely, it only saves compiles). A seed file already there with the same
config is resumed: its finished models are kept (with a config that differs
only in fields our models alone read, evaluation.OURS_ONLY_FIELDS, its
baselines' rows are kept and ours run again; one that differs only in the
sensitive column, evaluation.REPORT_ONLY_FIELDS, keeps every row; rows
stored without a calibration run again). k-NN graphs are inductive unless
--config.data.knn_graph=transductive; every baseline's validation budget is in
results.md.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import numpy as np
import pandas as pd

from credit_nas_jax import calibration as calibration_lib
from credit_nas_jax import config as config_lib
from credit_nas_jax import datasets
from credit_nas_jax import evaluation
from credit_nas_jax import pipeline
from credit_nas_jax import plotting

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs")
DATASETS = tuple(pipeline.DATASETS) + (
    () if "table" in pipeline.DATASETS else ("table",))
_DATASET = flags.DEFINE_list(
    "dataset", ["synthetic"],
    "Datasets, comma-separated: synthetic, german, credit, taiwan, lending, "
    "table (the file --config.data.table_path).")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds (splits) per dataset.",
                              lower_bound=1)
_MODELS = flags.DEFINE_list(
    "models", [], "Models to run (default: all; lightgbm when installed). "
    f"Choices: {list(evaluation.MODELS)}.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/evaluation",
                               "Directory for the results.")
_OLD_OUT_DIR = flags.DEFINE_string("out_dir", None,
                                   "Renamed: use --workdir.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", "",
    "Directory of XLA's persistent compilation cache (default: "
    "$JAX_COMPILATION_CACHE_DIR, else <workdir>/xla_cache; 'none' turns it "
    "off). The seeds of a dataset run the same programs, so every seed after "
    "the first skips most compiles; results are unchanged.")
config_lib.check_flags(sys.argv)  # before the config flag reads them
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(_CONFIG_DIR, "evaluate.py"),
    "Config file; override fields with --config.GROUP.FIELD=value "
    "(groups and fields: credit_nas_jax/config.py).")


def graph_name(config: config_lib.Config) -> str:
  """What the dataset's edges are."""
  if config.data.dataset == "table":
    has_edges = bool(config.data.edges_path)
  elif config.data.dataset in datasets.SPECS:
    has_edges = datasets.SPECS[config.data.dataset].edges is not None
  else:
    return "relations"  # the synthetic books
  if has_edges and config.data.use_edges:
    return "relations"
  if config.data.knn_k <= 0:
    return "isolated"
  suffix = "" if config.data.knn_graph == "inductive" else f"-{config.data.knn_graph}"
  return f"knn{config.data.knn_k}{suffix}"


def _stored_rows(path: str, described: dict) -> dict[str, dict]:
  """The rows of a stored seed file that this run keeps."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    stored = json.load(f)
  done = evaluation.reusable_rows(stored["config"], described,
                                  stored["rows"])
  if stored["config"] != described:
    logging.warning("%s holds another config; %s", path,
                    f"keeping its baselines' rows {sorted(done)}" if done
                    else "running it again")
  stale = sorted(m for m, row in done.items() if not row.get("calibration"))
  if stale:
    logging.warning("%s: rows %s were stored without a calibration; running "
                    "them again", path, stale)
  return {m: row for m, row in done.items() if m not in stale}


def _report_lines(directory: str, name: str, rows: list[dict],
                  fairness: list[dict], curves: dict[str, list]) -> list[str]:
  """Writes calibration.png and fairness.json; the results' calibration and
  fairness sections."""
  pooled = {model: tuple(np.concatenate(parts) for parts in zip(*pieces))
            for model, pieces in curves.items()}
  if pooled:
    plotting.plot_reliability(
        pooled, os.path.join(directory, "calibration.png"),
        f"{name}: test reliability after calibration "
        f"({len({r['seed'] for r in rows})} seeds pooled)")
  lines = ["", "Test calibration, mean over seeds, before -> after the map "
           "each model fitted on its validation probabilities (ECE: "
           f"{calibration_lib.BINS} equal-width bins):", "",
           evaluation.calibration_table(evaluation.calibration_frame(rows))]
  if not fairness:
    return lines
  evaluation.write_json(os.path.join(directory, "fairness.json"), fairness)
  messages = list(dict.fromkeys(m for s in fairness for m in s["messages"]))
  for message in messages:
    logging.warning("%s: %s", name, message)
  bins = fairness[0]["bins"]
  lines += ["", f"Fairness by {fairness[0]['column']!r}"
            + (f" in bins {bins}" if bins else "")
            + " on the test rows, mean over seeds; approval: a calibrated "
            "probability of good credit at or above the lowest band of "
            f"scoring.DEFAULT_BANDS ({fairness[0]['bands'][-1][1]}); TPR and "
            "FPR: the shares of good borrowers and of defaulters approved:",
            "", evaluation.fairness_table(fairness)]
  lines += [f"- {m}" for m in messages]
  return lines


def _facts_lines(facts: dict[str, dict]) -> list[str]:
  """The results' lines on what our searched models chose."""
  lines = []
  for ours, fact in facts.items():
    if fact and "member_counts" in fact:
      lines.append(f"- {ours}: members chosen on validation (seeds): " + ", "
                   .join(f"{k} {v}/{fact['seeds']}"
                         for k, v in fact["member_counts"].items()) + ".")
    elif fact:
      chosen = ("space chosen on validation: " + ", ".join(
          f"{k} {v}/{fact['seeds']}" for k, v in fact["selected_counts"]
          .items()) + "; ") if fact["selected_counts"] else ""
      kept = ", ".join(f"{k} {v}/{fact['seeds']}"
                       for k, v in fact["kept_feature_counts"].items())
      ops = ", ".join(f"{k} ({v})" for k, v in
                      fact["chosen_ops_counts"].items())
      embeddings = ", ".join(f"{k} {v}" for k, v in
                             fact["kept_embedding_counts"].items())
      lines.append(
          f"- {ours}: {chosen}features kept (seeds): {kept}; embeddings "
          f"kept (groups over seeds): {embeddings}; ops: {ops}; "
          f"pooled readout kept: {fact['pooled_readout_count']}/"
          f"{fact['seeds']}; derived "
          f"inference {fact['derived_inference_ms_median']:.2f} ms against "
          f"the supernet's {fact['supernet_inference_ms_median']:.2f} ms "
          f"per batch ({fact['inference_speedup_median']:.1f}x).")
  return lines


def evaluate_dataset(name: str, base: config_lib.Config, seeds: int,
                     models: list[str], workdir: str) -> str:
  """Every seed of one dataset; returns the markdown table."""
  directory = os.path.join(workdir, name)
  os.makedirs(directory, exist_ok=True)
  config = config_lib.replace(base, {"data.dataset": name})
  graph = graph_name(config)
  models = models or list(evaluation.default_models())
  start = time.perf_counter()
  rows, fairness, curves = [], [], {}
  for seed in range(seeds):
    seed_config = config_lib.replace(config, {"seed": seed,
                                              "data.split_seed": seed})
    described = json.loads(json.dumps(seed_config.to_dict()))
    path = os.path.join(directory, f"seed_{seed}.json")
    done = _stored_rows(path, described)
    load_start = time.perf_counter()
    dataset = evaluation.load_dataset(seed_config)
    logging.info("%s seed %d of %d: %d borrowers, %d edges, loaded in "
                 "%.1fs; %.0fs into the dataset", name, seed + 1, seeds,
                 dataset.labels.size, dataset.graph.indices.size,
                 time.perf_counter() - load_start,
                 time.perf_counter() - start)
    seed_dir = os.path.join(directory, f"seed_{seed}")
    os.makedirs(seed_dir, exist_ok=True)

    def save(row, path=path, described=described, done=done):
      done[row["model"]] = row
      evaluation.write_json(path, {"config": described,
                                   "rows": list(done.values())})

    seed_rows = evaluation.evaluate_seed(dataset, seed_config, seed, models,
                                         graph, seed_dir, done,
                                         on_result=save)
    rows += seed_rows
    report = evaluation.fairness_reports(seed_rows, dataset, seed_config)
    if report is not None:
      fairness.append({"seed": seed, **report})
    for model, curve in evaluation.reliability_curves(seed_rows,
                                                      dataset).items():
      curves.setdefault(model, []).append(curve)
    # Every seed compiles its own networks (from the persistent cache where
    # the programs repeat); dropping the in-memory ones keeps a long
    # evaluation within the process's mapped-memory limit.
    jax.clear_caches()
  # The compute of every model run, once (the selected row, added next, and
  # the ensemble row repeat searches).
  compute_minutes = evaluation.compute_seconds(rows) / 60
  rows = evaluation.select_on_validation(rows)
  frame = evaluation.results_frame(rows)
  summary = evaluation.summarize(frame)
  table = evaluation.markdown_table(summary)
  facts = {ours: evaluation.searched_facts(rows, ours)
           for ours in models + [evaluation.SELECTED]
           if ours.startswith("searched") and ours != evaluation.ONE_MEMBER}
  wall = time.perf_counter() - start
  evaluation.write_json(os.path.join(directory, "summary.json"), {
      "dataset": name, "graph": graph, "seeds": seeds,
      "machine": evaluation.machine(),
      "wall_seconds_this_run": wall,
      "model_seconds_total": 60 * compute_minutes,
      "summary": summary.reset_index().to_dict(orient="records"),
      "searched": facts})
  first = {}
  for r in rows:
    first.setdefault(r["model"], r)
  plotting.plot_roc_curves(
      {m: (r["roc"]["fpr"], r["roc"]["tpr"],
           f"{m} (AUC {summary.loc[m, 'auc_mean']:.3f})")
       for m, r in first.items()},
      os.path.join(directory, "roc.png"),
      f"{name}: test ROC, seed {min(frame.seed)} "
      f"(legend: mean AUC over {seeds} seeds)")
  lines = [f"### {name} ({graph} graph, {seeds} seeds)", "", table, ""]
  lines += _facts_lines(facts)
  control = evaluation.search_against_random(frame)
  if control:
    lines.append(control)
  lines.append(f"- models' compute: {compute_minutes:.1f} min in all on "
               f"{evaluation.machine()}.")
  lines += _report_lines(directory, name, rows, fairness, curves)
  text = "\n".join(lines) + "\n"
  with open(os.path.join(directory, "results.md"), "w") as f:
    f.write(text)
  return text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  if _OLD_OUT_DIR.value is not None:
    raise app.UsageError("--out_dir was renamed --workdir (as in "
                         "experiments/search.py)")
  unknown = sorted(set(_DATASET.value) - set(DATASETS))
  if unknown:
    raise app.UsageError(f"unknown datasets {unknown}; expected some of "
                         f"{list(DATASETS)}")
  config = config_lib.typed(_CONFIG.value)
  if "table" in _DATASET.value and not config.data.table_path:
    raise app.UsageError("--dataset=table reads --config.data.table_path: set it "
                         "(and --config.data.label_column, --config.data.bad_value)")
  unknown = sorted(set(_MODELS.value) - set(evaluation.MODELS))
  if unknown:
    raise app.UsageError(f"unknown models {unknown}; expected some of "
                         f"{list(evaluation.MODELS)}")
  if "lightgbm" in _MODELS.value and not evaluation.lightgbm_available():
    raise app.UsageError("lightgbm is not installed: pip install -e "
                         "'.[baselines]'")
  if _COMPILATION_CACHE.value == "none":
    jax.config.update("jax_enable_compilation_cache", False)
  else:
    cache = (_COMPILATION_CACHE.value
             or os.environ.get("JAX_COMPILATION_CACHE_DIR")
             or os.path.join(_WORKDIR.value, "xla_cache"))
    jax.config.update("jax_compilation_cache_dir", cache)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
      jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    logging.info("compiled programs cached in %s", cache)
  summaries, minutes = {}, {}
  for name in _DATASET.value:
    text = evaluate_dataset(name, config, _SEEDS.value,
                            list(_MODELS.value), _WORKDIR.value)
    print(text, flush=True)
    with open(os.path.join(_WORKDIR.value, name, "summary.json")) as f:
      stored = json.load(f)
    summaries[name] = pd.DataFrame(stored["summary"]).set_index("model")
    minutes[name] = stored["model_seconds_total"] / 60
  if len(summaries) > 1:
    table = evaluation.combined_table(summaries, minutes)
    with open(os.path.join(_WORKDIR.value, "all.md"), "w") as f:
      f.write(f"Test ROC AUC, mean +- std over {_SEEDS.value} seeds; "
              f"{evaluation.machine()}.\n\n{table}\n")
    print(table, flush=True)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser(_CONFIG))
