"""Datasets of borrowers: encoded features, labels, graph, splits, batches.

Batches are a pure function of (seed, stream, step): the borrowers of step s
are positions s*B .. s*B+B-1 of a sequence of seeded epoch permutations, and
the neighbourhood sampling uses a generator seeded by (seed, stream, step).
A resumed run therefore sees exactly the batches it would have seen.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import jax
import jraph
import numpy as np
import pandas as pd
from sklearn import model_selection

from credit_nas_jax import features as features_lib
from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import synthetic

# Overdue degrees are sums of ratios with a long right tail; log1p tames it.
LOG_FEATURES = ("bestpay_overdue", "alipay_overdue", "bank_overdue")
SPLITS = ("train", "validation", "test")
_STREAMS = {"train": 1, "validation": 2, "test": 3, "eval": 4}


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Everything the model reads about a set of borrowers.

  Attributes:
    borrower_ids: [n] borrower ids, row order of every array below.
    node_features: [n, columns] float32 encoded features.
    labels: [n] float32, 1 = good credit (no default), 0 = default.
    graph: the relation graph over rows.
    splits: split name -> row indices.
    encoder: the fitted node encoder (training statistics).
    raw_features: the feature table before encoding (row order as above).
  """

  borrower_ids: np.ndarray
  node_features: np.ndarray
  labels: np.ndarray
  graph: graphs_lib.BorrowerGraph
  splits: dict[str, np.ndarray]
  encoder: graphs_lib.NodeEncoder
  raw_features: pd.DataFrame


def stratified_splits(labels: np.ndarray, fractions: Sequence[float],
                      seed: int) -> dict[str, np.ndarray]:
  """Seeded stratified train/validation/test row indices (disjoint, sorted)."""
  train_share, validation_share, test_share = fractions
  if min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
    raise ValueError(f"split fractions {tuple(fractions)} must be positive "
                     "and sum to 1")
  rows = np.arange(labels.shape[0])
  train, rest = model_selection.train_test_split(
      rows, train_size=train_share, stratify=labels, random_state=seed)
  validation, test = model_selection.train_test_split(
      rest, train_size=validation_share / (validation_share + test_share),
      stratify=labels[rest], random_state=seed + 1)
  return {"train": np.sort(train), "validation": np.sort(validation),
          "test": np.sort(test)}


def edges_to_rows(edges: pd.DataFrame, borrower_ids: np.ndarray,
                  source: str = "edges") -> tuple[np.ndarray, np.ndarray, int]:
  """Maps an edge table of borrower ids to row indices.

  Returns:
    (src, dst, dropped): edges whose endpoints are not in ``borrower_ids``
    are dropped and counted, never skipped silently.
  """
  for column in ("src", "dst"):
    if column not in edges.columns:
      raise ValueError(f"{source}: missing column {column!r}; expected "
                       "['src', 'dst'] (optional 'relation')")
  position = pd.Series(np.arange(borrower_ids.shape[0]), index=borrower_ids)
  src = edges["src"].map(position)
  dst = edges["dst"].map(position)
  known = src.notna().to_numpy() & dst.notna().to_numpy()
  return (src[known].to_numpy(np.int64), dst[known].to_numpy(np.int64),
          int((~known).sum()))


def dataset_from_book(book: synthetic.LendingBook, *, split_seed: int,
                      split_fractions: Sequence[float] = (0.6, 0.2, 0.2)
                      ) -> Dataset:
  """Extracts, splits and encodes a lending book (statistics from train)."""
  table = features_lib.extract_features(book.borrowers, book.loans,
                                        book.installments, as_of=book.as_of)
  borrower_ids = table.index.to_numpy()
  default = book.labels.reindex(table.index).to_numpy()
  if np.isnan(default.astype(float)).any():
    raise ValueError("labels missing for some borrowers")
  src, dst, dropped = edges_to_rows(book.edges, borrower_ids)
  if dropped:
    raise ValueError(f"{dropped} edges name unknown borrowers")
  return _patent_dataset(table, default, src, dst, split_seed,
                         split_fractions)


def dataset_from_graph_book(book: synthetic.BorrowerGraphBook, *,
                            split_seed: int,
                            split_fractions: Sequence[float] = (0.6, 0.2,
                                                                0.2)
                            ) -> Dataset:
  """Splits and encodes a feature-level book (statistics from train)."""
  return _patent_dataset(book.features, book.labels, book.src, book.dst,
                         split_seed, split_fractions)


def _patent_dataset(table: pd.DataFrame, default: np.ndarray,
                    src: np.ndarray, dst: np.ndarray, split_seed: int,
                    split_fractions: Sequence[float]) -> Dataset:
  """Splits, fits the encoder on train, encodes, and builds the graph."""
  labels = (1 - np.asarray(default)).astype(np.float32)
  splits = stratified_splits(labels, split_fractions, split_seed)
  encoder = graphs_lib.NodeEncoder.fit(
      table.iloc[splits["train"]], features_lib.FEATURE_COLUMNS, LOG_FEATURES)
  graph = graphs_lib.BorrowerGraph.from_edges(len(table), src, dst)
  return Dataset(table.index.to_numpy(), encoder.encode(table), labels, graph,
                 splits, encoder, table)


def _epoch_permutation(size: int, seed: int, stream: int,
                       epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, stream, epoch, 7]).permutation(size)


def batch_rows(rows: np.ndarray, batch_size: int, step: int, seed: int,
               stream: int) -> np.ndarray:
  """Rows of batch ``step`` in a seeded sequence of shuffled epochs."""
  size = rows.shape[0]
  positions = step * batch_size + np.arange(batch_size)
  epochs, offsets = np.divmod(positions, size)
  out = np.empty(batch_size, dtype=np.int64)
  for epoch in np.unique(epochs):
    here = epochs == epoch
    out[here] = rows[_epoch_permutation(size, seed, stream, int(epoch))[
        offsets[here]]]
  return out


@dataclasses.dataclass(frozen=True)
class BatchMaker:
  """Makes padded batches of a dataset for a fixed batch size and fanouts.

  A dataset without edges (every borrower a one-node graph) samples no
  neighbours whatever the fanouts, so its batches are padded for one node a
  graph instead of for the fanouts' worst case.
  """

  dataset: Dataset
  batch_size: int
  fanouts: tuple[int, ...]
  seed: int

  def __post_init__(self):
    if self.dataset.graph.indices.size == 0:
      object.__setattr__(self, "fanouts", (0,) * len(self.fanouts))

  @property
  def budget(self) -> graphs_lib.BatchBudget:
    return graphs_lib.BatchBudget.for_batch(self.batch_size, self.fanouts)

  def graphs_for(self, rows: np.ndarray,
                 rng: np.random.Generator) -> jraph.GraphsTuple:
    """The padded batch of the given borrower rows."""
    return graphs_lib.sample_graphs(
        self.dataset.graph, self.dataset.node_features, self.dataset.labels,
        rows, self.fanouts, rng, self.budget)

  def training_batch(self, split: str, step: int) -> jraph.GraphsTuple:
    """Batch ``step`` of the shuffled stream over ``split``."""
    stream = _STREAMS[split]
    rows = batch_rows(self.dataset.splits[split], self.batch_size, step,
                      self.seed, stream)
    return self.graphs_for(
        rows, np.random.default_rng([self.seed, stream, step]))

  def sharded_training_batch(self, split: str, step: int, num_shards: int,
                             shards: range | None = None
                             ) -> jraph.GraphsTuple:
    """Batch ``step`` of a global batch of ``num_shards`` x ``batch_size``
    borrowers, as shards stacked on a leading axis.

    Shard k holds positions k*B .. (k+1)*B - 1 of the global batch and is
    sampled with its own generator, so any process can build any shard; a
    host of a multi-host run builds only its ``shards``.
    """
    stream = _STREAMS[split]
    rows = batch_rows(self.dataset.splits[split],
                      self.batch_size * num_shards, step, self.seed, stream)
    shards = range(num_shards) if shards is None else shards
    parts = [self.graphs_for(
        rows[k * self.batch_size:(k + 1) * self.batch_size],
        np.random.default_rng([self.seed, stream, step, k])) for k in shards]
    return jax.tree.map(lambda *xs: np.stack(xs), *parts)

  def evaluation_batches(self, split: str) -> Iterator[jraph.GraphsTuple]:
    """Every borrower of ``split`` once, in order, with fixed sampling."""
    rows = self.dataset.splits[split]
    rng = np.random.default_rng([self.seed, _STREAMS["eval"],
                                 _STREAMS[split]])
    for start in range(0, rows.shape[0], self.batch_size):
      yield self.graphs_for(rows[start:start + self.batch_size], rng)
