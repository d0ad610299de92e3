"""Feature extraction: hand-computed cases and every bad-input path."""

import datetime

import numpy as np
import pandas as pd
import pytest

from credit_nas_jax import features


def _tables():
  borrowers = pd.DataFrame({
      "borrower_id": ["a", "b", "c"],
      "bestpay_score": [650.0, None, 1234.0],
      "sesame_score": [99.0, 700.0, None],
  })
  loans = pd.DataFrame({
      "loan_id": ["l1", "l2", "l3", "l4"],
      "borrower_id": ["a", "a", "b", "a"],
      "source": ["bestpay", "bank", "bank", "bestpay"],
      "periods": [2, 4, 1, 3],
  })
  installments = pd.DataFrame({
      "loan_id": ["l1", "l1", "l2", "l3", "l4"],
      "period": [1, 2, 1, 1, 1],
      "due_date": ["2025-01-01", "2025-02-01", "2025-01-01", "2026-03-01",
                   "2025-05-01"],
      # l1/1 late, l1/2 unpaid and past due, l2/1 early, l3/1 not yet due,
      # l4/1 repaid on the due day (not overdue).
      "repaid_date": ["2025-01-05", None, "2024-12-30", None, "2025-05-01"],
  })
  return borrowers, loans, installments


def test_hand_computed_features():
  table = features.extract_features(*_tables(), as_of="2025-06-01")
  assert list(table.columns) == list(features.FEATURE_COLUMNS
                                     + features.COUNT_COLUMNS)
  assert list(table.index) == ["a", "b", "c"]
  a, b, c = (table.loc[k] for k in "abc")
  assert a["bestpay_grade"] == 6 and a["sesame_grade"] == 0
  assert np.isnan(b["bestpay_grade"]) and b["sesame_grade"] == 7
  assert c["bestpay_grade"] == 10 and np.isnan(c["sesame_grade"])
  # l1: 2 overdue of 2 periods = 1.0; l4: 0 of 3 -> 0.
  assert a["bestpay_overdue"] == pytest.approx(1.0)
  assert a["bank_overdue"] == 0.0 and a["alipay_overdue"] == 0.0
  assert b["bank_overdue"] == 0.0  # not yet due at as_of
  assert (a["bestpay_loans"], a["bank_loans"], a["alipay_loans"]) == (2, 1, 0)
  assert (c["bestpay_loans"], c["bank_loans"]) == (0, 0)


def test_as_of_moves_unpaid_installments_into_overdue():
  later = features.extract_features(*_tables(), as_of=datetime.date(2026, 4, 1))
  assert later.loc["b", "bank_overdue"] == pytest.approx(1.0)


def test_overdue_degree_sums_over_loans():
  borrowers, loans, installments = _tables()
  installments.loc[installments.index[-1], "repaid_date"] = "2025-05-02"
  table = features.extract_features(borrowers, loans, installments,
                                    as_of="2025-06-01")
  assert table.loc["a", "bestpay_overdue"] == pytest.approx(1.0 + 1 / 3)


def _corrupt(table, column, row, value):
  frames = dict(zip(("borrowers", "loans", "installments"), _tables()))
  frames[table] = frames[table].astype(object)
  frames[table].loc[row, column] = value
  return frames


# (table, column, row, value, reason); a repeated id is refused in every copy,
# so the first row named is the first copy (row 0).
BAD_CASES = [
    ("borrowers", "borrower_id", 1, "a", "duplicate borrower id"),
    ("borrowers", "borrower_id", 1, " b", "whitespace"),
    ("borrowers", "bestpay_score", 0, "inf", "score is not finite"),
    ("borrowers", "bestpay_score", 0, "Infinity", "score is not finite"),
    ("borrowers", "sesame_score", 0, "-inf", "score is not finite"),
    ("borrowers", "sesame_score", 0, "NaN", "score is not finite"),
    ("borrowers", "sesame_score", 0, "1e400", "score is not finite"),
    ("borrowers", "bestpay_score", 0, float("inf"), "score is not finite"),
    ("borrowers", "bestpay_score", 0, -5.0, "negative score"),
    ("borrowers", "sesame_score", 1, "high", "score is not a number"),
    ("loans", "loan_id", 1, "l1", "duplicate loan id"),
    ("loans", "source", 2, "paypal", "unknown source"),
    ("loans", "borrower_id", 2, "zz", "loan of an unknown borrower"),
    ("loans", "periods", 0, 0, "periods < 1"),
    ("loans", "periods", 0, "two", "periods is not a number"),
    ("loans", "periods", 0, "inf", "periods is not finite"),
    ("loans", "periods", 0, "nan", "periods is not finite"),
    ("loans", "periods", 0, 2.5, "periods is not a whole number"),
    ("loans", "borrower_id", 0, " a", "whitespace"),
    ("loans", "loan_id", 0, "l1 ", "whitespace"),
    ("installments", "loan_id", 0, " l1", "whitespace"),
    ("installments", "period", 0, "Infinity", "period is not finite"),
    ("installments", "loan_id", 3, "l9", "installment of an unknown loan"),
    ("installments", "period", 1, 1, "duplicate installment"),
    ("installments", "period", 4, 4, "period outside 1..periods"),
    ("installments", "period", 4, 0, "period outside 1..periods"),
    ("installments", "due_date", 2, "2025-13-45", "unparsable date"),
    ("installments", "repaid_date", 0, "yesterday", "unparsable date"),
    ("installments", "repaid_date", 0, "2025-01-05T25:00:00", "unparsable date"),
    ("installments", "due_date", 0, "01/02/2025", "unparsable date"),
]


def _first_row(reason, row):
  return 0 if reason.startswith("duplicate") else row


@pytest.mark.parametrize("table,column,row,value,reason", BAD_CASES)
def test_bad_record_error_names_table_row_and_field(table, column, row, value,
                                                    reason):
  frames = _corrupt(table, column, row, value)
  with pytest.raises(features.RecordError) as error:
    features.extract_features(**frames, as_of="2025-06-01")
  message = str(error.value)
  row = _first_row(reason, row)
  assert message.startswith(f"{table} row {row}, field {column!r}")
  assert reason in message


@pytest.mark.parametrize("table,column,row,value,reason", BAD_CASES)
def test_collect_mode_lists_the_bad_row_and_drops_nothing_silently(
    table, column, row, value, reason):
  frames = _corrupt(table, column, row, value)
  result = features.extract_features_with_rejects(**frames,
                                                  as_of="2025-06-01")
  first = result.rejects.iloc[0]
  assert (first["table"], first["row"], first["field"]) == (
      table, _first_row(reason, row), column)
  assert reason in first["reason"]
  # Every borrower is either scored or listed as affected (or itself rejected).
  rejected_borrowers = set(result.rejects.loc[
      result.rejects["table"] == "borrowers", "borrower_id"].dropna())
  accounted = (set(result.features.index) | set(result.affected_borrowers)
               | rejected_borrowers)
  assert accounted == set(frames["borrowers"]["borrower_id"])
  assert not set(result.features.index) & set(result.affected_borrowers)


def test_cascade_rejects_children_of_a_rejected_loan():
  frames = _corrupt("loans", "source", 0, "paypal")
  result = features.extract_features_with_rejects(**frames,
                                                  as_of="2025-06-01")
  reasons = result.rejects.groupby("table")["reason"].apply(list).to_dict()
  assert reasons["loans"] == ["unknown source; expected one of "
                              "['bestpay', 'alipay', 'bank']"]
  assert reasons["installments"] == ["loan record rejected"] * 2
  assert "a" in result.affected_borrowers and "a" not in result.features.index
  partial = features.extract_features_with_rejects(
      **frames, as_of="2025-06-01", keep_partial=True)
  assert partial.features.loc["a", "bestpay_loans"] == 1


def test_missing_column_is_named():
  borrowers, loans, installments = _tables()
  with pytest.raises(features.RecordError, match=r"loans: missing column.*"
                     r"periods"):
    features.extract_features(borrowers, loans.drop(columns="periods"),
                              installments, as_of="2025-06-01")


@pytest.mark.parametrize("as_of", ["someday", "today", "01/02/2026",
                                   "2026-1-2", "20260102", "2026-02-30", 20260102,
                                   None])
def test_bad_as_of(as_of):
  with pytest.raises(ValueError, match="not a date; expected YYYY-MM-DD"):
    features.extract_features(*_tables(), as_of=as_of)


@pytest.mark.parametrize("as_of", ["2025-06-01", " 2025-06-01",
                                   datetime.date(2025, 6, 1),
                                   datetime.datetime(2025, 6, 1, 23, 59),
                                   np.datetime64("2025-06-01")])
def test_as_of_forms(as_of):
  assert features.parse_as_of(as_of) == np.datetime64("2025-06-01")


def test_files_name_the_file_and_line(tmp_path):
  borrowers, loans, installments = _tables()
  installments.loc[3, "due_date"] = "03/01/2026"
  paths = []
  for name, frame in zip(("borrowers", "loans", "installments"),
                         (borrowers, loans, installments)):
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    paths.append(path)
  with pytest.raises(features.RecordError) as error:
    features.extract_features_from_files(*paths, as_of="2025-06-01")
  assert f"installments ({paths[2]}) row 3 (line 5), field 'due_date'" in str(
      error.value)


def test_csv_and_parquet_give_the_same_features(tmp_path):
  frames = _tables()
  expected = features.extract_features(*frames, as_of="2025-06-01")
  for suffix, write in ((".csv", lambda f, p: f.to_csv(p, index=False)),
                        (".parquet", lambda f, p: f.to_parquet(p))):
    paths = []
    for name, frame in zip(("borrowers", "loans", "installments"), frames):
      path = tmp_path / f"{name}{suffix}"
      write(frame, path)
      paths.append(path)
    got = features.extract_features_from_files(*paths, as_of="2025-06-01")
    pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                  expected.reset_index(drop=True))


def test_missing_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="borrowers table not found"):
    features.read_records(tmp_path / "nope.csv", "borrowers")


def test_repeated_duplicates_and_missing_ids_are_each_rejected():
  borrowers, loans, installments = _tables()
  borrowers = pd.concat([borrowers, borrowers.iloc[[0, 0, 1]]],
                        ignore_index=True)
  borrowers.loc[len(borrowers)] = [None, 500.0, 500.0]
  loans = pd.concat([loans, loans.iloc[[0, 0]]], ignore_index=True)
  result = features.extract_features_with_rejects(
      borrowers, loans, installments, as_of="2025-06-01")
  reasons = result.rejects.groupby(["table", "reason"]).size().to_dict()
  # Every copy: "a" three times, "b" twice; "l1" three times.
  assert reasons[("borrowers", "duplicate borrower id")] == 5
  assert reasons[("borrowers", "missing borrower id")] == 1
  assert reasons[("loans", "duplicate loan id")] == 3


@pytest.mark.parametrize("repaid", [
    "2025-05-01T09:00:00", "2025-05-01 23:59:59", "2025-05-01T23:30:00+08:00",
    "2025-05-01T00:15:00-11:00", "2025-05-01T10:00:00Z",
    "2025-05-01T10:00:00.123456+0530", " 2025-05-01 "])
def test_a_datetime_on_the_due_date_is_on_time(repaid):
  borrowers, loans, installments = _tables()
  installments = installments.astype(object)
  installments.loc[4, "repaid_date"] = repaid  # l4/1, due 2025-05-01
  installments.loc[0, "repaid_date"] = "2025-01-01T08:00:00+08:00"  # l1/1
  table = features.extract_features(borrowers, loans, installments,
                                    as_of="2025-06-01")
  # l1: only the unpaid l1/2 is overdue (1 of 2); l4: on time.
  assert table.loc["a", "bestpay_overdue"] == pytest.approx(0.5)


def test_mixed_time_zones_do_not_fail_the_batch():
  borrowers, loans, installments = _tables()
  installments = installments.astype(object)
  installments.loc[0, "repaid_date"] = "2025-01-05T09:00:00+08:00"
  installments.loc[2, "repaid_date"] = "2024-12-30T09:00:00-05:00"
  installments.loc[3, "due_date"] = "2026-03-01T00:00:00+01:00"
  expected = features.extract_features(*_tables(), as_of="2025-06-01")
  got = features.extract_features(borrowers, loans, installments,
                                  as_of="2025-06-01")
  pd.testing.assert_frame_equal(got, expected)


def test_a_date_time_column_of_parquet_keeps_its_written_date(tmp_path):
  borrowers, loans, installments = _tables()
  stamps = pd.to_datetime(pd.Series(
      ["2025-01-05T23:00:00+08:00", None, "2024-12-30T01:00:00+08:00", None,
       "2025-05-01T22:00:00+08:00"]), utc=False)
  installments["repaid_date"] = stamps
  path = tmp_path / "installments.parquet"
  installments.to_parquet(path)
  got = features.extract_features(borrowers, loans,
                                  features.read_records(path, "installments"),
                                  as_of="2025-06-01")
  expected = features.extract_features(*_tables(), as_of="2025-06-01")
  pd.testing.assert_frame_equal(got, expected)


def test_features_do_not_depend_on_row_order():
  rng = np.random.default_rng(0)
  borrowers = pd.DataFrame({"borrower_id": ["a"], "bestpay_score": [500.0],
                            "sesame_score": [600.0]})
  periods = rng.integers(1, 13, size=40)
  loans = pd.DataFrame({"loan_id": [f"l{k}" for k in range(40)],
                        "borrower_id": "a", "source": "bank",
                        "periods": periods})
  rows = [(f"l{k}", p, "2025-01-01", None if rng.random() < 0.4 else
           "2025-01-02") for k in range(40) for p in range(1, periods[k] + 1)]
  installments = pd.DataFrame(rows, columns=list(
      features.REQUIRED_COLUMNS["installments"]))
  first = features.extract_features(borrowers, loans, installments,
                                    as_of="2025-06-01")
  for seed in range(5):
    order = np.random.default_rng(seed)
    shuffled = features.extract_features(
        borrowers, loans.sample(frac=1, random_state=order.integers(1 << 30)),
        installments.sample(frac=1, random_state=order.integers(1 << 30)),
        as_of="2025-06-01")
    # Bit for bit, not merely close: the sums run in a canonical order.
    assert shuffled.loc["a", "bank_overdue"] == first.loc["a", "bank_overdue"]


@pytest.mark.parametrize("content,message", [
    (b"", "empty file"),
    (b"\n\n", "no header line"),
    (b"loan_id,period\n\xff\xfe,1\n", "not UTF-8"),
    (b"loan_id,period\nl1,1\nl2,1,3\n", "unreadable"),
])
def test_unreadable_files_are_named(tmp_path, content, message):
  path = tmp_path / "installments.csv"
  path.write_bytes(content)
  with pytest.raises(ValueError, match=f"installments table {path}: "
                     f"{message}"):
    features.read_records(path, "installments")


def test_corrupt_parquet_and_directory_are_named(tmp_path):
  path = tmp_path / "loans.parquet"
  path.write_bytes(b"PAR1 this is not parquet")
  with pytest.raises(ValueError, match=f"loans table {path}: unreadable"):
    features.read_records(path, "loans")
  folder = tmp_path / "edges.csv"
  folder.mkdir()
  with pytest.raises(ValueError, match="is a directory"):
    features.read_records(folder, "edges")


def test_missing_column_names_the_file(tmp_path):
  borrowers, loans, installments = _tables()
  path = tmp_path / "loans.csv"
  loans.rename(columns={"periods": "terms"}).to_csv(path, index=False)
  with pytest.raises(features.RecordError,
                     match=rf"loans \({path}\): missing column\(s\) "
                     r"\['periods'\].*found"):
    features.extract_features(borrowers, features.read_records(path, "loans"),
                              installments, as_of="2025-06-01")


def _edges(*pairs):
  return pd.DataFrame(pairs, columns=["src", "dst"], dtype="string")


def test_edges_are_checked_and_every_dropped_edge_counted():
  applicants = pd.Index(["a", "b", "c", "d"])
  edges = _edges(("a", "b"), ("b", "a"), ("a", "b"), ("c", "c"),
                 ("a", "zz"), (None, "a"), (" c", "d"), ("c", "d"),
                 ("d", "b"))
  check = features.check_edges(edges, applicants, unscored=pd.Index(["d"]))
  reasons = dict(zip(check.rejects["row"], check.rejects["reason"]))
  assert reasons == {1: "duplicate edge", 2: "duplicate edge", 3: "self-loop",
                     4: "endpoint is not an applicant",
                     5: "missing endpoint",
                     6: features.WHITESPACE_REASON,
                     7: "endpoint's records rejected",
                     8: "endpoint's records rejected"}
  assert list(zip(check.src, check.dst)) == [("a", "b")]
  assert sum(check.dropped.values()) == len(edges) - 1
  assert check.dropped["duplicate edge"] == 2
  assert set(check.rejects["value"]) >= {"b,a", "c,c"}


def test_edges_without_their_columns_name_the_file(tmp_path):
  path = tmp_path / "edges.csv"
  pd.DataFrame({"from": ["a"], "to": ["b"]}).to_csv(path, index=False)
  with pytest.raises(features.RecordError,
                     match=rf"edges \({path}\): missing column\(s\) "
                     r"\['src', 'dst'\]"):
    features.check_edges(features.read_records(path, "edges"),
                         pd.Index(["a", "b"]))


def test_a_padded_owner_id_counts_against_its_borrower():
  frames = _corrupt("loans", "borrower_id", 0, " a")
  result = features.extract_features_with_rejects(**frames,
                                                  as_of="2025-06-01")
  # The loan is refused (not matched, not merged), and "a" lost it.
  assert "a" in result.affected_borrowers
  assert "a" not in result.features.index
  frames = _corrupt("installments", "loan_id", 0, "l1 ")
  result = features.extract_features_with_rejects(**frames,
                                                  as_of="2025-06-01")
  assert "a" in result.affected_borrowers
