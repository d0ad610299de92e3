"""Analytic FLOP counts of the network's steps.

Counted: every dense product (2 FLOPs per multiply-add) and every addition of
the graph aggregation; elementwise activations, gates and normalisation are
left out (a few percent at D = 100). A backward pass costs two forward
passes when the weights need gradients (input and weight gradients) and one
when only the inputs' do.
"""

from __future__ import annotations

from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import model as model_lib

STEP_KINDS = ("search_first_order", "search_second_order", "retrain",
              "inference")


def forward_flops(arch: model_lib.Architecture,
                  budget: graphs_lib.BatchBudget) -> int:
  """FLOPs of one forward pass over a padded batch."""
  d = arch.hidden_dim
  n, e, g = budget.n_node, budget.n_edge, budget.n_graph
  flops = 2 * n * len(arch.input_columns) * d  # feature gate
  flops += 2 * arch.num_groups * d  # gates @ biases
  for widths in arch.layer_ops:
    hidden = sum(widths)
    flops += 2 * (e + n) * d  # normalised aggregation with self loops
    flops += 2 * n * d * hidden * 2  # the fused two-layer MLPs
    flops += 2 * n * d + n * d  # readout: sums for the mean, max
  flops += 2 * g * (3 * d * d + d)  # head
  return int(flops)


def step_flops(kind: str, supernet: model_lib.Architecture,
               derived: model_lib.Architecture,
               budget: graphs_lib.BatchBudget) -> int:
  """FLOPs of one step of ``kind`` (see ``STEP_KINDS``).

  * search_first_order: alpha gradient (forward + input-only backward, 2F)
    and weight gradient (forward + full backward, 3F): 5F.
  * search_second_order: the inner training gradient (3F), reverse mode
    through it (6F), the validation loss at the stepped weights with the
    gradient flowing into them (3F), then the weight step (3F): 15F.
  * retrain: forward + full backward of the derived network: 3F.
  * inference: one forward pass of the derived network: F.
  """
  if kind == "search_first_order":
    return 5 * forward_flops(supernet, budget)
  if kind == "search_second_order":
    return 15 * forward_flops(supernet, budget)
  if kind == "retrain":
    return 3 * forward_flops(derived, budget)
  if kind == "inference":
    return forward_flops(derived, budget)
  raise ValueError(f"unknown step kind {kind!r}; expected one of "
                   f"{list(STEP_KINDS)}")
