"""Screening retrain settings: one search per seed, several retrains of it.

A retrain setting (a weight average, a longer cap, another learning rate)
changes nothing before the derived network, so a screen searches and
derives once per seed and retrains the same network under each variant:
the paired differences then measure the setting alone, not the search's
noise. Each variant is the evaluation's retrain (weight decay chosen on the
first member's validation AUC, ``retrain_ensemble_size`` members, their
mean) under the search's config with a few retrain fields overridden
(:data:`credit_nas_jax.evaluation.RETRAIN_FIELDS`).

A setting adopted into the evaluation is a choice like any other: judge it
on validation figures, on seeds whose splits are not the evaluation's
(``experiments/screen_retrain.py`` defaults to seeds 100 to 102). Test AUC
is reported beside them, read by nothing here.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import ml_collections
import numpy as np
import pandas as pd
from sklearn import metrics as sk_metrics

from credit_nas_jax import data as data_lib
from credit_nas_jax import evaluation

SPLITS = ("validation", "test")


def check_variants(variants: Mapping[str, Mapping[str, Any]]) -> None:
  """Refuses an empty screen and an override of a non-retrain field.

  Raises:
    ValueError: naming the variant and field.
  """
  if not variants:
    raise ValueError("a screen needs at least one variant (the first is the "
                     "reference the others are compared with)")
  for name, overrides in variants.items():
    if not isinstance(overrides, Mapping):
      raise ValueError(f"variant {name!r}: expected an object of config "
                       f"overrides, got {overrides!r}")
    try:
      evaluation.check_retrain_overrides(overrides)
    except ValueError as error:
      raise ValueError(f"variant {name!r}: {error}") from None


def screen_seed(dataset: data_lib.Dataset, config: ml_collections.ConfigDict,
                seed: int, model: str,
                variants: Mapping[str, Mapping[str, Any]], log_path: str,
                on_row: Callable[[dict], None] | None = None) -> list[dict]:
  """Searches and derives ``model`` (one of :data:`evaluation.SEARCHED`)
  once on ``seed``'s split, then retrains the derived network under each
  variant (``variants``: name -> retrain overrides).

  Returns:
    One row per variant: seed, variant, the member mean's validation and
    test AUC, the decay chosen, each member's best and last step, seconds
    (the variant's retrains; the search's apart); ``on_row`` gets each row
    as it finishes.
  """
  check_variants(variants)
  if model not in evaluation.SEARCHED:
    raise ValueError(f"model {model!r}: expected one of "
                     f"{list(evaluation.SEARCHED)}")
  if model == "searched_isolated":
    dataset = evaluation.isolated(dataset)
  start = time.perf_counter()
  searched = evaluation.search_and_derive(model, dataset, config, seed,
                                          log_path)
  search_seconds = time.perf_counter() - start
  labels = {split: dataset.labels[dataset.splits[split]] for split in SPLITS}
  rows = []
  for name, overrides in variants.items():
    start = time.perf_counter()
    run, retrained, _ = evaluation.retrain_derived(searched, overrides)
    probabilities = evaluation.members_probabilities(
        run, retrained, searched.derived.arch)
    auc = {split: float(sk_metrics.roc_auc_score(labels[split],
                                                 probabilities[split]))
           for split in SPLITS}
    rows.append({
        "seed": seed, "variant": name, "validation_auc": auc["validation"],
        "test_auc": auc["test"],
        "weight_decay": float(run.config.retrain_weight_decay),
        "best_steps": [max(h, key=lambda r: r["val_auc"])["step"]
                       for _, h in retrained],
        "last_steps": [h[-1]["step"] for _, h in retrained],
        "seconds": time.perf_counter() - start,
        "search_seconds": search_seconds})
    if on_row:
      on_row(rows[-1])
  return rows


def summarize(rows: Sequence[dict], reference: str) -> pd.DataFrame:
  """Per variant: mean and std of validation and test AUC over seeds, the
  paired difference from ``reference`` on each split (mean and std over
  the seeds both ran), and the mean seconds of its retrains."""
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
    record["retrain_seconds"] = group["seconds"].mean()
    records.append(record)
  return pd.DataFrame(records).set_index("variant")


def markdown_table(summary: pd.DataFrame, reference: str) -> str:
  """The summary as markdown: AUCs mean +- std, differences from the
  reference paired by seed (validation first: it is what a choice may
  read)."""
  def cell(mean, std):
    return f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} +- {std:.4f}"

  lines = ["| variant | seeds | validation AUC | - " + reference +
           " (validation) | test AUC | - " + reference +
           " (test) | retrain s |", "|---" * 7 + "|"]
  for name, r in summary.iterrows():
    lines.append(
        f"| {name} | {int(r.seeds)} | {cell(r.validation_mean, r.validation_std)}"
        f" | {cell(r.validation_diff_mean, r.validation_diff_std)}"
        f" | {cell(r.test_mean, r.test_std)}"
        f" | {cell(r.test_diff_mean, r.test_diff_std)}"
        f" | {r.retrain_seconds:.1f} |")
  return "\n".join(lines)
