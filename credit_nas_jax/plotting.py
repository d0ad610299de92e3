"""Plots people would rather look at than read."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import pandas as pd


def plot_gate_trajectories(gates: pd.DataFrame, path: str,
                           title: str = "Architecture gates during search"
                           ) -> None:
  """One panel for the feature gates, one per GCN layer for the op gates.

  Args:
    gates: ``alphas.csv`` layout: a ``step`` column, ``feature/<name>`` and
      ``layer<k>/<op>`` columns of gate values.
    path: PNG file to write.
    title: figure title.
  """
  feature_columns = [c for c in gates.columns if c.startswith("feature/")]
  layers = sorted({c.split("/")[0] for c in gates.columns
                   if c.startswith(("layer", "readout"))})
  figure, axes = plt.subplots(1, 1 + len(layers),
                              figsize=(5 * (1 + len(layers)), 4),
                              squeeze=False)
  panels = [("features", feature_columns)] + [
      (layer, [c for c in gates.columns if c.startswith(layer + "/")])
      for layer in layers]
  for axis, (name, columns) in zip(axes[0], panels):
    for column in columns:
      axis.plot(gates["step"], gates[column], label=column.split("/", 1)[1])
    axis.set_title(f"{name} gates")
    axis.set_xlabel("search step")
    axis.set_ylabel("gate value")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
  figure.suptitle(title)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def plot_roc_curves(curves: dict[str, tuple[list[float], list[float], str]],
                    path: str, title: str) -> None:
  """ROC curves, one per model, with the chance diagonal.

  Args:
    curves: model name -> (false positive rates, true positive rates, label).
    path: PNG file to write.
    title: figure title.
  """
  figure, axis = plt.subplots(figsize=(6, 5.5))
  for fpr, tpr, label in curves.values():
    axis.plot(fpr, tpr, label=label, linewidth=1.3)
  axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
  axis.set_xlabel("false positive rate (defaulters scored good)")
  axis.set_ylabel("true positive rate (good borrowers scored good)")
  axis.set_title(title)
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8, loc="lower right")
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def plot_paired_differences(summary: pd.DataFrame, reference: str,
                            path: str, title: str) -> None:
  """Each variant's paired difference from ``reference``, a row a variant:
  validation (what a choice reads) and test, mean +- std over seeds, with
  the zero line.

  Args:
    summary: :func:`credit_nas_jax.screening.summarize`'s frame, one row a
      variant (the reference's own row, if there, is not drawn).
    reference: the variant (or baseline) the differences are paired with.
    path: PNG file to write.
    title: figure title.
  """
  rows = summary.drop(index=reference, errors="ignore")
  figure, axis = plt.subplots(figsize=(8, 1.2 + 0.4 * len(rows)))
  positions = range(len(rows))
  for split, offset, color in (("validation", -0.12, "tab:blue"),
                               ("test", 0.12, "tab:orange")):
    axis.errorbar(rows[f"{split}_diff_mean"],
                  [p + offset for p in positions],
                  xerr=rows[f"{split}_diff_std"], fmt="o", markersize=4,
                  linewidth=0.9, capsize=2, color=color, label=split)
  axis.axvline(0, color="black", linewidth=0.8)
  axis.set_yticks(list(positions), [str(name) for name in rows.index],
                  fontsize=8)
  axis.invert_yaxis()
  axis.set_xlabel(f"AUC - {reference}, paired by seed (mean +- std)")
  axis.set_title(title, fontsize=10)
  axis.grid(axis="x", alpha=0.3)
  axis.legend(fontsize=8, loc="best")
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
