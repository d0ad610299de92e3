"""Neighbourhood sampling on the device: batches built inside the step.

The relation graph (CSR arrays), the encoded features, the labels and the
split rows live in device arrays (:class:`GraphArrays`). A jitted function
draws each step's borrowers from seeded epoch permutations, samples their
fixed-fanout neighbourhood trees and assembles the padded ``GraphsTuple``
with exactly the layout of the host sampler in :mod:`credit_nas_jax.graphs`
(nodes in slot order, tree edges in both directions grouped by graph, one
padding graph holding the padding nodes and edges). So a search or retrain
step needs nothing from the host.

The sampling law is the host sampler's: every borrower gets a uniformly
random subset of min(degree, fanout) of its neighbours, without
replacement (Floyd's algorithm, ``fanout`` draws per row, no sort).

Device memory (int32 CSR, float32 features): 4 * (columns + 3) bytes per
borrower and 8 bytes per undirected relation edge (both directions stored).
:func:`graph_bytes` counts it; the run falls back to the host sampler when a
graph does not fit (see ``experiment.choose_sampler``).
"""

from __future__ import annotations

import math
from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np
from flax import struct

from credit_nas_jax import data as data_lib
from credit_nas_jax import graphs as graphs_lib

SPLIT_STREAMS = {"train": 1, "validation": 2, "test": 3}


class GraphArrays(struct.PyTreeNode):
  """A dataset as device arrays: graph, features, labels and split rows.

  Attributes:
    indptr: [num_borrowers + 1] int32 CSR row offsets.
    indices: [directed edges] int32 neighbour rows.
    node_features: [num_borrowers, columns] float32.
    labels: [num_borrowers] float32 (1 = good credit).
    splits: split name -> int32 rows of that split.
  """

  indptr: jax.Array
  indices: jax.Array
  node_features: jax.Array
  labels: jax.Array
  splits: dict[str, jax.Array]

  @property
  def num_borrowers(self) -> int:
    return self.labels.shape[0]


def graph_bytes(num_borrowers: int, num_directed_edges: int,
                num_columns: int) -> int:
  """Device bytes of a dataset's :class:`GraphArrays`."""
  per_borrower = 4 * (num_columns + 3)  # features, label, indptr, split row
  return num_borrowers * per_borrower + 4 * num_directed_edges


def graph_arrays(dataset: data_lib.Dataset) -> GraphArrays:
  """The dataset's arrays, ready to ``jax.device_put``."""
  if dataset.graph.indices.size >= 2**31:
    raise ValueError(f"{dataset.graph.indices.size} directed edges do not "
                     "fit int32 indices; use config.data.sampler='host'")
  return GraphArrays(
      indptr=np.asarray(dataset.graph.indptr, np.int32),
      indices=np.asarray(dataset.graph.indices, np.int32),
      node_features=np.asarray(dataset.node_features, np.float32),
      labels=np.asarray(dataset.labels, np.float32),
      splits={k: np.asarray(v, np.int32) for k, v in dataset.splits.items()})


def sample_neighbours(indptr: jax.Array, indices: jax.Array, rows: jax.Array,
                      fanout: int, key: jax.Array) -> jax.Array:
  """Up to ``fanout`` distinct uniformly chosen neighbours of every row.

  Args:
    indptr: CSR row offsets.
    indices: CSR neighbour rows.
    rows: [R] rows; -1 marks an empty slot (it gets no neighbours).
    fanout: neighbours per row.
    key: the sampling key.

  Returns:
    [R, fanout] int32 neighbour rows, -1 where a row has fewer neighbours.
  """
  valid = rows >= 0
  safe = jnp.where(valid, rows, 0)
  starts = indptr[safe]
  degree = jnp.where(valid, indptr[safe + 1] - starts, 0)
  if fanout == 0:
    return jnp.full((rows.shape[0], 0), -1, jnp.int32)
  # Floyd: for j = d - f .. d - 1 draw t in [0, j]; take t unless already
  # taken, else j. The result is a uniform f-subset of [0, d). The draws'
  # bits are a keyed integer hash of their position (two seeds from the
  # key): a fraction of threefry's cost, which dominated the sampling on a
  # CPU. The modulo's bias is below d / 2**32.
  chosen = jnp.full((rows.shape[0], fanout), -1, jnp.int32)
  seeds = jax.random.bits(key, (2,), jnp.uint32)
  position = jnp.arange(rows.shape[0] * fanout, dtype=jnp.uint32)
  bits = _mix(_mix(position, seeds[0]), seeds[1]).reshape(
      rows.shape[0], fanout)
  for slot in range(fanout):
    top = degree - fanout + slot
    draw = (bits[:, slot] % jnp.maximum(top + 1, 1).astype(jnp.uint32)
            ).astype(jnp.int32)
    taken = jnp.any(chosen == draw[:, None], axis=1)
    chosen = chosen.at[:, slot].set(jnp.where(taken, top, draw))
  every = jnp.broadcast_to(jnp.arange(fanout, dtype=jnp.int32),
                           chosen.shape)
  position = jnp.where((degree > fanout)[:, None], chosen, every)
  present = position < degree[:, None]
  flat = jnp.clip(starts[:, None] + position, 0, max(indices.shape[0] - 1, 0))
  neighbours = indices[flat] if indices.shape[0] else jnp.zeros_like(flat)
  return jnp.where(present, neighbours, -1).astype(jnp.int32)


def sample_slots(arrays: GraphArrays, seeds: jax.Array,
                 fanouts: Sequence[int], key: jax.Array) -> jax.Array:
  """[B, slots] borrower of every slot of every seed's tree, -1 if empty
  (the layout of ``graphs.sample_slots``)."""
  batch = seeds.shape[0]
  levels, width = [seeds[:, None].astype(jnp.int32)], 1
  for hop, fanout in enumerate(fanouts):
    sampled = sample_neighbours(arrays.indptr, arrays.indices,
                                levels[-1].reshape(-1), fanout,
                                jax.random.fold_in(key, hop))
    levels.append(sampled.reshape(batch, width * fanout))
    width *= fanout
  return jnp.concatenate(levels, axis=1)


def assemble_slots(node_id: jax.Array, fanouts: Sequence[int],
                   arrays: GraphArrays,
                   budget: graphs_lib.BatchBudget) -> jraph.GraphsTuple:
  """The padded batch of sampled trees, as ``graphs.pad_batch`` of
  ``graphs.assemble_slots`` would give it.

  Seeds of -1 (a short evaluation batch) must come after every real seed;
  their graphs vanish and the padding graph follows the last real one.
  """
  batch, slots = node_id.shape
  chex.assert_equal(budget.n_graph, batch + 1)
  parent = np.broadcast_to(graphs_lib.slot_parents(fanouts), (batch, slots))
  valid = (node_id >= 0).reshape(-1)
  compact = jnp.cumsum(valid) - 1
  num_real = jnp.sum(valid).astype(jnp.int32)
  # Nodes: every valid slot's borrower at its compacted position.
  target = jnp.where(valid, compact, budget.n_node)
  member = jnp.zeros(budget.n_node, jnp.int32).at[target].set(
      node_id.reshape(-1), mode="drop")
  real_node = jnp.arange(budget.n_node) < num_real
  nodes = jnp.where(real_node[:, None], arrays.node_features[member], 0.0)
  # Edges: (child, parent) then (parent, child) for every valid child slot.
  has_parent = parent.reshape(-1) >= 0
  child = valid & has_parent
  rank = jnp.cumsum(child) - 1
  num_edges = 2 * jnp.sum(child).astype(jnp.int32)
  parent_flat = (np.arange(batch)[:, None] * slots
                 + np.maximum(parent, 0)).reshape(-1)
  child_new, parent_new = compact, compact[parent_flat]
  first = jnp.where(child, 2 * rank, budget.n_edge)
  senders = jnp.full(budget.n_edge, num_real, jnp.int32)
  receivers = jnp.full(budget.n_edge, num_real, jnp.int32)
  senders = senders.at[first].set(child_new, mode="drop").at[first + 1].set(
      parent_new, mode="drop")
  receivers = receivers.at[first].set(parent_new, mode="drop").at[
      first + 1].set(child_new, mode="drop")
  counts = jnp.sum(node_id >= 0, axis=1).astype(jnp.int32)
  seeds = node_id[:, 0]
  num_seeds = jnp.sum(seeds >= 0)
  n_node = jnp.concatenate([counts, jnp.zeros(1, jnp.int32)]).at[
      num_seeds].add(budget.n_node - num_real)
  n_edge = jnp.concatenate([2 * jnp.maximum(counts - 1, 0),
                            jnp.zeros(1, jnp.int32)]).at[num_seeds].add(
                                budget.n_edge - num_edges)
  label = jnp.where(seeds >= 0, arrays.labels[jnp.maximum(seeds, 0)], 0.0)
  return jraph.GraphsTuple(
      nodes=nodes, edges=None, senders=senders, receivers=receivers,
      n_node=n_node.astype(jnp.int32), n_edge=n_edge.astype(jnp.int32),
      globals={"label": jnp.concatenate([label, jnp.zeros(1)]).astype(
                   jnp.float32),
               "borrower": jnp.concatenate(
                   [seeds, jnp.full(1, -1, jnp.int32)]).astype(jnp.int32)})


def sample_batch(arrays: GraphArrays, seeds: jax.Array,
                 fanouts: Sequence[int], key: jax.Array) -> jraph.GraphsTuple:
  """The padded batch of the seeds' sampled neighbourhood graphs."""
  budget = graphs_lib.BatchBudget.for_batch(seeds.shape[0], fanouts)
  return assemble_slots(sample_slots(arrays, seeds, fanouts, key), fanouts,
                        arrays, budget)


_FEISTEL_ROUNDS = 4


def _mix(value: jax.Array, round_key: jax.Array) -> jax.Array:
  """A 32-bit integer hash (murmur3's finaliser) of value ^ round_key."""
  x = value ^ round_key
  x = (x ^ (x >> 16)) * jnp.uint32(0x85EBCA6B)
  x = (x ^ (x >> 13)) * jnp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def permute_positions(positions: jax.Array, size: int,
                      round_keys: jax.Array) -> jax.Array:
  """A keyed pseudo-random permutation of [0, size), at ``positions``.

  A four-round Feistel network over the smallest even-bit power of two
  >= size, cycle-walked into range: each position maps in O(1), so a
  batch's rows need no sort of the whole split (a full
  ``jax.random.permutation`` of 12,000 rows costs 5 ms a step on a CPU).

  Args:
    positions: int32 offsets into the epoch, each in [0, size).
    size: the permuted range.
    round_keys: [positions..., 4] uint32 round keys (one set per epoch).
  """
  half = max(1, math.ceil(math.ceil(math.log2(max(size, 2))) / 2))
  mask = jnp.uint32((1 << half) - 1)

  def feistel(x):
    left, right = x >> half, x & mask
    for r in range(_FEISTEL_ROUNDS):
      left, right = right, left ^ (_mix(right, round_keys[..., r]) & mask)
    return (left << half) | right

  def walk(x):
    return jnp.where(x >= size, feistel(x), x)

  start = feistel(positions.astype(jnp.uint32))
  out = jax.lax.while_loop(lambda x: jnp.any(x >= size), walk, start)
  return out.astype(jnp.int32)


def batch_rows(rows: jax.Array, batch_size: int, step: jax.Array,
               key: jax.Array) -> jax.Array:
  """Rows of batch ``step`` in a keyed sequence of shuffled epochs.

  Positions step*B .. step*B+B-1 of the concatenated epochs, epoch e
  shuffled by a pseudo-random permutation keyed by ``fold_in(key, e)``
  (:func:`permute_positions`): every row once per epoch.
  """
  size = rows.shape[0]
  positions = step * batch_size + jnp.arange(batch_size)
  epochs, offsets = jnp.divmod(positions, size)
  round_keys = jax.vmap(lambda e: jax.random.bits(
      jax.random.fold_in(key, e), (_FEISTEL_ROUNDS,), jnp.uint32))(epochs)
  return rows[permute_positions(offsets, size, round_keys)]


def training_batch(arrays: GraphArrays, split: str, step: jax.Array,
                   key: jax.Array, *, batch_size: int,
                   fanouts: Sequence[int],
                   num_shards: int = 1) -> jraph.GraphsTuple:
  """Batch ``step`` of the shuffled stream over ``split``.

  With ``num_shards`` > 1, a global batch of ``num_shards`` x
  ``batch_size`` borrowers as shards stacked on a leading axis, each
  sampled with its own key (the layout ``search.batch_loss`` reads).
  """
  stream = jax.random.fold_in(key, SPLIT_STREAMS[split])
  rows = batch_rows(arrays.splits[split], batch_size * num_shards, step,
                    stream)
  step_key = jax.random.fold_in(jax.random.fold_in(stream, 1 << 20), step)
  if num_shards == 1:
    return sample_batch(arrays, rows, fanouts, step_key)
  shards = rows.reshape(num_shards, batch_size)
  return jax.vmap(lambda seeds, k: sample_batch(
      arrays, seeds, fanouts, jax.random.fold_in(step_key, k)))(
          shards, jnp.arange(num_shards))


def map_split(fn, arrays: GraphArrays, rows: jax.Array, stream: jax.Array,
              key: jax.Array, *, batch_size: int,
              fanouts: Sequence[int]) -> chex.ArrayTree:
  """``fn(batch)`` of every batch that covers ``rows`` once, in order.

  Each batch is sampled with ``fold_in`` of (key, stream) and its index
  and handed to ``fn`` inside a ``lax.map``, so only one batch is alive at
  a time; the last batch is short (seeds -1). Outputs are stacked on a
  leading batch axis. ``stream`` (a split's ``SPLIT_STREAMS`` number) is an
  array, so splits of one size share a compiled program.
  """
  count = max(1, math.ceil(rows.shape[0] / batch_size))
  padded = jnp.full(count * batch_size, -1, jnp.int32).at[
      :rows.shape[0]].set(rows).reshape(count, batch_size)
  stream = jax.random.fold_in(key, stream)
  return jax.lax.map(lambda args: fn(sample_batch(
      arrays, args[0], fanouts, jax.random.fold_in(stream, args[1]))),
                     (padded, jnp.arange(count)))
