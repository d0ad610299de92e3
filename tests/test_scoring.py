"""Scoring: points, bands, reasons, every rejection path, the command."""

import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import launch  # pylint: disable=g-bad-import-order
from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import model_io
from credit_nas_jax import scoring
from credit_nas_jax import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_REJECTED = 3  # score.py's status when some applicants were rejected


def test_points_scale():
  card = scoring.Scorecard()
  odds = np.array([50.0, 100.0, 25.0, 1.0])
  points = card.points(odds / (1 + odds))
  np.testing.assert_allclose(points, [600, 620, 580,
                                      600 - 20 * math.log2(50)], rtol=1e-9)
  custom = scoring.Scorecard(base_points=500, base_odds=20,
                             points_to_double=40)
  assert custom.points(np.array([40 / 41]))[0] == pytest.approx(540)
  with pytest.raises(ValueError):
    scoring.Scorecard(points_to_double=0)


def test_bands_and_decisions():
  bands = scoring.parse_bands("small:0.6, large:0.9,medium:0.75")
  assert bands == (("large", 0.9), ("medium", 0.75), ("small", 0.6))
  decisions = scoring.decide(np.array([0.95, 0.9, 0.8, 0.6, 0.59]), bands)
  assert decisions.tolist() == ["large", "large", "medium", "small",
                                "refuse"]


@pytest.mark.parametrize("text", ["a", "a:1.5", "a:x", ":0.5", "a:0.5,a:0.6",
                                  "refuse:0.5", ""])
def test_bad_bands_are_named(text):
  with pytest.raises(ValueError):
    scoring.parse_bands(text)


def test_reasons_are_gradient_times_input_on_the_own_node():
  arch = model.Architecture(
      column_groups=(0, 0, 1, 2), input_columns=(0, 1, 2, 4),
      group_names=("g0", "g1", "g2"), layer_ops=((8,), (4,)),
      layer_op_names=(("medium",), ("small",)), hidden_dim=4,
      searchable=False)
  weights, _ = model.init(jax.random.key(0), arch)
  rng = np.random.default_rng(0)
  graph = graphs.BorrowerGraph.from_edges(6, [0, 0, 1, 3], [1, 2, 3, 4])
  features = rng.normal(size=(6, 5)).astype(np.float32)
  batch = graphs.sample_graphs(graph, features, np.zeros(6, np.float32),
                               np.arange(6), (2, 2), rng,
                               graphs.BatchBudget.for_batch(6, (2, 2)))
  baseline = jnp.zeros(5)
  scores, contributions = scoring._scores_and_attributions(  # pylint: disable=protected-access
      weights, batch, baseline, arch)
  # Finite differences of graph 2's score along its own node's columns.
  first = int(np.cumsum(batch.n_node)[1])
  eps = 1e-3
  for column in range(5):
    bumped = batch.nodes.copy()
    bumped[first, column] += eps
    lowered = batch.nodes.copy()
    lowered[first, column] -= eps
    up = jax.nn.sigmoid(model.apply(weights, {}, batch._replace(nodes=bumped),
                                    arch))[2]
    down = jax.nn.sigmoid(model.apply(weights, {},
                                      batch._replace(nodes=lowered), arch))[2]
    derivative = (up - down) / (2 * eps)
    assert float(contributions[2, column]) == pytest.approx(
        float(derivative * batch.nodes[first, column]), abs=2e-4)
  assert contributions[2, 3] == 0  # a column the network does not read
  assert 0 < float(scores[2]) < 1


def _write_book(directory, book, *, corrupt=False):
  borrowers, loans, installments = (book.borrowers.copy(), book.loans.copy(),
                                    book.installments.copy())
  edges = book.edges.copy()
  if corrupt:
    borrowers.loc[3, "bestpay_score"] = -40  # borrower B0000003
    loans.loc[0, "source"] = "pawnshop"  # the first loan
    installments.loc[5, "due_date"] = "not a date"
    edges.loc[len(edges)] = ["B0000000", "STRANGER", "guarantee"]
  paths = {}
  for name, frame in (("borrowers", borrowers), ("loans", loans),
                      ("installments", installments), ("edges", edges)):
    paths[name] = os.path.join(directory, f"{name}.csv")
    frame.to_csv(paths[name], index=False)
  return paths, borrowers, loans, installments


def _score(model_dir, paths, output, *extra):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "score.py"),
       f"--model_dir={model_dir}", f"--borrowers={paths['borrowers']}",
       f"--loans={paths['loans']}", f"--installments={paths['installments']}",
       f"--edges={paths['edges']}", "--as_of=2026-01-01",
       f"--output={output}", *extra],
      capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("trained")
  launch.search(workdir)
  return str(workdir / "model")


def test_scores_the_synthetic_book(trained, tmp_path):
  book = synthetic.generate_lending_book(11, 300)
  paths, *_ = _write_book(tmp_path, book)
  output = str(tmp_path / "scores.csv")
  result = _score(trained, paths, output)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "scored 300 of 300 applicants; rejected 0 applicants" in (
      result.stdout)
  scores = pd.read_csv(output)
  assert list(scores.columns[:5]) == list(scoring.OUTPUT_COLUMNS)
  assert len(scores) == 300 and scores["borrower_id"].is_unique
  assert scores["score"].between(0, 1).all()
  np.testing.assert_allclose(
      scores["points"], scoring.Scorecard().points(scores["score"]), atol=0.06)
  assert set(scores["decision"]) <= {"plan_a", "plan_b", "plan_c", "refuse"}
  # Scores carry signal: defaulters score lower on average.
  labels = book.labels.loc[scores["borrower_id"]].to_numpy()
  assert scores["score"][labels == 0].mean() > scores["score"][
      labels == 1].mean()
  # Reproducible.
  again = str(tmp_path / "again.csv")
  assert _score(trained, paths, again).returncode == 0
  pd.testing.assert_frame_equal(scores, pd.read_csv(again))


def test_bad_rows_are_listed_and_their_applicants_not_scored(trained,
                                                             tmp_path):
  book = synthetic.generate_lending_book(12, 200)
  paths, borrowers, loans, installments = _write_book(tmp_path, book,
                                                      corrupt=True)
  output = str(tmp_path / "scores.csv")
  result = _score(trained, paths, output)
  assert result.returncode == EXIT_REJECTED
  rejects = pd.read_csv(output + ".rejects.csv")
  expected_unscored = {"B0000003", loans.loc[0, "borrower_id"],
                       loans.set_index("loan_id").loc[
                           installments.loc[5, "loan_id"], "borrower_id"]}
  reasons = {(r.table, r.reason) for r in rejects.itertuples()}
  assert ("borrowers", "negative score") in reasons
  assert any(t == "loans" and r.startswith("unknown source")
             for t, r in reasons)
  assert ("installments", "unparsable date") in reasons
  assert ("installments", "loan record rejected") in reasons
  assert ("edges", "endpoint is not an applicant") in reasons
  unscored = set(rejects.loc[rejects["table"] == "applicants", "borrower_id"])
  assert unscored == expected_unscored
  scores = pd.read_csv(output)
  assert not set(scores["borrower_id"]) & unscored
  assert len(scores) + len(unscored) == len(borrowers)
  assert (f"scored {len(scores)} of 200 applicants; rejected "
          f"{len(unscored)} applicants") in result.stdout
  partial = str(tmp_path / "partial.csv")
  result = _score(trained, paths, partial, "--score_partial")
  scored_partially = set(pd.read_csv(partial)["borrower_id"])
  # The negative-score borrower has no valid borrower record to score from.
  assert scored_partially == set(borrowers["borrower_id"]) - {"B0000003"}


def test_corrupt_model_directory_fails_clearly(trained, tmp_path):
  broken = tmp_path / "model"
  broken.mkdir()
  for name in ("model.json", "weights.npz"):
    (broken / name).write_bytes(open(os.path.join(trained, name), "rb").read())
  with open(broken / "weights.npz", "r+b") as f:
    f.seek(64)
    f.write(b"\x00" * 32)
  paths, *_ = _write_book(tmp_path, synthetic.generate_lending_book(13, 50))
  result = _score(str(broken), paths, str(tmp_path / "s.csv"))
  assert result.returncode == 1
  assert "error:" in result.stderr and "checksum" in result.stderr
  with pytest.raises(model_io.ModelFormatError):
    model_io.load_model(str(broken))


def test_features_only(tmp_path):
  book = synthetic.generate_lending_book(14, 80)
  paths, *_ = _write_book(tmp_path, book)
  output = str(tmp_path / "features.csv")
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "score.py"),
       "--features_only", f"--borrowers={paths['borrowers']}",
       f"--loans={paths['loans']}", f"--installments={paths['installments']}",
       "--as_of=2026-01-01", f"--output={output}"],
      capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  table = pd.read_csv(output, index_col="borrower_id")
  assert len(table) == 80
  assert list(table.columns[:5]) == ["bestpay_grade", "bestpay_overdue",
                                     "sesame_grade", "alipay_overdue",
                                     "bank_overdue"]


def test_no_reasons_gives_the_same_scores(trained, tmp_path):
  paths, *_ = _write_book(tmp_path, synthetic.generate_lending_book(15, 120))
  with_reasons, without = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
  assert _score(trained, paths, with_reasons).returncode == 0
  assert _score(trained, paths, without, "--num_reasons=0").returncode == 0
  a, b = pd.read_csv(with_reasons), pd.read_csv(without)
  np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5)
  assert b["reasons"].isna().all()
  assert not [c for c in b.columns if c.startswith("contribution/")]
