"""Population stability: bins, PSI against a hand reference, the flags of a
shifted feature, small batches, and the population's JSON."""

import json

import numpy as np
import pytest

from credit_nas_jax import features
from credit_nas_jax import stability
from credit_nas_jax import synthetic


def _feature_table(seed, rows):
  book = synthetic.generate_lending_book(seed, rows)
  return features.extract_features(book.borrowers, book.loans,
                                   book.installments, as_of=book.as_of)


@pytest.fixture(scope="module")
def tables():
  """Two books from one generator: the training population and a batch."""
  return _feature_table(0, 3000), _feature_table(1, 2000)


def _columns(table):
  return {name: table[name].to_numpy() for name in features.FEATURE_COLUMNS}


def test_psi_against_a_hand_reference():
  expected = np.array([0.25, 0.25, 0.5, 0.0])
  actual = np.array([0.5, 0.25, 0.25, 0.0])
  hand = (0.25 * np.log(2) + 0.0 + (-0.25) * np.log(0.5))
  assert stability.psi(expected, actual) == pytest.approx(hand)
  assert stability.psi(expected, expected) == 0.0
  # An empty training bin counts through the floor, not as infinity.
  assert stability.psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(
      (0.5 - 1) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4))
  assert [stability.level(v) for v in (0.05, 0.2, 0.3)] == [
      "stable", "shifting", "major shift"]


def test_deciles_and_their_bins():
  values = np.append(np.arange(100, dtype=float), [np.nan] * 25)
  reference = stability.fit_numeric(values)
  np.testing.assert_allclose(reference["edges"], np.arange(9, 90, 10))
  np.testing.assert_allclose(reference["shares"],
                             np.array([9] + [10] * 8 + [11, 25]) / 125)
  # Many equal values: fewer bins, every value in one of them.
  grades = stability.fit_numeric(np.array([0.0] * 70 + [1.0] * 20
                                          + [2.0] * 10))
  assert grades["edges"] == [0.0, 1.0]
  np.testing.assert_allclose(grades["shares"], [0.0, 0.7, 0.3, 0.0])
  categories = stability.fit_categorical(np.array(["a", "b", "a", None],
                                                  dtype=object))
  assert categories["categories"] == ["a", "b"]
  np.testing.assert_allclose(
      stability.batch_shares(categories, np.array(["c", "a"], dtype=object)),
      [0.5, 0.0, 0.5])


def test_a_batch_of_the_training_population_is_stable(tables):
  train, batch = tables
  rng = np.random.default_rng(0)
  train_scores, batch_scores = rng.beta(6, 2, len(train)), rng.beta(
      6, 2, len(batch))
  population = stability.fit_population(train_scores, _columns(train))
  report = stability.stability_report(population, batch_scores,
                                      _columns(batch))
  assert report["score"]["psi"] < 0.05
  for name, entry in report["features"].items():
    assert entry["psi"] < 0.05, name
  assert report["major_shifts"] == []


@pytest.mark.parametrize("shifted", features.FEATURE_COLUMNS)
def test_one_feature_shifted_by_one_std_is_flagged_alone(tables, shifted):
  train, batch = tables
  population = stability.fit_population(np.linspace(0, 1, len(train)),
                                        _columns(train))
  columns = _columns(batch)
  columns[shifted] = columns[shifted] + np.nanstd(train[shifted].to_numpy())
  report = stability.stability_report(population,
                                      np.linspace(0, 1, len(batch)), columns)
  assert report["major_shifts"] == [shifted]
  assert report["features"][shifted]["level"] == "major shift"


def test_a_small_batch_says_so_instead_of_a_number(tables):
  train, batch = tables
  population = stability.fit_population(np.linspace(0, 1, len(train)),
                                        _columns(train))
  small = batch.iloc[:stability.MIN_ROWS - 1]
  report = stability.stability_report(population,
                                      np.linspace(0, 1, len(small)),
                                      _columns(small))
  assert report["score"]["psi"] is None
  assert "too small for deciles (needs at least 100)" in report["score"][
      "note"]
  assert all(e["psi"] is None for e in report["features"].values())
  enough = batch.iloc[:stability.MIN_ROWS]
  assert stability.stability_report(
      population, np.linspace(0, 1, len(enough)),
      _columns(enough))["score"]["psi"] is not None


def test_a_feature_the_batch_lacks_is_named(tables):
  train, batch = tables
  population = stability.fit_population(np.linspace(0, 1, len(train)),
                                        _columns(train))
  columns = _columns(batch)
  del columns["bank_overdue"]
  report = stability.stability_report(population,
                                      np.linspace(0, 1, len(batch)), columns)
  assert report["features"]["bank_overdue"] == {"psi": None,
                                                "note": "not in the batch"}


def test_population_survives_json_and_bad_ones_are_refused(tables):
  train, _ = tables
  population = stability.fit_population(np.linspace(0, 1, len(train)),
                                        _columns(train))
  loaded = stability.check_population(json.loads(json.dumps(
      population, allow_nan=False)))
  assert loaded == population
  broken = json.loads(json.dumps(population))
  broken["features"]["bestpay_grade"]["shares"][0] += 0.5
  with pytest.raises(ValueError, match="feature 'bestpay_grade'"):
    stability.check_population(broken)
  broken = json.loads(json.dumps(population))
  broken["score"]["edges"].reverse()
  with pytest.raises(ValueError, match="score"):
    stability.check_population(broken)
  with pytest.raises(ValueError, match="not a credit_nas_jax.population"):
    stability.check_population({"format": "other"})
