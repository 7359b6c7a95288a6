"""The commands: console scripts in setup.py, and their `python -m` modules."""

import ast
import os
import subprocess
import sys

import pytest
from support import REPO



def _console_scripts():
  with open(os.path.join(REPO, "setup.py")) as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    if isinstance(node, ast.Assign) and node.targets[0].id == "CONSOLE_SCRIPTS":
      return [ast.literal_eval(e) for e in node.value.elts]
  raise AssertionError("setup.py defines no CONSOLE_SCRIPTS")


@pytest.mark.parametrize("entry", _console_scripts())
def test_every_console_script_names_a_callable(entry):
  name, target = (part.strip() for part in entry.split("="))
  module, function = target.split(":")
  assert name.startswith("vivit-")
  # One process per command: the absl commands define flags at import.
  code = f"import {module} as m; assert callable(m.{function})"
  subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


@pytest.mark.parametrize("module", ["vivit_jax.train.evaluation.evaluate",
                                    "vivit_jax.train.evaluation.forecast"])
def test_evaluation_commands_run_as_python_m_modules(module):
  proc = subprocess.run([sys.executable, "-m", module, "--helpshort"], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  # Help is an answer, not a failure: status 0 (errors.run_absl), as for --help.
  assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
  assert "--checkpoint" in proc.stdout
