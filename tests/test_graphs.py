"""Neighbourhood sampling, batching, padding budgets and node encoding."""

import jraph
import numpy as np
import pandas as pd
import pytest

from credit_nas_jax import graphs


def _random_graph(rng, num_nodes, num_edges):
  src = rng.integers(0, num_nodes, num_edges)
  dst = rng.integers(0, num_nodes, num_edges)
  return graphs.BorrowerGraph.from_edges(num_nodes, src, dst), src, dst


def test_csr_is_symmetric_without_self_loops_or_repeats():
  graph = graphs.BorrowerGraph.from_edges(4, [0, 0, 1, 2, 3], [1, 1, 1, 0, 3])
  neighbours = {n: set(graph.indices[graph.indptr[n]:graph.indptr[n + 1]])
                for n in range(4)}
  assert neighbours == {0: {1, 2}, 1: {0}, 2: {0}, 3: set()}
  assert graph.indices.size == 4


def test_edge_outside_range_is_rejected():
  with pytest.raises(ValueError, match="outside 0..2"):
    graphs.BorrowerGraph.from_edges(3, [0], [3])


@pytest.mark.parametrize("fanout", [1, 3, 8])
def test_sampled_neighbours_are_distinct_real_neighbours(fanout):
  rng = np.random.default_rng(0)
  graph, _, _ = _random_graph(rng, 50, 150)
  rows = np.array([0, 5, -1, 7, 49])
  sampled = graphs.sample_neighbours(graph, rows, fanout, rng)
  assert sampled.shape == (5, fanout)
  for row, picks in zip(rows, sampled):
    real = picks[picks >= 0]
    if row < 0:
      assert real.size == 0
      continue
    neighbours = set(graph.indices[graph.indptr[row]:graph.indptr[row + 1]])
    assert set(real) <= neighbours
    assert len(set(real)) == real.size
    assert real.size == min(fanout, len(neighbours))
    # Real picks come first, padding after.
    assert (picks[:real.size] >= 0).all()


def test_sampling_is_uniform_over_neighbours():
  graph = graphs.BorrowerGraph.from_edges(5, [0, 0, 0, 0], [1, 2, 3, 4])
  rng = np.random.default_rng(1)
  picks = graphs.sample_neighbours(graph, np.zeros(4000, int), 1, rng)
  counts = np.bincount(picks[:, 0], minlength=5)[1:]
  assert counts.min() > 850 and counts.max() < 1150


def test_batch_holds_every_sampled_node_and_edge_once():
  rng = np.random.default_rng(2)
  graph, _, _ = _random_graph(rng, 60, 200)
  features = np.arange(60, dtype=np.float32)[:, None]
  labels = (np.arange(60) % 2).astype(np.float32)
  seeds = np.array([3, 10, 59, 0])
  budget = graphs.BatchBudget.for_batch(4, (3, 2))
  batch = graphs.sample_graphs(graph, features, labels, seeds, (3, 2), rng,
                               budget)
  assert batch.nodes.shape[0] == budget.n_node
  assert batch.senders.shape[0] == budget.n_edge
  assert batch.n_node.shape[0] == budget.n_graph
  starts = np.cumsum(batch.n_node) - batch.n_node
  edge_starts = np.cumsum(batch.n_edge) - batch.n_edge
  for g, seed in enumerate(seeds):
    assert batch.nodes[starts[g], 0] == seed  # node 0 is the borrower
    assert batch.globals["borrower"][g] == seed
    assert batch.globals["label"][g] == labels[seed]
    lo, hi = starts[g], starts[g] + batch.n_node[g]
    edges = slice(edge_starts[g], edge_starts[g] + batch.n_edge[g])
    senders, receivers = batch.senders[edges], batch.receivers[edges]
    assert ((senders >= lo) & (senders < hi)).all()
    assert ((receivers >= lo) & (receivers < hi)).all()
    # A tree in both directions: n - 1 undirected edges, each a real relation.
    assert batch.n_edge[g] == 2 * (batch.n_node[g] - 1)
    pairs = {(int(batch.nodes[s, 0]), int(batch.nodes[r, 0]))
             for s, r in zip(senders, receivers)}
    for u, v in pairs:
      assert (v, u) in pairs
      assert v in graph.indices[graph.indptr[u]:graph.indptr[u + 1]]
  mask = np.asarray(jraph.get_graph_padding_mask(batch))
  assert mask.tolist() == [True] * 4 + [False]
  assert (batch.globals["borrower"][4:] == -1).all()


def test_isolated_borrower_is_a_one_node_graph():
  graph = graphs.BorrowerGraph.from_edges(3, [0], [1])
  batch = graphs.sample_graphs(
      graph, np.ones((3, 2), np.float32), np.ones(3, np.float32),
      np.array([2]), (4, 2), np.random.default_rng(0),
      graphs.BatchBudget.for_batch(1, (4, 2)))
  assert batch.n_node[0] == 1 and batch.n_edge[0] == 0


def test_encoder_uses_training_statistics_and_flags_missing():
  train = pd.DataFrame({"grade": [1.0, 3.0, np.nan], "overdue": [0.0, 1.0,
                                                                 3.0]})
  encoder = graphs.NodeEncoder.fit(train, ["grade", "overdue"], ["overdue"])
  assert encoder.column_groups == (0, 0, 1)
  assert encoder.column_names == ("grade", "grade_missing", "overdue")
  encoded = encoder.encode(pd.DataFrame({"grade": [2.0, np.nan],
                                         "overdue": [np.e - 1, 0.0]}))
  np.testing.assert_allclose(encoded[:, 0], [0.0, 0.0])  # mean 2; NaN -> 0
  np.testing.assert_allclose(encoded[:, 1], [0.0, 1.0])
  logs = np.log1p([0.0, 1.0, 3.0])
  np.testing.assert_allclose(encoded[0, 2], (1.0 - logs.mean()) / logs.std(),
                             rtol=1e-5)
  assert graphs.NodeEncoder.from_json(encoder.to_json()) == encoder
