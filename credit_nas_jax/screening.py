"""Screening settings of a searched model, paired by seed.

Each variant is the evaluation's model (search, derive on validation, the
retrain: weight decay chosen on the first member's validation AUC,
``retrain_ensemble_size`` members, their mean) under the screen's config
with some fields overridden. A retrain setting (a weight average, a longer
cap, another learning rate: :data:`credit_nas_jax.evaluation.RETRAIN_FIELDS`)
changes nothing before the derived network, so variants that differ only in
retrain fields share one search and derive per seed and retrain the same
network: their paired differences measure the setting alone, not the
search's noise. A variant that overrides a search setting (the embedding
kinds, their bins, the steps) gets its own search. Fields that change the
rows, the split or the graph (:data:`DATA_FIELDS`) are refused: every
variant of a seed reads the same borrowers.

A setting adopted into the evaluation is a choice like any other: judge it
on validation figures, on seeds whose splits are not the evaluation's
(``experiments/screen_retrain.py`` defaults to seeds 100 to 102). Test AUC
is reported beside them, read by nothing here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Sequence

import ml_collections
import numpy as np
import pandas as pd
from sklearn import metrics as sk_metrics

from credit_nas_jax import data as data_lib
from credit_nas_jax import evaluation

SPLITS = ("validation", "test")
# Fields that choose the borrowers, their split or their graph.
DATA_FIELDS = ("dataset", "seed", "split_seed", "data_dir", "data_seed",
               "table_path", "label_column", "bad_value", "id_column",
               "edges_path", "categorical_columns", "knn_k", "knn_graph",
               "use_edges", "num_borrowers", "mean_links")


def check_variants(variants: Mapping[str, Mapping[str, Any]],
                   config: ml_collections.ConfigDict | None = None) -> None:
  """Refuses an empty screen, an override of a data field and (given the
  screen's ``config``) a field the config does not have.

  Raises:
    ValueError: naming the variant and field.
  """
  if not variants:
    raise ValueError("a screen needs at least one variant (the first is the "
                     "reference the others are compared with)")
  for name, overrides in variants.items():
    if not name or not all(c.isalnum() or c in "._+-" for c in name):
      raise ValueError(f"variant {name!r}: a name of letters, digits and "
                       "'._+-' (it names the variant's probability file)")
    if not isinstance(overrides, Mapping):
      raise ValueError(f"variant {name!r}: expected an object of config "
                       f"overrides, got {overrides!r}")
    data = sorted(set(overrides) & set(DATA_FIELDS))
    if data:
      raise ValueError(f"variant {name!r}: overrides {data} change the "
                       "borrowers, their split or their graph; every variant "
                       "of a seed reads the same rows")
    if config is not None:
      unknown = sorted(set(overrides) - set(config.keys()))
      if unknown:
        raise ValueError(f"variant {name!r}: no config field {unknown}")


def search_groups(variants: Mapping[str, Mapping[str, Any]]
                  ) -> list[tuple[dict[str, Any], list[str]]]:
  """Variants grouped by their search overrides (every field outside
  :data:`evaluation.RETRAIN_FIELDS`), in order of first appearance: each
  group is one search and derive."""
  groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
  for name, overrides in variants.items():
    search = {k: v for k, v in overrides.items()
              if k not in evaluation.RETRAIN_FIELDS}
    key = json.dumps(search, sort_keys=True, default=str)
    groups.setdefault(key, (search, []))[1].append(name)
  return list(groups.values())


def screen_seed(dataset: data_lib.Dataset, config: ml_collections.ConfigDict,
                seed: int, model: str,
                variants: Mapping[str, Mapping[str, Any]], log_path: str,
                on_row: Callable[[dict], None] | None = None,
                probabilities_dir: str | None = None) -> list[dict]:
  """Searches and derives ``model`` (one of :data:`evaluation.SEARCHED`)
  on ``seed``'s split once for each group of variants with the same search
  overrides (:func:`search_groups`), then retrains the derived network
  under each variant of the group (``variants``: name -> config overrides).

  Returns:
    One row per variant, in the groups' order: seed, variant, the member
    mean's validation and test AUC, the decay chosen, each member's best and
    last step, the features kept, seconds (the variant's retrains; its
    search's apart); ``on_row`` gets each row as it finishes. With
    ``probabilities_dir``, each variant's validation and test probabilities
    go to ``<dir>/seed_<seed>_<variant>.npz`` (to study mixtures of
    variants offline).
  """
  check_variants(variants, config)
  if model not in evaluation.SEARCHED:
    raise ValueError(f"model {model!r}: expected one of "
                     f"{list(evaluation.SEARCHED)}")
  if model == "searched_isolated":
    dataset = evaluation.isolated(dataset)
  labels = {split: dataset.labels[dataset.splits[split]] for split in SPLITS}
  rows = []
  for search_overrides, names in search_groups(variants):
    search_config = ml_collections.ConfigDict(config.to_dict())
    search_config.update(search_overrides)
    start = time.perf_counter()
    searched = evaluation.search_and_derive(model, dataset, search_config,
                                            seed, log_path)
    search_seconds = time.perf_counter() - start
    rows += _retrain_variants(searched, seed, labels, search_seconds,
                              {n: variants[n] for n in names}, on_row,
                              probabilities_dir)
  return rows


def _retrain_variants(searched: evaluation.Searched, seed: int,
                      labels: Mapping[str, np.ndarray], search_seconds: float,
                      variants: Mapping[str, Mapping[str, Any]],
                      on_row: Callable[[dict], None] | None,
                      probabilities_dir: str | None) -> list[dict]:
  """One row per variant: the searched network retrained under its retrain
  overrides."""
  rows = []
  for name, overrides in variants.items():
    retrain = {k: v for k, v in overrides.items()
               if k in evaluation.RETRAIN_FIELDS}
    start = time.perf_counter()
    run, members, _ = evaluation.retrain_derived(searched, retrain)
    probabilities = evaluation.members_probabilities(run, members)
    auc = {split: float(sk_metrics.roc_auc_score(labels[split],
                                                 probabilities[split]))
           for split in SPLITS}
    if probabilities_dir is not None:
      np.savez(os.path.join(probabilities_dir, f"seed_{seed}_{name}.npz"),
               **{split: probabilities[split] for split in SPLITS})
    rows.append({
        "seed": seed, "variant": name, "validation_auc": auc["validation"],
        "test_auc": auc["test"],
        "weight_decay": float(run.config.retrain_weight_decay),
        "best_steps": [m.best_step for m in members],
        "last_steps": [m.history[-1]["step"] for m in members],
        "kept_features": list(searched.derived.kept_features),
        "chosen_ops": list(searched.derived.chosen_ops),
        "seconds": time.perf_counter() - start,
        "search_seconds": search_seconds})
    if on_row:
      on_row(rows[-1])
  return rows


def summarize(rows: Sequence[dict], reference: str) -> pd.DataFrame:
  """Per variant: mean and std of validation and test AUC over seeds, the
  paired difference from ``reference`` on each split (mean and std over
  the seeds both ran), and the mean seconds of its search and retrains."""
  frame = pd.DataFrame(rows)
  if reference not in set(frame.variant):
    raise ValueError(f"reference variant {reference!r} has no rows")
  base = frame[frame.variant == reference].set_index("seed")
  records = []
  for name, group in frame.groupby("variant", sort=False):
    group = group.set_index("seed")
    paired = group.index.intersection(base.index)
    record = {"variant": name, "seeds": len(group)}
    for split in SPLITS:
      column = f"{split}_auc"
      difference = group.loc[paired, column] - base.loc[paired, column]
      record[f"{split}_mean"] = group[column].mean()
      record[f"{split}_std"] = group[column].std(ddof=1)
      record[f"{split}_diff_mean"] = difference.mean()
      record[f"{split}_diff_std"] = difference.std(ddof=1)
    record["search_seconds"] = group["search_seconds"].mean()
    record["retrain_seconds"] = group["seconds"].mean()
    records.append(record)
  return pd.DataFrame(records).set_index("variant")


def mean_row(seed: int, variant: str,
             saved: Sequence[Mapping[str, np.ndarray]],
             labels: Mapping[str, np.ndarray]) -> dict:
  """A row like :func:`screen_seed`'s for the mean of several saved
  probabilities (split -> probabilities each): its validation and test
  AUC; it trains nothing (no seconds)."""
  auc = {split: float(sk_metrics.roc_auc_score(
      labels[split], np.mean([s[split] for s in saved], axis=0)))
         for split in SPLITS}
  return {"seed": seed, "variant": variant,
          "validation_auc": auc["validation"], "test_auc": auc["test"],
          "seconds": 0.0, "search_seconds": 0.0}


def mixture_rows(probabilities_dir: str, labels: Mapping[int, Mapping[str,
                                                                     np.ndarray]],
                 mixtures: Mapping[str, Sequence[str]]) -> list[dict]:
  """Rows like :func:`screen_seed`'s for mixtures of screened variants:
  each mixture's validation and test AUC of the mean of its variants'
  saved probabilities, per seed (``labels``: seed -> split -> labels)."""
  rows = []
  for seed, split_labels in labels.items():
    for name, members in mixtures.items():
      saved = [np.load(os.path.join(probabilities_dir,
                                    f"seed_{seed}_{m}.npz"))
               for m in members]
      rows.append(mean_row(seed, name, saved, split_labels))
  return rows


@dataclasses.dataclass
class Pool:
  """Saved probabilities of several screens on one seed.

  Attributes:
    probabilities: ``<screen dir's name>/<variant>`` -> split ->
      probabilities, every distinct variant once.
    duplicates: a variant left out -> the pooled one whose validation
      probabilities it repeats to the bit (a reference screens share: the
      runs are deterministic).
  """

  probabilities: dict[str, dict[str, np.ndarray]]
  duplicates: dict[str, str]


def pooled_probabilities(screen_dirs: Sequence[str], seed: int) -> Pool:
  """Every screened variant's saved probabilities on ``seed`` over several
  screens' workdirs (:class:`Pool`). Raises FileNotFoundError for a
  workdir without saved probabilities or without any for ``seed`` (every
  screen pooled must have run every seed), ValueError for two workdirs of
  one name."""
  names = [os.path.basename(os.path.normpath(d)) for d in screen_dirs]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"screens {repeated} are named twice; a pooled variant "
                     "is named by its screen's folder: give them distinct "
                     "folder names")
  pool = Pool({}, {})
  prefix = f"seed_{seed}_"
  for screen_dir, screen in zip(screen_dirs, names):
    directory = os.path.join(screen_dir, "probabilities")
    if not os.path.isdir(directory):
      raise FileNotFoundError(f"{directory}: no saved probabilities (a "
                              "screen_retrain.py workdir keeps them there)")
    files = sorted(f for f in os.listdir(directory)
                   if f.startswith(prefix) and f.endswith(".npz"))
    if not files:
      raise FileNotFoundError(f"{directory}: no saved probabilities of seed "
                              f"{seed}")
    for file_name in files:
      with np.load(os.path.join(directory, file_name)) as saved:
        probabilities = {split: saved[split] for split in SPLITS}
      name = f"{screen}/{file_name[len(prefix):-len('.npz')]}"
      same = [kept for kept, p in pool.probabilities.items()
              if np.array_equal(probabilities["validation"], p["validation"])]
      if same:
        pool.duplicates[name] = same[0]
      else:
        pool.probabilities[name] = probabilities
  return pool


def pool_rows(pooled: Mapping[str, Mapping[str, np.ndarray]],
              labels: Mapping[str, np.ndarray], seed: int,
              top: int) -> list[dict]:
  """Rows like :func:`mixture_rows`'s for every pooled variant alone, the
  mean of all their probabilities ("pool_all") and of the ``top`` with the
  best validation AUC ("pool_top<k>", chosen on validation alone; k is
  ``top``, or every variant where fewer are pooled); the last two rows are
  the pools."""
  if not pooled:
    raise ValueError(f"seed {seed}: no saved probabilities to pool")
  ranked = sorted(pooled, key=lambda name: -sk_metrics.roc_auc_score(
      labels["validation"], pooled[name]["validation"]))
  chosen = ranked[:top]
  return [{**mean_row(seed, variant, [pooled[n] for n in names], labels),
           "members": names}
          for variant, names in (*((name, [name]) for name in pooled),
                                 ("pool_all", ranked),
                                 (f"pool_top{len(chosen)}", chosen))]


POOL_BASELINES = ("lightgbm", "logistic_regression")


def pool_seed(dataset: data_lib.Dataset, config: ml_collections.ConfigDict,
              seed: int, pooled: Mapping[str, Mapping[str, np.ndarray]],
              top: int) -> list[dict]:
  """The baselines (:data:`POOL_BASELINES`, the evaluation's budgets in
  ``config``) fitted on ``seed``'s split of ``dataset``, then
  :func:`pool_rows` of ``pooled`` on the same rows. Raises ValueError where
  the saved probabilities do not match the split's rows."""
  labels = {split: dataset.labels[dataset.splits[split]] for split in SPLITS}
  for name, probabilities in pooled.items():
    for split in SPLITS:
      if probabilities[split].shape != labels[split].shape:
        raise ValueError(
            f"seed {seed}: {name}'s {split} probabilities "
            f"{probabilities[split].shape} do not match the split's "
            f"{labels[split].shape[0]} rows (another dataset or config?)")
  rows = []
  for result in (evaluation.fit_lightgbm(dataset, seed,
                                         evaluation.lightgbm_grid(config)),
                 evaluation.fit_logistic_regression(dataset)):
    rows.append({"seed": seed, "variant": result.model,
                 "validation_auc": result.validation_auc,
                 "test_auc": result.test["auc"], "seconds": result.seconds,
                 "search_seconds": 0.0})
  return rows + pool_rows(pooled, labels, seed, top)


def markdown_table(summary: pd.DataFrame, reference: str,
                   with_seconds: bool = True) -> str:
  """The summary as markdown: AUCs mean +- std, differences from the
  reference paired by seed (validation first: it is what a choice may
  read), and with ``with_seconds`` the search and retrain seconds."""
  def cell(mean, std):
    return f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} +- {std:.4f}"

  header = ("| variant | seeds | validation AUC | - " + reference +
            " (validation) | test AUC | - " + reference + " (test) |")
  columns = 6
  if with_seconds:
    header, columns = header + " search s | retrain s |", 8
  lines = [header, "|---" * columns + "|"]
  for name, r in summary.iterrows():
    line = (f"| {name} | {int(r.seeds)} | "
            f"{cell(r.validation_mean, r.validation_std)}"
            f" | {cell(r.validation_diff_mean, r.validation_diff_std)}"
            f" | {cell(r.test_mean, r.test_std)}"
            f" | {cell(r.test_diff_mean, r.test_diff_std)} |")
    if with_seconds:
      line += f" {r.search_seconds:.1f} | {r.retrain_seconds:.1f} |"
    lines.append(line)
  return "\n".join(lines)
