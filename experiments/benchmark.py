r"""Search cost on standard workloads: compile, step time, FLOPs, throughput.

  python experiments/benchmark.py                      # b256, b1024; JAX
  python experiments/benchmark.py --impl=jax,pyg       # with the PyG peer
  python experiments/benchmark.py --impl=jax,pyg --kinds=search_first_order \
      --rounds=3                                       # alternating rounds
  python experiments/benchmark.py --workloads=b256,b1024,b4096,g100k \
      --steps=50 --output=bench.json
  python experiments/benchmark.py --workloads= --loops=d16_b128 --rounds=3

Workloads (padded batches with fixed budgets; see WORKLOADS):
* bN: N borrower graphs, each a borrower's neighbourhood sampled from the
  synthetic book with fanouts (3, 3) (at most 13 nodes, 24 directed edges),
  padded to 16 nodes and 64 edges a graph.
* g100k: one graph of the 100,000-borrower synthetic book's whole relation
  graph (links per borrower raised so it has about 1,000,000 directed
  edges), padded to 100,000 nodes + 1 and 1,000,000 edges.

Loops (``--loops``): the experiment core's real search and retrain loops
(neighbourhoods sampled on the device inside the compiled blocks) on the
default config's book at a given D and batch, against the same step
compiled alone on a fixed batch: the ratio is what the loop costs beyond
the step.

Step kinds: first- and second-order search steps (supernet), retrain step
and inference of a derived network (every feature, the medium op in both
layers), and supernet inference for comparison. FLOPs: the analytic count of
credit_nas_jax.cost, cross-checked against XLA's cost analysis of the
compiled CPU step.
"""

import dataclasses
import json
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from credit_nas_jax import cost
from credit_nas_jax import data as data_lib
from credit_nas_jax import config as config_lib
from credit_nas_jax import experiment
from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import search as search_lib
from credit_nas_jax import synthetic
from credit_nas_jax import train as train_lib

# name: (graphs, nodes, edges)
WORKLOADS = {
    "b256": (256, 4_096, 16_384),
    "b1024": (1_024, 16_384, 65_536),
    "b4096": (4_096, 65_536, 262_144),
    "g100k": (1, 100_000, 1_000_000),
}
# name: (hidden_dim, batch_size) of a loop workload on the default config's
# synthetic book (20,000 borrowers, fanouts 10 and 5).
LOOPS = {"d16_b128": (16, 128), "d100_b1024": (100, 1_024),
         "d100_b128": (100, 128)}
KINDS = ("search_first_order", "search_second_order", "retrain",
         "inference", "supernet_inference")

_WORKLOADS = flags.DEFINE_list("workloads", ["b256", "b1024"],
                               f"Of {sorted(WORKLOADS)}.")
_KINDS = flags.DEFINE_list("kinds", list(KINDS), f"Of {list(KINDS)}.")
_IMPL = flags.DEFINE_list("impl", ["jax"], "jax and/or pyg.")
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps after warm-up.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
_HIDDEN = flags.DEFINE_integer("hidden_dim", 100, "D.")
_PYG_COMPILE = flags.DEFINE_bool("pyg_compile", False,
                                 "Also time the PyG step under torch.compile.")
_PYG_DEVICE = flags.DEFINE_string(
    "pyg_device", None, "Device of the PyG peer's model and batches (cuda, "
    "cpu); default: cuda when torch sees a GPU, else cpu.")
_ROUNDS = flags.DEFINE_integer(
    "rounds", 1, "Time the JAX and PyG first-order steps this many times, "
    "alternating, so both see the same machine; the ratio is reported per "
    "round and as the median over rounds.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "JSON rows file.")
_LOOPS = flags.DEFINE_list(
    "loops", [], "Also time the real search and retrain loops (device "
    f"sampling included) against their bare steps: some of {sorted(LOOPS)}.")
_LOOP_STEPS = flags.DEFINE_integer("loop_steps", 200,
                                   "Search and retrain steps a loop runs.")


@dataclasses.dataclass
class Workload:
  name: str
  train: jraph.GraphsTuple
  val: jraph.GraphsTuple
  budget: graphs_lib.BatchBudget
  real_graphs: int
  real_nodes: int
  column_groups: tuple
  group_names: tuple


def make_workload(name: str) -> Workload:
  """Fills a workload's budget from the synthetic generator."""
  num_graphs, num_nodes, num_edges = WORKLOADS[name]
  if name == "g100k":
    book = synthetic.generate_lending_book(0, num_nodes - 1, mean_links=19.0)
  else:
    book = synthetic.generate_lending_book(0, 20_000)
  dataset = data_lib.dataset_from_book(book, split_seed=0)
  if name == "g100k":
    src = np.repeat(np.arange(dataset.graph.num_nodes),
                    dataset.graph.degree)
    dst = dataset.graph.indices
    keep = min(src.size, num_edges)
    graph = jraph.GraphsTuple(
        nodes=dataset.node_features, edges=None,
        senders=src[:keep].astype(np.int32),
        receivers=dst[:keep].astype(np.int32),
        n_node=np.array([dataset.graph.num_nodes], np.int32),
        n_edge=np.array([keep], np.int32),
        globals={"label": dataset.labels[:1],
                 "borrower": np.zeros(1, np.int32)})
    budget = graphs_lib.BatchBudget(num_nodes + 1, num_edges, 2)
    padded = graphs_lib.pad_batch(graph, budget)
    return Workload(name, padded, padded, budget, 1, dataset.graph.num_nodes,
                    dataset.encoder.column_groups, dataset.encoder.features)
  budget = graphs_lib.BatchBudget(num_nodes, num_edges, num_graphs + 1)
  rng = np.random.default_rng(0)
  batches = []
  for split in ("train", "validation"):
    rows = rng.choice(dataset.splits[split], num_graphs,
                      replace=num_graphs > dataset.splits[split].size)
    unpadded = graphs_lib.sample_unpadded(
        dataset.graph, dataset.node_features, dataset.labels, rows, (3, 3),
        rng)
    batches.append(graphs_lib.pad_batch(unpadded, budget))
  return Workload(name, batches[0], batches[1], budget, num_graphs,
                  int(batches[0].n_node[:num_graphs].sum()),
                  dataset.encoder.column_groups, dataset.encoder.features)


def architectures(workload: Workload, hidden_dim: int):
  supernet = model_lib.supernet_architecture(
      workload.column_groups, workload.group_names, hidden_dim=hidden_dim,
      op_ratios=(4.0, 2.0, 1.0))
  alphas = {"features": jnp.ones(supernet.num_groups),
            "ops": jnp.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])}
  derived = search_lib.derive_architecture(alphas, supernet, 0.5).arch
  return supernet, derived


def _xla_flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get("flops", float("nan")))


def _peak_memory() -> int | None:
  stats = jax.devices()[0].memory_stats()
  return int(stats["peak_bytes_in_use"]) if stats and (
      "peak_bytes_in_use" in stats) else None


def time_jax(workload: Workload, kind: str, steps: int, warmup: int,
             hidden_dim: int) -> dict:
  """Compiles and times one step kind of the package on a workload."""
  supernet, derived = architectures(workload, hidden_dim)
  hyper = dict(weight_lr=1e-3, weight_decay=1e-4, arch_lr=1e-3,
               arch_weight_decay=0.0, zero_one_weight=0.0)
  key = jax.random.key(0)
  train, val = workload.train, workload.val
  if kind.startswith("search"):
    state = search_lib.init_search_state(key, supernet, hyper)
    args = (state, train, val)
    jitted = search_lib.search_step
    static = dict(arch=supernet,
                  second_order=kind == "search_second_order")
  elif kind == "retrain":
    settings = config_lib.replace(config_lib.Config(), {
        "retrain.lr": 1e-3, "retrain.weight_decay": 1e-4})
    args = (experiment.init_retrain_state(settings, key, derived), train)
    jitted, static = train_lib.train_step, dict(arch=derived)
  else:
    arch = derived if kind == "inference" else supernet
    weights, alphas = model_lib.init(key, arch)
    args = (weights, alphas, train)
    jitted, static = search_lib.predict_step, dict(arch=arch)
  start = time.perf_counter()
  lowered = jitted.lower(*args, **static)
  lower_seconds = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_seconds = time.perf_counter() - start
  carries_state = kind.startswith("search") or kind == "retrain"

  def run(args):
    out = compiled(*args)
    if carries_state:
      return (out[0],) + args[1:], out
    return args, out

  for _ in range(warmup):
    args, out = run(args)
  jax.block_until_ready(out)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    args, out = run(args)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - start)
  median = float(np.median(times))
  flops = cost.step_flops(
      "inference" if kind == "supernet_inference" else kind,
      supernet, supernet if kind == "supernet_inference" else derived,
      workload.budget)
  return {
      "impl": "jax", "workload": workload.name, "kind": kind,
      "lower_seconds": lower_seconds, "compile_seconds": compile_seconds,
      "median_ms": 1000 * median,
      "graphs_per_second": workload.real_graphs / median,
      "nodes_per_second": workload.real_nodes / median,
      "flops_analytic": flops,
      "flops_xla": _xla_flops(compiled),
      "tflops_per_second": flops / median / 1e12,
      "peak_memory_bytes": _peak_memory(),
      "device_kind": jax.devices()[0].device_kind,
      "jax_version": jax.__version__,
      "steps": steps,
  }


def _time_pyg(workload: Workload, round_index: int) -> list[dict]:
  """The PyG peer's first-order step, eager (and compiled when asked)."""
  from experiments import pyg_reference  # pylint: disable=g-import-not-at-top
  device = _PYG_DEVICE.value or pyg_reference.default_device().type
  if (device == "cuda") != (jax.default_backend() == "gpu"):
    logging.warning("PyG runs on %s, JAX on %s: not the same device", device,
                    jax.default_backend())
  rows = []
  for compiled in ([False, True] if _PYG_COMPILE.value else [False]):
    row = pyg_reference.time_first_order_step(
        workload, _STEPS.value, _WARMUP.value, _HIDDEN.value,
        torch_compile=compiled, device=device)
    # The PyG model gates, then aggregates and projects over D.
    row["flops_analytic"] = cost.step_flops(
        "search_first_order", *architectures(workload, _HIDDEN.value),
        workload.budget, folded_first_layer=False)
    row["tflops_per_second"] = (row["flops_analytic"]
                                / (row["median_ms"] / 1000) / 1e12)
    row["round"] = round_index
    rows.append(row)
    logging.info("%s", json.dumps(row))
  return rows


def _markdown(rows: list[dict]) -> str:
  lines = ["| impl | workload | step | compile s | median ms | graphs/s | "
           "nodes/s | GFLOP (analytic) | GFLOP (XLA) | TFLOP/s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['impl']} | {r['workload']} | {r['kind']}"
        f"{' (round ' + str(r['round'] + 1) + ')' if r.get('round') else ''} | "
        f"{r.get('compile_seconds', float('nan')):.2f} | "
        f"{r['median_ms']:.1f} | {r['graphs_per_second']:.0f} | "
        f"{r['nodes_per_second']:.0f} | {r['flops_analytic'] / 1e9:.2f} | "
        f"{r.get('flops_xla', float('nan')) / 1e9:.2f} | "
        f"{r['tflops_per_second']:.4f} |")
  return "\n".join(lines)


def time_loops(name: str, steps: int, rounds: int) -> list[dict]:
  """The real search and retrain loops of the experiment core against the
  bare compiled steps on fixed batches, alternating, ``rounds`` times."""
  from credit_nas_jax import experiment  # pylint: disable=g-import-not-at-top
  from credit_nas_jax import pipeline  # pylint: disable=g-import-not-at-top
  from experiments.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.space.hidden_dim, config.data.batch_size = LOOPS[name]
  config.search.steps = config.retrain.steps = steps
  config.runtime.log_every = config.runtime.checkpoint_every = 50
  config.retrain.eval_every, config.retrain.patience = steps, 10**6
  # The default's warm-up (100 of 200 steps) kept in proportion for a
  # shorter loop (a loop of warm-up steps only would time no alpha update).
  config.search.arch_warmup_steps = min(config.search.arch_warmup_steps, steps // 2)
  exp = experiment.prepare(config, pipeline.load_dataset(config))
  keys = experiment.run_keys(config.seed)
  fresh = lambda: search_lib.init_search_state(
      keys["init"], exp.supernet, experiment.hyperparameters_of(exp.config))
  derived = search_lib.derive_architecture(
      {"features": jnp.ones(exp.supernet.num_groups),
       "ops": jnp.array([[0.0, 1.0, 0.0]] * 2)}, exp.supernet, 0.5)
  train_batch = exp.maker.training_batch("train", 0)
  bare_train = jax.jit(train_lib.train_step_fn, static_argnames=("arch",))
  rows = []
  for round_index in range(rounds):
    state, timing = experiment.search(exp, fresh(), keys=keys)
    search_loop = timing["search_seconds"] / steps
    search_bare = experiment.bare_search_step_seconds(exp, state)
    train_state = experiment.retrain_state(exp, derived, keys)
    experiment.retrain(exp, train_state, derived.arch, keys=keys)  # compile
    start = time.perf_counter()
    experiment.retrain(exp, experiment.retrain_state(exp, derived, keys),
                       derived.arch, keys=keys)
    retrain_loop = (time.perf_counter() - start) / steps
    train_state = experiment.retrain_state(exp, derived, keys)
    jax.block_until_ready(bare_train(train_state, train_batch,
                                     arch=derived.arch))
    times = []
    for _ in range(20):
      begin = time.perf_counter()
      jax.block_until_ready(bare_train(train_state, train_batch,
                                       arch=derived.arch))
      times.append(time.perf_counter() - begin)
    retrain_bare = float(np.median(times))
    for kind, loop, bare in (("search_loop", search_loop, search_bare),
                             ("retrain_loop", retrain_loop, retrain_bare)):
      rows.append({"impl": "jax", "workload": name, "kind": kind,
                   "round": round_index, "loop_ms": 1000 * loop,
                   "bare_step_ms": 1000 * bare,
                   "loop_steps_per_second": 1 / loop,
                   "loop_over_bare_step": loop / bare,
                   "sampler": exp.plan.sampler,
                   "device_kind": jax.devices()[0].device_kind})
      logging.info("%s", json.dumps(rows[-1]))
  return rows


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  for name in _LOOPS.value:
    if name not in LOOPS:
      raise app.UsageError(f"unknown loop workload {name!r}; expected one "
                           f"of {sorted(LOOPS)}")
  for name in _WORKLOADS.value:
    if name not in WORKLOADS:
      raise app.UsageError(f"unknown workload {name!r}; expected one of "
                           f"{sorted(WORKLOADS)}")
  rows = []
  for name in _WORKLOADS.value:
    workload = make_workload(name)
    logging.info("workload %s: %d graphs, %d real nodes, budget %s", name,
                 workload.real_graphs, workload.real_nodes, workload.budget)
    for kind in _KINDS.value:
      with_peer = "pyg" in _IMPL.value and kind == "search_first_order"
      for round_index in range(_ROUNDS.value if with_peer else 1):
        if "jax" in _IMPL.value:
          rows.append({**time_jax(workload, kind, _STEPS.value,
                                  _WARMUP.value, _HIDDEN.value),
                       "round": round_index})
          logging.info("%s", json.dumps(rows[-1]))
        if with_peer:
          rows += _time_pyg(workload, round_index)
  by_key = {}
  for r in rows:
    by_key.setdefault((r["impl"], r["workload"], r["kind"]), []).append(r)
  for name in _WORKLOADS.value:
    jax_rows = by_key.get(("jax", name, "search_first_order"), [])
    for impl in ("pyg", "pyg_compiled"):
      peers = by_key.get((impl, name, "search_first_order"), [])
      if jax_rows and len(peers) == len(jax_rows):
        ratios = [p["median_ms"] / j["median_ms"]
                  for p, j in zip(peers, jax_rows)]
        rounds = (f" (rounds: {', '.join(f'{x:.2f}x' for x in ratios)})"
                  if len(ratios) > 1 else "")
        print(f"{name}: JAX first-order step "
              f"{np.median([j['median_ms'] for j in jax_rows]):.1f} ms, "
              f"{impl} {np.median([p['median_ms'] for p in peers]):.1f} ms: "
              f"{np.median(ratios):.2f}x{rounds}")
    derived = by_key.get(("jax", name, "inference"), [None])[0]
    supernet = by_key.get(("jax", name, "supernet_inference"), [None])[0]
    if derived and supernet:
      print(f"{name}: derived inference {derived['median_ms']:.1f} ms, "
            f"supernet {supernet['median_ms']:.1f} ms: "
            f"{supernet['median_ms'] / derived['median_ms']:.2f}x")
  loop_rows = [r for name in _LOOPS.value
               for r in time_loops(name, _LOOP_STEPS.value, _ROUNDS.value)]
  for name in _LOOPS.value:
    for kind in ("search_loop", "retrain_loop"):
      mine = [r for r in loop_rows if r["workload"] == name
              and r["kind"] == kind]
      each = ", ".join(f"{r['loop_over_bare_step']:.3f}x" for r in mine)
      print(f"{name}: {kind} {np.median([r['loop_ms'] for r in mine]):.2f} "
            f"ms/step, bare step "
            f"{np.median([r['bare_step_ms'] for r in mine]):.2f} ms: "
            f"{np.median([r['loop_over_bare_step'] for r in mine]):.3f}x "
            f"(rounds: {each})")
  rows += loop_rows
  if any("median_ms" in r for r in rows):
    print(_markdown([r for r in rows if "median_ms" in r]))
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)
