"""The synthetic books: reproducible, homophilous, a planted noise feature."""

import numpy as np
import pandas as pd

from credit_nas_jax import data
from credit_nas_jax import features
from credit_nas_jax import graphs
from credit_nas_jax import synthetic


def _correlation(values, labels):
  frame = pd.DataFrame({"v": np.asarray(values, float),
                        "y": np.asarray(labels, float)}).dropna()
  return frame["v"].corr(frame["y"])


def test_book_is_reproducible_and_noise_is_planted():
  first = synthetic.generate_lending_book(7, 3000)
  second = synthetic.generate_lending_book(7, 3000)
  pd.testing.assert_frame_equal(first.installments, second.installments)
  pd.testing.assert_series_equal(first.labels, second.labels)
  table = features.extract_features(first.borrowers, first.loans,
                                    first.installments, as_of=first.as_of)
  labels = first.labels.loc[table.index].to_numpy()
  assert abs(_correlation(table[synthetic.NOISE_FEATURE], labels)) < 0.05
  assert _correlation(table["bestpay_grade"], labels) < -0.2
  assert _correlation(table["bank_overdue"], labels) > 0.1
  assert 0.1 < labels.mean() < 0.4


def test_relations_are_homophilous():
  book = synthetic.generate_lending_book(8, 4000)
  position = pd.Series(np.arange(4000), index=book.labels.index)
  src = position[book.edges["src"]].to_numpy()
  dst = position[book.edges["dst"]].to_numpy()
  labels = book.labels.to_numpy()
  same = (labels[src] == labels[dst]).mean()
  rate = labels.mean()
  random_pairs = rate**2 + (1 - rate)**2
  assert same > random_pairs + 0.05


def test_feature_level_graph_book():
  book = synthetic.generate_borrower_graph(9, 5000, mean_links=10)
  assert list(book.features.columns) == list(features.FEATURE_COLUMNS
                                             + features.COUNT_COLUMNS)
  assert abs(_correlation(book.features[synthetic.NOISE_FEATURE],
                          book.labels)) < 0.05
  assert _correlation(book.features["bestpay_grade"], book.labels) < -0.2
  assert 4 * 5000 < len(book.src) < 6 * 5000
  dataset = data.dataset_from_graph_book(book, split_seed=0)
  assert dataset.graph.num_nodes == 5000
  batch = graphs.sample_graphs(
      dataset.graph, dataset.node_features, dataset.labels, np.arange(4),
      (3, 2), np.random.default_rng(0), graphs.BatchBudget.for_batch(4,
                                                                     (3, 2)))
  assert batch.n_node[:4].min() >= 1
