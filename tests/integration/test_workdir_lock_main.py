"""Two `vivit_jax.main` runs on one workdir: the second is refused; a stale lock is taken over."""

import json
import os
import socket
import subprocess
import sys

from support import train_runs as fx
from vivit_jax.checkpoints import workdir_lock


def _lock(workdir, pid):
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, workdir_lock.LOCK_FILE)
  with open(path, "w") as f:
    json.dump({"host": socket.gethostname(), "pid": pid}, f)
  return path


def _overrides(tiny_dataset):
  return fx.tiny_overrides(tiny_dataset, **{"train.num_steps": 2, "eval.every_steps": 0,
                                            "checkpoint.every_steps": 0})


def test_second_run_on_a_held_workdir_is_refused_naming_the_holder(tiny_dataset, tmp_path):
  workdir = str(tmp_path / "run")
  path = _lock(workdir, os.getpid())  # This test process is the live holder.
  result = fx.run_main("demo_finetune.py", workdir, _overrides(tiny_dataset), timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: workdir {workdir} is in use by pid {os.getpid()} on host {socket.gethostname()} "
      f"({path}): wait for that run to end, use another --workdir, or delete {path} if that "
      "run is gone")
  assert sorted(os.listdir(workdir)) == [workdir_lock.LOCK_FILE]  # No config.json, no checkpoints.
  with open(path) as f:
    assert json.load(f)["pid"] == os.getpid()


def test_stale_lock_of_a_dead_run_is_taken_over_and_released(tiny_dataset, tmp_path):
  child = subprocess.Popen([sys.executable, "-c", "pass"])
  child.wait()
  workdir = str(tmp_path / "run")
  path = _lock(workdir, child.pid)
  result = fx.run_main("demo_finetune.py", workdir, _overrides(tiny_dataset), timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert fx.checkpoint_steps(workdir) == [2]
  assert os.path.exists(os.path.join(workdir, "config.json"))
  assert not os.path.exists(path)
