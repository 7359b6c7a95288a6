"""Logical-axis sharding rules: model axis names -> mesh axes.

The models name every parameter axis (`embed`, `mlp`, `heads`, `kv`,
`classes`, `decoder_embed`, or None) and constrain activations with
`("activation_batch", "activation_length", "activation_embed")`; the names
are the constants of `vivit_jax.models.axes`. A rule list
maps each logical name onto a mesh axis (a name of `MESH_AXES`), a tuple of
mesh axes, or None (replicated). Rules are tried in order; a mesh axis already
used by an earlier dimension of the same array is skipped (flax semantics).

Config keys (resolved into `specs.StepSpec.rules` / `.constrain_activations`):
  sharding.rules  list of `(logical_name, mesh_axes)` pairs; None or empty =
                  `DEFAULT_RULES`. Lists (from JSON / the command line) are
                  accepted wherever tuples are.
  sharding.constrain_activations  bool; True (default) makes the models'
                  `nn.with_logical_constraint` calls bind (mesh and rules in
                  context while tracing). False leaves activation layouts to
                  XLA's propagation from the parameter and batch shardings.

`DEFAULT_RULES` give FSDP over the `fsdp` axis (the `embed` dimension of every
weight) and Megatron-style tensor parallelism over `tensor` (MLP hidden units
and attention heads); the batch is split over `(data, fsdp)`.
"""

import contextlib
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
from jax.sharding import NamedSharding, PartitionSpec

from vivit_jax.models import axes
from vivit_jax.train.mesh import BATCH_AXES

Rules = Tuple[Tuple[str, Any], ...]

DEFAULT_RULES: Rules = (
    (axes.ACTIVATION_BATCH, BATCH_AXES),
    (axes.ACTIVATION_LENGTH, None),
    (axes.ACTIVATION_EMBED, None),
    (axes.EMBED, "fsdp"),
    (axes.MLP, "tensor"),
    (axes.HEADS, "tensor"),
    (axes.KV, None),
    (axes.CLASSES, None),
    (axes.DECODER_EMBED, "fsdp"),
)


def _normalise_axes(axes):
  if axes is None or isinstance(axes, str):
    return axes
  return tuple(axes)


def normalise_rules(rules: Optional[Sequence[Sequence[Any]]]) -> Rules:
  """Rules as a tuple of `(str, None | str | tuple of str)`; None/empty -> defaults."""
  if not rules:
    return DEFAULT_RULES
  out = []
  for rule in rules:
    if len(rule) != 2 or not isinstance(rule[0], str):
      raise ValueError(f"sharding.rules entries must be (logical_name, mesh_axes) pairs, "
                       f"got {rule!r}")
    out.append((rule[0], _normalise_axes(rule[1])))
  return tuple(out)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over `("data", "fsdp")`, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def param_shardings(boxed_params, mesh: jax.sharding.Mesh, rules: Rules):
  """NamedShardings for a tree of `nn.LogicallyPartitioned` params (or their shapes).

  Unboxed leaves (no logical names) are replicated. The result has the
  structure of `nn.unbox(boxed_params)`.
  """
  specs = nn.get_partition_spec(boxed_params)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def _dict_suffix(path) -> Tuple[str, ...]:
  """The trailing run of dict keys of a key path (a parameter's path inside a state)."""
  names = []
  for entry in reversed(path):
    if isinstance(entry, jax.tree_util.DictKey):
      names.append(str(entry.key))
    else:
      break
  return tuple(reversed(names))


def tree_shardings_like_params(tree, params, shardings, mesh: jax.sharding.Mesh):
  """Shardings for a tree holding copies of the parameters (an optimiser state).

  A leaf whose key path ends in a parameter's path and whose shape equals that
  parameter's shape gets the parameter's sharding; every other leaf (step
  counts, scalars) is replicated. This works for any optax state (chains,
  `masked`, `multi_transform`, `MultiSteps`) since they all keep the
  parameter dicts' keys.

  Args:
    tree: the state (arrays or `jax.ShapeDtypeStruct`s).
    params: the (unboxed) parameter tree, arrays or shapes.
    shardings: NamedShardings with the structure of `params`.
  """
  by_path = {}
  flat_params = jax.tree_util.tree_flatten_with_path(params)[0]
  flat_shardings = jax.tree_util.tree_leaves(shardings)
  for (path, leaf), sharding in zip(flat_params, flat_shardings):
    by_path[_dict_suffix(path)] = (tuple(leaf.shape), sharding)

  def pick(path, leaf):
    suffix = _dict_suffix(path)
    for start in range(len(suffix)):
      hit = by_path.get(suffix[start:])
      if hit is not None and hit[0] == tuple(getattr(leaf, "shape", ())):
        return hit[1]
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(pick, tree)


@contextlib.contextmanager
def activation_rules(mesh: jax.sharding.Mesh, rules: Rules, enabled: bool = True):
  """Makes the models' `nn.with_logical_constraint` calls bind to `mesh`.

  Enter inside a function being traced by `jax.jit` (it sets the abstract
  mesh, which is allowed under tracing, and flax's logical axis rules).
  With `enabled=False` it does nothing (constraints are no-ops).
  """
  if not enabled:
    yield
    return
  with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
    yield
