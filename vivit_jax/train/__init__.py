"""Sharded training library: mesh, logical-axis rules, optax recipes, pure steps.

Importing this package pulls in jax, flax and optax only (never TensorFlow).
"""

from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.distributed import make_global_batch, maybe_initialize_distributed
from vivit_jax.train.mesh import MESH_AXES, create_mesh
from vivit_jax.train.optimizer import make_optimizer
from vivit_jax.train.partitioning import DEFAULT_RULES, batch_sharding
from vivit_jax.train.specs import StepSpec, resolve
from vivit_jax.train.state import TrainState
from vivit_jax.train.steps import (abstract_train_state, check_finite, init_train_state,
                                   make_eval_step, make_train_step)

__all__ = [
    "DEFAULT_RULES", "MESH_AXES", "StepSpec", "TrainState", "abstract_train_state", "batch_sharding",
    "check_finite",
    "create_mesh", "default_train_config", "init_train_state", "make_eval_step",
    "make_global_batch", "make_optimizer", "make_train_step",
    "maybe_initialize_distributed", "resolve",
]
