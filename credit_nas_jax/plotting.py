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
