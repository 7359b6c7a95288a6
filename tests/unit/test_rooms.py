"""The package's rooms stand on each other: no room in a cycle, the ground floor
imports nothing above it (docs/architecture.md draws the house).

A room is a first-level subpackage or module of vivit_jax (`train/evaluation/`
belongs to `train`). Every import counts, function-level ones too, and
`from vivit_jax import checkpoints` names the room it imports.
"""

import ast
import os
from typing import Dict, Set, Tuple

import pytest

from support import REPO

PACKAGE = os.path.join(REPO, "vivit_jax")
GROUND = ("common", "models", "checkpoints", "data")
UPPER = ("train", "serving", "compress", "export", "main")


def _room_of(module: str):
  parts = module.split(".")
  return parts[1] if len(parts) > 1 and parts[0] == "vivit_jax" else None


def _imported_modules(node: ast.AST, me: Tuple[str, ...]):
  """Dotted names an import node reaches (`from vivit_jax import x` -> `vivit_jax.x`)."""
  if isinstance(node, ast.Import):
    return [alias.name for alias in node.names]
  if not isinstance(node, ast.ImportFrom):
    return []
  if node.level:  # relative: resolved against this module's package
    base = ".".join(me[:len(me) - node.level])
    module = f"{base}.{node.module}" if node.module else base
  else:
    module = node.module or ""
  return [module] + [f"{module}.{alias.name}" for alias in node.names]


def room_edges() -> Dict[str, Dict[str, Set[str]]]:
  """`{room: {imported room: {"file:line", ...}}}` over every file of the package."""
  edges: Dict[str, Dict[str, Set[str]]] = {}
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(root, name)
      rel = os.path.relpath(path, REPO)
      me = tuple(rel[:-3].split(os.sep))
      room = _room_of(".".join(me))
      if room in (None, "__init__"):
        continue
      with open(path) as f:
        tree = ast.parse(f.read(), path)
      for node in ast.walk(tree):
        for module in _imported_modules(node, me):
          other = _room_of(module)
          if other and other not in (room, "__init__"):
            edges.setdefault(room, {}).setdefault(other, set()).add(f"{rel}:{node.lineno}")
  return edges


def _reachable(edges, start: str) -> Set[str]:
  seen, todo = set(), [start]
  while todo:
    for nxt in edges.get(todo.pop(), {}):
      if nxt not in seen:
        seen.add(nxt)
        todo.append(nxt)
  return seen


def test_the_package_has_rooms_and_the_walk_sees_their_imports():
  edges = room_edges()
  assert {"common", "models", "checkpoints", "data", "train", "serving"} <= set(edges) | {
      r for d in edges.values() for r in d}
  assert "common" in edges["checkpoints"] and "models" in edges["checkpoints"]


def test_no_room_is_in_a_cycle():
  edges = room_edges()
  cycles = []
  for room in sorted(edges):
    for other in sorted(edges[room]):
      if room in _reachable(edges, other):
        cycles.append(f"{room} -> {other} ({sorted(edges[room][other])[0]}) and back")
  assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("ground", GROUND)
def test_ground_rooms_import_nothing_from_the_upper_floors(ground):
  edges = room_edges().get(ground, {})
  up = {room: sorted(where)[0] for room, where in edges.items() if room in UPPER}
  assert not up, f"{ground} imports {up}"


def test_common_imports_nothing_of_the_package():
  assert room_edges().get("common", {}) == {}


def test_serving_imports_nothing_of_train():
  edges = room_edges().get("serving", {})
  assert "train" not in edges, sorted(edges.get("train", ()))
