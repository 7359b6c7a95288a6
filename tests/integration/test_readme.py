"""The README's Python examples marked `<!-- runnable -->` run as written."""

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


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_example_runs(index):
  exec(compile(runnable_blocks()[index], f"README block {index}", "exec"), {})
