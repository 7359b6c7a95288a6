"""The device mesh: axes `("data", "fsdp", "tensor")` built from config.

Config keys read:
  mesh.shape  three ints, the sizes of `("data", "fsdp", "tensor")`; one of
              them may be -1 for "all remaining devices". Their product must
              equal the number of devices (over all processes).

Every axis is `AxisType.Auto` (GSPMD propagation), which flax's logical
constraints need; `jax.make_mesh` would otherwise default to Explicit axes.
Multi-host start-up (`maybe_initialize_distributed`) lives in `distributed.py`.
"""

import math
from typing import Optional, Sequence, Tuple

import jax
import numpy as np

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> Tuple[int, ...]:
  """Fills a single -1 in `shape` so the product is `num_devices`; validates."""
  shape = tuple(int(s) for s in shape)
  if len(shape) != len(MESH_AXES):
    raise ValueError(f"mesh.shape must have {len(MESH_AXES)} entries for axes {MESH_AXES}, "
                     f"got {shape}")
  if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ValueError(f"mesh.shape entries must be positive with at most one -1, got {shape}")
  if -1 in shape:
    known = math.prod(s for s in shape if s != -1)
    if num_devices % known:
      raise ValueError(f"mesh.shape={shape}: {num_devices} devices are not divisible by {known}")
    shape = tuple(num_devices // known if s == -1 else s for s in shape)
  if math.prod(shape) != num_devices:
    raise ValueError(f"mesh.shape={shape} needs {math.prod(shape)} devices, "
                     f"have {num_devices}")
  return shape


def create_mesh(mesh_config, devices: Optional[Sequence[jax.Device]] = None
                ) -> jax.sharding.Mesh:
  """A `Mesh` over `devices` (default: all devices of all processes).

  Args:
    mesh_config: has `shape` (see module docstring), e.g. `config.mesh`.
    devices: optional explicit device list (tests use a subset).

  Returns:
    A mesh with axis names `MESH_AXES` and Auto axis types.
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = resolve_mesh_shape(mesh_config.shape, len(devices))
  axis_types = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  if len(devices) == len(jax.devices()):
    return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
  # A subset of the devices: keep their order (make_mesh wants all of them).
  return jax.sharding.Mesh(np.asarray(devices, dtype=object).reshape(shape), MESH_AXES,
                           axis_types=axis_types)
