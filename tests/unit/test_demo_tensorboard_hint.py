"""`make demo` ends with the command that opens TensorBoard on its workdir:
the `tensorboard` of the demo's own environment, or the pip line that puts it
there (scripts/demo.py:tensorboard_hint)."""

import importlib.util
import os
import shlex

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def demo():
  spec = importlib.util.spec_from_file_location("demo_script",
                                                os.path.join(REPO, "scripts", "demo.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _environment(tmp_path, with_tensorboard):
  bindir = tmp_path / "venv" / "bin"
  bindir.mkdir(parents=True)
  (bindir / "python").write_text("")
  if with_tensorboard:
    (bindir / "tensorboard").write_text("")
  return str(bindir / "python")


def test_hint_runs_the_tensorboard_of_the_demo_environment(demo, tmp_path):
  python = _environment(tmp_path, with_tensorboard=True)
  logdir = str(tmp_path / "demo_workdir")
  line = demo.tensorboard_hint(logdir, python)
  command = shlex.split(line.split("to view them: ", 1)[1])
  assert command == [str(tmp_path / "venv" / "bin" / "tensorboard"), "--logdir", logdir]
  assert "pip install" not in line


def test_hint_installs_tensorboard_into_that_environment_when_missing(demo, tmp_path):
  python = _environment(tmp_path, with_tensorboard=False)
  line = demo.tensorboard_hint(str(tmp_path / "w"), python)
  install, view = line.split("to view them: ", 1)[1].split(" && ")
  assert shlex.split(install) == [python, "-m", "pip", "install", "tensorboard>=2.18,<3"]
  assert shlex.split(view)[0] == os.path.join(os.path.dirname(python), "tensorboard")


def test_paths_under_the_working_directory_are_shown_relative(demo, tmp_path, monkeypatch):
  python = _environment(tmp_path, with_tensorboard=True)
  monkeypatch.chdir(tmp_path)
  line = demo.tensorboard_hint(str(tmp_path / "demo_workdir"), python)
  assert line.endswith("to view them: venv/bin/tensorboard --logdir demo_workdir")
