r"""Large graphs and several devices: input throughput, memory, scaling.

  python experiments/scale_benchmark.py                 # 1M borrowers
  python experiments/scale_benchmark.py --num_borrowers=200000 --steps=50
  python experiments/scale_benchmark.py --num_borrowers=3000 --steps=4 \
      --hidden_dim=16 --batch_size=32 --scaling_devices=2 \
      --scaling_borrowers=2000 --scaling_steps=4        # seconds: a smoke run

1. Builds the feature-level synthetic graph (--num_borrowers, about 10
   relation edges per borrower) and its CSR form; times both.
2. Input pipeline alone: sampled borrower graphs per second.
3. A search of --steps steps on that graph with the experiment core's loop
   (``experiment.search``: neighbourhoods sampled on the device inside the
   compiled blocks, or on the host when the plan says so; ``sampler``): its
   compile and loop wall time, against the device-only step time on a fixed
   batch, and the peak host memory (max RSS) of the process.
4. Weak scaling of the search step on 1, 2 and 4 forced CPU devices (same
   per-device batch), each in its own process.

Prints the report as JSON (and writes it to --output when given).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

from credit_nas_jax import config as config_lib
from credit_nas_jax import data as data_lib
from credit_nas_jax import experiment
from credit_nas_jax import parallel
from credit_nas_jax import pipeline
from credit_nas_jax import search as search_lib
from credit_nas_jax import synthetic
from experiments.configs import default

_BORROWERS = flags.DEFINE_integer("num_borrowers", 1_000_000, "Graph size.")
_STEPS = flags.DEFINE_integer("steps", 100, "Search steps on the graph.")
_SCALING = flags.DEFINE_list("scaling_devices", ["1", "2", "4"],
                             "Forced CPU device counts for weak scaling.")
_SCALING_BORROWERS = flags.DEFINE_integer(
    "scaling_borrowers", 20_000, "Book size of each weak-scaling point.")
_SCALING_STEPS = flags.DEFINE_integer(
    "scaling_steps", 20, "Timed search steps of each weak-scaling point "
    "(after 3 untimed).", lower_bound=1)
_HIDDEN = flags.DEFINE_integer(
    "hidden_dim", None, "D of the search and the scaling points (default: "
    "the default config's).")
_BATCH = flags.DEFINE_integer(
    "batch_size", None, "Graphs per search batch (default: the default "
    "config's).")
_DEVICE_STEPS = flags.DEFINE_integer(
    "device_steps", 20, "Timed search steps on one fixed batch.",
    lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "Optional JSON output file.")
_WORKER = flags.DEFINE_integer("scaling_worker", 0,
                               "Internal: run one weak-scaling point.")


def _search_config():
  config = default.get_config()
  config.data.dataset = "synthetic_graph"
  config.search.steps = _STEPS.value
  config.runtime.log_every = max(1, _STEPS.value)
  config.search.arch_warmup_steps = 0
  if _HIDDEN.value is not None:
    config.space.hidden_dim = _HIDDEN.value
  if _BATCH.value is not None:
    config.data.batch_size = _BATCH.value
  return config_lib.typed(config)


def _scaling_point(devices: int) -> dict:
  """Median search-step ms on ``devices`` forced devices, 64 graphs each."""
  config = config_lib.replace(_search_config(), {
      "data.num_borrowers": _SCALING_BORROWERS.value, "data.batch_size": 64})
  dataset = pipeline.load_dataset(config)
  arch = experiment.supernet_for(config, dataset)
  maker = data_lib.BatchMaker(dataset, config.data.batch_size,
                              tuple(config.data.fanouts), 0)
  mesh = parallel.data_mesh(devices)
  state = parallel.replicate(search_lib.init_search_state(
      jax.random.key(0), arch, experiment.hyperparameters_of(config)), mesh)
  batches = [(parallel.shard_batch(
      maker.sharded_training_batch("train", s, devices), mesh),
              parallel.shard_batch(
                  maker.sharded_training_batch("validation", s, devices),
                  mesh)) for s in range(4)]
  times = []
  for step in range(3 + _SCALING_STEPS.value):
    start = time.perf_counter()
    state, _ = search_lib.search_step(state, *batches[step % 4], arch=arch)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
  median = float(np.median(times[3:]))
  return {"devices": devices, "per_device_batch": 64,
          "median_step_ms": 1000 * median,
          "graphs_per_second": devices * 64 / median}


def main(argv):
  del argv
  if _WORKER.value:
    print(json.dumps(_scaling_point(_WORKER.value)))
    return
  report = {"device_kind": jax.devices()[0].device_kind,
            "jax_version": jax.__version__}
  start = time.perf_counter()
  book = synthetic.generate_borrower_graph(0, _BORROWERS.value)
  report["generate_seconds"] = time.perf_counter() - start
  start = time.perf_counter()
  dataset = data_lib.dataset_from_graph_book(book, split_seed=0)
  report["dataset_seconds"] = time.perf_counter() - start
  report["borrowers"] = int(dataset.graph.num_nodes)
  report["relation_edges"] = int(dataset.graph.indices.size // 2)
  del book

  config = _search_config()
  maker = data_lib.BatchMaker(dataset, config.data.batch_size,
                              tuple(config.data.fanouts), 0)
  start = time.perf_counter()
  for step in range(50):
    maker.training_batch("train", step)
  report["input_graphs_per_second"] = 50 * config.data.batch_size / (
      time.perf_counter() - start)

  exp = experiment.prepare(config, dataset)
  arch = exp.supernet
  report["sampler"] = exp.plan.sampler
  state = search_lib.init_search_state(jax.random.key(0), arch,
                                       experiment.hyperparameters_of(config))
  state, timing = experiment.search(exp, state)
  train, val = (maker.training_batch("train", 0),
                maker.training_batch("validation", 0))
  times = []
  for _ in range(_DEVICE_STEPS.value):
    start = time.perf_counter()
    state, _ = search_lib.search_step(state, train, val, arch=arch)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
  report.update({
      "search_steps": config.search.steps,
      "batch_size": config.data.batch_size,
      "hidden_dim": config.space.hidden_dim,
      # experiment.search's timing: the compile apart, the loop's wall time
      # (input sampling included: on the device, or built on the host per
      # block) less any host callbacks (none here).
      "compile_seconds": timing["compile_seconds"],
      "loop_seconds": timing["search_seconds"],
      "loop_steps_per_second": timing["search_steps_per_second"],
      "device_step_ms": 1000 * float(np.median(times)),
      "loop_step_ms": 1000 * timing["search_seconds"] / config.search.steps,
      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                      / 2**20,
  })
  scaling = []
  for devices in map(int, _SCALING.value):
    # The caller's XLA flags are kept, the device count added last.
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join([
        os.environ.get("XLA_FLAGS", ""),
        f"--xla_force_host_platform_device_count={devices}"]).strip())
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__),
         f"--scaling_worker={devices}",
         f"--scaling_borrowers={_SCALING_BORROWERS.value}",
         f"--scaling_steps={_SCALING_STEPS.value}",
         *([f"--hidden_dim={_HIDDEN.value}"] if _HIDDEN.value else [])],
        capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
      sys.exit(f"error: the {devices}-device scaling point failed:\n"
               f"{result.stderr[-3000:]}")
    scaling.append(json.loads(result.stdout.strip().splitlines()[-1]))
  report["weak_scaling"] = scaling
  print(json.dumps(report, indent=2))
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(report, f, indent=2)


if __name__ == "__main__":
  app.run(main)
