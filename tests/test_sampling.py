"""On-device sampling: the host sampler's layout and law, keyed batches."""

import collections

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from credit_nas_jax import data
from credit_nas_jax import graphs
from credit_nas_jax import sampling
from credit_nas_jax import synthetic


@pytest.fixture(scope="module")
def dataset():
  return data.dataset_from_book(synthetic.generate_lending_book(0, 600),
                                split_seed=0)


def _star(num_leaves: int) -> graphs.BorrowerGraph:
  """Node 0 linked to nodes 1..num_leaves."""
  leaves = np.arange(1, num_leaves + 1)
  return graphs.BorrowerGraph.from_edges(num_leaves + 1, np.zeros_like(leaves),
                                         leaves)


@pytest.mark.parametrize("fanouts,real_seeds", [((4, 2), 16), ((4, 2), 9),
                                                ((3,), 16), ((0, 0), 16)])
def test_device_batch_equals_the_host_layout(dataset, fanouts, real_seeds):
  rng = np.random.default_rng(1)
  seeds = dataset.splits["train"][:real_seeds]
  node_id = graphs.sample_slots(dataset.graph, seeds, fanouts, rng)
  budget = graphs.BatchBudget.for_batch(16, fanouts)
  host = graphs.pad_batch(graphs.assemble_slots(
      node_id, fanouts, dataset.node_features, dataset.labels), budget)
  # A short batch: seeds -1 after the real ones, as an evaluation pads it.
  padded = np.full((16, node_id.shape[1]), -1)
  padded[:real_seeds] = node_id
  arrays = jax.device_put(sampling.graph_arrays(dataset))
  device = jax.jit(sampling.assemble_slots, static_argnums=(1, 3))(
      jnp.asarray(padded, jnp.int32), fanouts, arrays, budget)
  for name, want, got in zip(host._fields, host, device):
    chex.assert_trees_all_equal(
        jax.tree.map(lambda x: np.asarray(x, np.float64), want),
        jax.tree.map(lambda x: np.asarray(x, np.float64), got),
        custom_message=name)


@pytest.mark.parametrize("degree,fanout", [(7, 3), (5, 5), (3, 6), (12, 1)])
def test_neighbour_law_is_uniform_without_replacement(degree, fanout):
  graph = _star(degree)
  arrays = sampling.GraphArrays(
      indptr=jnp.asarray(graph.indptr, jnp.int32),
      indices=jnp.asarray(graph.indices, jnp.int32),
      node_features=jnp.zeros((degree + 1, 1)), labels=jnp.zeros(degree + 1),
      splits={})
  draws = 4000
  sampled = jax.jit(sampling.sample_neighbours, static_argnums=3)(
      arrays.indptr, arrays.indices, jnp.zeros(draws, jnp.int32), fanout,
      jax.random.key(0))
  sampled = np.asarray(sampled)
  taken = min(degree, fanout)
  assert (sampled[:, taken:] == -1).all()
  chosen = sampled[:, :taken]
  # Without replacement: distinct neighbours in every row.
  assert all(len(set(row)) == taken for row in chosen)
  # Every neighbour with probability taken / degree (4 standard errors).
  counts = collections.Counter(chosen.reshape(-1).tolist())
  assert set(counts) == set(range(1, degree + 1))
  share = taken / degree
  spread = 4 * np.sqrt(share * (1 - share) / draws)
  for leaf in range(1, degree + 1):
    assert abs(counts[leaf] / draws - share) <= spread + 1e-9, counts
  # Pairs as often as a uniform subset gives them.
  if taken == 2:
    pairs = collections.Counter(tuple(sorted(r)) for r in chosen.tolist())
    expected = draws / (degree * (degree - 1) / 2)
    assert max(pairs.values()) < expected + 5 * np.sqrt(expected)


def test_host_and_device_samplers_share_the_law(dataset):
  """The two samplers draw a node's neighbours equally often."""
  row = int(np.argmax(dataset.graph.degree))
  degree = int(dataset.graph.degree[row])
  fanout = max(1, degree // 2)
  draws = 3000
  host = graphs.sample_neighbours(dataset.graph, np.full(draws, row), fanout,
                                  np.random.default_rng(0))
  arrays = jax.device_put(sampling.graph_arrays(dataset))
  device = np.asarray(sampling.sample_neighbours(
      arrays.indptr, arrays.indices, jnp.full(draws, row, jnp.int32), fanout,
      jax.random.key(0)))
  host_share = np.bincount(host.reshape(-1), minlength=600) / draws
  device_share = np.bincount(device.reshape(-1), minlength=600) / draws
  share = fanout / degree
  assert np.abs(host_share - device_share).max() < 6 * np.sqrt(
      2 * share * (1 - share) / draws)


@pytest.mark.parametrize("size,batch", [(1, 1), (7, 3), (100, 30),
                                        (10, 25)])
def test_batch_rows_visit_every_row_once_an_epoch(size, batch):
  rows = jnp.arange(size, dtype=jnp.int32) * 5
  key = jax.random.key(3)
  steps = size * 3
  drawn = np.concatenate([
      np.asarray(sampling.batch_rows(rows, batch, jnp.int32(s), key))
      for s in range(steps)])
  for epoch in range(steps * batch // size):
    visited = np.sort(drawn[epoch * size:(epoch + 1) * size])
    np.testing.assert_array_equal(visited, np.asarray(rows))
  # A pure function of (key, step): drawn again, the same rows.
  np.testing.assert_array_equal(
      np.asarray(sampling.batch_rows(rows, batch, jnp.int32(2), key)),
      drawn[2 * batch:3 * batch])


def test_training_batches_are_keyed_by_step(dataset):
  arrays = jax.device_put(sampling.graph_arrays(dataset))
  fetch = jax.jit(sampling.training_batch,
                  static_argnames=("split", "batch_size", "fanouts",
                                   "num_shards"))
  kwargs = dict(split="train", key=jax.random.key(0), batch_size=8,
                fanouts=(3, 2))
  first = fetch(arrays, step=jnp.int32(4), **kwargs)
  again = fetch(arrays, step=jnp.int32(4), **kwargs)
  other = fetch(arrays, step=jnp.int32(5), **kwargs)
  chex.assert_trees_all_equal(first, again)
  assert not np.array_equal(first.globals["borrower"],
                            other.globals["borrower"])
  seeds = np.asarray(first.globals["borrower"][:8])
  assert set(seeds) <= set(dataset.splits["train"].tolist())
  np.testing.assert_array_equal(np.asarray(first.globals["label"][:8]),
                                dataset.labels[seeds])
  stacked = fetch(arrays, step=jnp.int32(4), num_shards=2, **kwargs)
  assert stacked.nodes.shape == (2,) + first.nodes.shape


def test_split_batches_cover_the_split_once_in_order(dataset):
  arrays = jax.device_put(sampling.graph_arrays(dataset))
  rows = arrays.splits["validation"]
  seeds = sampling.map_split(lambda g: g.globals["borrower"][:32], arrays,
                             rows, jnp.int32(2), jax.random.key(0),
                             batch_size=32, fanouts=(3, 2))
  seeds = np.asarray(seeds).reshape(-1)
  np.testing.assert_array_equal(seeds[:rows.shape[0]], np.asarray(rows))
  assert (seeds[rows.shape[0]:] == -1).all()


def test_graph_bytes_counts_both_edge_directions():
  assert sampling.graph_bytes(1000, 2 * 5000, 7) == 1000 * 4 * 10 + 8 * 5000
