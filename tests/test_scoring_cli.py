"""experiments/score.py as a user runs it: bad records, flags, files, outputs."""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import launch  # pylint: disable=g-bad-import-order
from credit_nas_jax import calibration
from credit_nas_jax import features
from credit_nas_jax import model_io
from credit_nas_jax import scoring
from credit_nas_jax import stability
from credit_nas_jax import synthetic
from test_scoring import make_model  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_REJECTED = 3  # score.py's status when some records were rejected


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("model") / "model"
  make_model(directory)
  return str(directory)


def _write_book(directory, book=None, **frames):
  book = book or synthetic.generate_lending_book(11, 120)
  paths = {}
  for name in ("borrowers", "loans", "installments", "edges"):
    frame = frames.get(name, getattr(book, name))
    paths[name] = os.path.join(directory, f"{name}.csv")
    frame.to_csv(paths[name], index=False)
  return paths


def _score(model_dir, paths, *extra, output=None, as_of="2026-01-01"):
  args = [sys.executable, os.path.join(ROOT, "experiments", "score.py"),
          f"--model_dir={model_dir}", f"--as_of={as_of}"]
  args += [f"--{k}={v}" for k, v in paths.items()]
  if output:
    args.append(f"--output={output}")
  return subprocess.run(args + list(extra), capture_output=True, text=True,
                        timeout=600, cwd=ROOT)


def _one_line_error(result, *fragments):
  # A string message: pytest shows it whole (a tuple's repr is cut short).
  assert result.returncode == 1, (f"exit {result.returncode}; stdout "
                                  f"{result.stdout!r}; stderr:\n"
                                  f"{launch.stderr_of(result)}")
  assert "Traceback" not in result.stderr
  errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1, launch.stderr_of(result)
  for fragment in fragments:
    assert fragment in errors[0], errors[0]
  return errors[0]


def _digest(path):
  return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_scores_a_clean_book(model_dir, tmp_path):
  paths = _write_book(tmp_path)
  output = str(tmp_path / "scores.csv")
  result = _score(model_dir, paths, output=output)
  assert result.returncode == 0, launch.stderr_of(result)
  assert "scored 120 of 120 applicants; rejected 0 applicants" in result.stdout
  scores = pd.read_csv(output, keep_default_na=False)
  assert list(scores.columns[:5]) == list(scoring.OUTPUT_COLUMNS)
  refused = scores["decision"] == scoring.REFUSE
  assert (scores.loc[refused, "reasons"] != "").all()
  assert pd.read_csv(output + ".rejects.csv").empty
  # No temporary files left beside the outputs.
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
  # Batch size is speed only; the config file sets it.
  again = str(tmp_path / "again.parquet")
  result = _score(model_dir, paths, "--config.batch_size=7", output=again,
                  )
  assert result.returncode == 0, launch.stderr_of(result)
  pd.testing.assert_frame_equal(
      pd.read_parquet(again).fillna(""), scores, check_dtype=False,
      check_exact=True)


def _corrupted_book():
  """A book with one of every bad class of record seen, and one valid
  date-time of each kind."""
  book = synthetic.generate_lending_book(12, 300)
  borrowers = book.borrowers.astype({"bestpay_score": object,
                                     "sesame_score": object}).copy()
  loans = book.loans.astype({"periods": object}).copy()
  installments = book.installments.astype(object).copy()
  edges = book.edges.copy()
  ids = borrowers["borrower_id"]
  bad = {}  # applicant -> the reason its records are refused
  for row, value in ((1, "inf"), (2, "Infinity"), (3, "nan"), (4, "1e400")):
    borrowers.loc[row, "bestpay_score"] = value
    bad[ids[row]] = "score is not finite"
  first_loan = loans.index[loans["borrower_id"] == ids[5]][0]
  loans.loc[first_loan, "periods"] = "inf"
  bad[ids[5]] = "periods is not finite"
  loan_of_6 = loans.index[loans["borrower_id"] == ids[6]][0]
  loans.loc[loan_of_6, "borrower_id"] = " " + ids[6]
  bad[ids[6]] = "whitespace"  # the loan is refused, so is its applicant
  borrowers.loc[7, "borrower_id"] = ids[7] + " "
  bad[ids[7] + " "] = "whitespace"
  borrowers.loc[len(borrowers)] = [ids[8], "500", "600"]  # a second B8
  bad[ids[8]] = "duplicate borrower id"
  loan_of_9 = loans.loc[loans["borrower_id"] == ids[9], "loan_id"].iloc[0]
  row_of_9 = installments.index[installments["loan_id"] == loan_of_9][0]
  installments.loc[row_of_9, "due_date"] = "01/02/2025"
  bad[ids[9]] = "unparsable date"
  # Valid date-times: a repayment on the due date, with a zone, is on time.
  good = {}
  for k, borrower in ((10, "T09:00:00+08:00"), (11, " 23:59:59"),
                      (12, "T10:00:00Z")):
    loan = loans.loc[loans["borrower_id"] == ids[k], "loan_id"].iloc[0]
    row = installments.index[installments["loan_id"] == loan][0]
    installments.loc[row, "repaid_date"] = (
        str(installments.loc[row, "due_date"]) + borrower)
    good[ids[k]] = row
  edges.loc[len(edges)] = [ids[20], ids[20], "guarantee"]  # self-loop
  edges.loc[len(edges)] = list(edges.iloc[0])  # duplicate
  edges.loc[len(edges)] = [edges.iloc[1]["dst"], edges.iloc[1]["src"],
                           "guarantee"]  # the same pair reversed
  edges.loc[len(edges)] = [ids[21], "STRANGER", "guarantee"]
  return book, dict(borrowers=borrowers, loans=loans,
                    installments=installments, edges=edges), bad, good


def test_a_corrupted_book_loses_no_applicant(model_dir, tmp_path):
  book, frames, bad, good = _corrupted_book()
  paths = _write_book(tmp_path, book, **frames)
  output = str(tmp_path / "scores.csv")
  result = _score(model_dir, paths, output=output)
  assert result.returncode == EXIT_REJECTED, launch.stderr_of(result)
  scores = pd.read_csv(output, keep_default_na=False)
  rejects = pd.read_csv(output + ".rejects.csv", keep_default_na=False)
  unscored = set(rejects.loc[rejects["table"] == "applicants",
                             "borrower_id"])
  applicants = set(frames["borrowers"]["borrower_id"])
  # Every applicant is either scored or listed, never both.
  assert set(scores["borrower_id"]) | unscored == applicants
  assert not set(scores["borrower_id"]) & unscored
  for applicant, reason in bad.items():
    assert applicant in unscored, applicant
    mine = rejects[rejects["borrower_id"].str.strip() == applicant.strip()]
    assert mine["reason"].str.contains(reason).any(), (applicant, reason)
  assert set(good) <= set(scores["borrower_id"])
  edge_reasons = rejects.loc[rejects["table"] == "edges",
                             "reason"].value_counts().to_dict()
  assert edge_reasons["self-loop"] == 1
  assert edge_reasons["duplicate edge"] == 2
  strangers = rejects[rejects["value"].str.contains("STRANGER")]
  assert strangers["reason"].tolist() == ["endpoint is not an applicant"]
  # B0000007's relations name an id no applicant has now ("B0000007 ").
  assert edge_reasons["endpoint is not an applicant"] > 1
  assert "edges used" in result.stdout and "self-loop" in result.stdout


def test_score_partial_scores_what_is_left(model_dir, tmp_path):
  book, frames, bad, _ = _corrupted_book()
  paths = _write_book(tmp_path, book, **frames)
  output = str(tmp_path / "scores.csv")
  result = _score(model_dir, paths, "--config.score_partial=True",
                  output=output)
  assert result.returncode == EXIT_REJECTED, launch.stderr_of(result)
  scored = set(pd.read_csv(output)["borrower_id"])
  ids = book.borrowers["borrower_id"]
  # Lost a loan or an installment: scored from the rest.
  assert {ids[5], ids[6], ids[9]} <= scored
  # No valid borrower record: nothing to score from.
  assert not {ids[1], ids[8]} & scored


@pytest.mark.parametrize("args,fragments", [
    (["--as_of=today"], ["as_of='today' is not a date"]),
    (["--as_of=01/02/2026"], ["is not a date; expected YYYY-MM-DD"]),
    (["--as_of=2026-1-2"], ["is not a date"]),
    (["--config.batch_size=0"], ["batch_size=0 must be >= 1"]),
    (["--config.batch_size=-4"], ["batch_size=-4 must be >= 1"]),
    (["--config.num_reasons=-1"], ["num_reasons=-1 must be >= 0"]),
    (["--config.base_odds=0"], ["base_odds and points_to_double"]),
    (["--config.bands=(('a', 1.5),)"], ["bad band"]),
    (["--config.nonsense=1"], ["--config: bad override"]),
    (["--config.batch_size=x"], ["config.batch_size=x"]),
    (["--config=/nonexistent/score.py"], ["not found"]),
    (["--seed=3"], ["Unknown command line flag 'seed'"]),
    (["stray"], ["unexpected arguments"]),
])
def test_bad_flags_fail_before_any_work(model_dir, tmp_path, args, fragments):
  paths = _write_book(tmp_path)
  output = str(tmp_path / "scores.csv")
  as_of = [a for a in args if a.startswith("--as_of=")]
  rest = [a for a in args if not a.startswith("--as_of=")]
  result = _score(model_dir, paths, *rest, output=output,
                  as_of=as_of[0].split("=", 1)[1] if as_of else "2026-01-01")
  _one_line_error(result, *fragments)
  assert not os.path.exists(output)


def test_outputs_never_destroy_a_file(model_dir, tmp_path):
  paths = _write_book(tmp_path)
  before = {k: _digest(p) for k, p in paths.items()}
  output = str(tmp_path / "scores.csv")
  for extra, fragments in [
      ([f"--rejects={output}"], ["--rejects", "same file as --output"]),
      ([], ["same file as --borrowers"]),
  ]:
    target = output if extra else paths["borrowers"]
    result = _score(model_dir, paths, *extra, output=target)
    _one_line_error(result, *fragments)
  assert {k: _digest(p) for k, p in paths.items()} == before
  assert not os.path.exists(output)
  # Nothing is written into the model directory (its files are checked).
  result = _score(model_dir, paths,
                  output=os.path.join(model_dir, "scores.csv"))
  _one_line_error(result, "is inside --model_dir")
  result = _score(model_dir, paths, f"--rejects={model_dir}/model.json",
                  output=output)
  _one_line_error(result, "--rejects")
  assert sorted(os.listdir(model_dir)) == ["checksums.sha256", "model.json",
                                           "weights.npz"]


@pytest.mark.parametrize("which,path,fragments", [
    ("output", "missing/scores.csv", ["does not exist"]),
    ("output", "folder.csv", ["is a directory"]),
    ("rejects", "missing/rejects.csv", ["--rejects", "does not exist"]),
    ("output", "scores.json", ["expected a .csv or .parquet"]),
])
def test_unwritable_outputs_fail_before_any_work(model_dir, tmp_path, which,
                                                 path, fragments):
  paths = _write_book(tmp_path)
  (tmp_path / "folder.csv").mkdir()
  output = str(tmp_path / "scores.csv")
  if which == "output":
    result = _score(model_dir, paths, output=str(tmp_path / path))
  else:
    result = _score(model_dir, paths, f"--rejects={tmp_path / path}",
                    output=output)
  _one_line_error(result, *fragments)
  assert not os.path.exists(output)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_outputs_fail_before_any_work(model_dir, tmp_path):
  paths = _write_book(tmp_path)
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  try:
    result = _score(model_dir, paths, output=str(locked / "scores.csv"))
    _one_line_error(result, "cannot write")
  finally:
    locked.chmod(0o700)


def test_writes_are_all_or_nothing(tmp_path):
  first = tmp_path / "scores.csv"
  first.write_text("old\n")
  good = pd.DataFrame({"a": [1]})
  bad = pd.DataFrame({"a": [object()]})  # parquet cannot write an object
  with pytest.raises(scoring.ScoringError, match="rejects.parquet"):
    scoring.write_tables([(good, str(first), False),
                          (bad, str(tmp_path / "rejects.parquet"), False)])
  assert first.read_text() == "old\n"
  assert sorted(os.listdir(tmp_path)) == ["scores.csv"]


@pytest.mark.parametrize("table,content,fragments", [
    ("installments", b"", ["installments table", "installments.csv",
                           "empty file"]),
    ("edges", b"from,to\nB0000000,B0000001\n",
     ["edges (", "edges.csv", "missing column(s) ['src', 'dst']"]),
    ("loans", b"loan_id,borrower_id\nL1,B0000000\n",
     ["loans (", "missing column(s) ['source', 'periods']"]),
])
def test_bad_files_are_named(model_dir, tmp_path, table, content, fragments):
  paths = _write_book(tmp_path)
  with open(paths[table], "wb") as f:
    f.write(content)
  result = _score(model_dir, paths, output=str(tmp_path / "scores.csv"))
  _one_line_error(result, *fragments)


def test_a_missing_input_is_named(model_dir, tmp_path):
  paths = _write_book(tmp_path)
  paths["loans"] = str(tmp_path / "nope.csv")
  result = _score(model_dir, paths, output=str(tmp_path / "scores.csv"))
  _one_line_error(result, "--loans", "not found")


def test_an_edited_model_is_refused(model_dir, tmp_path):
  broken = tmp_path / "model"
  broken.mkdir()
  for name in os.listdir(model_dir):
    (broken / name).write_bytes(open(os.path.join(model_dir, name),
                                     "rb").read())
  description = json.load(open(broken / "model.json"))
  description["encoder"]["mean"][0] += 1.0
  json.dump(description, open(broken / "model.json", "w"), indent=2)
  paths = _write_book(tmp_path)
  result = _score(str(broken), paths, output=str(tmp_path / "scores.csv"))
  _one_line_error(result, "model.json", "checksum")
  assert not os.path.exists(tmp_path / "scores.csv")


def test_features_only(tmp_path):
  paths = _write_book(tmp_path, synthetic.generate_lending_book(14, 80))
  paths.pop("edges")
  output = str(tmp_path / "features.csv")
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "score.py"),
       "--features_only", *[f"--{k}={v}" for k, v in paths.items()],
       "--as_of=2026-01-01", f"--output={output}"],
      capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert result.returncode == 0, launch.stderr_of(result)
  table = pd.read_csv(output, index_col="borrower_id")
  assert len(table) == 80
  assert list(table.columns[:5]) == ["bestpay_grade", "bestpay_overdue",
                                     "sesame_grade", "alipay_overdue",
                                     "bank_overdue"]
  assert np.isfinite(table["bestpay_overdue"]).all()


# Calibration, stability and fairness reports.


@pytest.fixture(scope="module")
def monitored_model_dir(tmp_path_factory):
  """make_model's model with a calibration map and a training population
  (features of another book from the generator, scores uniform in [0, 1],
  which the random network's narrow scores are not)."""
  directory = tmp_path_factory.mktemp("monitored") / "model"
  saved = make_model(directory)
  book = synthetic.generate_lending_book(40, 2000)
  table = features.extract_features(book.borrowers, book.loans,
                                    book.installments, as_of=book.as_of)
  population = stability.fit_population(
      np.linspace(0, 1, len(table)),
      {n: table[n].to_numpy() for n in saved.encoder.features})
  model_io.write_model(str(directory), dataclasses.replace(
      saved, population=population, calibration={
          "format": calibration.FORMAT, "method": "platt",
          "parameters": {"slope": 1.2, "intercept": 0.3}, "rows": 100}))
  return str(directory)


def _log_lines(result, fragment):
  return [l for l in result.stderr.splitlines() if fragment in l]


def test_reports_beside_the_output(monitored_model_dir, tmp_path):
  book = synthetic.generate_lending_book(41, 400)
  borrowers = book.borrowers.assign(
      # Two more grades of BestPay score: one feature shifted.
      bestpay_score=book.borrowers["bestpay_score"] + 200,
      age=np.where(np.arange(400) < 12, 80, np.arange(400) % 50 + 20),
      default=book.labels.loc[book.borrowers["borrower_id"]].to_numpy())
  paths = _write_book(tmp_path, book, borrowers=borrowers)
  output = str(tmp_path / "scores.csv")
  result = _score(monitored_model_dir, paths, "--config.sensitive_column=age",
                  "--config.sensitive_bins=(40, 75)",
                  "--config.default_column=default", output=output)
  assert result.returncode == 0, launch.stderr_of(result)
  assert len(_log_lines(result, "calibrated scores: platt map")) == 1
  shifts = _log_lines(result, "against the training population, over 0.25")
  assert len(shifts) == 2, launch.stderr_of(result)
  assert "stability: score has PSI" in shifts[0]
  assert "stability: feature 'bestpay_grade' has PSI" in shifts[1]
  small = _log_lines(result, "fairness:")
  assert len(small) == 1 and "'age' group '[75, inf)' has 12 rows" in small[0]
  stable = json.load(open(tmp_path / "stability.json"))
  assert stable["rows"] == 400 and stable["major_shifts"] == ["bestpay_grade"]
  fair = json.load(open(tmp_path / "fairness.json"))
  assert list(fair["groups"]) == ["(-inf, 40)", "[40, 75)", "[75, inf)"]
  assert fair["groups"]["[40, 75)"]["auc"] is not None
  assert fair["equal_opportunity_difference"] is not None
  scores = pd.read_csv(output)
  approved = (scores["decision"] != scoring.REFUSE).to_numpy()
  young = borrowers.set_index("borrower_id").loc[scores["borrower_id"],
                                                 "age"].to_numpy() < 40
  assert fair["groups"]["(-inf, 40)"]["approval_rate"] == pytest.approx(
      approved[young].mean())


def test_an_uncalibrated_model_and_a_missing_sensitive_column(model_dir,
                                                              tmp_path):
  paths = _write_book(tmp_path)
  output = str(tmp_path / "scores.csv")
  result = _score(model_dir, paths, "--config.sensitive_column=gender",
                  output=output)
  assert result.returncode == 0, launch.stderr_of(result)
  assert len(_log_lines(result, "has no calibration map")) == 1
  assert len(_log_lines(result, "keeps no training population")) == 1
  missing = _log_lines(result, "fairness:")
  assert len(missing) == 1
  assert "sensitive column 'gender' is not in the table" in missing[0]
  assert len(pd.read_csv(output)) == 120  # the scores are still written
  assert json.load(open(tmp_path / "stability.json"))["score"] is None
  assert json.load(open(tmp_path / "fairness.json"))["groups"] == {}


@pytest.mark.parametrize("name", ["calibration.json", "population.json"])
def test_a_tampered_calibration_or_population_is_refused(monitored_model_dir,
                                                         tmp_path, name):
  broken = tmp_path / "model"
  broken.mkdir()
  for entry in os.listdir(monitored_model_dir):
    (broken / entry).write_bytes(open(os.path.join(monitored_model_dir,
                                                   entry), "rb").read())
  data = bytearray((broken / name).read_bytes())
  data[len(data) // 2] ^= 0x01
  (broken / name).write_bytes(bytes(data))
  paths = _write_book(tmp_path)
  result = _score(str(broken), paths, output=str(tmp_path / "scores.csv"))
  _one_line_error(result, name, "checksum")
  assert not os.path.exists(tmp_path / "scores.csv")
