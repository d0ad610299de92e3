"""The same supernet and first-order bilevel step in PyTorch Geometric.

A peer for the benchmark (``pip install -e ".[bench]"``), written as a PyG
user would: a MessagePassing GCN aggregation with PyG's ``gcn_norm``, the
three candidate ops as separate MLPs, PyG's global mean and max pooling, and
two AdamW optimizers stepping the alphas on a validation batch and the
weights on a training batch. Same D, op ratios, readouts and batches as the
JAX step it is timed against.
"""

import time

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn import global_max_pool
from torch_geometric.nn import global_mean_pool
from torch_geometric.nn.conv.gcn_conv import gcn_norm


class NormalisedAggregation(MessagePassing):
  """sum_j norm_ij h_j over edges with self loops (GCN propagation)."""

  def __init__(self):
    super().__init__(aggr="add")

  def forward(self, h, edge_index, edge_weight):
    return self.propagate(edge_index, x=h, edge_weight=edge_weight)

  def message(self, x_j, edge_weight):
    return edge_weight.view(-1, 1) * x_j


class Supernet(nn.Module):
  """Feature gate, two GCN mixop layers, node-0/mean/max readouts, head."""

  def __init__(self, column_groups, num_groups, hidden_dim,
               op_ratios=(4, 2, 1), num_layers=2):
    super().__init__()
    d = hidden_dim
    self.register_buffer("column_groups",
                         torch.as_tensor(column_groups, dtype=torch.long))
    self.embed_weight = nn.Parameter(torch.randn(len(column_groups), d))
    self.embed_bias = nn.Parameter(torch.zeros(num_groups, d))
    self.feature_alphas = nn.Parameter(1e-5 * torch.randn(num_groups))
    self.op_alphas = nn.Parameter(1e-5 * torch.randn(num_layers,
                                                     len(op_ratios)))
    self.aggregate = NormalisedAggregation()
    self.layers = nn.ModuleList([
        nn.ModuleList([
            nn.Sequential(nn.Linear(d, int(r * d)), nn.ReLU(),
                          nn.Linear(int(r * d), d)) for r in op_ratios])
        for _ in range(num_layers)])
    self.head = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(), nn.Linear(d, 1))

  def weights(self):
    alphas = {id(self.feature_alphas), id(self.op_alphas)}
    return [p for p in self.parameters() if id(p) not in alphas]

  def alphas(self):
    return [self.feature_alphas, self.op_alphas]

  def forward(self, batch):
    x, edge_index, graph_of_node, first_node, num_graphs = batch
    gates = torch.sigmoid(self.feature_alphas)
    h = x @ (self.embed_weight * gates[self.column_groups][:, None])
    h = h + gates @ self.embed_bias
    norm_index, norm_weight = gcn_norm(edge_index, num_nodes=x.shape[0],
                                       add_self_loops=True)
    readout = 0
    for layer, ops in enumerate(self.layers):
      aggregated = self.aggregate(h, norm_index, norm_weight)
      op_gates = torch.sigmoid(self.op_alphas[layer])
      h = torch.relu(sum(g * op(aggregated) for g, op in zip(op_gates, ops)))
      readout = readout + torch.cat([
          h[first_node],
          global_mean_pool(h, graph_of_node, num_graphs),
          global_max_pool(h, graph_of_node, num_graphs)], dim=-1)
    return self.head(readout).squeeze(-1)


def to_torch(graphs):
  """A padded jraph batch as the tensors the PyG model reads."""
  n_node = np.asarray(graphs.n_node)
  num_nodes = graphs.nodes.shape[0]
  graph_of_node = np.repeat(np.arange(n_node.size), n_node)
  first = np.clip(np.cumsum(n_node) - n_node, 0, num_nodes - 1)
  mask = np.zeros(n_node.size, np.float32)
  mask[np.asarray(graphs.globals["borrower"]) >= 0] = 1.0
  batch = (torch.as_tensor(np.asarray(graphs.nodes)),
           torch.as_tensor(np.stack([graphs.senders, graphs.receivers]),
                           dtype=torch.long),
           torch.as_tensor(graph_of_node, dtype=torch.long),
           torch.as_tensor(first, dtype=torch.long), int(n_node.size))
  return batch, torch.as_tensor(np.asarray(graphs.globals["label"])), (
      torch.as_tensor(mask))


def masked_bce(logits, labels, mask):
  losses = nn.functional.binary_cross_entropy_with_logits(
      logits, labels, reduction="none")
  return (losses * mask).sum() / mask.sum().clamp(min=1.0)


def time_first_order_step(workload, steps, warmup, hidden_dim,
                          torch_compile=False):
  """Median milliseconds of the first-order bilevel step on a workload."""
  torch.manual_seed(0)
  model = Supernet(workload.column_groups, len(workload.group_names),
                   hidden_dim)
  weight_opt = torch.optim.AdamW(model.weights(), lr=1e-3, weight_decay=1e-4)
  arch_opt = torch.optim.AdamW(model.alphas(), lr=1e-3, weight_decay=0.0)
  train, train_labels, train_mask = to_torch(workload.train)
  val, val_labels, val_mask = to_torch(workload.val)
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

  start = time.perf_counter()
  for _ in range(warmup):
    step()
  warmup_seconds = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
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
      "steps": steps,
  }
