r"""Scores applicants from raw records and writes lending decisions.

  python experiments/score.py --model_dir=runs/default/model \
      --borrowers=b.csv --loans=l.csv --installments=i.csv --edges=e.csv \
      --as_of=2026-01-01 --output=scores.csv
  python experiments/score.py --model_dir=runs/default/model ... \
      --config=experiments/configs/score.py --config.num_reasons=4
  python experiments/score.py --model_dir=runs/sweep/ensemble_model ...
  python experiments/score.py --features_only --borrowers=b.csv \
      --loans=l.csv --installments=i.csv --as_of=2026-01-01 \
      --output=features.csv

--model_dir is one network (search.py's model/) or an ensemble (sweep.py's
ensemble_model/, the mean of its members' probabilities), with the same
flags and outputs. Inputs are CSV or Parquet; --edges is optional (an
applicant without relations is scored from itself alone). Policy (bands,
points scale, reasons, batch size) comes from --config (default
experiments/configs/score.py). Every rejected record goes to the rejects
file with its table, row and reason. Flags, settings and paths are checked
before any work; both outputs are written to temporary files and renamed
into place together. A calibrated model (search.py's) reads its bands and
points from calibrated probabilities; a model without a calibration map
scores as it is and says so in one log line. Beside the output go
stability.json (the PSI of the score and of every feature against the
training population, one log line per PSI over 0.25) and, with
--config.sensitive_column=NAME, fairness.json (per group of that column:
count, approval rate, AUC, true and false positive rates, and the
demographic-parity and equal-opportunity differences). Exit status: 0 when
every applicant was scored from clean records, 3 when some records or
applicants were rejected, 1 on an error (one line, no traceback); the
reports never change it.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from credit_nas_jax import scoring

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "A model directory: search.py's model/ or sweep.py's "
    "ensemble_model/ (an ensemble scores the mean of its members).")
_BORROWERS = flags.DEFINE_string("borrowers", None, "Borrowers table.",
                                 required=True)
_LOANS = flags.DEFINE_string("loans", None, "Loans table.", required=True)
_INSTALLMENTS = flags.DEFINE_string("installments", None,
                                    "Installments table.", required=True)
_EDGES = flags.DEFINE_string("edges", None,
                             "Optional relations table (src, dst).")
_AS_OF = flags.DEFINE_string("as_of", None,
                             "Snapshot date of the records, YYYY-MM-DD.",
                             required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Scores (.csv or .parquet).",
                              required=True)
_REJECTS = flags.DEFINE_string(
    "rejects", None, "Rejected records (default: <output>.rejects.csv).")
_FEATURES_ONLY = flags.DEFINE_bool(
    "features_only", False, "Write the extracted features table and stop.")
_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "configs", "score.py")
try:
  # ml_collections applies --config.name=value overrides to the default
  # config while the flag is defined: an unknown field fails here.
  _CONFIG = config_flags.DEFINE_config_file(
      "config", _DEFAULT_CONFIG,
      "Scoring settings; override fields with --config.name=value.")
except (KeyError, AttributeError, ValueError, TypeError) as _error:
  sys.exit(f"error: --config: bad override ({_error}); the fields are those "
           f"of {_DEFAULT_CONFIG}")

EXIT_REJECTED = 3


def _fail(message: str) -> None:
  """Exits with status 1 and one line on stderr.

  The line is written and flushed, then the process ends without the
  interpreter's teardown (``os._exit``): nothing is left to write on an
  error, and in the test suite a bad-file launch that had just started
  JAX's backend died with signal 6 instead of status 1, twice (once in a
  run of the whole suite, once in 22 runs of its module; the cause is
  unconfirmed, BUILD_NOTES.md).
  """
  lines = str(message).strip().splitlines() or ["unknown error"]
  logging.flush()
  sys.stdout.flush()
  sys.stderr.write(f"error: {lines[0]}\n")
  sys.stderr.flush()
  os._exit(1)  # pylint: disable=protected-access


def _parse_flags(argv: list[str]) -> list[str]:
  """Parses the flags and loads the config; any mistake is one line, exit 1."""
  given = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
  path = (given[-1] if given else _DEFAULT_CONFIG).split(":")[0]
  if not os.path.isfile(path):
    _fail(f"--config={path}: not found")
  try:
    rest = flags.FLAGS(argv)
    _CONFIG.value  # pylint: disable=pointless-statement  # loads the file
  except flags.Error as error:
    _fail(str(error))
  except Exception as error:  # pylint: disable=broad-except
    _fail(f"--config={path}: cannot be loaded ({error})")
  return rest


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  rejects_path = _REJECTS.value or _OUTPUT.value + ".rejects.csv"
  try:
    settings = scoring.ScoringSettings.from_config(_CONFIG.value)
    summary = scoring.score_files(
        model_dir=_MODEL_DIR.value,
        records=scoring.RecordFiles(_BORROWERS.value, _LOANS.value,
                                    _INSTALLMENTS.value, _EDGES.value),
        as_of=_AS_OF.value, output=_OUTPUT.value,
        rejects=rejects_path, settings=settings,
        features_only=_FEATURES_ONLY.value)
  except (ValueError, OSError) as error:  # every error the library names
    _fail(str(error))
  except Exception as error:  # pylint: disable=broad-except
    _fail(f"unexpected {type(error).__name__}: {error}")
  logging.info("stages: %s", json.dumps(
      {k: round(v, 3) for k, v in summary.items() if k.endswith("seconds")}))
  if _FEATURES_ONLY.value:
    print(f"features: {summary['features']} borrowers written to "
          f"{_OUTPUT.value}; {summary['rejected_applicants']} rejected, "
          f"{summary['rejected_records']} rejected records in "
          f"{rejects_path}")
  else:
    dropped = summary["edges_dropped"]
    print(f"scored {summary['scored']} of {summary['applicants']} applicants; "
          f"rejected {summary['rejected_applicants']} applicants and "
          f"{summary['rejected_records']} records (see {rejects_path}); "
          f"edges used {summary['edges_used']} of {summary['edges']}"
          + (f", dropped {dropped}" if dropped else "")
          + f"; decisions {summary['decisions']}; reports "
          + ", ".join(summary["reports"].values()))
  sys.exit(EXIT_REJECTED if summary["rejected_applicants"]
           or summary["rejected_records"] else 0)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
