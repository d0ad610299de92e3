"""Run in a fresh process with forced host devices; prints JSON differences.

  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python tests/multidevice_check.py
"""

import json

import jax
import jax.numpy as jnp
import numpy as np

from credit_nas_jax import data
from credit_nas_jax import model
from credit_nas_jax import parallel
from credit_nas_jax import search
from credit_nas_jax import synthetic

SHARDS = 4
HYPER = dict(weight_lr=1e-2, weight_decay=1e-3, arch_lr=1e-2,
             arch_weight_decay=0.0, zero_one_weight=0.1)


def _max_difference(a, b):
  return max(float(jnp.max(jnp.abs(jnp.asarray(x) - jnp.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main():
  book = synthetic.generate_lending_book(4, 600)
  dataset = data.dataset_from_book(book, split_seed=0)
  maker = data.BatchMaker(dataset, 8, (3, 2), seed=0)
  arch = model.supernet_architecture(
      dataset.encoder.column_groups, dataset.encoder.features, hidden_dim=16,
      op_ratios=(2, 1, 0.5))

  def run(mesh, second_order):
    state = search.init_search_state(jax.random.key(0), arch, HYPER)
    if mesh is not None:
      state = parallel.replicate(state, mesh)
    for step in range(3):
      train = maker.sharded_training_batch("train", step, SHARDS)
      val = maker.sharded_training_batch("validation", step, SHARDS)
      if mesh is not None:
        train = parallel.shard_batch(train, mesh)
        val = parallel.shard_batch(val, mesh)
      state, _ = search.search_step(state, train, val, arch=arch,
                                    second_order=second_order)
    return jax.device_get((state.weights, state.alphas))

  result = {"devices": jax.device_count()}
  mesh = parallel.data_mesh(SHARDS)
  for second_order in (False, True):
    single = run(None, second_order)
    sharded = run(mesh, second_order)
    result[f"max_difference_second_order_{second_order}"] = _max_difference(
        single, sharded)
  # The stacked shards give the loss of one batch holding them all.
  weights, alphas = model.init(jax.random.key(1), arch)
  stacked = maker.sharded_training_batch("train", 0, SHARDS)
  rows = data.batch_rows(dataset.splits["train"], 8 * SHARDS, 0, 0, 1)
  parts = [maker.graphs_for(rows[k * 8:(k + 1) * 8],
                            np.random.default_rng([0, 1, 0, k]))
           for k in range(SHARDS)]
  import jraph  # pylint: disable=g-import-not-at-top
  from credit_nas_jax import graphs as graphs_lib  # pylint: disable=g-import-not-at-top
  one = graphs_lib.pad_batch(
      jraph.batch([jraph.unpad_with_graphs(p) for p in parts]),
      graphs_lib.BatchBudget.for_batch(8 * SHARDS, (3, 2)))
  result["loss_stacked"] = float(search.batch_loss(weights, alphas, stacked,
                                                   arch))
  result["loss_one_batch"] = float(search.batch_loss(weights, alphas, one,
                                                     arch))
  print(json.dumps(result))


if __name__ == "__main__":
  main()
