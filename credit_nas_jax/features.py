"""Raw borrower records to the patent's five credit features.

Three tables describe a lending book:

* ``borrowers``: ``borrower_id`` (unique), ``bestpay_score``, ``sesame_score``
  (either score may be empty: the borrower has no account on that platform).
* ``loans``: ``loan_id`` (unique), ``borrower_id``, ``source`` in
  {``bestpay``, ``alipay``, ``bank``}, ``periods`` (integer >= 1).
* ``installments``: ``loan_id``, ``period`` (1..periods, unique per loan),
  ``due_date``, ``repaid_date`` (ISO dates; an empty ``repaid_date`` means the
  installment is not repaid).

The model features, in order, are ``bestpay_grade``, ``bestpay_overdue``,
``sesame_grade``, ``alipay_overdue`` and ``bank_overdue``; the loan counts per
source follow them in the table :func:`extract_features` returns.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Union

import numpy as np
import pandas as pd

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
_ID_COLUMNS = ("borrower_id", "loan_id")
REJECT_COLUMNS = ("table", "row", "field", "value", "reason", "borrower_id")

DateLike = Union[str, datetime.date, pd.Timestamp]


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
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{table} table not found: {path}")
  if path.endswith(".parquet"):
    frame = pd.read_parquet(path)
    for column in _ID_COLUMNS + ("src", "dst"):
      if column in frame.columns:
        frame[column] = frame[column].astype("string")
  elif path.endswith(".csv"):
    id_types = {c: "string" for c in _ID_COLUMNS + ("src", "dst")}
    # Everything else is read as text too and parsed by the validator, so that
    # a bad value is reported with its row instead of failing the whole read.
    frame = pd.read_csv(path, dtype="string", keep_default_na=False,
                        na_values=[""])
    frame = frame.astype({c: t for c, t in id_types.items() if c in frame})
  else:
    raise ValueError(f"{path}: expected a .csv or .parquet file")
  frame.attrs["source"] = path
  return frame


class _Problems:
  """Collects rejected rows of one table as vectorised masks."""

  def __init__(self, table: str, frame: pd.DataFrame):
    self.table = table
    self.frame = frame
    self.bad = np.zeros(len(frame), dtype=bool)
    self.parts: list[pd.DataFrame] = []

  def add(self, mask, field: str, reason: str, borrower_ids=None) -> None:
    mask = np.asarray(mask, dtype=bool) & ~self.bad
    if not mask.any():
      return
    rows = np.flatnonzero(mask)
    values = self.frame[field].iloc[rows] if field in self.frame else None
    part = pd.DataFrame({
        "table": self.table,
        "row": rows,
        "field": field,
        "value": ([str(v) for v in values] if values is not None else ""),
        "reason": reason,
        "borrower_id": (np.asarray(borrower_ids, dtype=object)[rows]
                        if borrower_ids is not None else None),
    })
    self.parts.append(part)
    self.bad |= mask


def _describe(frame: pd.DataFrame, table: str) -> str:
  source = frame.attrs.get("source")
  return f"{table} ({source})" if source else table


def _check_columns(frames: dict[str, pd.DataFrame]) -> None:
  for table, columns in REQUIRED_COLUMNS.items():
    missing = [c for c in columns if c not in frames[table].columns]
    if missing:
      raise RecordError(
          f"{_describe(frames[table], table)}: missing column(s) {missing}; "
          f"expected {list(columns)}",
          pd.DataFrame(
              {"table": table, "row": -1, "field": missing, "value": "",
               "reason": "missing column", "borrower_id": None}))


def _parse_numbers(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
  """Returns (numbers, mask of non-empty values that are not numbers)."""
  numbers = pd.to_numeric(series, errors="coerce").astype(float)
  unparsable = series.notna().to_numpy() & numbers.isna().to_numpy()
  return numbers, unparsable


def _parse_dates(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
  """Returns (dates, mask of non-empty values that are not ISO dates)."""
  if pd.api.types.is_datetime64_any_dtype(series):
    return series, np.zeros(len(series), dtype=bool)
  text = series.astype("string")
  dates = pd.to_datetime(text, format="ISO8601", errors="coerce")
  unparsable = text.notna().to_numpy() & dates.isna().to_numpy()
  return dates, unparsable


def _first_positions(ids: pd.Series) -> tuple[pd.Index, np.ndarray]:
  """(unique index of the ids' first occurrences, their rows)."""
  rows = np.flatnonzero(ids.notna().to_numpy()
                        & ~ids.duplicated(keep="first").to_numpy())
  return pd.Index(ids.to_numpy(dtype=object)[rows]), rows


def _lookup(first: tuple[pd.Index, np.ndarray],
            values: pd.Series) -> np.ndarray:
  """Row of every value's first occurrence; -1 when absent.

  One hash pass; every later check reads the parent's row by position.
  """
  index, rows = first
  positions = index.get_indexer(values.to_numpy(dtype=object))
  positions[values.isna().to_numpy()] = -1
  return np.where(positions >= 0, rows[np.maximum(positions, 0)], -1)


def _at(values: np.ndarray, positions: np.ndarray, fill):
  """values[positions], ``fill`` where a position is -1."""
  out = np.asarray(values)[np.maximum(positions, 0)]
  return np.where(positions >= 0, out, fill)


def _validate(borrowers, loans, installments):
  """Checks every row; returns parsed columns, keep masks and the rejects."""
  frames = {"borrowers": borrowers, "loans": loans, "installments": installments}
  _check_columns(frames)

  # Borrowers.
  b = _Problems("borrowers", borrowers)
  borrower_id = borrowers["borrower_id"]
  b.add(borrower_id.isna(), "borrower_id", "missing borrower id")
  b.add(borrower_id.duplicated(keep="first") & borrower_id.notna(),
        "borrower_id", "duplicate borrower id", borrower_id)
  scores = {}
  for field in ("bestpay_score", "sesame_score"):
    value, unparsable = _parse_numbers(borrowers[field])
    b.add(unparsable, field, "score is not a number", borrower_id)
    b.add(value.to_numpy() < 0, field, "negative score", borrower_id)
    scores[field] = value

  # Loans: the owner's row, found once.
  l = _Problems("loans", loans)
  loan_owner = loans["borrower_id"]
  loan_id = loans["loan_id"]
  owner_row = _lookup(_first_positions(borrower_id), loan_owner)
  l.add(loan_id.isna(), "loan_id", "missing loan id", loan_owner)
  l.add(loan_id.duplicated(keep="first") & loan_id.notna(), "loan_id",
        "duplicate loan id", loan_owner)
  l.add(owner_row < 0, "borrower_id", "loan of an unknown borrower",
        loan_owner)
  source_code = pd.Index(SOURCES).get_indexer(
      loans["source"].to_numpy(dtype=object))
  l.add(source_code < 0, "source",
        f"unknown source; expected one of {list(SOURCES)}", loan_owner)
  periods, unparsable = _parse_numbers(loans["periods"])
  l.add(unparsable | periods.isna().to_numpy(), "periods",
        "periods is not a number", loan_owner)
  l.add(periods.to_numpy() != np.floor(periods.to_numpy()), "periods",
        "periods is not a whole number", loan_owner)
  l.add(periods.to_numpy() < 1, "periods", "periods < 1", loan_owner)
  l.add(~_at(~b.bad, owner_row, False), "borrower_id",
        "borrower record rejected", loan_owner)

  # Installments: the loan's row, found once.
  i = _Problems("installments", installments)
  installment_loan = installments["loan_id"]
  loan_row = _lookup(_first_positions(loan_id), installment_loan)
  installment_owner = _at(loan_owner.to_numpy(dtype=object), loan_row, None)
  i.add(loan_row < 0, "loan_id", "installment of an unknown loan",
        installment_owner)
  period, unparsable = _parse_numbers(installments["period"])
  i.add(unparsable | period.isna().to_numpy(), "period",
        "period is not a number", installment_owner)
  period_values = period.to_numpy()
  loan_periods = _at(periods.to_numpy(), loan_row, np.nan)
  out_of_range = ((period_values < 1) | (period_values > loan_periods)
                  | (period_values != np.floor(period_values)))
  i.add(out_of_range, "period", "period outside 1..periods", installment_owner)
  # (loan row, period) as one integer key; only rows still valid take part.
  safe_period = np.where(i.bad, 0, np.nan_to_num(period_values)).astype(
      np.int64)
  key = pd.Series(np.where(i.bad, -1 - np.arange(len(installments)),
                           loan_row.astype(np.int64) * (2**31) + safe_period))
  i.add(key.duplicated(keep="first").to_numpy(), "period",
        "duplicate installment", installment_owner)
  due, unparsable = _parse_dates(installments["due_date"])
  i.add(unparsable, "due_date", "unparsable date", installment_owner)
  i.add(due.isna().to_numpy(), "due_date", "missing due date",
        installment_owner)
  repaid, unparsable = _parse_dates(installments["repaid_date"])
  i.add(unparsable, "repaid_date", "unparsable date", installment_owner)
  i.add(~_at(~l.bad, loan_row, False), "loan_id", "loan record rejected",
        installment_owner)

  rejects = [p for problems in (b, l, i) for p in problems.parts]
  rejects = (pd.concat(rejects, ignore_index=True) if rejects else
             pd.DataFrame({c: [] for c in REJECT_COLUMNS}))
  parsed = dict(scores=scores, periods=periods, period=period, due=due,
                repaid=repaid, owner_row=owner_row, loan_row=loan_row,
                source_code=source_code)
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


def _compute(borrowers, parsed, keep, as_of):
  """Features of the kept rows; every kept borrower gets a row.

  Sums run over integer rows found in validation (``np.bincount``), not over
  string ids.
  """
  kept = keep["borrowers"]
  index = pd.Index(borrowers.loc[kept, "borrower_id"].to_numpy(),
                   name="borrower_id")
  features = pd.DataFrame(index=index)
  for source, field in (("bestpay", "bestpay_score"),
                        ("sesame", "sesame_score")):
    features[f"{source}_grade"] = score_grade(
        parsed["scores"][field][kept]).to_numpy()

  num_loans = len(parsed["periods"])
  inst = keep["installments"]
  due = parsed["due"].to_numpy()[inst]
  repaid = parsed["repaid"].to_numpy()[inst]
  overdue = np.where(pd.isna(repaid), due < np.datetime64(as_of), repaid > due)
  overdue_count = np.bincount(parsed["loan_row"][inst],
                              weights=overdue.astype(float),
                              minlength=num_loans)
  loans_kept = keep["loans"]
  degree = overdue_count[loans_kept] / parsed["periods"].to_numpy()[loans_kept]
  # Kept loans belong to kept borrowers, whose rows renumber 0..n-1.
  borrower_number = np.cumsum(kept) - 1
  cell = (borrower_number[parsed["owner_row"][loans_kept]] * len(SOURCES)
          + parsed["source_code"][loans_kept])
  size = len(index) * len(SOURCES)
  overdue_sum = np.bincount(cell, weights=degree, minlength=size).reshape(
      len(index), len(SOURCES))
  loan_count = np.bincount(cell, minlength=size).reshape(len(index),
                                                         len(SOURCES))
  for k, source in enumerate(SOURCES):
    features[f"{source}_overdue"] = overdue_sum[:, k]
    features[f"{source}_loans"] = loan_count[:, k].astype(np.int64)
  return features[list(FEATURE_COLUMNS + COUNT_COLUMNS)]


def _as_timestamp(as_of: DateLike) -> pd.Timestamp:
  try:
    stamp = pd.Timestamp(as_of)
  except (ValueError, TypeError) as error:
    raise ValueError(f"as_of={as_of!r} is not a date") from error
  if pd.isna(stamp):
    raise ValueError(f"as_of={as_of!r} is not a date")
  return stamp


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
  stamp = _as_timestamp(as_of)
  parsed, keep, rejects, _ = _validate(borrowers, loans, installments)
  features = _compute(borrowers, parsed, keep, stamp)
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
    as_of: a date or ISO date string; an unpaid installment due before it is
      overdue.

  Returns:
    A DataFrame indexed by ``borrower_id`` with ``FEATURE_COLUMNS`` then
    ``COUNT_COLUMNS``. A missing score gives a NaN grade.

  Raises:
    RecordError: on the first bad record, naming its table, row and field.
  """
  stamp = _as_timestamp(as_of)
  parsed, keep, rejects, frames = _validate(borrowers, loans, installments)
  if len(rejects):
    raise RecordError(_first_problem_message(rejects, frames), rejects)
  return _compute(borrowers, parsed, keep, stamp)


def extract_features_from_files(borrowers_path, loans_path, installments_path,
                                *, as_of: DateLike) -> pd.DataFrame:
  """:func:`extract_features` over CSV or Parquet files."""
  return extract_features(
      read_records(borrowers_path, "borrowers"),
      read_records(loans_path, "loans"),
      read_records(installments_path, "installments"),
      as_of=as_of)
