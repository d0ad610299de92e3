"""An applicant's result depends only on the model and its own records and
neighbourhood: not on batch size, batch mates, row order or a seed."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from credit_nas_jax import scoring
from credit_nas_jax import synthetic
from test_scoring import make_model  # pylint: disable=g-bad-import-order

BOOK = synthetic.generate_lending_book(31, 160)
# Ten applicants without relations.
LONE = list(BOOK.borrowers["borrower_id"].iloc[::16])
EDGES = BOOK.edges[~(BOOK.edges["src"].isin(LONE)
                     | BOOK.edges["dst"].isin(LONE))]
SETTINGS = hypothesis_settings(max_examples=25, deadline=None,
                               suppress_health_check=[
                                   HealthCheck.too_slow,
                                   HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=[(4, 2), (10, 5)],
                ids=["fanouts_4_2", "fanouts_10_5"])
def saved(request, tmp_path_factory):
  return make_model(tmp_path_factory.mktemp("model") / "model",
                    fanouts=request.param, seed=4)


def _score(saved, tables, batch_size, num_reasons=3):
  result = scoring.score_applicants(
      saved, *tables, as_of=BOOK.as_of,
      settings=scoring.ScoringSettings(batch_size=batch_size,
                                       num_reasons=num_reasons))
  return result.scores.set_index("borrower_id").sort_index()


def _tables(book=BOOK):
  """The book's four tables, the relations without the lone applicants."""
  return [book.borrowers, book.loans, book.installments, EDGES]


@pytest.fixture(scope="module")
def reference(saved):
  return _score(saved, _tables(), 1024)


@SETTINGS
@given(batch_size=st.sampled_from([1, 3, 17, 64, 129, 1000]),
       order=st.integers(0, 2**31 - 1))
def test_permuted_rows_and_batch_sizes_give_bit_identical_output(
    saved, reference, batch_size, order):
  rng = np.random.default_rng(order)
  tables = [t.iloc[rng.permutation(len(t))].reset_index(drop=True)
            for t in _tables()]
  got = _score(saved, tables, batch_size)
  # Bit for bit: every float column compared as raw bits, strings exactly.
  pd.testing.assert_index_equal(got.index, reference.index)
  for column in reference.columns:
    if reference[column].dtype.kind == "f":
      np.testing.assert_array_equal(got[column].to_numpy().view(np.int64),
                                    reference[column].to_numpy().view(
                                        np.int64), err_msg=column)
    else:
      assert got[column].tolist() == reference[column].tolist(), column


def test_batch_mates_do_not_matter(saved, reference):
  # Without the lone applicants nobody else's neighbourhood changes, but
  # every batch holds other applicants.
  kept = ~BOOK.borrowers["borrower_id"].isin(LONE)
  borrowers = BOOK.borrowers[kept]
  loans = BOOK.loans[~BOOK.loans["borrower_id"].isin(LONE)]
  installments = BOOK.installments[BOOK.installments["loan_id"].isin(
      loans["loan_id"])]
  got = _score(saved, [borrowers, loans, installments, EDGES], 7)
  assert len(got) == len(BOOK.borrowers) - len(LONE)
  expected = reference.loc[got.index]
  pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_lone_applicant_scores_the_same_alone_and_in_a_book(saved,
                                                              reference):
  one = LONE[3]
  borrowers = BOOK.borrowers[BOOK.borrowers["borrower_id"] == one]
  loans = BOOK.loans[BOOK.loans["borrower_id"] == one]
  installments = BOOK.installments[BOOK.installments["loan_id"].isin(
      loans["loan_id"])]
  got = _score(saved, [borrowers, loans, installments, None], 1)
  pd.testing.assert_frame_equal(got, reference.loc[[one]], check_exact=True)


def test_scores_are_the_same_without_reasons(saved, reference):
  got = _score(saved, _tables(), 50, num_reasons=0)
  np.testing.assert_array_equal(got["score"], reference["score"])
  np.testing.assert_array_equal(got["decision"], reference["decision"])


def test_the_sampling_seed_is_the_models(saved, reference, tmp_path):
  other = make_model(tmp_path / "other", fanouts=saved.fanouts, seed=5)
  # Same architecture, other weights and seed: another model, other scores.
  got = _score(other, _tables(), 1024)
  assert not np.array_equal(got["score"], reference["score"])


def test_in_graph_attribution_is_deterministic_too(saved):
  runs = []
  for batch_size, order in ((5, 1), (1000, 2)):
    rng = np.random.default_rng(order)
    tables = [t.iloc[rng.permutation(len(t))] for t in _tables()]
    result = scoring.score_applicants(
        saved, *tables, as_of=BOOK.as_of,
        settings=scoring.ScoringSettings(batch_size=batch_size,
                                         attribution="in_graph"))
    runs.append(result.scores.set_index("borrower_id").sort_index())
  pd.testing.assert_frame_equal(runs[0], runs[1], check_exact=True)
