"""The PyG peer computes the JAX supernet's logits, loss and both gradients."""

import shutil
import types

import chex
import jax
import jraph
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the PyG peer needs torch: pip install -e '.[test]'")
pytest.importorskip("torch_geometric",
                    reason="the PyG peer needs torch_geometric: "
                    "pip install -e '.[test]'")

from credit_nas_jax import data  # pylint: disable=g-import-not-at-top
from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import search
from credit_nas_jax import synthetic
from experiments import pyg_reference

HYPER = dict(weight_lr=1e-3, weight_decay=1e-4, arch_lr=1e-3,
             arch_weight_decay=0.0, zero_one_weight=0.0)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="torch sees no GPU"))]


@pytest.fixture(scope="module")
def small():
  book = synthetic.generate_lending_book(5, 300)
  dataset = data.dataset_from_book(book, split_seed=0)
  maker = data.BatchMaker(dataset, 12, (3, 3), seed=0)
  train = maker.training_batch("train", 0)
  # Three more padding graphs, two of them empty, and more padding edges
  # (self loops of the padding node).
  budget = graphs.BatchBudget(train.nodes.shape[0] + 4,
                              train.senders.shape[0] + 10,
                              train.n_node.shape[0] + 3)
  train = graphs.pad_batch(jraph.unpad_with_graphs(train), budget)
  return dataset, train, maker.training_batch("validation", 0)


def _arch(dataset, gate_function="sigmoid"):
  return model.supernet_architecture(
      dataset.encoder.column_groups, dataset.encoder.features, hidden_dim=16,
      op_ratios=(4, 2, 1), gate_function=gate_function)


def _perturbed(arch, seed):
  """Weights and alphas with every bias and gate away from its start."""
  weights, alphas = model.init(jax.random.key(seed), arch)
  rng = np.random.default_rng(seed)
  bump = lambda x: np.asarray(x + 0.3 * rng.normal(size=x.shape), np.float32)
  return jax.tree.map(bump, weights), jax.tree.map(bump, alphas)


def test_batch_keeps_padding_where_the_jax_loss_masks_it(small):
  _, train, _ = small
  batch, labels, mask = pyg_reference.to_torch(train, torch.device("cpu"))
  np.testing.assert_array_equal(
      mask.numpy(), np.asarray(jraph.get_graph_padding_mask(train), np.float32))
  assert 0 < mask.sum() < batch.num_graphs - 2  # real graphs and padding
  assert (train.n_node[-2:] == 0).all()  # empty padding graphs
  assert batch.graph_of_node.shape[0] == batch.x.shape[0]
  assert (batch.has_nodes.numpy() == (train.n_node > 0)).all()
  chex.assert_shape(labels.numpy(), (batch.num_graphs,))


def test_loaded_weights_read_back_unchanged(small):
  dataset, _, _ = small
  arch = _arch(dataset)
  weights, alphas = _perturbed(arch, 0)
  module = pyg_reference.load_jax_weights(pyg_reference.supernet_for(arch),
                                          weights, alphas, arch)
  chex.assert_trees_all_equal(pyg_reference.jax_layout(module, arch),
                              (weights, alphas))


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("gate_function", ["sigmoid", "softmax"])
def test_same_logits_loss_and_gradients_as_jax(small, gate_function, device):
  dataset, train, val = small
  arch = _arch(dataset, gate_function)
  weights, alphas = _perturbed(arch, 1)
  device = torch.device(device)
  module = pyg_reference.load_jax_weights(
      pyg_reference.supernet_for(arch), weights, alphas, arch).to(device)

  # Every graph's logit, padding graphs too (masked from the loss).
  logits = module(pyg_reference.to_torch(train, device)[0])
  np.testing.assert_allclose(logits.detach().cpu().numpy(),
                             model.apply(weights, alphas, train, arch),
                             rtol=1e-4, atol=1e-5)

  state = search.init_search_state(jax.random.key(0), arch, HYPER).replace(
      weights=weights, alphas=alphas)
  # The first-order step's two gradients: the alphas' on the validation
  # batch, the weights' on the training batch.
  val_loss, alpha_grads = search.alpha_gradient(state, train, val, arch,
                                                second_order=False)
  train_loss, weight_grads = jax.value_and_grad(search.batch_loss)(
      weights, alphas, train, arch)
  losses = {}
  for name, batch in (("val", val), ("train", train)):
    module.zero_grad(set_to_none=True)
    losses[name] = pyg_reference.masked_bce(
        module(pyg_reference.to_torch(batch, device)[0]),
        *pyg_reference.to_torch(batch, device)[1:])
    losses[name].backward()
    grads = pyg_reference.jax_layout(module, arch, gradients=True)
    if name == "val":
      torch_alpha_grads = grads[1]
    else:
      torch_weight_grads = grads[0]
  assert losses["val"].item() == pytest.approx(float(val_loss), rel=1e-5)
  assert losses["train"].item() == pytest.approx(float(train_loss), rel=1e-5)
  chex.assert_trees_all_close(torch_alpha_grads, alpha_grads, rtol=1e-4,
                              atol=1e-6)
  chex.assert_trees_all_close(torch_weight_grads, weight_grads, rtol=1e-4,
                              atol=1e-6)
  # Not vacuous: the alphas' gradient is far from zero.
  assert min(np.abs(g).max() for g in jax.tree.leaves(alpha_grads)) > 1e-4


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_peer_equals_eager(small):
  dataset, train, _ = small
  arch = _arch(dataset)
  weights, alphas = _perturbed(arch, 2)
  module = pyg_reference.load_jax_weights(pyg_reference.supernet_for(arch),
                                          weights, alphas, arch)
  batch, labels, mask = pyg_reference.to_torch(train, torch.device("cpu"))
  results = []
  for forward in (module, torch.compile(module)):
    module.zero_grad(set_to_none=True)
    loss = pyg_reference.masked_bce(forward(batch), labels, mask)
    loss.backward()
    results.append((loss.item(), pyg_reference.jax_layout(module, arch,
                                                          gradients=True)))
  assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
  chex.assert_trees_all_close(results[1][1], results[0][1], rtol=1e-4,
                              atol=1e-6)


def test_other_search_spaces_are_refused(small):
  dataset, _, _ = small
  extended = model.supernet_architecture(
      dataset.encoder.column_groups, dataset.encoder.features, hidden_dim=8,
      op_ratios=(1, 1), op_kinds=("gcn", "sage"))
  with pytest.raises(ValueError, match="supernet of 'gcn' ops"):
    pyg_reference.supernet_for(extended)


def test_timed_step_runs_on_the_asked_device(small):
  dataset, train, val = small
  workload = types.SimpleNamespace(
      name="tiny", train=train, val=val, real_graphs=12,
      real_nodes=int(train.n_node[:12].sum()),
      column_groups=dataset.encoder.column_groups,
      group_names=dataset.encoder.features)
  row = pyg_reference.time_first_order_step(workload, steps=2, warmup=1,
                                            hidden_dim=8, device="cpu")
  assert row["torch_device"] == "cpu" and row["device_kind"] == "cpu"
  assert row["median_ms"] > 0 and row["steps"] == 2
  assert pyg_reference.default_device().type == (
      "cuda" if torch.cuda.is_available() else "cpu")
