"""Analytic FLOP counts against XLA's cost analysis of the compiled CPU step."""

import jax
import numpy as np
import pytest

from credit_nas_jax import cost
from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import search


def _setup(hidden_dim=32, extended=False):
  rng = np.random.default_rng(0)
  graph = graphs.BorrowerGraph.from_edges(200, rng.integers(0, 200, 600),
                                          rng.integers(0, 200, 600))
  budget = graphs.BatchBudget.for_batch(32, (4, 3))
  batch = graphs.sample_graphs(
      graph, rng.normal(size=(200, 7)).astype(np.float32),
      (rng.random(200) > 0.3).astype(np.float32), np.arange(32), (4, 3), rng,
      budget)
  supernet = model.supernet_architecture(
      (0, 0, 1, 2, 2, 3, 4), tuple("abcde"), hidden_dim=hidden_dim,
      op_ratios=(4, 2, 1, 2, 2) if extended else (4, 2, 1),
      op_kinds=("gcn", "gcn", "gcn", "sage", "self") if extended else None)
  return batch, budget, supernet


def _xla_flops(compiled):
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return analysis["flops"]


@pytest.mark.parametrize("extended", [False, True])
def test_forward_count_matches_xla(extended):
  batch, budget, supernet = _setup(extended=extended)
  weights, alphas = model.init(jax.random.key(0), supernet)
  compiled = search.predict_step.lower(weights, alphas, batch,
                                       arch=supernet).compile()
  analytic = cost.forward_flops(supernet, budget)
  assert analytic == pytest.approx(_xla_flops(compiled), rel=0.1)


@pytest.mark.parametrize("extended", [False, True])
def test_first_order_step_count_matches_xla(extended):
  batch, budget, supernet = _setup(extended=extended)
  state = search.init_search_state(
      jax.random.key(0), supernet,
      dict(weight_lr=1e-3, weight_decay=0.0, arch_lr=1e-3,
           arch_weight_decay=0.0, zero_one_weight=0.0))
  compiled = search.search_step.lower(state, batch, batch,
                                      arch=supernet).compile()
  analytic = cost.step_flops("search_first_order", supernet, supernet, budget)
  assert analytic == pytest.approx(_xla_flops(compiled), rel=0.15)


def test_unknown_kind():
  _, budget, supernet = _setup()
  with pytest.raises(ValueError, match="unknown step kind"):
    cost.step_flops("training", supernet, supernet, budget)
