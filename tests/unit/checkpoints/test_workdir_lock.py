"""`checkpoints.workdir_lock`: one training run per workdir."""

import json
import os
import socket
import subprocess
import sys

import pytest

from vivit_jax.checkpoints import workdir_lock


def _dead_pid() -> int:
  child = subprocess.Popen([sys.executable, "-c", "pass"])
  child.wait()
  return child.pid


def _write_lock(workdir, host, pid):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, workdir_lock.LOCK_FILE), "w") as f:
    json.dump({"host": host, "pid": pid}, f)


def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path):
  workdir = str(tmp_path / "run")
  with workdir_lock.hold(workdir) as path:
    with open(path) as f:
      assert json.load(f) == {"host": socket.gethostname(), "pid": os.getpid()}
    with pytest.raises(workdir_lock.WorkdirLockedError,
                       match=f"in use by pid {os.getpid()} on host {socket.gethostname()}"):
      workdir_lock.acquire(workdir)
  assert not os.path.exists(path)


def test_stale_lock_of_a_dead_pid_on_this_host_is_taken_over(tmp_path):
  workdir = str(tmp_path / "run")
  _write_lock(workdir, socket.gethostname(), _dead_pid())
  with workdir_lock.hold(workdir) as path:
    with open(path) as f:
      assert json.load(f)["pid"] == os.getpid()


def test_lock_from_another_host_is_refused_naming_the_file(tmp_path):
  workdir = str(tmp_path / "run")
  _write_lock(workdir, "other-host", _dead_pid())
  path = os.path.join(workdir, workdir_lock.LOCK_FILE)
  with pytest.raises(workdir_lock.WorkdirLockedError, match=f"on host other-host .*delete {path}"):
    workdir_lock.acquire(workdir)
  assert os.path.exists(path)


def test_processes_other_than_0_take_no_lock(tmp_path):
  workdir = str(tmp_path / "run")
  with workdir_lock.hold(workdir) as path, workdir_lock.hold(workdir, process_index=1) as other:
    assert other is None and os.path.exists(path)
