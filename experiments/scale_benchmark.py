r"""Large graphs and several devices: input throughput, memory, scaling.

  python experiments/scale_benchmark.py                 # 1M borrowers
  python experiments/scale_benchmark.py --num_borrowers=200000 --steps=50

1. Builds the feature-level synthetic graph (--num_borrowers, about 10
   relation edges per borrower) and its CSR form; times both.
2. Input pipeline alone: sampled borrower graphs per second.
3. A search of --steps steps on that graph: step loop wall time against the
   time spent building input (built while the dispatched step runs), the
   device-only step time, and the peak host memory (max RSS) of the process.
4. Weak scaling of the search step on 1, 2 and 4 forced CPU devices (same
   per-device batch), each in its own process.
"""

import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

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
_WORKER = flags.DEFINE_integer("scaling_worker", 0,
                               "Internal: run one weak-scaling point.")


def _search_config():
  config = default.get_config()
  config.dataset = "synthetic_graph"
  config.search_steps = _STEPS.value
  config.log_every = max(1, _STEPS.value)
  config.arch_warmup_steps = 0
  return config


def _scaling_point(devices: int) -> dict:
  """Median search-step ms on ``devices`` forced devices, 64 graphs each."""
  config = _search_config()
  config.num_borrowers, config.batch_size = 20_000, 64
  dataset = pipeline.load_dataset(config)
  arch = experiment.supernet_for(config, dataset)
  maker = data_lib.BatchMaker(dataset, config.batch_size,
                              tuple(config.fanouts), 0)
  mesh = parallel.data_mesh(devices)
  state = parallel.replicate(search_lib.init_search_state(
      jax.random.key(0), arch, experiment.hyperparameters_of(config)), mesh)
  batches = [(parallel.shard_batch(
      maker.sharded_training_batch("train", s, devices), mesh),
              parallel.shard_batch(
                  maker.sharded_training_batch("validation", s, devices),
                  mesh)) for s in range(4)]
  times = []
  for step in range(23):
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
  maker = data_lib.BatchMaker(dataset, config.batch_size,
                              tuple(config.fanouts), 0)
  start = time.perf_counter()
  for step in range(50):
    maker.training_batch("train", step)
  report["input_graphs_per_second"] = 50 * config.batch_size / (
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
  for _ in range(20):
    start = time.perf_counter()
    state, _ = search_lib.search_step(state, train, val, arch=arch)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
  report.update({
      "search_steps": config.search_steps,
      "batch_size": config.batch_size,
      "loop_seconds": timing["search_seconds"],
      "input_seconds_in_loop": timing["input_seconds"],
      "device_step_ms": 1000 * float(np.median(times)),
      "loop_step_ms": 1000 * timing["search_seconds"] / config.search_steps,
      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                      / 2**20,
  })
  scaling = []
  for devices in map(int, _SCALING.value):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
        f"--xla_force_host_platform_device_count={devices}"))
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__),
         f"--scaling_worker={devices}"], capture_output=True, text=True,
        env=env, check=True)
    scaling.append(json.loads(result.stdout.strip().splitlines()[-1]))
  report["weak_scaling"] = scaling
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
