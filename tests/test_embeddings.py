"""Feature embedding kinds in the feature mixop, and the op-kind registry."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from credit_nas_jax import cost
from credit_nas_jax import config as config_lib
from credit_nas_jax import data
from credit_nas_jax import experiment
from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import model_io
from credit_nas_jax import ops
from credit_nas_jax import search
from credit_nas_jax import synthetic
from experiments.configs import default as default_config

ALL_KINDS = ("linear", "piecewise", "periodic")


@pytest.fixture(scope="module")
def dataset():
  return data.dataset_from_book(synthetic.generate_lending_book(0, 600),
                                split_seed=0)


def _supernet(dataset, kinds=ALL_KINDS, hidden_dim=16, op_kinds=None,
              options=ops.EmbeddingOptions(bins=4, frequencies=3)):
  encoder = dataset.encoder
  entries = model.embedding_entries(
      encoder.column_groups, [False] * len(encoder.features),
      encoder.features, dataset.node_features[dataset.splits["train"]],
      dataset.labels[dataset.splits["train"]], kinds, options)
  ratios = (2, 1, 0.5) if op_kinds is None else (2,) * len(op_kinds)
  return model.supernet_architecture(
      encoder.column_groups, encoder.features, hidden_dim=hidden_dim,
      op_ratios=ratios, op_kinds=op_kinds, embeddings=entries)


def _batch(dataset):
  return data.BatchMaker(dataset, 16, (4, 2), 0).training_batch("train", 0)


def test_piecewise_encoding_against_numpy():
  edges = (-1.0, 0.0, 0.5, 2.0)
  x = np.array([-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0, 5.0], np.float32)
  expected = np.stack([
      (x + 1) / 1,  # the first bin extrapolates below
      np.clip(x / 0.5, 0, 1),
      np.maximum((x - 0.5) / 1.5, 0),  # the last bin extrapolates above
  ], axis=1)
  expected[:, 0] = np.minimum(expected[:, 0], 1)
  got = ops.EMBEDDINGS["piecewise"].encode({}, jnp.asarray(x[:, None]),
                                           (edges,))
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_periodic_encoding_against_numpy():
  x = np.array([[0.3, -1.0], [2.0, 0.5]], np.float32)
  frequencies = np.array([[0.1, 0.7], [1.5, -0.2]], np.float32)
  got = ops.EMBEDDINGS["periodic"].encode(
      {"frequencies": jnp.asarray(frequencies)}, jnp.asarray(x),
      ((2, 0.5), (2, 0.5)))
  angles = 2 * np.pi * x[:, :, None] * frequencies[None]
  expected = np.concatenate([np.cos(angles), np.sin(angles)],
                            axis=2).reshape(2, 8)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_entries_embed_numeric_features_from_training_rows_only():
  rng = np.random.default_rng(0)
  train = np.stack([rng.normal(size=200),  # numeric
                    rng.integers(0, 2, 200),  # binary
                    rng.integers(0, 2, 200),  # one-hot of a category...
                    1 - rng.integers(0, 2, 200)], axis=1)  # ...its other
  entries = model.embedding_entries(
      (0, 1, 2, 2), [False, False, True], ("x", "flag", "city"), train,
      rng.integers(0, 2, 200), ALL_KINDS,
      ops.EmbeddingOptions(bins=4, frequencies=2))
  names = [e[1] for e in entries]
  # The binary column has one bin over its two values and nothing periodic;
  # the categorical feature keeps its linear embedding alone.
  assert names == ["x:piecewise", "x:periodic"]
  column, _, _, edges = entries[0]
  assert column == 0
  np.testing.assert_allclose(
      edges, np.quantile(train[:, 0], np.linspace(0, 1, 5)), rtol=1e-6)
  assert model.feature_of("x:piecewise") == "x"


def test_supernet_bins_ignore_validation_and_test_rows(dataset):
  kind = "piecewise"
  config = default_config.get_config()
  config.space.feature_embeddings = ("linear", kind)
  before = experiment.supernet_for(config, dataset)
  changed = dataset.node_features.copy()
  labels = dataset.labels.copy()
  held_out = np.concatenate([dataset.splits["validation"],
                             dataset.splits["test"]])
  changed[held_out] = 100.0
  labels[held_out] = 1 - labels[held_out]
  after = experiment.supernet_for(
      config, data.Dataset(**{**dataset.__dict__, "node_features": changed,
                              "labels": labels}))
  assert before.column_settings == after.column_settings
  assert any(k == kind for k in before.column_embeddings)


def test_flag_lists_of_kinds_are_split_and_checked():
  config = config_lib.from_dict(
      {"space": {"feature_embeddings": ("linear,periodic",)}})
  assert config.space.feature_embeddings == ("linear", "periodic")
  config = default_config.get_config()
  config.space.feature_embeddings = ("piecewise",)
  with pytest.raises(ValueError, match="feature_embeddings"):
    config_lib.typed(config)
  with pytest.raises(ValueError, match="unknown feature embedding kinds"):
    model.embedding_entries((0,), [False], ("a",), np.zeros((3, 1)),
                            np.zeros(3), ("linear", "spline"),
                            ops.EmbeddingOptions())


def test_a_linear_only_space_has_the_patent_weights(dataset):
  arch = _supernet(dataset, kinds=("linear",))
  weights, _ = model.init(jax.random.key(0), arch)
  assert arch.linear_only and "encoders" not in weights["feature_embed"]
  assert weights["feature_embed"]["w"].shape == (
      dataset.node_features.shape[1], 16)


@pytest.mark.highest_matmul_precision
def test_closed_embedding_gates_leave_the_linear_supernet(dataset):
  """With every non-linear gate closed the supernet computes the linear
  space's function from the same linear rows."""
  arch = _supernet(dataset)
  linear = _supernet(dataset, kinds=("linear",))
  weights, alphas = model.init(jax.random.key(0), arch)
  gates = jax.tree.map(np.asarray, model.network_gates(alphas, arch))
  gates["features"] = np.where(
      np.arange(arch.num_groups) < linear.num_groups, gates["features"], 0.0)
  columns = len(linear.input_columns)
  linear_weights = jax.tree.map(lambda x: x, weights)
  linear_weights["feature_embed"] = {
      "w": weights["feature_embed"]["w"][:columns],
      "b": weights["feature_embed"]["b"][:linear.num_groups]}
  linear_gates = dict(gates, features=gates["features"][:linear.num_groups])
  batch = _batch(dataset)
  chex.assert_trees_all_close(
      model.apply(weights, {}, batch, arch, gates),
      model.apply(linear_weights, {}, batch, linear, linear_gates),
      atol=1e-5)


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("hidden_dim", [16, 128])  # unfolded, folded
def test_derived_network_with_embeddings_equals_its_masked_supernet(
    dataset, hidden_dim):
  arch = _supernet(dataset, hidden_dim=hidden_dim)
  assert model.folds_first_layer(arch) == (hidden_dim == 128)
  weights, alphas = model.init(jax.random.key(0), arch)
  alphas = jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(3), a.shape), alphas)
  derived = search.derive_architecture(alphas, arch, 0.5)
  assert set(derived.arch.column_embeddings) - {"linear"}
  batch = _batch(dataset)
  _assert_compact_equals_masked(weights, arch, derived, batch)


@pytest.mark.highest_matmul_precision
def test_folded_first_layer_equals_gate_then_layer(dataset):
  arch = _supernet(dataset, hidden_dim=128)
  weights, alphas = model.init(jax.random.key(1), arch)
  gates = model.network_gates(alphas, arch)
  batch = _batch(dataset)
  nodes = model.encode_nodes(weights["feature_embed"], batch.nodes, arch)
  layer = weights["gcn"][0]
  folded = model.first_gcn_mixop(weights["feature_embed"], gates["features"],
                                 layer, gates["ops"][0], nodes, batch, arch)
  mixed = model.feature_gate(weights["feature_embed"], gates["features"],
                             nodes, arch.encoded_groups)
  unfolded = model.gcn_mixop(layer, gates["ops"][0], mixed, batch,
                             arch.layer_ops[0])
  chex.assert_trees_all_close(folded, unfolded, atol=1e-4)


def _assert_compact_equals_masked(weights, arch, derived, batch):
  """The derived network on its cut weights computes the supernet under
  the derived gates."""
  chex.assert_trees_all_close(
      model.apply(weights, {}, batch, arch,
                  search.derived_gates(derived, arch)),
      model.apply(search.slice_weights(weights, arch, derived), {}, batch,
                  derived.arch), atol=1e-4)


def _assert_flops_match_xla(arch, batch):
  budget = graphs.BatchBudget.for_batch(16, (4, 2))
  assert cost.forward_flops(arch, budget) == pytest.approx(
      _xla_flops(arch, batch), rel=0.1)


def _xla_flops(arch, batch):
  weights, alphas = model.init(jax.random.key(0), arch)
  compiled = search.predict_step.lower(weights, alphas, batch,
                                       arch=arch).compile()
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return analysis["flops"]


@pytest.mark.parametrize("hidden_dim", [32, 64])  # unfolded, folded
def test_forward_flops_with_embeddings_match_xla(dataset, hidden_dim):
  arch = _supernet(dataset, hidden_dim=hidden_dim)
  assert model.folds_first_layer(arch) == (hidden_dim == 64)
  _assert_flops_match_xla(arch, _batch(dataset))


@pytest.mark.highest_matmul_precision
def test_a_new_embedding_kind_is_one_registry_entry(dataset, monkeypatch):
  square = ops.EmbeddingKind(
      name="square", fit=lambda values, labels, options: (),
      width=lambda settings: 1, init=lambda key, settings: {},
      encode=lambda params, x, settings: x * x, flops=lambda settings: 1)
  monkeypatch.setitem(ops.EMBEDDINGS, "square", square)
  arch = _supernet(dataset, kinds=("linear", "square"), hidden_dim=32)
  assert "bank_overdue:square" in arch.group_names
  weights, alphas = model.init(jax.random.key(0), arch)
  alphas = dict(alphas, features=jnp.where(
      jnp.arange(arch.num_groups) % 2 == 0, 3.0, -3.0))
  derived = search.derive_architecture(alphas, arch, 0.5)
  batch = _batch(dataset)
  _assert_compact_equals_masked(weights, arch, derived, batch)
  _assert_flops_match_xla(arch, batch)


@pytest.mark.highest_matmul_precision
def test_a_new_gcn_op_kind_is_one_registry_entry(dataset, monkeypatch):
  monkeypatch.setitem(ops.GCN_OPS, "mean_root",
                      ops.GcnOpKind("mean_root", source="mean", root=True))
  monkeypatch.setitem(ops.GCN_OPS, "mean_only",
                      ops.GcnOpKind("mean_only", source="mean"))
  arch = _supernet(dataset, kinds=("linear",), hidden_dim=32,
                   op_kinds=("gcn", "mean_root", "mean_only", "sage"))
  weights, alphas = model.init(jax.random.key(0), arch)
  # Two ops with a root weight: its columns are theirs, in op order.
  assert weights["gcn"][0]["w1_root"].shape == (32, 128)
  batch = _batch(dataset)
  for chosen in [(1, 3), (3, 1), (2, 0)]:
    derived = search.derive_architecture(alphas, arch, 0.5, ops=chosen)
    _assert_compact_equals_masked(weights, arch, derived, batch)
  _assert_flops_match_xla(arch, batch)


def test_saved_model_with_embeddings_scores_as_before(dataset, tmp_path):
  arch = _supernet(dataset)
  weights, alphas = model.init(jax.random.key(0), arch)
  alphas = jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(5), a.shape), alphas)
  derived = search.derive_architecture(alphas, arch, 0.5)
  compact = search.slice_weights(weights, arch, derived)
  model_io.save_model(str(tmp_path / "m"), derived.arch, compact,
                      dataset.encoder, (4, 2), {"config": {"seed": 0}})
  saved = model_io.load_model(str(tmp_path / "m"))
  assert saved.arch == derived.arch
  batch = _batch(dataset)
  chex.assert_trees_all_close(
      model.apply(saved.weights, {}, batch, saved.arch),
      model.apply(compact, {}, batch, derived.arch), atol=1e-6)
