"""Raw borrower records to the patent's five credit features.

Three tables describe a lending book:

* ``borrowers``: ``borrower_id`` (unique), ``bestpay_score``, ``sesame_score``
  (either score may be empty: the borrower has no account on that platform).
* ``loans``: ``loan_id`` (unique), ``borrower_id``, ``source`` in
  {``bestpay``, ``alipay``, ``bank``}, ``periods`` (integer >= 1).
* ``installments``: ``loan_id``, ``period`` (1..periods, unique per loan),
  ``due_date``, ``repaid_date`` (an empty ``repaid_date`` means the
  installment is not repaid).

A fourth, optional table, ``edges`` (``src``, ``dst`` borrower ids), relates
applicants; :func:`check_edges` checks it like the others.

How values are read (every bad value is refused per row, with its reason;
one bad row never fails the batch):

* Ids are taken exactly as written. An id with leading or trailing
  whitespace is refused (``" B1"`` is neither ``B1`` nor silently merged
  with it), and so is every copy of a repeated id: which copy is right is
  not ours to guess, and keeping "the first" would make a result depend on
  row order.
* Numbers must be finite: ``inf``, ``Infinity``, ``nan`` and overflowing
  values such as ``1e400`` are refused.
* Dates are ISO dates (``YYYY-MM-DD``). A value with a time and/or a UTC
  offset (``2025-03-01T09:00:00+08:00``) is read as the calendar date it was
  written in (``2025-03-01``): overdue status is counted in whole days, so
  an installment repaid at any time on its due date is not overdue.

The model features, in order, are ``bestpay_grade``, ``bestpay_overdue``,
``sesame_grade``, ``alipay_overdue`` and ``bank_overdue``; the loan counts per
source follow them in the table :func:`extract_features` returns. Every
feature of a borrower depends only on that borrower's records, never on the
row order of the tables (sums run in a canonical order).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from typing import Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SOURCES = ("bestpay", "alipay", "bank")
FEATURE_COLUMNS = (
    "bestpay_grade",
    "bestpay_overdue",
    "sesame_grade",
    "alipay_overdue",
    "bank_overdue",
)
COUNT_COLUMNS = ("bestpay_loans", "alipay_loans", "bank_loans")
GRADE_COLUMNS = ("bestpay_grade", "sesame_grade")

REQUIRED_COLUMNS = {
    "borrowers": ("borrower_id", "bestpay_score", "sesame_score"),
    "loans": ("loan_id", "borrower_id", "source", "periods"),
    "installments": ("loan_id", "period", "due_date", "repaid_date"),
}
EDGE_COLUMNS = ("src", "dst")
_ID_COLUMNS = ("borrower_id", "loan_id")
REJECT_COLUMNS = ("table", "row", "field", "value", "reason", "borrower_id")
WHITESPACE_REASON = "id has leading or trailing whitespace"

DateLike = Union[str, datetime.date, pd.Timestamp]

# A date, optionally with a time and a UTC offset: the date as written counts.
_DATETIME = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?)?"
    r"(?:Z|[+-](\d{2})(?::?(\d{2}))?)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RecordError(ValueError):
  """A raw record that breaks the input contract, named by table, row and field."""

  def __init__(self, message: str, rejects: pd.DataFrame):
    super().__init__(message)
    self.rejects = rejects


@dataclasses.dataclass(frozen=True)
class ExtractionResult:
  """Features of the clean borrowers and every record that was rejected.

  Attributes:
    features: one row per borrower whose records were all valid, indexed by
      ``borrower_id``.
    rejects: one row per rejected record with columns ``REJECT_COLUMNS``;
      ``borrower_id`` names the borrower the record belongs to where known.
    affected_borrowers: borrowers that exist but lost at least one record;
      they are not in ``features`` unless ``keep_partial`` was set.
  """

  features: pd.DataFrame
  rejects: pd.DataFrame
  affected_borrowers: pd.Index


@dataclasses.dataclass(frozen=True)
class EdgeCheck:
  """The usable relations of an edges table and every dropped edge.

  Attributes:
    src: borrower ids of the usable edges' first endpoints.
    dst: borrower ids of their second endpoints.
    rejects: one row per dropped edge (``REJECT_COLUMNS``), with its reason.
    dropped: reason -> number of edges dropped for it.
  """

  src: np.ndarray
  dst: np.ndarray
  rejects: pd.DataFrame
  dropped: dict[str, int]


def score_grade(score: pd.Series) -> pd.Series:
  """Grade = floor(score / 100) clipped to 0..10; an empty score stays NaN."""
  return np.floor(score / 100.0).clip(0, 10)


def read_records(path: str | os.PathLike, table: str) -> pd.DataFrame:
  """Reads one raw table from CSV or Parquet, ids kept as strings.

  Args:
    path: a ``.csv`` or ``.parquet`` file.
    table: ``borrowers``, ``loans``, ``installments`` or ``edges``; only used to
      name the table in errors and to type the id columns.

  Returns:
    The table, with ``attrs['source']`` set to the path so errors name the file.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: the file cannot be read as a table (empty, not CSV or
      Parquet, not UTF-8, a directory), naming the table and the file.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{table} table not found: {path}")
  if os.path.isdir(path):
    raise ValueError(f"{table} table {path}: is a directory, not a file")
  id_columns = _ID_COLUMNS + EDGE_COLUMNS
  try:
    if path.endswith(".parquet"):
      frame = pd.read_parquet(path)
      for column in id_columns:
        if column in frame.columns:
          frame[column] = frame[column].astype("string")
    elif path.endswith(".csv"):
      if os.path.getsize(path) == 0:
        raise pd.errors.EmptyDataError(path)
      # Everything is read as text and parsed by the validator, so that a bad
      # value is reported with its row instead of failing the whole read.
      # pyarrow's parser reads the same text 3-4x faster than pandas' own.
      frame = pd.read_csv(path, dtype="string", keep_default_na=False,
                          na_values=[""], engine="pyarrow")
    else:
      raise ValueError(f"{table} table {path}: expected a .csv or .parquet "
                       "file")
  except Exception as error:  # pylint: disable=broad-except
    # pandas' and pyarrow's errors (an empty or corrupt file, a ragged row)
    # come in many types; each becomes one line naming the table and file.
    raise ValueError(_read_error(table, path, error)) from None
  frame.attrs["source"] = path
  return frame


def _read_error(table: str, path: str, error: Exception) -> str:
  """One line saying why a table's file could not be read."""
  text = _one_line(error)
  if str(error).startswith(f"{table} table"):
    return str(error)
  if isinstance(error, UnicodeDecodeError) or "utf8" in text.lower().replace(
      "-", ""):
    return f"{table} table {path}: not UTF-8 text ({text})"
  if isinstance(error, pd.errors.EmptyDataError):
    if os.path.getsize(path) == 0:
      return f"{table} table {path}: empty file (0 bytes, not even a header)"
    return f"{table} table {path}: no header line (no columns)"
  return f"{table} table {path}: unreadable ({type(error).__name__}: {text})"


def _one_line(error: BaseException) -> str:
  """The first line of an error's message."""
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


class _Problems:
  """Collects rejected rows of one table as vectorised masks."""

  def __init__(self, table: str, frame: pd.DataFrame, describe=None):
    self.table = table
    self.frame = frame
    # rows -> the value texts of a field that is not one column (edges).
    self.describe = describe
    self.bad = np.zeros(len(frame), dtype=bool)
    self.parts: list[pd.DataFrame] = []

  def add(self, mask, field: str, reason: str, borrower_ids=None) -> None:
    """Rejects the rows of ``mask`` not already rejected, for ``reason``."""
    mask = np.asarray(mask, dtype=bool) & ~self.bad
    if not mask.any():
      return
    rows = np.flatnonzero(mask)
    if field in self.frame:
      texts = [str(v) for v in self.frame[field].iloc[rows]]
    else:
      texts = self.describe(rows) if self.describe else ""
    part = pd.DataFrame({
        "table": self.table,
        "row": rows,
        "field": field,
        "value": texts,
        "reason": reason,
        "borrower_id": (np.asarray(borrower_ids, dtype=object)[rows]
                        if borrower_ids is not None else None),
    })
    self.parts.append(part)
    self.bad |= mask


def _describe(frame: pd.DataFrame, table: str) -> str:
  source = frame.attrs.get("source")
  return f"{table} ({source})" if source else table


def _check_columns(frame: pd.DataFrame, table: str,
                   columns: tuple[str, ...]) -> None:
  """Raises a RecordError naming the table, its file and the missing columns."""
  missing = [c for c in columns if c not in frame.columns]
  if missing:
    raise RecordError(
        f"{_describe(frame, table)}: missing column(s) {missing}; "
        f"expected {list(columns)} (found {list(map(str, frame.columns))})",
        pd.DataFrame(
            {"table": table, "row": -1, "field": missing, "value": "",
             "reason": "missing column", "borrower_id": None}))


def _bool(values) -> np.ndarray:
  """A boolean mask from a (possibly nullable) boolean array; NA is False."""
  if isinstance(values, (pd.Series, pd.api.extensions.ExtensionArray)):
    return np.asarray(pd.array(values, dtype="boolean").fillna(False),
                      dtype=bool)
  return np.asarray(values, dtype=bool)


def _padded_ids(ids: pd.Series) -> np.ndarray:
  """Mask of ids with leading or trailing whitespace."""
  if not (pd.api.types.is_string_dtype(ids) or ids.dtype == object):
    return np.zeros(len(ids), dtype=bool)
  text = ids.astype("string")
  return _bool(text.notna() & (text != text.str.strip()))


def _stripped(ids: pd.Series) -> pd.Series:
  """Ids without surrounding whitespace (to name the owner of a rejected
  record, never to match records)."""
  if not (pd.api.types.is_string_dtype(ids) or ids.dtype == object):
    return ids
  text = ids.astype("string")
  return text.str.strip().where(text.notna(), None)


def _repeated(ids: pd.Series) -> np.ndarray:
  """Mask of every copy of an id that occurs more than once."""
  return _bool(ids.notna()) & ids.duplicated(keep=False).to_numpy()


def _parse_numbers(series: pd.Series
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(numbers, mask of text that is no number, mask of inf/nan values).

  Parsed once per distinct value: a column of millions of rows holds few.
  """
  if (pd.api.types.is_numeric_dtype(series)
      and not pd.api.types.is_bool_dtype(series)):
    numbers = series.to_numpy(dtype=float, na_value=np.nan)
    return numbers, np.zeros(len(series), bool), np.isinf(numbers)
  codes, uniques = pd.factorize(series, use_na_sentinel=True)
  text = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
  parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float,
                                                         na_value=np.nan)
  nan_text = text.str.lower().isin(("nan", "+nan", "-nan")).to_numpy()
  unparsable = np.append(np.isnan(parsed) & ~nan_text, False)[codes]
  nonfinite = np.append(np.isinf(parsed) | nan_text, False)[codes]
  numbers = np.append(parsed, np.nan)[codes]
  numbers[nonfinite] = np.nan
  return numbers, unparsable, nonfinite


def _date_of_text(text: str) -> np.datetime64:
  """The calendar date a date or date-time text was written in, or NaT."""
  match = _DATETIME.fullmatch(text.strip())
  if not match:
    return np.datetime64("NaT", "D")
  year, month, day, hour, minute, second, zone_h, zone_m = (
      int(g) if g is not None else 0 for g in match.groups())
  if hour > 23 or minute > 59 or second > 60 or zone_h > 14 or zone_m > 59:
    return np.datetime64("NaT", "D")
  try:
    return np.datetime64(datetime.date(year, month, day), "D")
  except ValueError:
    return np.datetime64("NaT", "D")


def _parse_dates(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
  """(datetime64[D] dates, mask of non-empty values that are not dates).

  A date-time keeps the date it was written in (time and offset dropped);
  parsed once per distinct value.
  """
  if pd.api.types.is_datetime64_any_dtype(series):
    if getattr(series.dtype, "tz", None) is not None:
      series = series.dt.tz_localize(None)  # the wall-clock date as written
    dates = series.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    return dates, np.zeros(len(series), dtype=bool)
  codes, uniques = pd.factorize(series, use_na_sentinel=True)
  text = pd.Index(np.asarray(uniques, dtype=object)).astype(str)
  fast = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
  parsed = np.asarray(fast.to_numpy(), dtype="datetime64[D]")
  for k in np.flatnonzero(np.isnat(parsed)):
    parsed[k] = _date_of_text(text[k])
  dates = np.append(parsed, np.datetime64("NaT", "D"))[codes]
  unparsable = (codes >= 0) & np.isnat(dates)
  return dates, unparsable


def _first_positions(ids: pd.Series) -> tuple[pd.Series, np.ndarray]:
  """(the ids' first occurrences, their rows)."""
  rows = np.flatnonzero(_bool(ids.notna())
                        & ~ids.duplicated(keep="first").to_numpy())
  return ids.iloc[rows].reset_index(drop=True), rows


def _arrow_strings(values: pd.Series):
  """The pyarrow array behind a string column, or None."""
  if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage in (
      "pyarrow", "pyarrow_numpy"):
    return pa.array(values.array)
  return None


def _lookup(first: tuple[pd.Series, np.ndarray],
            values: pd.Series) -> np.ndarray:
  """Row of every value's first occurrence; -1 when absent.

  One hash pass (pyarrow's for text read from files); every later check
  reads the parent's row by position.
  """
  keys, rows = first
  arrow_keys, arrow_values = _arrow_strings(keys), _arrow_strings(values)
  if arrow_keys is not None and arrow_values is not None:
    positions = pc.index_in(arrow_values, value_set=arrow_keys)
    positions = positions.to_numpy(zero_copy_only=False)
    positions = np.where(np.isnan(positions), -1, positions).astype(np.int64)
  else:
    positions = pd.Index(keys.to_numpy(dtype=object)).get_indexer(
        values.to_numpy(dtype=object))
    positions[~_bool(values.notna())] = -1
  return np.where(positions >= 0, rows[np.maximum(positions, 0)], -1)


def _at(values: np.ndarray, positions: np.ndarray, fill):
  """values[positions], ``fill`` where a position is -1."""
  out = np.asarray(values)[np.maximum(positions, 0)]
  return np.where(positions >= 0, out, fill)


def _validate_borrowers(borrowers):
  """The borrowers' problems, ids and parsed scores."""
  b = _Problems("borrowers", borrowers)
  borrower_id = borrowers["borrower_id"]
  b.add(~_bool(borrower_id.notna()), "borrower_id", "missing borrower id")
  b.add(_padded_ids(borrower_id), "borrower_id", WHITESPACE_REASON,
        borrower_id)
  b.add(_repeated(borrower_id), "borrower_id", "duplicate borrower id",
        borrower_id)
  scores = {}
  for field in ("bestpay_score", "sesame_score"):
    value, unparsable, nonfinite = _parse_numbers(borrowers[field])
    b.add(unparsable, field, "score is not a number", borrower_id)
    b.add(nonfinite, field, "score is not finite (inf or nan)", borrower_id)
    b.add(value < 0, field, "negative score", borrower_id)
    scores[field] = value
  return b, borrower_id, scores


def _validate_loans(loans, borrower_id, b):
  """The loans' problems and parsed columns.

  The owner's row is found once. A rejected record names its owner without
  surrounding whitespace, so that owner counts as having lost it.
  """
  l = _Problems("loans", loans)
  loan_id = loans["loan_id"]
  owner_row = _lookup(_first_positions(borrower_id), loans["borrower_id"])
  loan_owner = _stripped(loans["borrower_id"])
  l.add(~_bool(loan_id.notna()), "loan_id", "missing loan id", loan_owner)
  l.add(_padded_ids(loan_id), "loan_id", WHITESPACE_REASON, loan_owner)
  l.add(_repeated(loan_id), "loan_id", "duplicate loan id", loan_owner)
  l.add(~_bool(loan_owner.notna()), "borrower_id", "missing borrower id",
        loan_owner)
  l.add(_padded_ids(loans["borrower_id"]), "borrower_id", WHITESPACE_REASON,
        loan_owner)
  l.add(owner_row < 0, "borrower_id", "loan of an unknown borrower",
        loan_owner)
  source_code = pd.Index(SOURCES).get_indexer(
      loans["source"].to_numpy(dtype=object))
  l.add(source_code < 0, "source",
        f"unknown source; expected one of {list(SOURCES)}", loan_owner)
  periods, unparsable, nonfinite = _parse_numbers(loans["periods"])
  l.add(unparsable | (np.isnan(periods) & ~nonfinite), "periods",
        "periods is not a number", loan_owner)
  l.add(nonfinite, "periods", "periods is not finite (inf or nan)",
        loan_owner)
  l.add(periods != np.floor(periods), "periods",
        "periods is not a whole number", loan_owner)
  l.add(periods < 1, "periods", "periods < 1", loan_owner)
  l.add(~_at(~b.bad, owner_row, False), "borrower_id",
        "borrower record rejected", loan_owner)
  return l, dict(loan_id=loan_id, loan_owner=loan_owner, owner_row=owner_row,
                 source_code=source_code, periods=periods)


def _validate_installments(installments, loans, l):
  """The installments' problems and parsed columns (the loan's row found
  once); ``loans`` is :func:`_validate_loans`' parsed columns."""
  i = _Problems("installments", installments)
  installment_loan = installments["loan_id"]
  loan_positions = _first_positions(loans["loan_id"])
  loan_row = _lookup(loan_positions, installment_loan)
  owner = _at(loans["loan_owner"].to_numpy(dtype=object),
              _lookup(loan_positions, _stripped(installment_loan)), None)
  i.add(~_bool(installment_loan.notna()), "loan_id", "missing loan id", owner)
  i.add(_padded_ids(installment_loan), "loan_id", WHITESPACE_REASON, owner)
  i.add(loan_row < 0, "loan_id", "installment of an unknown loan", owner)
  period, unparsable, nonfinite = _parse_numbers(installments["period"])
  i.add(unparsable | (np.isnan(period) & ~nonfinite), "period",
        "period is not a number", owner)
  i.add(nonfinite, "period", "period is not finite (inf or nan)", owner)
  loan_periods = _at(loans["periods"], loan_row, np.nan)
  out_of_range = ((period < 1) | (period > loan_periods)
                  | (period != np.floor(period)))
  i.add(out_of_range, "period", "period outside 1..periods", owner)
  # (loan row, period) as one exact key; only rows still valid take part.
  period_code = pd.factorize(np.where(i.bad, -1.0, period))[0]
  key = pd.Series(np.where(i.bad, -1 - np.arange(len(installments)),
                           loan_row.astype(np.int64) * (len(period_code) + 1)
                           + period_code))
  i.add(key.duplicated(keep=False).to_numpy(), "period",
        "duplicate installment", owner)
  due, unparsable = _parse_dates(installments["due_date"])
  i.add(unparsable, "due_date", "unparsable date", owner)
  i.add(np.isnat(due), "due_date", "missing due date", owner)
  repaid, unparsable = _parse_dates(installments["repaid_date"])
  i.add(unparsable, "repaid_date", "unparsable date", owner)
  i.add(~_at(~l.bad, loan_row, False), "loan_id", "loan record rejected",
        owner)
  return i, dict(period=period, due=due, repaid=repaid, loan_row=loan_row)


def _validate(borrowers, loans, installments):
  """Checks every row; returns parsed columns, keep masks and the rejects."""
  frames = {"borrowers": borrowers, "loans": loans, "installments": installments}
  for table, columns in REQUIRED_COLUMNS.items():
    _check_columns(frames[table], table, columns)
  b, borrower_id, scores = _validate_borrowers(borrowers)
  l, loan_columns = _validate_loans(loans, borrower_id, b)
  i, installment_columns = _validate_installments(installments, loan_columns,
                                                  l)
  rejects = [p for problems in (b, l, i) for p in problems.parts]
  rejects = (pd.concat(rejects, ignore_index=True) if rejects else
             pd.DataFrame({c: [] for c in REJECT_COLUMNS}))
  parsed = dict(scores=scores, **installment_columns,
                **{k: loan_columns[k]
                   for k in ("periods", "owner_row", "source_code")})
  keep = dict(borrowers=~b.bad, loans=~l.bad, installments=~i.bad)
  return parsed, keep, rejects, frames


def _first_problem_message(rejects: pd.DataFrame, frames) -> str:
  first = rejects.iloc[0]
  frame = frames[first["table"]]
  where = f"row {int(first['row'])}"
  if str(frame.attrs.get("source", "")).endswith(".csv"):
    where += f" (line {int(first['row']) + 2})"
  more = len(rejects) - 1
  tail = (f" (and {more} more problem(s); "
          "extract_features_with_rejects lists them all)") if more else ""
  return (f"{_describe(frame, first['table'])} {where}, field "
          f"{first['field']!r} = {first['value']!r}: {first['reason']}{tail}")


def _compute(borrowers, parsed, keep, as_of: np.datetime64):
  """Features of the kept rows; every kept borrower gets a row.

  Sums run over integer rows found in validation (``np.bincount``), not over
  string ids, and in a canonical order (by value within each borrower and
  source), so a borrower's features do not depend on the tables' row order.
  """
  kept = keep["borrowers"]
  index = pd.Index(borrowers.loc[kept, "borrower_id"].to_numpy(),
                   name="borrower_id")
  features = pd.DataFrame(index=index)
  for source, field in (("bestpay", "bestpay_score"),
                        ("sesame", "sesame_score")):
    features[f"{source}_grade"] = score_grade(
        pd.Series(parsed["scores"][field][kept])).to_numpy()

  num_loans = len(parsed["periods"])
  inst = keep["installments"]
  due = parsed["due"][inst]
  repaid = parsed["repaid"][inst]
  # Whole days: a repayment on the due date (at any time) is on time.
  overdue = np.where(np.isnat(repaid), due < as_of, repaid > due)
  overdue_count = np.bincount(parsed["loan_row"][inst],
                              weights=overdue.astype(float),
                              minlength=num_loans)
  loans_kept = keep["loans"]
  degree = overdue_count[loans_kept] / parsed["periods"][loans_kept]
  # Kept loans belong to kept borrowers, whose rows renumber 0..n-1.
  borrower_number = np.cumsum(kept) - 1
  cell = (borrower_number[parsed["owner_row"][loans_kept]] * len(SOURCES)
          + parsed["source_code"][loans_kept])
  order = np.lexsort((degree, cell))  # a canonical order of summation
  cell, degree = cell[order], degree[order]
  size = len(index) * len(SOURCES)
  overdue_sum = np.bincount(cell, weights=degree, minlength=size).reshape(
      len(index), len(SOURCES))
  loan_count = np.bincount(cell, minlength=size).reshape(len(index),
                                                         len(SOURCES))
  for k, source in enumerate(SOURCES):
    features[f"{source}_overdue"] = overdue_sum[:, k]
    features[f"{source}_loans"] = loan_count[:, k].astype(np.int64)
  return features[list(FEATURE_COLUMNS + COUNT_COLUMNS)]


def parse_as_of(as_of: DateLike) -> np.datetime64:
  """The snapshot date as a day: a date object, or a ``YYYY-MM-DD`` string.

  A date-time keeps its calendar date, like the records' dates.

  Raises:
    ValueError: ``as_of`` is not a date (``"today"``, ``"01/02/2026"``).
  """
  if isinstance(as_of, str):
    text = as_of.strip()
    try:
      if not _ISO_DATE.fullmatch(text):
        raise ValueError(text)
      return np.datetime64(datetime.date.fromisoformat(text), "D")
    except ValueError:
      raise ValueError(f"as_of={as_of!r} is not a date; expected YYYY-MM-DD, "
                       "e.g. 2026-01-01") from None
  if isinstance(as_of, (datetime.date, np.datetime64)):
    stamp = pd.Timestamp(as_of)
    if not pd.isna(stamp):
      return np.datetime64(stamp.date(), "D")
  raise ValueError(f"as_of={as_of!r} is not a date; expected YYYY-MM-DD, "
                   "e.g. 2026-01-01")


def extract_features_with_rejects(
    borrowers: pd.DataFrame,
    loans: pd.DataFrame,
    installments: pd.DataFrame,
    *,
    as_of: DateLike,
    keep_partial: bool = False,
) -> ExtractionResult:
  """Extracts features, collecting bad records instead of raising.

  A rejected loan rejects its installments, and a rejected borrower its loans
  (the cascade is listed as its own reason). A borrower who lost any record is
  left out of the features unless ``keep_partial`` is set, and listed in
  ``affected_borrowers`` either way.

  Args:
    borrowers: the borrowers table.
    loans: the loans table.
    installments: the installments table.
    as_of: the date at which an unpaid installment past due counts as overdue.
    keep_partial: score borrowers from their valid records alone.

  Returns:
    An :class:`ExtractionResult`.
  """
  day = parse_as_of(as_of)
  parsed, keep, rejects, _ = _validate(borrowers, loans, installments)
  features = _compute(borrowers, parsed, keep, day)
  affected = pd.Index(rejects["borrower_id"].dropna().unique())
  affected = affected[affected.isin(features.index)]
  if not keep_partial:
    features = features[~features.index.isin(affected)]
  return ExtractionResult(features, rejects, affected)


def extract_features(
    borrowers: pd.DataFrame,
    loans: pd.DataFrame,
    installments: pd.DataFrame,
    *,
    as_of: DateLike,
) -> pd.DataFrame:
  """Computes the five model features and the loan counts of every borrower.

  Args:
    borrowers: ``borrower_id``, ``bestpay_score``, ``sesame_score``.
    loans: ``loan_id``, ``borrower_id``, ``source``, ``periods``.
    installments: ``loan_id``, ``period``, ``due_date``, ``repaid_date``.
    as_of: a date or ``YYYY-MM-DD`` string; an unpaid installment due before
      it is overdue.

  Returns:
    A DataFrame indexed by ``borrower_id`` with ``FEATURE_COLUMNS`` then
    ``COUNT_COLUMNS``. A missing score gives a NaN grade.

  Raises:
    RecordError: on the first bad record, naming its table, row and field.
  """
  day = parse_as_of(as_of)
  parsed, keep, rejects, frames = _validate(borrowers, loans, installments)
  if len(rejects):
    raise RecordError(_first_problem_message(rejects, frames), rejects)
  return _compute(borrowers, parsed, keep, day)


def extract_features_from_files(borrowers_path, loans_path, installments_path,
                                *, as_of: DateLike) -> pd.DataFrame:
  """:func:`extract_features` over CSV or Parquet files."""
  return extract_features(
      read_records(borrowers_path, "borrowers"),
      read_records(loans_path, "loans"),
      read_records(installments_path, "installments"),
      as_of=as_of)


def check_edges(edges: pd.DataFrame, applicants: pd.Index,
                unscored: pd.Index = pd.Index([])) -> EdgeCheck:
  """Checks a relations table like the record tables; drops nothing silently.

  An edge is dropped, with its reason, when an endpoint is missing, has
  whitespace around it, is not an applicant, or is an applicant left
  unscored (its records were rejected); a self-loop is dropped, and so is
  every repeat of an unordered pair (``a,b`` after ``b,a`` or ``a,b``)
  after its first occurrence. Other columns (``relation``) are ignored.

  Args:
    edges: ``src``, ``dst`` borrower ids.
    applicants: every applicant id of the borrowers table.
    unscored: applicants that will not be scored.

  Returns:
    An :class:`EdgeCheck`.

  Raises:
    RecordError: a required column is missing, naming the table's file.
  """
  _check_columns(edges, "edges", EDGE_COLUMNS)
  e = _Problems("edges", edges, lambda rows: _pairs(edges.iloc[rows]))
  src, dst = edges["src"], edges["dst"]
  field = "src,dst"
  e.add(~_bool(src.notna()) | ~_bool(dst.notna()), field, "missing endpoint")
  e.add(_padded_ids(src) | _padded_ids(dst), field, WHITESPACE_REASON)
  src_values = src.to_numpy(dtype=object)
  dst_values = dst.to_numpy(dtype=object)
  e.add(_bool(src == dst), field, "self-loop")
  known = (pd.Index(applicants).get_indexer(src_values) >= 0) & (
      pd.Index(applicants).get_indexer(dst_values) >= 0)
  e.add(~known, field, "endpoint is not an applicant")
  # Repeats, both directions: the unordered pair as a (low, high) key.
  text_src = src.astype("string").fillna("")
  text_dst = dst.astype("string").fillna("")
  swap = _bool(text_src > text_dst)
  low = np.where(swap, text_dst.to_numpy(object), text_src.to_numpy(object))
  high = np.where(swap, text_src.to_numpy(object), text_dst.to_numpy(object))
  pairs = pd.DataFrame({"low": low, "high": high})
  # A repeat counts against an earlier usable edge only: the pair check runs
  # over the rows still usable, so one of every pair is kept.
  still = ~e.bad
  repeated = np.zeros(len(edges), bool)
  repeated[still] = pairs[still].duplicated(keep="first").to_numpy()
  e.add(repeated, field, "duplicate edge")
  if len(unscored):
    e.add(src.isin(unscored).to_numpy() | dst.isin(unscored).to_numpy(),
          field, "endpoint's records rejected")
  rejects = (pd.concat(e.parts, ignore_index=True) if e.parts else
             pd.DataFrame({c: [] for c in REJECT_COLUMNS}))
  usable = ~e.bad
  dropped = rejects["reason"].value_counts().to_dict() if len(rejects) else {}
  return EdgeCheck(src_values[usable], dst_values[usable], rejects,
                   {str(k): int(v) for k, v in dropped.items()})


def _pairs(edges: pd.DataFrame) -> list[str]:
  """``"src,dst"`` of every edge, for the rejects' value column."""
  return [f"{a},{b}" for a, b in zip(edges["src"].astype(object),
                                     edges["dst"].astype(object))]
