"""Sharded training library: mesh, logical-axis rules, optax recipes, pure steps.

Importing this package pulls in jax, flax and optax only (never TensorFlow),
and only on first use of a name below (so `vivit-evaluate --help`, under
`train/evaluation/`, starts fast). `evaluation/` is the evaluation room.
"""

from vivit_jax.common.lazy import lazy_getattr

_LAZY = {
    "default_train_config": "vivit_jax.train.defaults",
    "make_global_batch": "vivit_jax.train.distributed",
    "maybe_initialize_distributed": "vivit_jax.train.distributed",
    "MESH_AXES": "vivit_jax.train.mesh",
    "create_mesh": "vivit_jax.train.mesh",
    "make_optimizer": "vivit_jax.train.optimizer",
    "DEFAULT_RULES": "vivit_jax.train.partitioning",
    "batch_sharding": "vivit_jax.train.partitioning",
    "TrainState": "vivit_jax.train.state",
    "StepSpec": "vivit_jax.train.specs",
    "resolve": "vivit_jax.train.specs",
    "abstract_train_state": "vivit_jax.train.steps",
    "check_finite": "vivit_jax.train.steps",
    "init_train_state": "vivit_jax.train.steps",
    "make_eval_step": "vivit_jax.train.steps",
    "make_train_step": "vivit_jax.train.steps",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, {name: (module, name) for name, module in _LAZY.items()})
