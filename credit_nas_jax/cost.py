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
from credit_nas_jax import ops

STEP_KINDS = ("search_first_order", "search_second_order", "retrain",
              "inference")


def forward_flops(arch: model_lib.Architecture,
                  budget: graphs_lib.BatchBudget,
                  folded_first_layer: bool = True) -> int:
  """FLOPs of one forward pass over a padded batch.

  Args:
    arch: the network.
    budget: the padded batch's sizes.
    folded_first_layer: count the computation this package runs, with the
      feature gate folded into the first GCN layer where that is cheaper
      (``model.folds_first_layer``); False counts the textbook order (gate,
      then aggregate and project over D), as a straightforward
      implementation runs it.
  """
  d = arch.hidden_dim
  n, e, g = budget.n_node, budget.n_edge, budget.n_graph
  columns = len(arch.encoded_groups)
  folded_first_layer = folded_first_layer and model_lib.folds_first_layer(
      arch)
  flops = 2 * arch.num_groups * d  # gates @ biases
  flops += n * sum(ops.EMBEDDINGS[k].flops(s) for k, s in zip(
      arch.column_embeddings, arch.column_settings))  # encodings
  if not folded_first_layer:
    flops += 2 * n * columns * d  # feature gate
  for layer, (widths, kinds) in enumerate(zip(arch.layer_ops,
                                              arch.layer_op_kinds)):
    hidden = sum(widths)
    folded = layer == 0 and folded_first_layer
    width_in = columns + 1 if folded else d
    flops += ops.aggregation_flops(kinds, n, e, width_in)
    for w, k in zip(widths, kinds):
      kind = ops.GCN_OPS[k]
      if folded:  # fold Wg into W1: [columns + 1, D] @ [D, w]
        flops += kind.first_product_flops(columns + 1, d, w)
      flops += kind.first_product_flops(n, width_in, w)  # the op's first
    flops += 2 * n * hidden * d  # second products of the ops' MLPs
    if arch.pooled_readout:
      flops += 2 * n * d + n * d  # readout: sums for the mean, max
  readout = 3 * d if arch.pooled_readout else d
  flops += 2 * g * (readout * d + d)  # head
  return int(flops)


def step_flops(kind: str, supernet: model_lib.Architecture,
               derived: model_lib.Architecture,
               budget: graphs_lib.BatchBudget,
               folded_first_layer: bool = True) -> int:
  """FLOPs of one step of ``kind`` (see ``STEP_KINDS``).

  * search_first_order: alpha gradient (forward + input-only backward, 2F)
    and weight gradient (forward + full backward, 3F): 5F.
  * search_second_order: the inner training gradient (3F), reverse mode
    through it (6F), the validation loss at the stepped weights with the
    gradient flowing into them (3F), then the weight step (3F): 15F, for
    one unrolled weight step (``search.unroll_steps=1``; AdamW's
    elementwise update is not counted).
  * retrain: forward + full backward of the derived network: 3F.
  * inference: one forward pass of the derived network: F.
  """
  multiplier = {"search_first_order": 5, "search_second_order": 15,
                "retrain": 3, "inference": 1}.get(kind)
  if multiplier is not None:
    arch = supernet if kind.startswith("search") else derived
    return multiplier * forward_flops(arch, budget, folded_first_layer)
  raise ValueError(f"unknown step kind {kind!r}; expected one of "
                   f"{list(STEP_KINDS)}")
