r"""Throughput of scoring, raw record files to decisions, split by stage.

  python experiments/search.py --workdir=runs/default   # trains the model
  python experiments/score_benchmark.py --model_dir=runs/default/model

Generates a synthetic book of --applicants borrowers (with their loans,
installments and relations), writes it as CSV (not timed), then times read,
extract, graph, model and write, and prints applicants per second.
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax

from credit_nas_jax import features
from credit_nas_jax import model_io
from credit_nas_jax import scoring
from credit_nas_jax import synthetic

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/default/model",
                                 "A model directory written by search.py.")
_APPLICANTS = flags.DEFINE_integer("applicants", 100_000, "Book size.")
_BATCH = flags.DEFINE_integer("batch_size", 1024, "Graphs per batch.")
_REASONS = flags.DEFINE_integer("num_reasons", 3,
                                "Reasons per applicant (0: no attribution).")
_FORMAT = flags.DEFINE_enum("format", "csv", ["csv", "parquet"],
                            "Input and output file format.")


def main(argv):
  del argv
  saved = model_io.load_model(_MODEL_DIR.value)
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
    total_start = time.perf_counter()
    start = time.perf_counter()
    tables = {name: features.read_records(paths[name], name)
              for name in ("borrowers", "loans", "installments", "edges")}
    read_seconds = time.perf_counter() - start
    edges = tables.pop("edges")
    result = scoring.score_applicants(
        saved, **tables, edges=edges, as_of=book.as_of,
        bands=scoring.parse_bands("plan_a:0.9,plan_b:0.8,plan_c:0.7"),
        batch_size=_BATCH.value, num_reasons=_REASONS.value)
    start = time.perf_counter()
    output = os.path.join(directory, f"scores.{_FORMAT.value}")
    if _FORMAT.value == "csv":
      result.scores.to_csv(output, index=False)
    else:
      result.scores.to_parquet(output, index=False)
    write_seconds = time.perf_counter() - start
    total = time.perf_counter() - total_start
  row = {
      "device_kind": jax.devices()[0].device_kind,
      "applicants": _APPLICANTS.value,
      "loans": len(book.loans),
      "installments": len(book.installments),
      "edges": len(book.edges),
      "format": _FORMAT.value,
      "num_reasons": _REASONS.value,
      "read_seconds": read_seconds,
      "extract_seconds": result.summary["extract_seconds"],
      "graph_seconds": result.summary["graph_seconds"],
      "model_seconds": result.summary["model_seconds"],
      "write_seconds": write_seconds,
      "total_seconds": total,
      "applicants_per_second": result.summary["scored"] / total,
      "scored": result.summary["scored"],
  }
  print(json.dumps(row, indent=2))


if __name__ == "__main__":
  app.run(main)
