"""The supernet's pure functions against numpy references, and padding."""

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from credit_nas_jax import graphs
from credit_nas_jax import model

GROUPS = (0, 0, 1, 2, 2, 3, 4)
NAMES = ("f0", "f1", "f2", "f3", "f4")


def _arch(gate_function="sigmoid", hidden_dim=8):
  return model.supernet_architecture(GROUPS, NAMES, hidden_dim=hidden_dim,
                                     op_ratios=(4, 2, 1),
                                     gate_function=gate_function)


def _graph(n_node, senders, receivers, seed=0):
  rng = np.random.default_rng(seed)
  return jraph.GraphsTuple(
      nodes=rng.normal(size=(n_node, len(GROUPS))).astype(np.float32),
      edges=None, senders=np.asarray(senders, np.int32),
      receivers=np.asarray(receivers, np.int32),
      n_node=np.array([n_node], np.int32),
      n_edge=np.array([len(senders)], np.int32),
      globals={"label": np.ones(1, np.float32),
               "borrower": np.zeros(1, np.int32)})


def _undirected(pairs):
  senders = [u for u, v in pairs] + [v for u, v in pairs]
  receivers = [v for u, v in pairs] + [u for u, v in pairs]
  return senders, receivers


GRAPHS = {
    "one_node": _graph(1, [], []),
    "no_edges": _graph(4, [], [], seed=1),
    "star": _graph(5, *_undirected([(0, 1), (0, 2), (0, 3), (3, 4)]), seed=2),
    "path": _graph(6, *_undirected([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
                   seed=3),
}


def _pad(graph, extra_nodes=3, extra_graphs=2):
  return jraph.pad_with_graphs(graph, int(graph.n_node.sum()) + extra_nodes,
                               int(graph.n_edge.sum()) + 4,
                               graph.n_node.shape[0] + extra_graphs)


def test_gates_start_near_one_half():
  _, alphas = model.init(jax.random.key(0), _arch())
  gates = model.gate_values(alphas, "sigmoid")
  chex.assert_trees_all_close(gates["features"], jnp.full((5,), 0.5),
                              atol=1e-4)
  chex.assert_trees_all_close(gates["ops"], jnp.full((2, 3), 0.5), atol=1e-4)
  assert float(jnp.abs(alphas["features"]).max()) > 0  # random, not zeros


def test_unknown_gate_function_is_named():
  with pytest.raises(ValueError, match="unknown gate function 'relu'"):
    _arch(gate_function="relu")


@pytest.mark.highest_matmul_precision
def test_feature_gate_equals_per_feature_linear_layers():
  rng = np.random.default_rng(0)
  weights, _ = model.init(jax.random.key(1), _arch())
  params = jax.tree.map(np.asarray, weights["feature_embed"])
  params["b"] = rng.normal(size=params["b"].shape)
  gates = rng.uniform(size=5)
  x = rng.normal(size=(7, len(GROUPS)))
  expected = sum(
      gates[g] * (x[:, np.array(GROUPS) == g]
                  @ params["w"][np.array(GROUPS) == g] + params["b"][g])
      for g in range(5))
  got = model.feature_gate(params, jnp.asarray(gates), jnp.asarray(x), GROUPS)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_gcn_aggregate_equals_dense_normalised_adjacency(name):
  graph = GRAPHS[name]
  n = graph.nodes.shape[0]
  adjacency = np.eye(n)
  for s, r in zip(graph.senders, graph.receivers):
    adjacency[r, s] += 1
  degree = adjacency.sum(1)
  expected = (adjacency / np.sqrt(degree)[:, None] / np.sqrt(degree)[None, :]
              ) @ graph.nodes
  got = model.gcn_aggregate(jnp.asarray(graph.nodes), graph)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.highest_matmul_precision
def test_fused_mixop_equals_separate_ops():
  rng = np.random.default_rng(1)
  weights, _ = model.init(jax.random.key(2), _arch())
  params = jax.tree.map(np.asarray, weights["gcn"][0])
  params["b1"] = rng.normal(size=params["b1"].shape)
  params["b2"] = rng.normal(size=params["b2"].shape)
  gates = rng.uniform(size=3)
  graph = GRAPHS["star"]
  h = rng.normal(size=(5, 8))
  aggregated = np.asarray(model.gcn_aggregate(jnp.asarray(h), graph))
  widths = (32, 16, 8)
  bounds = np.cumsum((0,) + widths)
  expected = 0
  for j in range(3):
    cols = slice(bounds[j], bounds[j + 1])
    hidden = np.maximum(aggregated @ params["w1"][:, cols] + params["b1"][cols],
                        0)
    expected = expected + gates[j] * (hidden @ params["w2"][cols]
                                      + params["b2"][j])
  got = model.gcn_mixop(params, jnp.asarray(gates), jnp.asarray(h), graph,
                        widths)
  np.testing.assert_allclose(got, np.maximum(expected, 0), rtol=1e-4,
                             atol=1e-5)


def test_readout_is_own_mean_max_and_ignores_padding():
  graph = _pad(GRAPHS["path"])
  h = np.abs(np.random.default_rng(2).normal(size=(graph.nodes.shape[0], 3)))
  h[6:] = 1e6  # padding nodes must not leak
  readout = np.asarray(model.graph_readout(jnp.asarray(h), graph))
  np.testing.assert_allclose(readout[0], np.concatenate(
      [h[0], h[:6].mean(0), h[:6].max(0)]), rtol=1e-6)
  np.testing.assert_array_equal(readout[2], np.zeros(9))  # empty graph


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("use_jit", [True, False])
@pytest.mark.parametrize("gate_function", ["sigmoid", "softmax"])
def test_score_does_not_depend_on_batch_mates_or_padding(gate_function,
                                                        use_jit):
  arch = _arch(gate_function)
  weights, alphas = model.init(jax.random.key(3), arch)
  alphas = jax.tree.map(lambda a: a + 0.3, alphas)

  def run(graph):
    return model.apply(weights, alphas, graph, arch)

  run = jax.jit(run) if use_jit else run
  alone = {k: float(run(_pad(g))[0]) for k, g in GRAPHS.items()}
  together = jraph.batch([GRAPHS[k] for k in sorted(GRAPHS)])
  for extra_nodes in (1, 17):
    batched = np.asarray(run(_pad(together, extra_nodes, 3)))
    for i, k in enumerate(sorted(GRAPHS)):
      assert batched[i] == pytest.approx(alone[k], rel=1e-5, abs=1e-6)
    assert np.isfinite(batched).all()


@pytest.mark.highest_matmul_precision
def test_jit_equals_no_jit():
  arch = _arch()
  weights, alphas = model.init(jax.random.key(4), arch)
  batch = _pad(jraph.batch(list(GRAPHS.values())))
  eager = model.apply(weights, alphas, batch, arch)
  jitted = jax.jit(model.apply, static_argnames="arch")(weights, alphas, batch,
                                                        arch=arch)
  chex.assert_trees_all_close(eager, jitted, rtol=1e-5, atol=1e-6)


def test_all_padding_but_one_graph():
  arch = _arch()
  weights, alphas = model.init(jax.random.key(5), arch)
  batch = _pad(GRAPHS["one_node"], extra_nodes=40, extra_graphs=30)
  logits = model.apply(weights, alphas, batch, arch)
  chex.assert_shape(logits, (31,))
  chex.assert_tree_all_finite(logits)
  loss = model.masked_bce(logits, batch)
  expected = np.log1p(np.exp(-float(logits[0])))  # label 1
  assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.highest_matmul_precision
def test_derived_network_reads_only_kept_columns():
  arch = model.Architecture(
      column_groups=(0, 1), input_columns=(2, 5), group_names=("f1", "f3"),
      layer_ops=((8,), (32,)), layer_op_names=(("small",), ("big",)),
      hidden_dim=8, searchable=False)
  weights, alphas = model.init(jax.random.key(6), arch)
  assert alphas == {}
  chex.assert_shape(weights["feature_embed"]["w"], (2, 8))
  batch = _pad(GRAPHS["star"])
  base = model.apply(weights, {}, batch, arch)
  changed = batch._replace(nodes=batch.nodes.copy())
  changed.nodes[:, [0, 1, 3, 4, 6]] += 5.0  # columns it does not read
  chex.assert_trees_all_close(model.apply(weights, {}, changed, arch), base)


def test_sampled_batch_runs_through_the_supernet():
  rng = np.random.default_rng(7)
  graph = graphs.BorrowerGraph.from_edges(30, rng.integers(0, 30, 60),
                                          rng.integers(0, 30, 60))
  batch = graphs.sample_graphs(
      graph, rng.normal(size=(30, len(GROUPS))).astype(np.float32),
      np.ones(30, np.float32), np.arange(6), (3, 2), rng,
      graphs.BatchBudget.for_batch(8, (3, 2)))
  arch = _arch()
  weights, alphas = model.init(jax.random.key(7), arch)
  logits = model.apply(weights, alphas, batch, arch)
  chex.assert_shape(logits, (9,))
  chex.assert_tree_all_finite(logits)


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("space", ["patent", "extended"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_first_layer_on_raw_columns_equals_gate_then_layer(name, space):
  rng = np.random.default_rng(8)
  arch = _arch() if space == "patent" else _extended_arch()
  num_ops = len(arch.layer_ops[0])
  weights, _ = model.init(jax.random.key(8), arch)
  weights = jax.tree.map(lambda w: w + 0.1 * rng.normal(size=w.shape), weights)
  graph = _pad(GRAPHS[name])
  feature_gates = jnp.asarray(rng.uniform(size=5))
  op_gates = jnp.asarray(rng.uniform(size=num_ops))
  mixed = model.feature_gate(weights["feature_embed"], feature_gates,
                             jnp.asarray(graph.nodes), GROUPS)
  kinds = arch.layer_op_kinds[0]
  expected = model.gcn_mixop(weights["gcn"][0], op_gates, mixed, graph,
                             arch.layer_ops[0], kinds)
  assert arch.encoded_groups == GROUPS
  got = model.first_gcn_mixop(weights["feature_embed"], feature_gates,
                              weights["gcn"][0], op_gates,
                              jnp.asarray(graph.nodes), graph, arch)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def _extended_arch(hidden_dim=8):
  return model.supernet_architecture(
      GROUPS, NAMES, hidden_dim=hidden_dim, op_ratios=(4, 2, 1, 2, 2),
      op_kinds=("gcn", "gcn", "gcn", "sage", "self"))


def test_extended_ops_names_and_root_weight():
  arch = _extended_arch()
  assert arch.layer_op_names[0] == ("big", "medium", "small", "sage", "self")
  weights, alphas = model.init(jax.random.key(0), arch)
  chex.assert_shape(weights["gcn"][0]["w1_root"], (8, 16))
  chex.assert_shape(alphas["ops"], (2, 5))
  assert "w1_root" not in model.init(jax.random.key(0), _arch())[0]["gcn"][0]


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_sage_and_self_ops_against_numpy(name):
  rng = np.random.default_rng(11)
  arch = _extended_arch()
  weights, _ = model.init(jax.random.key(3), arch)
  params = jax.tree.map(np.asarray, weights["gcn"][1])
  params["b1"] = rng.normal(size=params["b1"].shape)
  params["b2"] = rng.normal(size=params["b2"].shape)
  gates = rng.uniform(size=5)
  graph = GRAPHS[name]
  n = graph.nodes.shape[0]
  h = rng.normal(size=(n, 8))
  adjacency = np.zeros((n, n))
  np.add.at(adjacency, (graph.receivers, graph.senders), 1.0)
  degree = adjacency.sum(1)
  neighbour_mean = adjacency @ h / np.maximum(degree, 1)[:, None]
  with_loops = adjacency + np.eye(n)
  norm = 1 / np.sqrt(with_loops.sum(1))
  gcn = norm[:, None] * with_loops * norm[None, :] @ h
  widths = arch.layer_ops[1]
  bounds = np.cumsum((0,) + widths)
  inputs = [gcn, gcn, gcn, neighbour_mean, h]
  expected = 0
  for j in range(5):
    cols = slice(bounds[j], bounds[j + 1])
    pre = inputs[j] @ params["w1"][:, cols] + params["b1"][cols]
    if j == 3:
      pre = pre + h @ params["w1_root"]
    hidden = np.maximum(pre, 0)
    expected = expected + gates[j] * (hidden @ params["w2"][cols]
                                      + params["b2"][j])
  got = model.gcn_mixop(params, jnp.asarray(gates), jnp.asarray(h), graph,
                        widths, arch.layer_op_kinds[1])
  np.testing.assert_allclose(got, np.maximum(expected, 0), rtol=1e-4,
                             atol=1e-4)


@pytest.mark.highest_matmul_precision
def test_self_op_ignores_edges():
  arch = model.Architecture(
      column_groups=GROUPS, input_columns=tuple(range(len(GROUPS))),
      group_names=NAMES, layer_ops=((8,), (8,)),
      layer_op_names=(("self",), ("self",)), hidden_dim=8, searchable=False,
      layer_op_kinds=(("self",), ("self",)))
  weights, _ = model.init(jax.random.key(4), arch)
  star = _pad(GRAPHS["star"])
  cut = star._replace(senders=np.full_like(star.senders, 5),
                      receivers=np.full_like(star.receivers, 5))
  # Node 0's own state is the same with and without its edges; the mean
  # and max readouts still see every node of the graph.
  np.testing.assert_allclose(model.apply(weights, {}, star, arch),
                             model.apply(weights, {}, cut, arch), rtol=1e-6)


def test_op_kinds_checked():
  with pytest.raises(ValueError, match="unknown op kinds"):
    model.supernet_architecture(GROUPS, NAMES, hidden_dim=8, op_ratios=(1,),
                                op_kinds=("gat",))
  with pytest.raises(ValueError, match="not distinct"):
    model.supernet_architecture(GROUPS, NAMES, hidden_dim=8,
                                op_ratios=(1, 1), op_kinds=("self", "self"))


@pytest.mark.highest_matmul_precision
def test_network_without_pooled_readout_or_neighbours_is_an_mlp():
  arch = model.Architecture(
      column_groups=GROUPS, input_columns=tuple(range(len(GROUPS))),
      group_names=NAMES, layer_ops=((8,), (8,)),
      layer_op_names=(("self",), ("self",)), hidden_dim=8, searchable=False,
      layer_op_kinds=(("self",), ("self",)), pooled_readout=False)
  weights, _ = model.init(jax.random.key(5), arch)
  chex.assert_shape(weights["head"]["w1"], (8, 8))
  star = _pad(GRAPHS["star"])
  alone = _pad(_graph(1, [], [], seed=2)._replace(
      nodes=GRAPHS["star"].nodes[:1]))
  np.testing.assert_allclose(model.apply(weights, {}, star, arch)[0],
                             model.apply(weights, {}, alone, arch)[0],
                             rtol=1e-6)


@pytest.mark.parametrize("gate_function", ["sigmoid", "softmax"])
def test_readout_gate_scales_the_pooled_readout(gate_function):
  arch = model.supernet_architecture(
      GROUPS, NAMES, hidden_dim=8, op_ratios=(1, 1), op_kinds=("gcn", "self"),
      readout_searchable=True, gate_function=gate_function)
  weights, alphas = model.init(jax.random.key(6), arch)
  chex.assert_shape(alphas["readout"], (1,))
  gates = model.gate_values(alphas, gate_function)
  np.testing.assert_allclose(gates["readout"], 0.5, atol=1e-4)
  graph = _pad(GRAPHS["path"])
  h = jnp.asarray(np.random.default_rng(0).normal(size=(9, 8)))
  closed = model.graph_readout(h, graph, pooled_gate=jnp.array(0.0))
  np.testing.assert_allclose(closed[:, 8:], 0.0)
  np.testing.assert_allclose(closed[:, :8], model.graph_readout(h, graph,
                                                                pooled=False))
  half = model.graph_readout(h, graph, pooled_gate=jnp.array(0.5))
  np.testing.assert_allclose(half[:, 8:], 0.5 * model.graph_readout(
      h, graph)[:, 8:], rtol=1e-6)


@pytest.mark.highest_matmul_precision
def test_marked_tests_run_their_dots_at_full_precision():
  assert jax.config.jax_default_matmul_precision == "highest"
  x = jnp.asarray(np.random.default_rng(9).normal(size=(16, 16)), jnp.float32)
  exact = np.asarray(x, np.float64) @ np.asarray(x, np.float64)
  np.testing.assert_allclose(x @ x, exact, rtol=1e-5, atol=1e-5)
