"""Borrower graphs for jraph: node encoding, neighbourhood sampling, batches.

Each borrower is scored from a graph around it: the borrower is node 0, then
up to ``fanouts[0]`` sampled neighbours, then up to ``fanouts[1]`` sampled
neighbours of each of those, and so on. The sampled tree's edges are the
graph's edges, in both directions. Graphs are batched into one
``jraph.GraphsTuple`` padded to fixed node, edge and graph budgets so that a
jitted step compiles once.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jraph
import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class NodeEncoder:
  """Turns a feature table into model input columns, with training statistics.

  Every feature is one gate group. A numeric feature becomes a standardised
  column (after ``log1p`` when ``log_transform``); a feature that may be
  missing also gets a 0/1 missing-flag column in the same group, and its
  missing value is encoded as 0 (the training mean). A categorical feature
  becomes one-hot columns, one per category seen in training (an unseen or
  missing value is all zeros), all in its group. Statistics and categories
  come from the training rows alone.

  Attributes:
    features: feature (group) names, in order.
    mean: per-feature mean of the (transformed) training values.
    std: per-feature standard deviation (1 where it is 0).
    log_transform: per-feature flag for ``log1p`` before standardising.
    missing_flag: per-feature flag for an extra missing-value column.
    categories: per feature, its training categories (a categorical
      feature) or an empty tuple (a numeric one); empty for all-numeric.
  """

  features: tuple[str, ...]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  log_transform: tuple[bool, ...]
  missing_flag: tuple[bool, ...]
  categories: tuple[tuple[str, ...], ...] = ()

  def _categories_of(self, index: int) -> tuple[str, ...]:
    return self.categories[index] if self.categories else ()

  @classmethod
  def fit(cls, table: pd.DataFrame, features: Sequence[str],
          log_features: Sequence[str] = (),
          categorical: Sequence[str] = ()) -> "NodeEncoder":
    """Fits the statistics on ``table`` (the training rows)."""
    mean, std, log_transform, missing_flag, categories = [], [], [], [], []
    for name in features:
      if name in categorical:
        seen = table[name].dropna().astype(str).unique()
        categories.append(tuple(sorted(seen)))
        mean.append(0.0)
        std.append(1.0)
        log_transform.append(False)
        missing_flag.append(False)
        continue
      categories.append(())
      values = table[name].to_numpy(dtype=float)
      use_log = name in log_features
      if use_log:
        values = np.log1p(np.clip(values, 0, None))
      finite = values[np.isfinite(values)]
      mean.append(float(finite.mean()) if finite.size else 0.0)
      spread = float(finite.std()) if finite.size else 0.0
      std.append(spread if spread > 0 else 1.0)
      log_transform.append(use_log)
      missing_flag.append(bool(np.isnan(table[name].to_numpy(float)).any()))
    return cls(tuple(features), tuple(mean), tuple(std), tuple(log_transform),
               tuple(missing_flag),
               tuple(categories) if any(categories) else ())

  @property
  def column_groups(self) -> tuple[int, ...]:
    """The gate group of every encoded column."""
    groups = []
    for index, flag in enumerate(self.missing_flag):
      width = len(self._categories_of(index)) or (2 if flag else 1)
      groups.extend([index] * width)
    return tuple(groups)

  @property
  def column_names(self) -> tuple[str, ...]:
    names = []
    for index, (name, flag) in enumerate(zip(self.features,
                                             self.missing_flag)):
      categories = self._categories_of(index)
      if categories:
        names.extend(f"{name}={c}" for c in categories)
      else:
        names.extend([name, f"{name}_missing"] if flag else [name])
    return tuple(names)

  def encode(self, table: pd.DataFrame) -> np.ndarray:
    """Encodes ``table`` into a float32 array [rows, columns]."""
    columns = []
    for index, (name, mean, std, use_log, flag) in enumerate(zip(
        self.features, self.mean, self.std, self.log_transform,
        self.missing_flag)):
      categories = self._categories_of(index)
      if categories:
        text = table[name].astype(str).where(table[name].notna(), None)
        columns.extend((text == c).to_numpy(dtype=float) for c in categories)
        continue
      values = table[name].to_numpy(dtype=float)
      if use_log:
        values = np.log1p(np.clip(values, 0, None))
      missing = np.isnan(values)
      columns.append(np.where(missing, 0.0, (values - mean) / std))
      if flag:
        columns.append(missing.astype(float))
    return np.stack(columns, axis=1).astype(np.float32)

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: dict) -> "NodeEncoder":
    values = {k: tuple(v) for k, v in data.items()}
    if "categories" in values:
      values["categories"] = tuple(tuple(c) for c in values["categories"])
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class BorrowerGraph:
  """An undirected relation graph in compressed sparse row form.

  Attributes:
    indptr: [num_nodes + 1] row offsets.
    indices: neighbour ids, each undirected edge stored in both rows.
  """

  indptr: np.ndarray
  indices: np.ndarray

  @property
  def num_nodes(self) -> int:
    return self.indptr.shape[0] - 1

  @property
  def degree(self) -> np.ndarray:
    return np.diff(self.indptr)

  @classmethod
  def from_edges(cls, num_nodes: int, src: np.ndarray,
                 dst: np.ndarray) -> "BorrowerGraph":
    """Builds the graph from an edge list; drops self loops and repeats."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    if src.size and (min(src.min(), dst.min()) < 0
                     or max(src.max(), dst.max()) >= num_nodes):
      raise ValueError(f"edge endpoint outside 0..{num_nodes - 1}")
    keep = src != dst
    src, dst = src[keep], dst[keep]
    # One int64 key per directed edge: a 1-d unique sorts by row, then
    # column, far faster than a row-wise unique on millions of edges.
    keys = np.unique(np.concatenate([src * num_nodes + dst,
                                     dst * num_nodes + src]))
    rows, columns = np.divmod(keys, num_nodes)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num_nodes), out=indptr[1:])
    return cls(indptr, columns.astype(np.int64))


def sample_neighbours(graph: BorrowerGraph, rows: np.ndarray, fanout: int,
                      rng: np.random.Generator) -> np.ndarray:
  """Samples up to ``fanout`` distinct neighbours of each row, no Python loop.

  Args:
    graph: the relation graph.
    rows: [R] node ids; -1 marks an empty slot (it gets no neighbours).
    fanout: neighbours per row.
    rng: numpy generator.

  Returns:
    [R, fanout] neighbour ids, -1 where a row has fewer neighbours.
  """
  rows = np.asarray(rows, dtype=np.int64)
  valid = rows >= 0
  safe = np.where(valid, rows, 0)
  starts = graph.indptr[safe]
  lengths = np.where(valid, graph.indptr[safe + 1] - starts, 0)
  out = np.full((rows.shape[0], fanout), -1, dtype=np.int64)
  total = int(lengths.sum())
  if total == 0 or fanout == 0:
    return out
  owner = np.repeat(np.arange(rows.shape[0]), lengths)
  offset = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  candidates = graph.indices[np.repeat(starts, lengths) + offset]
  # A random key per candidate: the `fanout` smallest keys of a row are a
  # uniform sample without replacement.
  order = np.lexsort((rng.random(total), owner))
  owner, candidates = owner[order], candidates[order]
  rank = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  take = rank < fanout
  out[owner[take], rank[take]] = candidates[take]
  return out


@dataclasses.dataclass(frozen=True)
class BatchBudget:
  """Fixed sizes a batch is padded to."""

  n_node: int
  n_edge: int
  n_graph: int

  @classmethod
  def for_batch(cls, batch_size: int,
                fanouts: Sequence[int]) -> "BatchBudget":
    """The exact worst case of ``batch_size`` sampled graphs, plus padding."""
    slots = graph_slots(fanouts)
    return cls(n_node=batch_size * slots + 1,
               n_edge=2 * batch_size * (slots - 1),
               n_graph=batch_size + 1)


def graph_slots(fanouts: Sequence[int]) -> int:
  """Most nodes one sampled graph can have: 1 + f1 + f1 f2 + ..."""
  slots, width = 1, 1
  for fanout in fanouts:
    width *= fanout
    slots += width
  return slots


def sample_graphs(graph: BorrowerGraph, node_features: np.ndarray,
                  labels: np.ndarray, seeds: np.ndarray,
                  fanouts: Sequence[int], rng: np.random.Generator,
                  budget: BatchBudget) -> jraph.GraphsTuple:
  """Samples the neighbourhood graph of every seed and pads the batch."""
  return pad_batch(sample_unpadded(graph, node_features, labels, seeds,
                                   fanouts, rng), budget)


def pad_batch(graphs: jraph.GraphsTuple,
              budget: BatchBudget) -> jraph.GraphsTuple:
  """Pads a batch of sampled graphs; padding graphs get borrower -1."""
  batch = graphs.n_node.shape[0]
  padded = jraph.pad_with_graphs(graphs, budget.n_node, budget.n_edge,
                                 budget.n_graph)
  padded.globals["borrower"][batch:] = -1
  return padded


def slot_parents(fanouts: Sequence[int]) -> np.ndarray:
  """Slot of every slot's parent in a sampled graph (-1 for the root)."""
  parents, width, offset = [np.full(1, -1)], 1, 0
  for fanout in fanouts:
    parents.append(offset + np.repeat(np.arange(width), fanout))
    offset += width
    width *= fanout
  return np.concatenate(parents).astype(np.int32)


def sample_slots(graph: BorrowerGraph, seeds: np.ndarray,
                 fanouts: Sequence[int],
                 rng: np.random.Generator) -> np.ndarray:
  """Borrower in every slot of every seed's sampled tree, -1 where empty.

  Slot 0 is the seed, then its ``fanouts[0]`` sampled neighbours, then
  ``fanouts[1]`` of each of those, and so on (see :func:`slot_parents`).

  Returns:
    [B, graph_slots(fanouts)] int64 borrower rows.
  """
  seeds = np.asarray(seeds, dtype=np.int64)
  batch = seeds.shape[0]
  levels, width = [seeds[:, None]], 1
  for fanout in fanouts:
    sampled = sample_neighbours(graph, levels[-1].reshape(-1), fanout, rng)
    levels.append(sampled.reshape(batch, width * fanout))
    width *= fanout
  return np.concatenate(levels, axis=1)


def assemble_slots(node_id: np.ndarray, fanouts: Sequence[int],
                   node_features: np.ndarray,
                   labels: np.ndarray) -> jraph.GraphsTuple:
  """The unpadded batch of sampled trees: empty slots dropped, every tree
  edge in both directions, grouped by graph in slot order.

  ``globals`` holds ``label`` and ``borrower`` (the seed's row). Seeds are
  ``node_id[:, 0]`` and must all be real borrowers.
  """
  batch, slots = node_id.shape
  seeds = node_id[:, 0]
  parent = np.broadcast_to(slot_parents(fanouts), (batch, slots))
  valid = node_id >= 0
  flat_valid = valid.reshape(-1)
  compact = np.cumsum(flat_valid) - 1  # new index of every valid slot
  slot_base = np.arange(batch)[:, None] * slots
  child = np.flatnonzero(flat_valid & (parent.reshape(-1) >= 0))
  parent_flat = (slot_base + np.maximum(parent, 0)).reshape(-1)[child]
  child_new, parent_new = compact[child], compact[parent_flat]
  # Both directions, kept per graph in order so edges stay grouped by graph.
  senders = np.stack([child_new, parent_new], 1).reshape(-1)
  receivers = np.stack([parent_new, child_new], 1).reshape(-1)
  n_node = valid.sum(1).astype(np.int32)
  members = node_id.reshape(-1)[flat_valid]
  return jraph.GraphsTuple(
      nodes=node_features[members],
      edges=None,
      senders=senders.astype(np.int32),
      receivers=receivers.astype(np.int32),
      n_node=n_node,
      n_edge=(2 * (n_node - 1)).astype(np.int32),
      globals={"label": labels[seeds].astype(np.float32),
               "borrower": seeds.astype(np.int32)},
  )


def sample_unpadded(graph: BorrowerGraph, node_features: np.ndarray,
                    labels: np.ndarray, seeds: np.ndarray,
                    fanouts: Sequence[int],
                    rng: np.random.Generator) -> jraph.GraphsTuple:
  """Samples the neighbourhood graph of every seed, without padding.

  Args:
    graph: the relation graph over all borrowers.
    node_features: [num_borrowers, columns] encoded features.
    labels: [num_borrowers] float labels (1 = good credit).
    seeds: [B] borrowers to score, each the node 0 of its graph.
    fanouts: neighbours sampled per hop.
    rng: numpy generator for the sampling.

  Returns:
    A GraphsTuple; ``globals`` holds ``label`` and ``borrower`` (the seed's
    row).
  """
  return assemble_slots(sample_slots(graph, seeds, fanouts, rng), fanouts,
                        node_features, labels)
