"""The same supernet and first-order bilevel step in PyTorch Geometric.

A peer for the benchmark (``pip install -e ".[bench]"``), written as a PyG
user would: a MessagePassing GCN aggregation with PyG's ``gcn_norm``, the
candidate ops as separate MLPs, PyG's global mean and max pooling, and two
AdamW optimizers stepping the alphas on a validation batch and the weights
on a training batch.

It computes the function ``credit_nas_jax.model.apply`` computes for a
supernet of "gcn" ops with a pooled readout: the feature gate, then per
layer the normalised aggregation with self loops (D^-1/2 (A + I) D^-1/2),
ReLU(sum_j gate_j * MLP_j), and a [node-0 state, mean, max] readout after
every layer, summed, into the head MLP; the same initial distributions.
``load_jax_weights`` copies the JAX weights in and ``jax_layout`` reads
weights or gradients back in the JAX layout (tests/test_pyg_reference.py
checks loss and both gradients agree). The model and the batches live on
one device: CUDA when torch sees one, else the CPU, or the one asked for.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Sequence

import chex
import jraph
import numpy as np
import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn import global_max_pool
from torch_geometric.nn import global_mean_pool
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import add_self_loops

from credit_nas_jax import model as model_lib

GATE_FUNCTIONS = ("sigmoid", "softmax")


def default_device() -> torch.device:
  """CUDA when torch sees a GPU, else the CPU."""
  return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
  """Waits for the device's queued work (a no-op on the CPU)."""
  if device.type == "cuda":
    torch.cuda.synchronize(device)


class NormalisedAggregation(MessagePassing):
  """sum_j norm_ij h_j over the given edges (GCN propagation)."""

  def __init__(self):
    super().__init__(aggr="add")

  def forward(self, h, edge_index, edge_weight):
    return self.propagate(edge_index, x=h, edge_weight=edge_weight)

  def message(self, x_j, edge_weight):
    return edge_weight.view(-1, 1) * x_j


class TorchBatch(NamedTuple):
  """A padded jraph batch as the tensors the PyG model reads."""

  x: torch.Tensor  # [nodes, columns]
  edge_index: torch.Tensor  # [2, edges]: senders, receivers
  graph_of_node: torch.Tensor  # [nodes]
  first_node: torch.Tensor  # [graphs]: index of every graph's node 0
  has_nodes: torch.Tensor  # [graphs] 1.0 where the graph has a node
  num_graphs: int


def _normal_(tensor: torch.Tensor, fan_in: float) -> None:
  """normal * sqrt(1 / fan_in), the JAX model's initialisation."""
  with torch.no_grad():
    tensor.normal_(0.0, (1.0 / fan_in) ** 0.5)


def _linear(fan_in: int, fan_out: int, init_fan_in: float) -> nn.Linear:
  layer = nn.Linear(fan_in, fan_out)
  _normal_(layer.weight, init_fan_in)
  nn.init.zeros_(layer.bias)
  return layer


class Supernet(nn.Module):
  """Feature gate, GCN mixop layers, node-0/mean/max readouts, head."""

  def __init__(self, column_groups: Sequence[int], num_groups: int,
               hidden_dim: int, op_ratios: Sequence[float] = (4, 2, 1),
               num_layers: int = 2, gate_function: str = "sigmoid"):
    super().__init__()
    if gate_function not in GATE_FUNCTIONS:
      raise ValueError(f"unknown gate function {gate_function!r}; expected "
                       f"one of {list(GATE_FUNCTIONS)}")
    d = hidden_dim
    self.gate_function = gate_function
    self.widths = tuple(max(1, int(round(r * d))) for r in op_ratios)
    mean_width = sum(self.widths) / len(self.widths)
    self.register_buffer("column_groups",
                         torch.as_tensor(column_groups, dtype=torch.long))
    self.embed_weight = nn.Parameter(torch.empty(len(column_groups), d))
    _normal_(self.embed_weight, 1)
    self.embed_bias = nn.Parameter(torch.zeros(num_groups, d))
    self.feature_alphas = nn.Parameter(1e-5 * torch.randn(num_groups))
    self.op_alphas = nn.Parameter(1e-5 * torch.randn(num_layers,
                                                     len(op_ratios)))
    self.aggregate = NormalisedAggregation()
    self.layers = nn.ModuleList([
        nn.ModuleList([
            nn.Sequential(_linear(d, width, d), nn.ReLU(),
                          _linear(width, d, mean_width))
            for width in self.widths])
        for _ in range(num_layers)])
    self.head = nn.Sequential(_linear(3 * d, d, 3 * d), nn.ReLU(),
                              _linear(d, 1, d))

  def weights(self) -> list[nn.Parameter]:
    alphas = {id(self.feature_alphas), id(self.op_alphas)}
    return [p for p in self.parameters() if id(p) not in alphas]

  def alphas(self) -> list[nn.Parameter]:
    return [self.feature_alphas, self.op_alphas]

  def _gate(self, alphas: torch.Tensor) -> torch.Tensor:
    if self.gate_function == "sigmoid":
      return torch.sigmoid(alphas)
    return torch.softmax(alphas, dim=-1)

  def forward(self, batch: TorchBatch) -> torch.Tensor:
    """Logits, one per graph (padding graphs included)."""
    x, edge_index, graph_of_node, first_node, has_nodes, num_graphs = batch
    num_nodes = x.shape[0]
    gates = self._gate(self.feature_alphas)
    h = x @ (self.embed_weight * gates[self.column_groups][:, None])
    h = h + gates @ self.embed_bias
    # A + I: one self loop per node beside whatever edges there are (jraph's
    # padding edges are self loops of the padding node), as the JAX model.
    loop_index, _ = add_self_loops(edge_index, num_nodes=num_nodes)
    norm_index, norm_weight = gcn_norm(loop_index, num_nodes=num_nodes,
                                       add_self_loops=False)
    op_gates = self._gate(self.op_alphas)
    readout = 0
    for layer, ops in enumerate(self.layers):
      aggregated = self.aggregate(h, norm_index, norm_weight)
      h = torch.relu(sum(g * op(aggregated)
                         for g, op in zip(op_gates[layer], ops)))
      readout = readout + torch.cat([
          h[first_node] * has_nodes[:, None],
          global_mean_pool(h, graph_of_node, num_graphs),
          global_max_pool(h, graph_of_node, num_graphs)], dim=-1)
    return self.head(readout).squeeze(-1)


def supernet_for(arch: model_lib.Architecture) -> Supernet:
  """An (untrained) PyG supernet of a ``credit_nas_jax`` Architecture."""
  _check_supported(arch)
  d = arch.hidden_dim
  return Supernet(arch.column_groups, arch.num_groups, d,
                  op_ratios=tuple(w / d for w in arch.layer_ops[0]),
                  num_layers=len(arch.layer_ops),
                  gate_function=arch.gate_function)


def _check_supported(arch: model_lib.Architecture) -> None:
  """Raises unless the PyG peer computes the same network as ``arch``."""
  kinds = {k for layer in arch.layer_op_kinds for k in layer}
  if (not arch.searchable or kinds != {"gcn"} or not arch.pooled_readout
      or arch.readout_searchable or len(set(arch.layer_ops)) != 1
      or tuple(arch.input_columns) != tuple(range(len(arch.column_groups)))):
    raise ValueError(
        "the PyG peer is a supernet of 'gcn' ops with the same ops in every "
        "layer, a pooled readout without a gate, reading every column; got "
        f"{arch}")


def _op_slices(widths: Sequence[int]) -> list[slice]:
  bounds = np.cumsum((0,) + tuple(widths))
  return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _pairs(module: Supernet, arch: model_lib.Architecture):
  """(parameter, JAX leaf path, index into the leaf, transpose) per tensor."""
  yield module.embed_weight, ("feature_embed", "w"), slice(None), False
  yield module.embed_bias, ("feature_embed", "b"), slice(None), False
  for layer, ops in enumerate(module.layers):
    for j, (op, cols) in enumerate(zip(ops, _op_slices(arch.layer_ops[layer]))):
      yield op[0].weight, ("gcn", layer, "w1"), (slice(None), cols), True
      yield op[0].bias, ("gcn", layer, "b1"), cols, False
      yield op[2].weight, ("gcn", layer, "w2"), cols, True
      yield op[2].bias, ("gcn", layer, "b2"), j, False
  yield module.head[0].weight, ("head", "w1"), slice(None), True
  yield module.head[0].bias, ("head", "b1"), slice(None), False
  yield module.head[2].weight, ("head", "w2"), slice(None), True
  yield module.head[2].bias, ("head", "b2"), slice(None), False


def _leaf(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def load_jax_weights(module: Supernet, weights: chex.ArrayTree,
                     alphas: chex.ArrayTree,
                     arch: model_lib.Architecture) -> Supernet:
  """Copies a JAX supernet's (weights, alphas) into ``module`` in place.

  Args:
    module: a Supernet built for ``arch`` (see :func:`supernet_for`).
    weights: the JAX network weights (``credit_nas_jax.model.init``).
    alphas: the JAX architecture weights.
    arch: the JAX supernet architecture.

  Returns:
    ``module``, now computing what ``model.apply(weights, alphas, ., arch)``
    computes.
  """
  _check_supported(arch)
  if module.widths != tuple(arch.layer_ops[0]) or (
      module.gate_function != arch.gate_function):
    raise ValueError(f"module of op widths {module.widths} and gate "
                     f"{module.gate_function!r} for {arch}")
  with torch.no_grad():
    for param, path, index, transpose in _pairs(module, arch):
      value = torch.as_tensor(np.array(_leaf(weights, path))[index])
      param.copy_(value.T if transpose else value)
    module.feature_alphas.copy_(torch.as_tensor(np.array(alphas["features"])))
    module.op_alphas.copy_(torch.as_tensor(np.array(alphas["ops"])))
  return module


def jax_layout(module: Supernet, arch: model_lib.Architecture,
               gradients: bool = False) -> tuple[dict, dict]:
  """(weights, alphas) of ``module`` (or their ``.grad``) as numpy arrays in
  the JAX model's pytree layout."""
  value = lambda p: (p.grad if gradients else p).detach().cpu().numpy()
  weights = {
      "feature_embed": {"w": None, "b": None},
      "gcn": [{"w1": np.zeros((arch.hidden_dim, sum(w)), np.float32),
               "b1": np.zeros((sum(w),), np.float32),
               "w2": np.zeros((sum(w), arch.hidden_dim), np.float32),
               "b2": np.zeros((len(w), arch.hidden_dim), np.float32)}
              for w in arch.layer_ops],
      "head": {"w1": None, "b1": None, "w2": None, "b2": None},
  }
  for param, path, index, transpose in _pairs(module, arch):
    array = value(param).T if transpose else value(param)
    if path[0] == "gcn":
      _leaf(weights, path)[index] = array
    else:
      _leaf(weights, path[:-1])[path[-1]] = array
  alphas = {"features": value(module.feature_alphas),
            "ops": value(module.op_alphas)}
  return weights, alphas


def to_torch(graphs: jraph.GraphsTuple, device: torch.device | None = None
             ) -> tuple[TorchBatch, torch.Tensor, torch.Tensor]:
  """(batch, labels, mask of the real graphs) of a padded jraph batch.

  The mask is ``jraph.get_graph_padding_mask``'s, the JAX loss's.
  """
  device = device or default_device()
  n_node = np.asarray(graphs.n_node)
  num_nodes = graphs.nodes.shape[0]
  if int(n_node.sum()) != num_nodes:
    raise ValueError(f"n_node sums to {int(n_node.sum())}, not the batch's "
                     f"{num_nodes} nodes: pad it with jraph.pad_with_graphs")
  graph_of_node = np.repeat(np.arange(n_node.size), n_node)
  first = np.clip(np.cumsum(n_node) - n_node, 0, num_nodes - 1)
  mask = np.asarray(jraph.get_graph_padding_mask(graphs), np.float32)
  as_tensor = lambda a, dtype: torch.as_tensor(np.asarray(a), dtype=dtype,
                                               device=device)
  batch = TorchBatch(
      x=as_tensor(graphs.nodes, torch.float32),
      edge_index=as_tensor(np.stack([graphs.senders, graphs.receivers]),
                           torch.long),
      graph_of_node=as_tensor(graph_of_node, torch.long),
      first_node=as_tensor(first, torch.long),
      has_nodes=as_tensor(n_node > 0, torch.float32),
      num_graphs=int(n_node.size))
  return (batch, as_tensor(graphs.globals["label"], torch.float32),
          as_tensor(mask, torch.float32))


def masked_bce(logits: torch.Tensor, labels: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
  """Mean binary cross-entropy over the real graphs."""
  losses = nn.functional.binary_cross_entropy_with_logits(
      logits, labels, reduction="none")
  return (losses * mask).sum() / mask.sum().clamp(min=1.0)


def time_first_order_step(workload: Any, steps: int, warmup: int,
                          hidden_dim: int, torch_compile: bool = False,
                          device: str | torch.device | None = None) -> dict:
  """Median milliseconds of the first-order bilevel step on a workload.

  Args:
    workload: a ``benchmark.Workload`` (train and val batches, groups).
    steps: timed steps.
    warmup: untimed steps first (they include torch.compile's compile).
    hidden_dim: D.
    torch_compile: run the model under ``torch.compile``.
    device: where the model and batches live; default :func:`default_device`.

  Returns:
    A benchmark row.
  """
  device = torch.device(device) if device is not None else default_device()
  torch.manual_seed(0)
  model = Supernet(workload.column_groups, len(workload.group_names),
                   hidden_dim).to(device)
  weight_opt = torch.optim.AdamW(model.weights(), lr=1e-3, weight_decay=1e-4)
  arch_opt = torch.optim.AdamW(model.alphas(), lr=1e-3, weight_decay=0.0)
  train, train_labels, train_mask = to_torch(workload.train, device)
  val, val_labels, val_mask = to_torch(workload.val, device)
  forward = torch.compile(model) if torch_compile else model

  def step():
    arch_opt.zero_grad(set_to_none=True)
    masked_bce(forward(val), val_labels, val_mask).backward(
        inputs=model.alphas())
    arch_opt.step()
    weight_opt.zero_grad(set_to_none=True)
    loss = masked_bce(forward(train), train_labels, train_mask)
    loss.backward(inputs=model.weights())
    weight_opt.step()
    return loss

  # Every timer read waits for the device: CUDA runs the step asynchronously.
  synchronize(device)
  start = time.perf_counter()
  for _ in range(warmup):
    step()
  synchronize(device)
  warmup_seconds = time.perf_counter() - start
  times = []
  for _ in range(steps):
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    times.append(time.perf_counter() - start)
  median = float(np.median(times))
  return {
      "impl": "pyg_compiled" if torch_compile else "pyg",
      "workload": workload.name, "kind": "search_first_order",
      "compile_seconds": warmup_seconds if torch_compile else float("nan"),
      "median_ms": 1000 * median,
      "graphs_per_second": workload.real_graphs / median,
      "nodes_per_second": workload.real_nodes / median,
      "torch_version": torch.__version__,
      "torch_threads": torch.get_num_threads(),
      "torch_device": str(device),
      "device_kind": (torch.cuda.get_device_name(device)
                      if device.type == "cuda" else "cpu"),
      "steps": steps,
  }
