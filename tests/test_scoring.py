"""Scoring: points, bands, settings, the neighbourhood rule, reasons, steps."""

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
import pytest

import launch  # pylint: disable=g-bad-import-order
from credit_nas_jax import calibration
from credit_nas_jax import features
from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import model_io
from credit_nas_jax import scoring
from credit_nas_jax import stability
from credit_nas_jax import synthetic
from experiments.configs import score as score_config

LOG_FEATURES = ("bestpay_overdue", "alipay_overdue", "bank_overdue")


def make_model(directory, *, fanouts=(4, 2), seed=0, hidden_dim=16):
  """A derived model with random weights, saved through model_io (no run)."""
  book = synthetic.generate_lending_book(0, 300)
  table = features.extract_features(book.borrowers, book.loans,
                                    book.installments, as_of=book.as_of)
  encoder = graphs.NodeEncoder.fit(table, features.FEATURE_COLUMNS,
                                   LOG_FEATURES)
  groups = encoder.column_groups
  arch = model.Architecture(
      column_groups=groups, input_columns=tuple(range(len(groups))),
      group_names=encoder.features, layer_ops=((hidden_dim,),
                                               (2 * hidden_dim,)),
      layer_op_names=(("small",), ("medium",)), hidden_dim=hidden_dim,
      searchable=False)
  weights, _ = model.init(jax.random.key(seed), arch)
  model_io.save_model(str(directory), arch, weights, encoder, fanouts, {},
                      sampling_seed=seed)
  return model_io.load_model(str(directory))


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
  return make_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("trained")
  launch.search(workdir)
  return model_io.load_model(str(workdir / "model"))


def _book_tables(book):
  return book.borrowers, book.loans, book.installments, book.edges


def test_points_scale():
  card = scoring.Scorecard()
  odds = np.array([50.0, 100.0, 25.0, 1.0])
  points = card.points(odds / (1 + odds))
  np.testing.assert_allclose(points, [600, 620, 580,
                                      600 - 20 * math.log2(50)], rtol=1e-9)
  custom = scoring.Scorecard(base_points=500, base_odds=20,
                             points_to_double=40)
  assert custom.points(np.array([40 / 41]))[0] == pytest.approx(540)
  for bad in (dict(points_to_double=0), dict(base_odds=-1),
              dict(base_points=math.inf), dict(base_odds=math.nan)):
    with pytest.raises(ValueError):
      scoring.Scorecard(**bad)


def test_bands_and_decisions():
  bands = scoring.parse_bands("small:0.6, large:0.9,medium:0.75")
  assert bands == (("large", 0.9), ("medium", 0.75), ("small", 0.6))
  assert scoring.check_bands([("small", 0.6), ("large", 0.9),
                              ("medium", 0.75)]) == bands
  decisions = scoring.decide(np.array([0.95, 0.9, 0.8, 0.6, 0.59]), bands)
  assert decisions.tolist() == ["large", "large", "medium", "small",
                                "refuse"]


@pytest.mark.parametrize("text", ["a", "a:1.5", "a:x", ":0.5", "a:0.5,a:0.6",
                                  "refuse:0.5", "", "a:nan", "a:-0.1"])
def test_bad_bands_are_named(text):
  with pytest.raises(ValueError):
    scoring.parse_bands(text)


@pytest.mark.parametrize("bands", [(), (("a",),), (("a", "0.5"),),
                                   (("a", True),), (("a", 0.5), ("a", 0.6)),
                                   (("x;y", 0.5),), "a:0.5"])
def test_bad_band_tuples_are_named(bands):
  with pytest.raises(ValueError):
    scoring.check_bands(bands)


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "batch_size=0 must be >= 1"),
    ("batch_size", -4, "batch_size=-4 must be >= 1"),
    ("batch_size", 2.5, "must be an integer"),
    ("num_reasons", -1, "num_reasons=-1 must be >= 0"),
    ("num_reasons", True, "must be an integer"),
    ("score_partial", 1, "must be a bool"),
    ("bands", (("a", 2.0),), "bad band"),
    ("attribution", "shap", "unknown attribution 'shap'"),
])
def test_bad_settings_are_refused(field, value, message):
  with pytest.raises(ValueError, match=message):
    scoring.ScoringSettings(**{field: value})


def test_settings_from_the_config_file():
  config = score_config.get_config()
  settings = scoring.ScoringSettings.from_config(config)
  assert settings == scoring.ScoringSettings()
  config.num_reasons = 5
  config.bands = (("a", 0.5), ("b", 0.7))
  settings = scoring.ScoringSettings.from_config(config)
  assert settings.num_reasons == 5 and settings.bands == (("b", 0.7),
                                                          ("a", 0.5))
  config.unknown = 1
  with pytest.raises(ValueError, match="unknown"):
    scoring.ScoringSettings.from_config(config)
  with pytest.raises(ValueError, match="missing"):
    scoring.ScoringSettings.from_config(ml_collections.ConfigDict(
        {"bands": (("a", 0.5),)}))


def test_issue_repro_non_finite_values_are_refused():
  borrowers = pd.DataFrame({"borrower_id": ["a", "b"],
                            "bestpay_score": ["inf", "700"],
                            "sesame_score": ["600", "600"]})
  loans = pd.DataFrame({"loan_id": ["l1"], "borrower_id": ["b"],
                        "source": ["bank"], "periods": ["inf"]})
  installments = pd.DataFrame(columns=list(
      features.REQUIRED_COLUMNS["installments"]))
  result = features.extract_features_with_rejects(
      borrowers, loans, installments, as_of="2026-01-01")
  assert result.features.empty
  reasons = dict(zip(result.rejects["field"], result.rejects["reason"]))
  assert reasons["bestpay_score"].startswith("score is not finite")
  assert reasons["periods"].startswith("periods is not finite")


# The neighbourhood rule.


def _star_and_path():
  # 0 is joined to 1..12; 13-14-15 is a path; 16 is alone.
  src = [0] * 12 + [13, 14]
  dst = list(range(1, 13)) + [14, 15]
  return graphs.BorrowerGraph.from_edges(17, np.array(src), np.array(dst))


def test_neighbourhoods_are_real_distinct_and_within_fanouts():
  graph = _star_and_path()
  hashes = scoring.id_hashes([f"B{i}" for i in range(17)])
  slots = scoring.sample_neighbourhoods(graph, hashes, (5, 3), seed=0)
  assert slots.shape == (17, graphs.graph_slots((5, 3)))
  parent = graphs.slot_parents((5, 3))
  for row in range(17):
    assert slots[row, 0] == row
    for slot in range(1, slots.shape[1]):
      node, up = slots[row, slot], slots[row, parent[slot]]
      if node >= 0:
        assert up >= 0
        assert node in graph.indices[graph.indptr[up]:graph.indptr[up + 1]]
    children = slots[row, 1:6]
    children = children[children >= 0]
    assert len(set(children)) == len(children) == min(5, graph.degree[row])
  assert (slots[16, 1:] == -1).all()  # alone: a one-node graph


def test_the_rule_is_keyed_by_the_seed_and_the_applicant():
  graph = _star_and_path()
  hashes = scoring.id_hashes([f"B{i}" for i in range(17)])
  first = scoring.sample_neighbourhoods(graph, hashes, (5, 3), seed=0)
  np.testing.assert_array_equal(
      first, scoring.sample_neighbourhoods(graph, hashes, (5, 3), seed=0))
  other = scoring.sample_neighbourhoods(graph, hashes, (5, 3), seed=1)
  assert set(first[0, 1:6]) != set(other[0, 1:6])  # 12 choose 5 subsets
  # Leaves 1..12 share one neighbour, the hub, but each takes its own
  # sample of the hub's neighbours.
  assert len({tuple(first[leaf, 6:9]) for leaf in range(1, 13)}) > 6


def test_the_rule_looks_uniform():
  # Many applicants, each related to the same ten friends (rows 0..9), each
  # take 3 of them.
  count = 4000
  applicants = np.arange(10, 10 + count)
  src = np.repeat(applicants, 10)
  dst = np.tile(np.arange(10), count)
  graph = graphs.BorrowerGraph.from_edges(10 + count, src, dst)
  hashes = scoring.id_hashes([f"B{i}" for i in range(10 + count)])
  slots = scoring.sample_neighbourhoods(graph, hashes, (3,), seed=3)
  counts = np.bincount(slots[applicants, 1:].reshape(-1), minlength=10)
  expected = count * 3 / 10
  assert counts.sum() == 3 * count
  assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected))
  # Which friends two applicants share is as for random draws: 3 of 10 and
  # 3 of 10 share 0.9 on average.
  shared = [len(set(slots[a, 1:]) & set(slots[a + 1, 1:]))
            for a in applicants[:-1]]
  assert np.mean(shared) == pytest.approx(0.9, abs=0.1)


def test_the_rule_does_not_depend_on_row_order():
  rng = np.random.default_rng(0)
  ids = [f"B{i}" for i in range(60)]
  src, dst = rng.integers(0, 60, 200), rng.integers(0, 60, 200)
  graph = graphs.BorrowerGraph.from_edges(60, src, dst)
  slots = scoring.sample_neighbourhoods(graph, scoring.id_hashes(ids), (4, 2),
                                        seed=5)
  order = rng.permutation(60)
  where = np.argsort(order)  # new row of every old row
  permuted = graphs.BorrowerGraph.from_edges(60, where[src], where[dst])
  again = scoring.sample_neighbourhoods(
      permuted, scoring.id_hashes([ids[k] for k in order]), (4, 2), seed=5)
  as_ids = lambda s, names: np.where(s >= 0, np.asarray(names)[s], "")
  np.testing.assert_array_equal(as_ids(slots, ids)[order],
                                as_ids(again, [ids[k] for k in order]))


def test_one_sort_order_equals_the_two_key_sort():
  rng = np.random.default_rng(1)
  owner = np.sort(rng.integers(0, 1000, 20000))
  keys = rng.integers(0, 2**63, 20000, dtype=np.uint64) * np.uint64(2)
  keys[5] = keys[6]  # a tie falls back to the exact sort
  for k in (keys, np.where(np.arange(20000) == 5, keys[4], keys)):
    np.testing.assert_array_equal(
        k[scoring._order_within_owners(owner, k)],  # pylint: disable=protected-access
        k[np.lexsort((k, owner))])


def test_id_hashes_are_stable():
  # Part of the scoring contract: a change here changes every neighbourhood.
  assert scoring.id_hashes(["B0000001", "a"]).tolist() == [
      17038822165295042516, 8573882909800292932]


# Reasons.


@pytest.mark.parametrize("attribution", scoring.ATTRIBUTIONS)
def test_reasons_are_gradient_times_input_on_the_own_node(attribution):
  arch = model.Architecture(
      column_groups=(0, 0, 1, 2), input_columns=(0, 1, 2, 4),
      group_names=("g0", "g1", "g2"), layer_ops=((8,), (4,)),
      layer_op_names=(("medium",), ("small",)), hidden_dim=4,
      searchable=False)
  weights, _ = model.init(jax.random.key(0), arch)
  rng = np.random.default_rng(0)
  graph = graphs.BorrowerGraph.from_edges(6, [0, 0, 1, 3], [1, 2, 3, 4])
  node_features = rng.normal(size=(6, 5)).astype(np.float32)
  batch = graphs.sample_graphs(graph, node_features, np.zeros(6, np.float32),
                               np.arange(6), (2, 2), rng,
                               graphs.BatchBudget.for_batch(6, (2, 2)))
  scores, contributions, alone = scoring._scores_and_attributions(  # pylint: disable=protected-access
      weights, batch, jnp.zeros(5), arch, attribution)
  # Applicant 2 alone: its node as a one-node graph.
  single = graphs.sample_graphs(
      graphs.BorrowerGraph.from_edges(6, [], []), node_features,
      np.zeros(6, np.float32), np.array([2]), (2, 2), rng,
      graphs.BatchBudget.for_batch(1, (2, 2)))
  expected_alone = jax.nn.sigmoid(model.apply(weights, {}, single, arch))[0]
  assert float(alone[2]) == pytest.approx(float(expected_alone), abs=1e-6)
  expected_score = jax.nn.sigmoid(model.apply(weights, {}, batch, arch))[2]
  assert float(scores[2]) == pytest.approx(float(expected_score), abs=1e-6)
  # Finite differences along the own node's columns: of the full graph's
  # score (in_graph) or of the score alone (own_record).
  probe, index, row = ((batch, 2, int(np.cumsum(batch.n_node)[1]))
                       if attribution == "in_graph" else (single, 0, 0))
  eps = 1e-3
  for column in range(5):
    bumped = probe.nodes.copy()
    bumped[row, column] += eps
    lowered = probe.nodes.copy()
    lowered[row, column] -= eps
    up = jax.nn.sigmoid(model.apply(weights, {}, probe._replace(nodes=bumped),
                                    arch))[index]
    down = jax.nn.sigmoid(model.apply(weights, {},
                                      probe._replace(nodes=lowered),
                                      arch))[index]
    derivative = (up - down) / (2 * eps)
    assert float(contributions[2, column]) == pytest.approx(
        float(derivative * probe.nodes[row, column]), abs=2e-4)
  assert contributions[2, 3] == 0  # a column the network does not read
  assert 0 < float(scores[2]) < 1


def test_reason_strings_take_the_most_negative_first():
  contributions = np.array([[0.1, -0.3, -0.2], [0.1, 0.2, 0.0],
                            [-0.1, -0.1, -0.5]])
  reasons = scoring._reason_strings(contributions, ["a", "b", "c"], 2)  # pylint: disable=protected-access
  assert reasons.tolist() == ["b;c", "", "c;a"]


@pytest.mark.parametrize("num_reasons", [0, 1, 3])
def test_every_refused_applicant_has_a_reason(random_model, num_reasons):
  book = synthetic.generate_lending_book(21, 150)
  settings = scoring.ScoringSettings(
      bands=(("plan", 0.999),), num_reasons=num_reasons)
  result = scoring.score_applicants(random_model, *_book_tables(book),
                                    as_of=book.as_of, settings=settings)
  scores = result.scores
  refused = scores["decision"] == scoring.REFUSE
  assert refused.sum() > 100
  assert (scores.loc[refused, "reasons"].str.len() > 0).all()
  if num_reasons == 0:
    assert (scores.loc[refused, "reasons"].str.count(";") == 0).all()
    assert (scores.loc[~refused, "reasons"] == "").all()
    assert not [c for c in scores.columns if c.startswith("contribution/")]
  else:
    names = scoring.reason_names(random_model)
    assert [c for c in scores.columns if c.startswith("contribution/")] == [
        f"contribution/{n}" for n in names]
    lists = scores["reasons"].str.split(";")
    assert lists.map(len).max() <= num_reasons
    allowed = set(names) | {scoring.LOW_SCORE_REASON, ""}
    assert set(lists.explode()) <= allowed


def test_no_reasons_gives_the_same_scores(random_model):
  book = synthetic.generate_lending_book(15, 120)
  with_reasons = scoring.score_applicants(random_model, *_book_tables(book),
                                          as_of=book.as_of)
  without = scoring.score_applicants(
      random_model, *_book_tables(book), as_of=book.as_of,
      settings=scoring.ScoringSettings(num_reasons=0))
  np.testing.assert_array_equal(with_reasons.scores["score"],
                                without.scores["score"])
  refused = without.scores["decision"] == scoring.REFUSE
  # A refused applicant's one reason is its first reason with three.
  np.testing.assert_array_equal(
      without.scores.loc[refused, "reasons"],
      with_reasons.scores.loc[refused, "reasons"].str.split(";").str[0])


def test_steps_compose_to_score_applicants(random_model):
  book = synthetic.generate_lending_book(16, 90)
  settings = scoring.ScoringSettings(batch_size=32)
  applicants = scoring.extract_applicants(*_book_tables(book),
                                          as_of=book.as_of)
  ids = applicants.features.index.to_numpy()
  node_features = scoring.encode_applicants(random_model, applicants.features)
  chex.assert_shape(node_features,
                    (len(ids), len(random_model.encoder.column_names)))
  position = pd.Index(ids)
  graph = graphs.BorrowerGraph.from_edges(
      len(ids), position.get_indexer(applicants.src),
      position.get_indexer(applicants.dst))
  slots = scoring.sample_neighbourhoods(graph, scoring.id_hashes(ids),
                                        random_model.fanouts,
                                        random_model.sampling_seed)
  outputs = scoring.score_batches(
      random_model, scoring.make_batches(slots, node_features,
                                         random_model.fanouts, 32),
      len(ids), attributions=True)
  frame = scoring.explain(random_model, ids, outputs, settings)
  whole = scoring.score_applicants(random_model, *_book_tables(book),
                                   as_of=book.as_of, settings=settings)
  pd.testing.assert_frame_equal(frame, whole.scores)


def test_an_applicant_without_relations_is_its_own_graph(random_model):
  book = synthetic.generate_lending_book(17, 60)
  result = scoring.score_applicants(random_model, book.borrowers, book.loans,
                                    book.installments, None, as_of=book.as_of)
  assert len(result.scores) == 60
  assert (result.scores["contribution/related_borrowers"] == 0).all()
  assert result.summary["edges"] == 0


def test_trained_scores_carry_signal(trained):
  book = synthetic.generate_lending_book(11, 300)
  result = scoring.score_applicants(trained, *_book_tables(book),
                                    as_of=book.as_of)
  scores = result.scores
  assert len(scores) == 300 and scores["borrower_id"].is_unique
  assert scores["score"].between(0, 1).all()
  np.testing.assert_allclose(
      scores["points"], scoring.Scorecard().points(scores["score"]), atol=0.06)
  labels = book.labels.loc[scores["borrower_id"]].to_numpy()
  assert scores["score"][labels == 0].mean() > scores["score"][
      labels == 1].mean()


def test_empty_book(random_model):
  book = synthetic.generate_lending_book(18, 10)
  result = scoring.score_applicants(
      random_model, book.borrowers.iloc[:0], book.loans.iloc[:0],
      book.installments.iloc[:0], book.edges.iloc[:0], as_of=book.as_of)
  assert len(result.scores) == 0 and result.summary["applicants"] == 0


@pytest.mark.parametrize("batch_size", [1, 100, 300])
def test_batches_are_padded_past_the_small_kernel_paths(random_model,
                                                        batch_size):
  book = synthetic.generate_lending_book(19, 300)
  applicants = scoring.extract_applicants(*_book_tables(book),
                                          as_of=book.as_of)
  ids = applicants.features.index.to_numpy()
  position = pd.Index(ids)
  graph = graphs.BorrowerGraph.from_edges(
      len(ids), position.get_indexer(applicants.src),
      position.get_indexer(applicants.dst))
  slots = scoring.sample_neighbourhoods(graph, scoring.id_hashes(ids),
                                        random_model.fanouts, 0)
  node_features = scoring.encode_applicants(random_model, applicants.features)
  shapes = set()
  seen = []
  for rows, batch in scoring.make_batches(slots, node_features,
                                          random_model.fanouts, batch_size):
    seen.extend(rows)
    shapes.add((batch.nodes.shape[0], batch.n_node.shape[0]))
    assert (batch.globals["borrower"][:rows.size] == rows).all()
  assert seen == list(range(len(ids)))
  (nodes, graph_count), = shapes  # one compile
  assert nodes % scoring.ROW_MULTIPLE == 0 and nodes >= 1024
  assert graph_count % scoring.ROW_MULTIPLE == 0 and graph_count > 128


# Calibration and monitoring.


def _with(saved, directory, **fields):
  """``saved`` with other fields, written and loaded back."""
  model_io.write_model(str(directory), dataclasses.replace(saved, **fields))
  return model_io.load_model(str(directory))


_SHIFT_MAP = {"format": calibration.FORMAT, "method": "platt",
              "parameters": {"slope": 2.0, "intercept": 1.5}}


@pytest.mark.parametrize("num_reasons", [0, 3])
def test_a_calibrated_model_scores_through_its_map(random_model, tmp_path,
                                                   num_reasons):
  calibrated = _with(random_model, tmp_path / "calibrated",
                     calibration=_SHIFT_MAP)
  book = synthetic.generate_lending_book(22, 150)
  settings = scoring.ScoringSettings(num_reasons=num_reasons)
  plain = scoring.score_applicants(random_model, *_book_tables(book),
                                   as_of=book.as_of, settings=settings)
  result = scoring.score_applicants(calibrated, *_book_tables(book),
                                    as_of=book.as_of, settings=settings)
  expected = calibration.apply_map(_SHIFT_MAP, plain.scores["score"])
  np.testing.assert_allclose(result.scores["score"], expected, rtol=1e-12)
  assert not np.allclose(expected, plain.scores["score"], atol=0.05)
  np.testing.assert_array_equal(result.scores["decision"],
                                scoring.decide(expected, settings.bands))
  np.testing.assert_allclose(result.scores["points"],
                             settings.scorecard.points(expected).round(1))
  # Contributions stay in the network's units.
  contributions = [c for c in plain.scores if c.startswith("contribution/")]
  pd.testing.assert_frame_equal(result.scores[contributions],
                                plain.scores[contributions])
  refused = result.scores["decision"] == scoring.REFUSE
  assert (result.scores.loc[refused, "reasons"] != "").all()
  assert (result.summary["calibration"], plain.summary["calibration"]) == (
      "platt", None)


@pytest.fixture(scope="module")
def monitored(random_model, tmp_path_factory):
  """The random model with a training population fitted on a random half
  of a book's applicants, and a calibration map that moves every score
  (the PSI must not read it); the book, its plain scoring, its features and
  the other half's rows."""
  book = synthetic.generate_lending_book(30, 3000)
  plain = scoring.score_applicants(
      random_model, *_book_tables(book), as_of=book.as_of,
      settings=scoring.ScoringSettings(num_reasons=0))
  table = features.extract_features(book.borrowers, book.loans,
                                    book.installments, as_of=book.as_of)
  table = table.loc[plain.scores["borrower_id"]]
  rows = np.random.default_rng(0).permutation(len(table))
  train, batch = rows[:1500], rows[1500:]
  scores = plain.scores["score"].to_numpy()
  population = stability.fit_population(
      scores[train], {n: table[n].to_numpy()[train]
                      for n in random_model.encoder.features})
  saved = _with(random_model, tmp_path_factory.mktemp("monitored") / "model",
                calibration=_SHIFT_MAP, population=population)
  return saved, book, plain, table, batch


def test_a_batch_of_the_training_population_is_stable_at_scoring(monitored):
  saved, book, plain, table, batch = monitored
  scores = plain.scores["score"].to_numpy()
  report = scoring.population_stability(saved, table.iloc[batch],
                                        scores[batch])
  assert report["rows"] == batch.size
  assert report["score"]["psi"] < 0.05
  assert set(report["features"]) == set(features.FEATURE_COLUMNS)
  assert all(e["psi"] < 0.05 for e in report["features"].values())
  assert report["major_shifts"] == []
  # One feature shifted by a standard deviation: flagged, and no other.
  shifted = table.iloc[batch].copy()
  shifted["bestpay_grade"] += table["bestpay_grade"].std()
  assert scoring.population_stability(saved, shifted, scores[batch])[
      "major_shifts"] == ["bestpay_grade"]


def test_scoring_reports_the_network_scores_stability(monitored):
  saved, book, plain, table, _ = monitored
  result = scoring.score_applicants(saved, *_book_tables(book),
                                    as_of=book.as_of,
                                    settings=scoring.ScoringSettings(
                                        num_reasons=0))
  network = plain.scores["score"].to_numpy()
  expected = stability.stability_report(
      saved.population, network, {n: table[n].to_numpy()
                                  for n in saved.encoder.features})
  assert result.stability == expected
  # Read from the calibrated scores, the same batch would look shifted.
  calibrated = stability.stability_report(saved.population,
                                          result.scores["score"], {})
  assert calibrated["score"]["psi"] > 1 > expected["score"]["psi"]


def test_a_model_without_a_population_has_no_stability(random_model):
  book = synthetic.generate_lending_book(32, 20)
  result = scoring.score_applicants(random_model, *_book_tables(book),
                                    as_of=book.as_of)
  assert result.stability is None and result.fairness is None


def test_fairness_report_at_scoring(random_model):
  book = synthetic.generate_lending_book(33, 200)
  borrowers = book.borrowers.assign(
      age=np.arange(200) % 60 + 20,
      default=book.labels.loc[book.borrowers["borrower_id"]].to_numpy())
  settings = scoring.ScoringSettings(
      num_reasons=0, sensitive_column="age", sensitive_bins=(40,),
      default_column="default")
  result = scoring.score_applicants(random_model, borrowers, book.loans,
                                    book.installments, book.edges,
                                    as_of=book.as_of, settings=settings)
  report = result.fairness
  assert report["messages"] == []
  assert {n: g["count"] for n, g in report["groups"].items()} == {
      "(-inf, 40)": 80, "[40, inf)": 120}  # ages 20..79, cycled
  approved = result.scores["decision"] != scoring.REFUSE
  young = (borrowers.set_index("borrower_id").loc[
      result.scores["borrower_id"], "age"] < 40).to_numpy()
  assert report["groups"]["(-inf, 40)"]["approval_rate"] == pytest.approx(
      approved[young].mean())
  assert report["groups"]["[40, inf)"]["auc"] is not None
  missing = scoring.fairness_report(
      borrowers, result.scores,
      dataclasses.replace(settings, sensitive_column="gender",
                          sensitive_bins=()))
  assert missing["groups"] == {} and len(missing["messages"]) == 1
  assert "'gender' is not in the table" in missing["messages"][0]


@pytest.mark.parametrize("field,value,message", [
    ("sensitive_column", 3, "sensitive_column=3 must be a column name"),
    ("sensitive_bins", (40, 30), "must be increasing"),
    ("sensitive_bins", "40", "must be increasing"),
    ("default_column", None, "default_column=None must be a column name"),
])
def test_bad_fairness_settings_are_refused(field, value, message):
  with pytest.raises(ValueError, match=message):
    scoring.ScoringSettings(**{"sensitive_column": "age", field: value})
  with pytest.raises(ValueError, match="need a sensitive_column"):
    scoring.ScoringSettings(sensitive_bins=(30,))
