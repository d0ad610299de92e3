r"""Scores applicants from raw records and writes lending decisions.

  python experiments/score.py --model_dir=runs/default/model \
      --borrowers=b.csv --loans=l.csv --installments=i.csv --edges=e.csv \
      --as_of=2026-01-01 --output=scores.csv
  python experiments/score.py --features_only --borrowers=b.csv \
      --loans=l.csv --installments=i.csv --as_of=2026-01-01 \
      --output=features.csv

Inputs are CSV or Parquet; --edges is optional (an applicant without
relations is scored from itself alone). Every rejected record goes to the
rejects file with its table, row and reason. Exit status: 0 when every
applicant was scored, 3 when some were rejected, 1 on a fatal error.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from credit_nas_jax import features
from credit_nas_jax import model_io
from credit_nas_jax import scoring

_MODEL_DIR = flags.DEFINE_string("model_dir", None,
                                 "A model directory written by search.py.")
_BORROWERS = flags.DEFINE_string("borrowers", None, "Borrowers table.",
                                 required=True)
_LOANS = flags.DEFINE_string("loans", None, "Loans table.", required=True)
_INSTALLMENTS = flags.DEFINE_string("installments", None,
                                    "Installments table.", required=True)
_EDGES = flags.DEFINE_string("edges", None,
                             "Optional relations table (src, dst).")
_AS_OF = flags.DEFINE_string("as_of", None, "Snapshot date (ISO).",
                             required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Scores (.csv or .parquet).",
                              required=True)
_REJECTS = flags.DEFINE_string(
    "rejects", None, "Rejected records (default: <output>.rejects.csv).")
_BANDS = flags.DEFINE_string(
    "bands", "plan_a:0.9,plan_b:0.8,plan_c:0.7",
    "Loan plans by minimum score; below every band the loan is refused.")
_BASE_POINTS = flags.DEFINE_float("base_points", 600.0,
                                  "Points at the base odds.")
_BASE_ODDS = flags.DEFINE_float("base_odds", 50.0, "Base good:bad odds.")
_POINTS_TO_DOUBLE = flags.DEFINE_float("points_to_double", 20.0,
                                       "Points that double the odds.")
_SCORE_PARTIAL = flags.DEFINE_bool(
    "score_partial", False,
    "Score applicants who lost records from their valid records alone.")
_FEATURES_ONLY = flags.DEFINE_bool(
    "features_only", False, "Write the extracted features table and stop.")
_NUM_REASONS = flags.DEFINE_integer("num_reasons", 3, "Reasons per row.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1024, "Graphs per batch.")
_SEED = flags.DEFINE_integer("seed", 0, "Neighbourhood sampling seed.")

EXIT_REJECTED = 3


def _write(frame, path, index=False):
  if path.endswith(".parquet"):
    frame.to_parquet(path, index=index)
  else:
    frame.to_csv(path, index=index)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  rejects_path = _REJECTS.value or _OUTPUT.value + ".rejects.csv"
  try:
    start = time.perf_counter()
    tables = {name: features.read_records(path, name) for name, path in (
        ("borrowers", _BORROWERS.value), ("loans", _LOANS.value),
        ("installments", _INSTALLMENTS.value))}
    edges = (features.read_records(_EDGES.value, "edges")
             if _EDGES.value else None)
    read_seconds = time.perf_counter() - start
    if _FEATURES_ONLY.value:
      result = features.extract_features_with_rejects(
          **tables, as_of=_AS_OF.value, keep_partial=_SCORE_PARTIAL.value)
      _write(result.features, _OUTPUT.value, index=True)
      result.rejects.to_csv(rejects_path, index=False)
      rejected = len(tables["borrowers"]) - len(result.features)
      print(f"features: {len(result.features)} borrowers written to "
            f"{_OUTPUT.value}; {rejected} rejected, {len(result.rejects)} "
            f"rejected records in {rejects_path}")
      sys.exit(EXIT_REJECTED if len(result.rejects) else 0)
    if not _MODEL_DIR.value:
      raise app.UsageError("--model_dir is required unless --features_only")
    saved = model_io.load_model(_MODEL_DIR.value)
    result = scoring.score_applicants(
        saved, **tables, edges=edges, as_of=_AS_OF.value,
        bands=scoring.parse_bands(_BANDS.value),
        scorecard=scoring.Scorecard(_BASE_POINTS.value, _BASE_ODDS.value,
                                    _POINTS_TO_DOUBLE.value),
        score_partial=_SCORE_PARTIAL.value, num_reasons=_NUM_REASONS.value,
        batch_size=_BATCH_SIZE.value, seed=_SEED.value)
    start = time.perf_counter()
    _write(result.scores, _OUTPUT.value)
    result.rejects.to_csv(rejects_path, index=False)
    summary = {"read_seconds": read_seconds, **result.summary,
               "write_seconds": time.perf_counter() - start}
  except (model_io.ModelFormatError, FileNotFoundError, ValueError) as error:
    sys.exit(f"error: {error}")
  logging.info("stages: %s", json.dumps(
      {k: round(v, 3) for k, v in summary.items() if k.endswith("seconds")}))
  print(f"scored {summary['scored']} of {summary['applicants']} applicants; "
        f"rejected {summary['rejected_applicants']} applicants and "
        f"{summary['rejected_records']} records (see {rejects_path}); "
        f"decisions {summary['decisions']}")
  sys.exit(EXIT_REJECTED if summary["rejected_applicants"]
           or summary["rejected_records"] else 0)


if __name__ == "__main__":
  app.run(main)
