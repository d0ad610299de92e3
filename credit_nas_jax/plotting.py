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
                   if c.startswith("layer")})
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
