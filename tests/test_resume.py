"""Runs that survive: kill and resume, determinism, guards, clear errors."""

import errno
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from credit_nas_jax import checkpoint
from credit_nas_jax import pipeline
from tensorboard.backend.event_processing import event_accumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "experiments", "search.py")
CONFIG = os.path.join(ROOT, "experiments", "configs", "test.py")
OVERRIDES = ("--config.search.steps=120", "--config.runtime.log_every=10",
             "--config.runtime.checkpoint_every=10", "--config.retrain.steps=120",
             "--config.retrain.eval_every=10", "--config.retrain.patience=50")
TIMING_FIELDS = ("steps_per_second", "seconds")


def _command(workdir, *extra):
  return [sys.executable, LAUNCHER, f"--workdir={workdir}",
          f"--config={CONFIG}", *OVERRIDES, *extra]


def _run(workdir, *extra):
  return subprocess.run(_command(workdir, *extra), capture_output=True,
                        text=True, timeout=600, cwd=ROOT)


def _run_and_kill_at(workdir, marker, *extra):
  """Starts the launcher and SIGKILLs it as soon as ``marker`` is logged."""
  process = subprocess.Popen(_command(workdir, *extra), stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True, cwd=ROOT)
  seen = False
  for line in process.stderr:
    if marker in line:
      process.send_signal(signal.SIGKILL)
      seen = True
      break
  process.wait(timeout=600)
  assert seen, f"the run ended before logging {marker!r}"
  assert process.returncode == -signal.SIGKILL


def _outcome(workdir):
  records = [json.loads(line) for line in open(
      os.path.join(workdir, "metrics.jsonl"))]
  for record in records:
    for field in TIMING_FIELDS:
      record.pop(field, None)
  with np.load(os.path.join(workdir, "model", "weights.npz")) as archive:
    weights = {k: archive[k] for k in archive.files}
  board = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard"),
      size_guidance={event_accumulator.SCALARS: 0})
  board.Reload()
  return {
      "board": {tag: [(e.step, e.value) for e in board.Scalars(tag)]
                for tag in board.Tags()["scalars"]
                if tag.split("/")[-1] not in TIMING_FIELDS},
      "architecture": json.load(open(os.path.join(workdir,
                                                  "architecture.json"))),
      "test": json.load(open(os.path.join(workdir, "test_metrics.json"))),
      "alphas": open(os.path.join(workdir, "alphas.csv")).read(),
      "records": records,
      "weights": weights,
  }


def _assert_same(a, b):
  # TensorBoard too: the killed runs' points after their checkpoints are gone.
  for key in ("architecture", "test", "alphas", "records", "board"):
    assert a[key] == b[key], key
  assert a["weights"].keys() == b["weights"].keys()
  for name in a["weights"]:
    np.testing.assert_array_equal(a["weights"][name], b["weights"][name])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  result = _run(workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  return _outcome(workdir)


def test_killed_runs_resume_to_the_same_result(uninterrupted, tmp_path):
  # Killed in the search, again in the retrain, then left to finish: bit for
  # bit the uninterrupted run, which a run with the same config and seed
  # can only be if runs are deterministic (one test checks both).
  _run_and_kill_at(tmp_path, "search step 70/120")
  assert checkpoint.CheckpointManager(
      str(tmp_path / "checkpoints")).steps("search")
  _run_and_kill_at(tmp_path, "retrain step 40:")
  result = _run(tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "resuming the search from its checkpoint" in result.stderr
  assert "retrain resumed from its checkpoint" in result.stderr
  _assert_same(_outcome(tmp_path), uninterrupted)


def test_absurd_learning_rate_stops_with_the_step_and_quantity(tmp_path):
  result = _run(tmp_path, "--config.search.weight_lr=1e30",
                "--config.search.arch_warmup_steps=0")
  assert result.returncode != 0
  message = result.stderr.strip().splitlines()[-1]
  assert message.startswith("error: search step ")
  assert "not finite" in message
  assert any(q in message for q in ("training loss", "validation loss",
                                    "weight gradient", "alpha gradient"))
  failed_step = int(message.split("search step ")[1].split(":")[0])
  manager = checkpoint.CheckpointManager(str(tmp_path / "checkpoints"))
  # Only good checkpoints are kept: every one precedes the failure.
  assert all(step < failed_step for step in manager.steps("search"))


def test_conflicting_config_in_workdir_is_refused(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"seed": 99}))
  result = _run(tmp_path)
  assert result.returncode != 0
  assert "holds a run with another config" in result.stderr
  assert "seed: 99 there, 0 requested" in result.stderr


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
  _run_and_kill_at(tmp_path, "search step 40/120")
  manager = checkpoint.CheckpointManager(str(tmp_path / "checkpoints"))
  latest = manager.path("search", manager.steps("search")[-1])
  with open(os.path.join(latest, "arrays.npz"), "r+b") as f:
    f.seek(100)
    f.write(b"\xff" * 16)
  result = _run(tmp_path)
  assert result.returncode != 0
  assert "corrupt" in result.stderr and latest in result.stderr
  # A fresh start does not read it: it gets past the corrupt step.
  _run_and_kill_at(tmp_path, "search step 50/120", "--fresh")


def _tree():
  return {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.int32(4),
          "layers": [jnp.ones(3), jnp.zeros((1, 2))]}


def test_checkpoint_round_trip_and_pruning(tmp_path):
  manager = checkpoint.CheckpointManager(str(tmp_path), keep=2)
  for step in (1, 2, 3):
    manager.save("search", step, _tree(), {"note": step})
  assert manager.steps("search") == [2, 3]
  step, tree, facts = manager.restore_latest("search", _tree())
  assert step == 3 and facts == {"note": 3}
  jax.tree.map(np.testing.assert_array_equal, tree, _tree())


def test_foreign_checkpoint_is_refused(tmp_path):
  manager = checkpoint.CheckpointManager(str(tmp_path))
  manager.save("search", 1, {"other": jnp.ones(2)}, {})
  with pytest.raises(checkpoint.CheckpointError, match="another structure"):
    manager.restore("search", 1, _tree())
  manager.save("search", 2, {"w": jnp.ones((3, 3)), "step": jnp.int32(1),
                             "layers": [jnp.ones(3), jnp.zeros((1, 2))]}, {})
  with pytest.raises(checkpoint.CheckpointError, match="leaf"):
    manager.restore("search", 2, _tree())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_is_a_clear_error(tmp_path, monkeypatch, code):
  manager = checkpoint.CheckpointManager(str(tmp_path))
  manager.save("search", 1, _tree(), {})

  def failing_savez(*args, **kwargs):
    raise OSError(code, os.strerror(code))

  monkeypatch.setattr(np, "savez", failing_savez)
  with pytest.raises(checkpoint.CheckpointError,
                     match=f"cannot write checkpoint .*{os.strerror(code)}"):
    manager.save("search", 2, _tree(), {})
  # The good checkpoint is untouched and no staging directory is left.
  assert manager.steps("search") == [1]
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_resumed_event_files_hold_the_kept_records_in_order(tmp_path):
  records = [{"phase": "search", "step": s, "train_loss": s / 100,
              "feature/income": s / 1000} for s in (10, 20, 30)]
  (tmp_path / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in records))
  # Resumed from a checkpoint at step 20: the record of step 30 is dropped.
  metrics = pipeline.RunMetrics(str(tmp_path), lambda r: r["step"] <= 20,
                                {"seed": 0, "fanouts": (4, 2)},
                                {"gates/feature/income": 0.5})
  metrics.write({"phase": "search", "step": 30, "train_loss": 0.25,
                 "feature/income": 0.04})
  metrics.close()
  board = event_accumulator.EventAccumulator(
      str(tmp_path / "tensorboard"),
      size_guidance={event_accumulator.SCALARS: 0})
  board.Reload()
  assert [(e.step, round(e.value, 6)) for e in board.Scalars(
      "gates/feature/income")] == [(0, 0.5), (10, 0.01), (20, 0.02),
                                   (30, 0.04)]
  assert [(e.step, round(e.value, 6)) for e in board.Scalars(
      "search/train_loss")] == [(10, 0.1), (20, 0.2), (30, 0.25)]
  assert [json.loads(line)["step"] for line in open(
      tmp_path / "metrics.jsonl")] == [10, 20, 30]
