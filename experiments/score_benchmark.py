r"""Throughput of scoring, raw record files to decisions, split by stage.

  python experiments/search.py --workdir=runs/default   # trains the model
  python experiments/score_benchmark.py --model_dir=runs/default/model
  python experiments/score_benchmark.py --model_dir=runs/default/model \
      --config.num_reasons=0

Generates a synthetic book of --applicants borrowers (with their loans,
installments and relations), writes it as CSV or Parquet (not timed), then
times ``scoring.score_files`` end to end (check, model load, read, extract,
graph, model, explain, write) and prints applicants per second with each
stage's seconds, the process's CPU seconds and the machine's load.
"""

import json
import os
import platform
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from credit_nas_jax import scoring
from credit_nas_jax import synthetic

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/default/model",
                                 "A model directory written by search.py.")
_APPLICANTS = flags.DEFINE_integer("applicants", 100_000, "Book size.")
_FORMAT = flags.DEFINE_enum("format", "csv", ["csv", "parquet"],
                            "Input and output file format.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs", "score.py"),
    "Scoring settings; override fields with --config.name=value.")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments: {argv[1:]}")
  try:
    settings = scoring.ScoringSettings.from_config(_CONFIG.value)
  except ValueError as error:
    sys.exit(f"error: {error}")
  if _APPLICANTS.value < 10:
    sys.exit(f"error: --applicants={_APPLICANTS.value}; need at least 10")
  book = synthetic.generate_lending_book(123, _APPLICANTS.value)
  with tempfile.TemporaryDirectory() as directory:
    paths = {}
    for name in ("borrowers", "loans", "installments", "edges"):
      paths[name] = os.path.join(directory, f"{name}.{_FORMAT.value}")
      frame = getattr(book, name)
      if _FORMAT.value == "csv":
        frame.to_csv(paths[name], index=False)
      else:
        frame.to_parquet(paths[name], index=False)
    output = os.path.join(directory, f"scores.{_FORMAT.value}")
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
      summary = scoring.score_files(
          model_dir=_MODEL_DIR.value,
          records=scoring.RecordFiles(**paths), as_of=book.as_of,
          output=output, rejects=output + ".rejects.csv", settings=settings)
    except (ValueError, OSError) as error:
      sys.exit(f"error: {error}")
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
  row = {
      "device_kind": jax.devices()[0].device_kind,
      "machine": f"{platform.machine()}, {os.cpu_count()} cores",
      "applicants": _APPLICANTS.value,
      "loans": len(book.loans),
      "installments": len(book.installments),
      "edges": len(book.edges),
      "format": _FORMAT.value,
      "num_reasons": settings.num_reasons,
      "batch_size": settings.batch_size,
      **{k: v for k, v in summary.items() if k.endswith("seconds")},
      "total_seconds": total,
      # CPU time of every thread of the process: a figure that another
      # job on the machine does not inflate as it does wall time.
      "cpu_seconds": cpu,
      "load_average": os.getloadavg()[0],
      "applicants_per_second": summary["scored"] / total,
      "applicants_per_cpu_second": summary["scored"] / cpu,
      "scored": summary["scored"],
      "decisions": summary["decisions"],
  }
  print(json.dumps(row, indent=2))


if __name__ == "__main__":
  app.run(main)
