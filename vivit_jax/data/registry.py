"""Registries of data sources and train augmentations, by name; TF-free.

Built-ins: one module per source in `sources/`, one per op in `ops/`. A new
source or augmentation is one file that registers itself:

    from vivit_jax.data.registry import register_op, register_source

    @register_source("my_format")
    def my_format_source(config, train, process_index, process_count):
      return MySource(...)         # the protocol of `vivit_jax.data.sources`

    @register_op("cutout", stage="unit")
    def cutout(seed, clip, config, size=16):
      return ...                   # (T, H, W, 3) in, same shape out

and is chosen by config: `data.source="my_format"`, or an entry of
`data.augmentations` such as `"cutout(size=24)"` (big_vision-style specs:
a name, optionally called with Python literals). `data.register_modules`
lists modules to import first, so the command line can use them
(`--config.data.register_modules='("my_pkg.cutout",)'`).

Built-in entries are named here with the module that registers them, so
names can be validated without importing TensorFlow; the module is
imported on first use.
"""

import ast
import dataclasses
import importlib
from typing import Any, Callable, Dict, Sequence, Tuple

# Built-in sources and ops: name -> module that registers it on import.
_BUILTIN_SOURCES = {
    "tfrecord": "vivit_jax.data.sources.tfrecord",
    "tfds": "vivit_jax.data.sources.tfds",
    "video_list": "vivit_jax.data.sources.video_list",
}
_BUILTIN_OPS = {
    "flip": "vivit_jax.data.ops.flip",
    "color_jitter": "vivit_jax.data.ops.color_jitter",
    "rand_augment": "vivit_jax.data.ops.rand_augment",
}
OP_STAGES = ("uint8", "unit")


@dataclasses.dataclass(frozen=True)
class Op:
  """A registered train augmentation.

  `fn(seed, clip, config, *args, **kwargs) -> clip` with a `(2,)` stateless
  seed (a fresh one per op, clip and train element). `stage` "uint8": runs on
  the decoded `(T, h, w, 3)` uint8 crop window, before resizing; "unit": on
  the resized float32 clip scaled to [0, 1]. `enabled(config)` False skips
  the op (e.g. `data.flip=False`).
  """
  name: str
  fn: Callable
  stage: str
  enabled: Callable[[Any], bool]


_SOURCES: Dict[str, Callable] = {}
_OPS: Dict[str, Op] = {}


def register_source(name: str):
  """Decorator: `build(config, train, process_index, process_count) -> source`."""
  def decorate(build):
    _SOURCES[name] = build
    return build
  return decorate


def register_op(name: str, stage: str = "unit", enabled: Callable[[Any], bool] = None):
  """Decorator registering `fn(seed, clip, config, *args, **kwargs) -> clip` (see `Op`)."""
  if stage not in OP_STAGES:
    raise ValueError(f"register_op({name!r}): stage must be one of {OP_STAGES}, got {stage!r}")
  def decorate(fn):
    _OPS[name] = Op(name, fn, stage, enabled or (lambda config: True))
    return fn
  return decorate


def source_names() -> Tuple[str, ...]:
  return tuple(sorted(set(_BUILTIN_SOURCES) | set(_SOURCES)))


def op_names() -> Tuple[str, ...]:
  return tuple(sorted(set(_BUILTIN_OPS) | set(_OPS)))


def _lookup(name: str, table: dict, builtins: dict, what: str):
  if name not in table and name in builtins:
    importlib.import_module(builtins[name])
  if name not in table:
    known = sorted(set(builtins) | set(table))
    raise ValueError(f"unknown {what} {name!r}; registered: {known} (a module that "
                     f"registers more can be listed in data.register_modules)")
  return table[name]


def get_source(name: str) -> Callable:
  """The builder registered as `name` (imports a built-in's module)."""
  return _lookup(name, _SOURCES, _BUILTIN_SOURCES, "data.source")


def get_op(name: str) -> Op:
  return _lookup(name, _OPS, _BUILTIN_OPS, "augmentation")


def parse_op_spec(spec: str) -> Tuple[str, tuple, dict]:
  """`"name"` or `"name(1, k=0.5)"` -> (name, args, kwargs); arguments must
  be Python literals. Raises ValueError naming the spec."""
  try:
    node = ast.parse(spec.strip(), mode="eval").body
    if isinstance(node, ast.Name):
      return node.id, (), {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
      return (node.func.id, tuple(ast.literal_eval(a) for a in node.args),
              {k.arg: ast.literal_eval(k.value) for k in node.keywords})
  except (SyntaxError, ValueError):
    pass
  raise ValueError(f"data.augmentations entry {spec!r} is not `name` or `name(literals)`")


def resolve_ops(specs: Sequence[str]) -> list:
  """`[(Op, args, kwargs)]` for `data.augmentations`, in order."""
  out = []
  for spec in specs:
    name, args, kwargs = parse_op_spec(spec)
    out.append((get_op(name), args, kwargs))
  return out


def import_modules(names: Sequence[str]) -> None:
  """Imports `data.register_modules`; a failure names the module."""
  for name in names:
    try:
      importlib.import_module(name)
    except ImportError as error:
      raise ValueError(f"data.register_modules: cannot import {name!r} ({error})") from error
