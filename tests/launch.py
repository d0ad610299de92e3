"""Runs the package's launchers as real subprocesses, for the tests."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_CONFIG = os.path.join(ROOT, "experiments", "configs", "test.py")


def stderr_of(result: subprocess.CompletedProcess) -> str:
  """A launch's stderr for a failure message: whole, or its start and end
  (a Python traceback ends it; a fatal error's cause and thread stacks
  start it, and a long list of extension modules ends it)."""
  text = result.stderr or ""
  if len(text) <= 8000:
    return text
  return f"{text[:5000]}\n[...]\n{text[-3000:]}"


def xla_flags(*flags: str) -> str:
  """This session's ``XLA_FLAGS`` (see conftest.py) extended by ``flags``."""
  return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


def run(script: str, *args: str, check: bool = True,
        env: dict | None = None) -> subprocess.CompletedProcess:
  """``python experiments/<script> <args>`` from the checkout's root.

  With ``check``, a non-zero exit fails the test with the end of stderr.
  """
  # Launched runs compared across processes (a sweep member and its lone
  # run, a resumed run and an uninterrupted one) multiply at full float32
  # precision, as a GPU does not by default (TF32).
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", script), *args],
      capture_output=True, text=True, timeout=600, cwd=ROOT,
      env={**os.environ, "JAX_DEFAULT_MATMUL_PRECISION": "highest",
           **(env or {})})
  if check:
    assert result.returncode == 0, stderr_of(result)
  return result


def search(workdir, *overrides: str, **kwargs) -> subprocess.CompletedProcess:
  """The search launcher with the tiny test config."""
  return run("search.py", f"--workdir={workdir}", f"--config={TEST_CONFIG}",
             *overrides, **kwargs)


def write_table_book(directory, rows: int):
  """A team's table for ``--dataset=table``: ``income`` (numeric),
  ``region`` (two categories) and ``bad`` (1 = defaulted, more likely at a
  low income), written as ``directory/book.csv``; returns its path."""
  rng = np.random.default_rng(0)
  income = rng.normal(size=rows)
  frame = pd.DataFrame({
      "income": income, "region": rng.choice(["n", "s"], rows),
      "bad": (income + rng.normal(size=rows) < -0.5).astype(int)})
  path = os.path.join(directory, "book.csv")
  frame.to_csv(path, index=False)
  return path
