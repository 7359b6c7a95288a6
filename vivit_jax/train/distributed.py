"""Multi-host helpers: start-up and assembling global batches from per-process data.

Config keys read (`config.distributed`):
  coordinator_address  "host:port" of process 0; None = not set.
  num_processes        total processes; None = from the environment.
  process_id           this process's index; None = from the environment.
  local_device_ids     devices this process drives (list of ints); None = all.
  auto                 True: call `jax.distributed.initialize()` with cluster
                       auto-detection (SLURM, Open MPI, Kubernetes, Cloud TPU)
                       even when nothing above is set.

The environment asks for initialisation when `JAX_COORDINATOR_ADDRESS` is set
(with `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`, read here, or values jax
detects itself).
"""

import os
from typing import Mapping, Optional

import jax
import numpy as np

from vivit_jax.train import partitioning


def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name)
  return int(value) if value not in (None, "") else None


def maybe_initialize_distributed(config) -> bool:
  """Calls `jax.distributed.initialize` when config or environment asks for it.

  Must run before anything touches jax devices. Idempotent: returns True at
  once when jax.distributed is already initialised.

  Args:
    config: the experiment config (reads `config.distributed.*`, see module
      docstring).

  Returns:
    True if jax.distributed is initialised on return, False for a
    single-process run.
  """
  if jax.distributed.is_initialized():
    return True
  dist = config.distributed
  address = dist.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  num_processes = dist.num_processes
  if num_processes is None:
    num_processes = _env_int("JAX_NUM_PROCESSES")
  process_id = dist.process_id
  if process_id is None:
    process_id = _env_int("JAX_PROCESS_ID")
  if not address and not dist.auto and not (num_processes and num_processes > 1):
    return False
  kwargs = dict(coordinator_address=address or None, num_processes=num_processes,
                process_id=process_id)
  if dist.local_device_ids is not None:
    kwargs["local_device_ids"] = list(dist.local_device_ids)
  jax.distributed.initialize(**kwargs)
  return True


def make_global_batch(local_batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh,
                      sharding: Optional[jax.sharding.NamedSharding] = None) -> dict:
  """Global `jax.Array`s from this process's slice of the batch.

  Args:
    local_batch: dict of host arrays, each `(B_local, ...)`; process p holds
      global rows `[p * B_local, (p + 1) * B_local)` (the layout of a
      per-process data pipeline; with a (data, fsdp)-major mesh over
      `jax.devices()` this is the mesh's own order).
    mesh: the training mesh.
    sharding: defaults to `partitioning.batch_sharding(mesh)`.

  Returns:
    dict of `(B_local * process_count, ...)` arrays sharded by `sharding`.
  """
  sharding = sharding or partitioning.batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}
