"""The benchmark launchers as a user runs them, at tiny sizes (seconds each).

search.py, sweep.py, evaluate.py and score.py have their own tests
(test_pipeline, test_sweep, test_evaluation, test_scoring_cli); the PyG peer
module has test_pyg_reference (and runs here through benchmark.py when torch
is installed). Each test checks a figure the launcher reports, not only its
exit status.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import launch  # pylint: disable=g-bad-import-order
from test_scoring import make_model  # pylint: disable=g-bad-import-order

HAS_PYG = all(importlib.util.find_spec(name) is not None
              for name in ("torch", "torch_geometric"))


def _positive(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_benchmark_times_steps_and_loops(tmp_path):
  output = tmp_path / "bench.json"
  impl = "jax,pyg" if HAS_PYG else "jax"
  result = launch.run(
      "benchmark.py", f"--impl={impl}", "--workloads=b256",
      "--kinds=search_first_order,inference",
      "--steps=2", "--warmup=1", "--hidden_dim=16",
      "--loops=d16_b128", "--loop_steps=50", f"--output={output}")
  rows = json.loads(output.read_text())
  by_kind = {(r["impl"], r["kind"]): r for r in rows}
  step = by_kind[("jax", "search_first_order")]
  assert step["workload"] == "b256" and step["steps"] == 2
  for field in ("compile_seconds", "median_ms", "graphs_per_second",
                "flops_analytic", "flops_xla"):
    assert _positive(step[field]), (field, step[field])
  assert _positive(by_kind[("jax", "inference")]["median_ms"])
  assert "| jax | b256 | search_first_order |" in result.stdout
  if HAS_PYG:  # the peer, imported by the launcher from experiments/
    assert _positive(by_kind[("pyg", "search_first_order")]["median_ms"])
    assert "b256: JAX first-order step" in result.stdout
  for kind in ("search_loop", "retrain_loop"):
    loop = by_kind[("jax", kind)]
    assert loop["workload"] == "d16_b128"
    assert loop["sampler"] in ("device", "host")
    for field in ("loop_ms", "bare_step_ms", "loop_over_bare_step"):
      assert _positive(loop[field]), (kind, field, loop[field])
    assert f"d16_b128: {kind}" in result.stdout


def test_scale_benchmark_reports_the_search_and_a_scaling_point(tmp_path):
  output = tmp_path / "scale.json"
  result = launch.run(
      "scale_benchmark.py", "--num_borrowers=3000", "--steps=4",
      "--hidden_dim=16", "--batch_size=32", "--device_steps=3",
      "--scaling_devices=2", "--scaling_borrowers=2000",
      "--scaling_steps=4", f"--output={output}")
  report = json.loads(output.read_text())
  assert json.loads(result.stdout[result.stdout.index("{"):]) == report
  assert report["borrowers"] == 3000
  assert report["relation_edges"] > 3000  # about 10 per borrower
  assert (report["search_steps"], report["batch_size"],
          report["hidden_dim"]) == (4, 32, 16)
  assert report["sampler"] in ("device", "host")
  for field in ("input_graphs_per_second", "compile_seconds", "loop_seconds",
                "loop_steps_per_second", "device_step_ms", "loop_step_ms",
                "peak_rss_gib"):
    assert _positive(report[field]), (field, report[field])
  [point] = report["weak_scaling"]
  assert point["devices"] == 2 and point["per_device_batch"] == 64
  assert _positive(point["median_step_ms"])
  assert _positive(point["graphs_per_second"])


def test_sweep_benchmark_as_a_module(tmp_path):
  # ``python -m experiments.sweep_benchmark`` (the launchers also run as
  # modules of the experiments package).
  output = tmp_path / "sweep.json"
  result = subprocess.run(
      [sys.executable, "-m", "experiments.sweep_benchmark", "--members=2",
       "--batch_size=16", "--hidden_dim=8", "--steps=4",
       "--num_borrowers=600", f"--output={output}"],
      capture_output=True, text=True, timeout=600, cwd=launch.ROOT,
      env={**os.environ, "JAX_DEFAULT_MATMUL_PRECISION": "highest"},
      check=False)
  assert result.returncode == 0, launch.stderr_of(result)
  row = json.loads(output.read_text())
  assert (row["members"], row["steps"], row["batch_size"],
          row["hidden_dim"]) == (2, 4, 16, 8)
  assert 1 <= row["vmap_width"] <= 2
  for field in ("lone_compile_seconds", "lone_search_seconds",
                "sweep_compile_seconds", "sweep_search_seconds",
                "sweep_seconds_per_member", "per_member_over_lone"):
    assert _positive(row[field]), (field, row[field])
  assert f"| {row['device_kind']} | 2 | 16 | 8 | 4 |" in result.stdout


def test_score_benchmark_scores_every_applicant(tmp_path):
  model_dir = tmp_path / "model"
  make_model(model_dir)
  result = launch.run("score_benchmark.py", f"--model_dir={model_dir}",
                      "--applicants=200", "--config.num_reasons=2")
  row = json.loads(result.stdout[result.stdout.index("{"):])
  assert row["applicants"] == 200 and row["scored"] == 200
  assert row["num_reasons"] == 2 and row["format"] == "csv"
  assert sum(row["decisions"].values()) == 200
  stages = [k for k in row if k.endswith("seconds")]
  assert len(stages) > 3, stages
  for field in ("total_seconds", "applicants_per_second"):
    assert _positive(row[field]), (field, row[field])


def test_accelerator_report_script_parses():
  script = os.path.join(launch.ROOT, "experiments", "accelerator_report.sh")
  result = subprocess.run(["bash", "-n", script], capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stderr
