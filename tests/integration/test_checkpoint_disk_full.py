"""Disk full during an async checkpoint save: one line, a clean stop, the previous step intact.

The disk is really full: `WORKDIR/checkpoints` is a 4 MiB tmpfs mounted in a
private user + mount namespace (`unshare --user --map-root-user --mount`, no
root needed where unprivileged user namespaces are allowed), so the kernel
answers the save's writes with ENOSPC. Inside the namespace: run 1 saves
step 2 and is killed; the tmpfs is filled up to 40 KiB; run 2 resumes and
its step-4 save fails; the filler is removed and run 3 resumes from step 2.
The runs compile at XLA optimisation level 0 (`fx.fast_compile_env`), the
second and third from the session's compilation cache.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from support import TESTS_DIR
from support import train_runs as fx

_NAMESPACE = ["unshare", "--user", "--map-root-user", "--mount"]

_DRIVER = textwrap.dedent("""
  import json, os, subprocess, sys
  sys.path.insert(0, {tests!r})
  from support import train_runs as fx
  workdir, dataset, out = {workdir!r}, {dataset!r}, {out!r}
  checkpoints = os.path.join(workdir, "checkpoints")
  os.makedirs(checkpoints)
  subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", checkpoints], check=True)
  overrides = fx.tiny_overrides(dataset, **{{"train.num_steps": 6, "checkpoint.every_steps": 2,
                                            "eval.every_steps": 0}})
  runs = {{}}
  def run(name, extra=None):
    r = fx.run_main("demo_finetune.py", workdir, dict(overrides, **(extra or {{}})),
                    env=fx.fast_compile_env())
    runs[name] = {{"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr,
                   "steps": fx.checkpoint_steps(workdir), "entries": sorted(os.listdir(checkpoints))}}
  run("first", {{"debug.sigkill_after_step": 2}})
  stat = os.statvfs(checkpoints)
  filler = os.path.join(checkpoints, "filler")
  with open(filler, "wb") as f:
    f.write(bytes(max(stat.f_bavail * stat.f_frsize - 40 * 1024, 0)))
  run("full")
  os.remove(filler)
  run("freed")
  with open(out, "w") as f:
    json.dump(runs, f)
""")


def _namespace_available() -> bool:
  if shutil.which("unshare") is None or shutil.which("mount") is None:
    return False
  probe = subprocess.run(_NAMESPACE + ["sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                         capture_output=True)
  return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _namespace_available(),
                    reason="needs unprivileged user namespaces (unshare --user --mount) to "
                           "mount a small tmpfs")
def test_disk_full_during_async_save_stops_in_one_line_and_keeps_the_previous_step(
    tiny_dataset, tmp_path):
  workdir, out = str(tmp_path / "run"), str(tmp_path / "runs.json")
  script = _DRIVER.format(tests=TESTS_DIR, workdir=workdir, dataset=tiny_dataset, out=out)
  driver = subprocess.run(_NAMESPACE + [sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=1200, cwd=fx.REPO)
  assert driver.returncode == 0, driver.stderr[-3000:]
  with open(out) as f:
    runs = json.load(f)
  assert runs["first"]["steps"] == [2]

  full = runs["full"]
  assert full["rc"] == 2, full["stderr"][-3000:]
  checkpoints = os.path.join(workdir, "checkpoints")
  line = (f"error: checkpoint save failed at step 4: no space left on {checkpoints} "
          f"({checkpoints}/4): free space there (or lower checkpoint.keep / "
          "checkpoint.keep_best), then re-run the same command; the checkpoint of step 2 is "
          "intact and a relaunch resumes from it")
  assert full["stderr"].strip().splitlines()[-1] == line
  assert full["stderr"].count("checkpoint save failed") == 1
  assert "Traceback" not in full["stderr"]
  lines = (full["stdout"] + full["stderr"]).splitlines()
  assert len(lines) < 30, "\n".join(lines)
  assert "wrote model checkpoint" not in full["stdout"]  # Stopped: no final model.
  assert full["entries"] == ["2", "filler"]  # The half-written step 4 is gone.

  freed = runs["freed"]
  assert freed["rc"] == 0, freed["stderr"][-3000:]
  assert "restored checkpoint at step 2" in freed["stdout"]
  assert freed["steps"][-1] == 6
