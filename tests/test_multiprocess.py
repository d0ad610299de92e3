"""Two processes joined by jax.distributed on the CPU, as two hosts would be.

Each process has two forced CPU devices; ``--config.runtime.num_devices=0`` runs the
search and retrain data-parallel over all four. A run whose process 1 is
killed mid-search stops process 0 with an error naming process 1; both
resumed, the run ends equal to one process over four devices.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import launch  # pylint: disable=g-bad-import-order
from credit_nas_jax import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "experiments", "search.py")
CONFIG = os.path.join(ROOT, "experiments", "configs", "test.py")
# A one-layer supernet of two ops and no timing probes: fewer compiles, the
# same multi-process paths.
OVERRIDES = ("--config.runtime.num_devices=0", "--config.search.steps=20",
             "--config.runtime.log_every=5", "--config.runtime.checkpoint_every=5",
             "--config.retrain.steps=20", "--config.retrain.eval_every=10",
             "--config.space.num_gcn_layers=1", "--config.space.op_ratios=2.0,1.0",
             "--config.runtime.cost_probes=False")
HEARTBEAT_SECONDS = 10


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices, cache):
  # Exactness across process layouts needs full float32 dots (as on a GPU);
  # the compile cache lets the resumed run reuse the killed run's programs.
  return {**os.environ, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": launch.xla_flags(
              f"--xla_force_host_platform_device_count={devices}"),
          "JAX_DEFAULT_MATMUL_PRECISION": "highest",
          "JAX_COMPILATION_CACHE_DIR": str(cache),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def _start_pair(workdir, cache, logs):
  """Both processes of a two-process run, stderr to ``logs[i]``."""
  port = _free_port()
  processes = []
  for process_id in (0, 1):
    with open(logs[process_id], "w") as log:
      processes.append(subprocess.Popen(
          [sys.executable, LAUNCHER, f"--workdir={workdir}",
           f"--config={CONFIG}", *OVERRIDES,
           f"--coordinator=localhost:{port}", "--num_processes=2",
           f"--process_id={process_id}",
           f"--heartbeat_timeout_seconds={HEARTBEAT_SECONDS}"],
          stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT,
          env=_env(2, cache)))
  return processes


def _wait_for(path, marker, processes, timeout=600):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if marker in open(path).read():
      return
    if any(p.poll() is not None for p in processes):
      break
    time.sleep(0.2)
  for p in processes:
    p.kill()
  raise AssertionError(f"{marker!r} never logged:\n{open(path).read()[-3000:]}")


def _outcome(workdir):
  with np.load(os.path.join(workdir, "model", "weights.npz")) as archive:
    weights = {k: archive[k] for k in archive.files}
  return {
      "gates": pd.read_csv(os.path.join(workdir, "alphas.csv")),
      "architecture": json.load(open(os.path.join(workdir,
                                                  "architecture.json"))),
      "test": json.load(open(os.path.join(workdir, "test_metrics.json"))),
      "records": [json.loads(line) for line in open(
          os.path.join(workdir, "metrics.jsonl"))],
      "weights": weights,
  }


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("compile_cache")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, cache):
  """One process over four forced devices: the reference."""
  workdir = tmp_path_factory.mktemp("one_process")
  result = subprocess.run(
      [sys.executable, LAUNCHER, f"--workdir={workdir}", f"--config={CONFIG}",
       *OVERRIDES], capture_output=True, text=True, timeout=600, cwd=ROOT,
      env=_env(4, cache))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "data-parallel over 4 devices" in result.stderr
  return _outcome(workdir)


def test_two_processes_killed_resumed_equal_one_process(one_process,
                                                        tmp_path, cache):
  workdir = tmp_path / "run"
  logs = [tmp_path / "process0.log", tmp_path / "process1.log"]
  processes = _start_pair(workdir, cache, logs)
  _wait_for(logs[0], "search step 10/20", processes)
  processes[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  # Process 0 stops on its own, naming the process that went silent.
  returncode = processes[0].wait(timeout=HEARTBEAT_SECONDS + 120)
  waited = time.monotonic() - killed_at
  survivor = open(logs[0]).read()
  assert returncode != 0, survivor[-3000:]
  assert "tasks are unhealthy" in survivor, survivor[-3000:]
  assert "stopped sending heartbeats):\n1\n" in survivor, survivor[-3000:]
  assert waited < HEARTBEAT_SECONDS + 60
  assert checkpoint.CheckpointManager(
      str(workdir / "checkpoints")).steps("search")

  processes = _start_pair(workdir, cache, logs)
  for process, log in zip(processes, logs):
    assert process.wait(timeout=600) == 0, open(log).read()[-3000:]
    assert "resuming the search from its checkpoint" in open(log).read()
  resumed = _outcome(workdir)

  # Process 0 alone wrote: one record per step, one TensorBoard event file.
  keys = [(r["phase"], r["step"]) for r in resumed["records"]]
  assert len(keys) == len(set(keys))
  assert keys == [(r["phase"], r["step"]) for r in one_process["records"]]
  assert len(os.listdir(workdir / "tensorboard")) == 1
  assert not [n for n in os.listdir(workdir) if ".tmp" in n]
  cost = json.load(open(workdir / "search_cost.json"))
  assert cost["processes"] == 2 and cost["devices"] == 4 and cost["resumed"]
  assert "bare_search_step_seconds" not in cost  # cost_probes=False

  # Equal to one process over the same four devices, to float tolerance.
  assert resumed["architecture"]["kept_features"] == one_process[
      "architecture"]["kept_features"]
  assert resumed["architecture"]["chosen_ops"] == one_process[
      "architecture"]["chosen_ops"]
  assert resumed["gates"]["step"].tolist() == [0, 5, 10, 15, 20]
  np.testing.assert_allclose(resumed["gates"].to_numpy(),
                             one_process["gates"].to_numpy(), atol=1e-5)
  assert resumed["weights"].keys() == one_process["weights"].keys()
  for name, value in one_process["weights"].items():
    np.testing.assert_allclose(resumed["weights"][name], value, atol=1e-5,
                               err_msg=name)
  assert resumed["test"]["test"]["auc"] == pytest.approx(
      one_process["test"]["test"]["auc"], abs=1e-5)
