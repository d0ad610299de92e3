"""Property-based tests: extractor, sampler, batching and padding."""

import datetime

import jax
import jraph
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from credit_nas_jax import features
from credit_nas_jax import graphs
from credit_nas_jax import model

AS_OF = datetime.date(2025, 6, 1)
BASE = datetime.date(2024, 1, 1)
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def record_sets(draw):
  """Valid borrowers, loans and installments (installments may be absent)."""
  num_borrowers = draw(st.integers(1, 6))
  scores = st.one_of(st.none(), st.integers(0, 1500))
  borrowers = pd.DataFrame({
      "borrower_id": [f"b{i}" for i in range(num_borrowers)],
      "bestpay_score": [draw(scores) for _ in range(num_borrowers)],
      "sesame_score": [draw(scores) for _ in range(num_borrowers)],
  }, dtype=object)
  loans, installments = [], []
  for k in range(draw(st.integers(0, 8))):
    periods = draw(st.integers(1, 4))
    loans.append({"loan_id": f"l{k}",
                  "borrower_id": f"b{draw(st.integers(0, num_borrowers - 1))}",
                  "source": draw(st.sampled_from(features.SOURCES)),
                  "periods": periods})
    for period in draw(st.sets(st.integers(1, periods))):
      due = BASE + datetime.timedelta(days=draw(st.integers(0, 700)))
      repaid = draw(st.one_of(st.none(), st.integers(-20, 40)))
      installments.append({
          "loan_id": f"l{k}", "period": period, "due_date": due.isoformat(),
          "repaid_date": (None if repaid is None else
                          (due + datetime.timedelta(days=repaid)).isoformat()),
      })
  loans = pd.DataFrame(loans, columns=list(features.REQUIRED_COLUMNS["loans"]))
  installments = pd.DataFrame(
      installments, columns=list(features.REQUIRED_COLUMNS["installments"]))
  return borrowers, loans, installments


def _reference(borrowers, loans, installments):
  """A plain-Python reading of the feature rules."""
  rows = {}
  for _, b in borrowers.iterrows():
    grade = lambda s: np.nan if s is None or pd.isna(s) else min(
        max(int(s) // 100, 0), 10)
    rows[b["borrower_id"]] = {
        "bestpay_grade": grade(b["bestpay_score"]),
        "sesame_grade": grade(b["sesame_score"]),
        **{f"{s}_overdue": 0.0 for s in features.SOURCES},
        **{f"{s}_loans": 0 for s in features.SOURCES},
    }
  for _, loan in loans.iterrows():
    overdue = 0
    for _, i in installments[installments["loan_id"]
                             == loan["loan_id"]].iterrows():
      due = datetime.date.fromisoformat(i["due_date"])
      if i["repaid_date"] is None or pd.isna(i["repaid_date"]):
        overdue += due < AS_OF
      else:
        overdue += datetime.date.fromisoformat(i["repaid_date"]) > due
    row = rows[loan["borrower_id"]]
    row[f"{loan['source']}_overdue"] += overdue / loan["periods"]
    row[f"{loan['source']}_loans"] += 1
  return pd.DataFrame.from_dict(rows, orient="index")


@SETTINGS
@given(record_sets())
def test_extractor_agrees_with_reference(records):
  got = features.extract_features(*records, as_of=AS_OF)
  expected = _reference(*records)[list(got.columns)]
  np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float),
                             rtol=1e-12, equal_nan=True)
  assert list(got.index) == list(expected.index)


CORRUPTIONS = {
    "negative score": ("borrowers", "bestpay_score", -1),
    "duplicate borrower id": ("borrowers", "borrower_id", "b0"),
    "unknown source": ("loans", "source", "cash"),
    "loan of an unknown borrower": ("loans", "borrower_id", "ghost"),
    "periods < 1": ("loans", "periods", 0),
    "installment of an unknown loan": ("installments", "loan_id", "ghost"),
    "period outside 1..periods": ("installments", "period", 99),
    "unparsable date": ("installments", "due_date", "2025-02-30"),
}


@SETTINGS
@given(record_sets(), st.sampled_from(sorted(CORRUPTIONS)), st.data())
def test_a_corrupted_record_is_rejected_with_its_reason(records, reason, data):
  tables = dict(zip(("borrowers", "loans", "installments"),
                    (r.copy().astype(object) for r in records)))
  table, field, value = CORRUPTIONS[reason]
  frame = tables[table]
  if len(frame) == 0 or (reason == "duplicate borrower id" and len(frame) < 2):
    return
  row = data.draw(st.integers(1 if reason == "duplicate borrower id" else 0,
                              len(frame) - 1))
  frame.loc[frame.index[row], field] = value
  result = features.extract_features_with_rejects(**tables, as_of=AS_OF)
  hit = result.rejects[(result.rejects["table"] == table)
                       & (result.rejects["row"] == row)]
  assert len(hit) == 1 and reason in hit["reason"].iloc[0]
  with pytest.raises(features.RecordError):
    features.extract_features(**tables, as_of=AS_OF)


@st.composite
def graph_cases(draw):
  num_nodes = draw(st.integers(1, 25))
  num_edges = draw(st.integers(0, 60))
  src = draw(st.lists(st.integers(0, num_nodes - 1), min_size=num_edges,
                      max_size=num_edges))
  dst = draw(st.lists(st.integers(0, num_nodes - 1), min_size=num_edges,
                      max_size=num_edges))
  fanouts = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
  seeds = draw(st.lists(st.integers(0, num_nodes - 1), min_size=1,
                        max_size=6))
  return num_nodes, np.array(src, int), np.array(dst, int), fanouts, seeds


@SETTINGS
@given(graph_cases(), st.integers(0, 2**31 - 1))
def test_every_sampled_node_and_edge_appears_once(case, seed):
  num_nodes, src, dst, fanouts, seeds = case
  graph = graphs.BorrowerGraph.from_edges(num_nodes, src, dst)
  node_features = np.arange(num_nodes, dtype=np.float32)[:, None]
  budget = graphs.BatchBudget.for_batch(len(seeds), fanouts)
  batch = graphs.sample_graphs(graph, node_features,
                               np.zeros(num_nodes, np.float32),
                               np.array(seeds), fanouts,
                               np.random.default_rng(seed), budget)
  real_nodes = int(batch.n_node[:len(seeds)].sum())
  real_edges = int(batch.n_edge[:len(seeds)].sum())
  # A tree per graph: each non-root node has exactly one parent edge, both
  # directions present once.
  pairs = list(zip(batch.senders[:real_edges], batch.receivers[:real_edges]))
  assert len(set(pairs)) == len(pairs) == real_edges
  assert all((r, s) in set(pairs) for s, r in pairs)
  assert real_edges == 2 * (real_nodes - len(seeds))
  # Every node slot belongs to exactly one graph and is reached once.
  graph_of_node = np.repeat(np.arange(len(seeds)), batch.n_node[:len(seeds)])
  in_degree = np.bincount(batch.receivers[:real_edges], minlength=real_nodes)
  roots = np.cumsum(batch.n_node[:len(seeds)]) - batch.n_node[:len(seeds)]
  for node in range(real_nodes):
    g = graph_of_node[node]
    assert batch.nodes[roots[g], 0] == seeds[g]
    assert in_degree[node] >= (0 if node in roots else 1)
  # Sampled neighbours are real relations.
  for s, r in pairs:
    u, v = int(batch.nodes[s, 0]), int(batch.nodes[r, 0])
    assert v in graph.indices[graph.indptr[u]:graph.indptr[u + 1]]


@pytest.mark.highest_matmul_precision
@SETTINGS
@given(graph_cases(), st.integers(1, 40), st.integers(1, 5))
def test_padding_never_changes_a_score(case, extra_nodes, extra_graphs):
  num_nodes, src, dst, fanouts, seeds = case
  graph = graphs.BorrowerGraph.from_edges(num_nodes, src, dst)
  rng = np.random.default_rng(0)
  node_features = rng.normal(size=(num_nodes, 3)).astype(np.float32)
  tight = graphs.BatchBudget.for_batch(len(seeds), fanouts)
  batch = graphs.sample_graphs(graph, node_features,
                               np.zeros(num_nodes, np.float32),
                               np.array(seeds), fanouts,
                               np.random.default_rng(1), tight)
  unpadded = jraph.unpad_with_graphs(batch)
  loose = jraph.pad_with_graphs(
      unpadded, int(unpadded.n_node.sum()) + extra_nodes,
      int(unpadded.n_edge.sum()) + extra_nodes,
      len(seeds) + extra_graphs)
  arch = model.supernet_architecture((0, 1, 1), ("a", "b"), hidden_dim=4,
                                     op_ratios=(2, 1))
  weights, alphas = model.init(jax.random.key(0), arch)
  # One compiled program per padding (eagerly, every op compiles per shape).
  apply = jax.jit(model.apply, static_argnums=3)
  first = np.asarray(apply(weights, alphas, batch, arch))[:len(seeds)]
  second = np.asarray(apply(weights, alphas, loose, arch))[:len(seeds)]
  np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
