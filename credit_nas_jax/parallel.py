"""Data-parallel search over local devices and hosts, through JAX sharding.

The global batch is ``num_shards`` sub-batches stacked on a leading axis and
sharded over the mesh's ``data`` axis; weights, alphas and optimizer states
are replicated. The search and retrain steps are the package's own: their
loss averages over the real graphs of all shards (``search.batch_loss``), so
the compiler partitions the step and reduces the gradients across devices.
The result equals the same global batch on one device, to float tolerance.

Multi-host: call :func:`initialize_distributed` first. The device sampler
needs nothing more: every process holds the whole graph, replicated, and the
compiled step samples the global batch, each device its own shards. With the
host sampler every process builds the shards of its own devices
(``local_shards``) and ``jax.make_array_from_process_local_data`` assembles
the global batch. Process 0 writes the files (:func:`is_writer`); the
others wait at a :func:`barrier` where they need them. A process that dies
stops the others once its heartbeat is missed for
``heartbeat_timeout_seconds``: the distributed service ends them with an
error that names the missing process ("tasks are unhealthy ... <id>").
"""

from __future__ import annotations

import chex
import jax
import jraph
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(coordinator: str | None, num_processes: int,
                           process_id: int, *,
                           heartbeat_timeout_seconds: int = 60) -> None:
  """Joins a multi-process run (no-op for a single process).

  Call before any other JAX call. CPU processes exchange collectives
  through gloo (XLA:CPU has no cross-process collectives of its own).

  Args:
    coordinator: ``host:port`` of process 0's distributed service.
    num_processes: processes in the run.
    process_id: this process's index (0 writes the files).
    heartbeat_timeout_seconds: how long a silent process may go before the
      others stop with an error naming it.
  """
  if num_processes <= 1:
    return
  if not coordinator:
    raise ValueError(f"num_processes={num_processes} needs --coordinator "
                     "(host:port of process 0)")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=coordinator, num_processes=num_processes,
      process_id=process_id,
      heartbeat_timeout_seconds=heartbeat_timeout_seconds)
  logging.info("process %d of %d joined through %s (%d local of %d devices)",
               jax.process_index(), jax.process_count(), coordinator,
               jax.local_device_count(), jax.device_count())


def is_writer() -> bool:
  """Whether this process writes the run's files (process 0)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier ``name``.

  A no-op for a single process. A process that died ends the wait: the
  distributed service stops the others after its heartbeat timeout.
  """
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def data_mesh(num_devices: int = 0) -> Mesh:
  """A 1-d mesh over the first ``num_devices`` devices (0: all of them)."""
  devices = jax.devices()
  if num_devices < 0 or num_devices > len(devices):
    raise ValueError(f"num_devices={num_devices}; this run sees "
                     f"{len(devices)} device(s)")
  return Mesh(np.asarray(devices[:num_devices or len(devices)]),
              (DATA_AXIS,))


def local_shards(mesh: Mesh) -> range:
  """The shard indices whose devices belong to this process."""
  local = [i for i, d in enumerate(mesh.devices.reshape(-1))
           if d.process_index == jax.process_index()]
  if local != list(range(local[0], local[-1] + 1)):
    raise ValueError("this process's devices are not contiguous in the mesh")
  return range(local[0], local[-1] + 1)


def replicate(tree: chex.ArrayTree, mesh: Mesh) -> chex.ArrayTree:
  """Places a pytree (a search or train state) on every device."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(local_batch: jraph.GraphsTuple,
                mesh: Mesh) -> jraph.GraphsTuple:
  """This process's stacked shards as a global batch sharded over ``data``."""
  sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  if jax.process_count() == 1:
    return jax.device_put(local_batch, sharding)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x),
      local_batch)
