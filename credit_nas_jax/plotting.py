"""Plots people would rather look at than read."""

from __future__ import annotations

from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import pandas as pd

from credit_nas_jax import calibration


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
  _finish(figure, axis, path, title, "lower right")


def plot_reliability(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     path: str, title: str) -> None:
  """A reliability diagram: observed good rate against mean prediction per
  equal-width bin (``calibration.BINS``), one line per curve, and the
  diagonal.

  Args:
    curves: label -> (labels, probabilities of good credit).
    path: PNG file to write.
    title: figure title.
  """
  figure, axis = plt.subplots(figsize=(5.5, 5.5))
  axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
  for label, (labels, scores) in curves.items():
    table = calibration.reliability_bins(labels, scores)
    full = table["count"] > 0
    ece = calibration.expected_calibration_error(labels, scores)
    axis.plot(table["mean_score"][full], table["observed"][full], marker="o",
              label=f"{label} (ECE {ece:.3f})")
  axis.set_xlabel("mean predicted probability of good credit "
                  f"({calibration.BINS} bins)")
  axis.set_ylabel("observed rate of good credit")
  axis.set_xlim(0, 1)
  axis.set_ylim(0, 1)
  _finish(figure, axis, path, title, "upper left")


def _finish(figure, axis, path: str, title: str, legend: str) -> None:
  """Title, grid and legend; writes the PNG and closes the figure."""
  axis.set_title(title)
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8, loc=legend)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
