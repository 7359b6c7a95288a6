"""The README's Python examples marked `<!-- runnable -->` run as written, and
the shapes their comments state (`x = ...  # (1, 400)`, `# (1, 1568) bool`,
`# predictions (1, 1408, 2*16*16*3)`) are the shapes they produce."""

import os
import re

import pytest
from support import REPO

README = os.path.join(REPO, "README.md")


def runnable_blocks():
  with open(README) as f:
    text = f.read()
  return re.findall(r"<!-- runnable -->\n```python\n(.*?)```", text, flags=re.S)


def test_readme_has_runnable_examples():
  assert len(runnable_blocks()) >= 2


# `name = ...  # [key] (dims) [dtype]`: the shape of `name` (or of `name[key]`).
SHAPE_COMMENT = re.compile(r"^(\w+) = .*#\s*(?:(\w+)\s+)?\(([^)]*)\)\s*(\w+)?\s*$")


def shape_claims(block):
  claims = []
  for line in block.splitlines():
    match = SHAPE_COMMENT.match(line)
    if match:
      name, key, dims, dtype = match.groups()
      shape = tuple(int(eval(d, {})) for d in dims.split(",") if d.strip())  # pylint: disable=eval-used
      claims.append((name, key, shape, dtype))
  return claims


def test_readme_states_shapes():
  assert sum(len(shape_claims(b)) for b in runnable_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_example_runs(index):
  block = runnable_blocks()[index]
  namespace = {}
  exec(compile(block, f"README block {index}", "exec"), namespace)
  for name, key, shape, dtype in shape_claims(block):
    value = namespace[name] if key is None else namespace[name][key]
    assert tuple(value.shape) == shape, (name, key, value.shape, shape)
    if dtype is not None:
      assert str(value.dtype) == dtype, (name, value.dtype, dtype)
