"""SIGKILL + restart, damaged checkpoints and changed configs on resume, with
real `vivit_jax.main` runs.

One tiny run is killed after its step-4 checkpoint (checkpoints 2 and 4 on
disk); each test relaunches a copy of that workdir: as it is (the result must
match an uninterrupted run bit for bit), after damaging a file, or after
changing a key. Every run compiles at XLA optimisation level 0
(`fx.fast_compile_env`): these tests check plumbing and compare their runs
only with each other.
"""

import json
import os
import shutil
import signal

import pytest

from support import train_runs as fx

pytestmark = pytest.mark.slow
MAX_LINES = 60


def _overrides(dataset, **extra):
  return fx.tiny_overrides(dataset, **{"train.num_steps": 6, "checkpoint.every_steps": 2,
                                       "eval.every_steps": 0, **extra})


@pytest.fixture(scope="module")
def killed_at_4(tiny_dataset, tmp_path_factory):
  """A workdir with checkpoints 2 and 4 of a 6-step run (SIGKILLed after step 4)."""
  workdir = str(tmp_path_factory.mktemp("killed") / "run")
  result = fx.run_main("demo_finetune.py", workdir,
                       _overrides(tiny_dataset, **{"debug.sigkill_after_step": 4}),
                       env=fx.fast_compile_env())
  assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
  assert fx.checkpoint_steps(workdir) == [2, 4]
  return workdir


def _copy(src, tmp_path):
  dst = str(tmp_path / "run")
  shutil.copytree(src, dst)
  return dst


def _largest_data_file(workdir, step):
  """The biggest OCDBT data file of a step's train state (holds the largest arrays)."""
  data_dir = os.path.join(workdir, "checkpoints", str(step), "state", "ocdbt.process_0", "d")
  return max((os.path.join(data_dir, n) for n in os.listdir(data_dir)), key=os.path.getsize)


def _truncate(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 3)
  return size


def _zero(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.write(bytes(size))


def _lines(result):
  return (result.stdout + result.stderr).splitlines()


def _relaunch(dataset, workdir, **extra):
  return fx.run_main("demo_finetune.py", workdir, _overrides(dataset, **extra),
                     env=fx.fast_compile_env())


def _config_json(workdir):
  with open(os.path.join(workdir, "config.json")) as f:
    return json.load(f)


def test_sigkill_then_restart_matches_straight_run(tiny_dataset, killed_at_4, tmp_path):
  workdir = _copy(killed_at_4, tmp_path)
  resumed = _relaunch(tiny_dataset, workdir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "restored checkpoint at step 4" in resumed.stdout

  straight_dir = str(tmp_path / "straight")
  straight = fx.run_main("demo_finetune.py", straight_dir, _overrides(tiny_dataset),
                         env=fx.fast_compile_env())
  assert straight.returncode == 0, straight.stderr[-3000:]
  fx.assert_same_checkpoint(straight_dir, workdir, 6)


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_damaged_newest_checkpoint_is_skipped_in_one_line_naming_the_file(
    tiny_dataset, killed_at_4, tmp_path, damage):
  workdir = _copy(killed_at_4, tmp_path)
  bad = _largest_data_file(workdir, 4)
  (_truncate if damage == "truncated" else _zero)(bad)

  result = _relaunch(tiny_dataset, workdir)

  assert result.returncode == 0, result.stderr[-3000:]
  assert "restored checkpoint at step 2" in result.stdout
  warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING:")]
  assert len(warnings) == 1, result.stderr[-3000:]
  rel = os.path.relpath(bad, os.path.join(workdir, "checkpoints", "4"))
  assert warnings[0].startswith(
      f"WARNING: checkpoint step 4 cannot be restored ({workdir}/checkpoints/4): {rel} is {damage}")
  assert warnings[0].endswith(f"moved it to {workdir}/checkpoints_corrupt/4, resuming from step 2")
  assert "Traceback" not in result.stderr
  assert len(_lines(result)) < MAX_LINES, "\n".join(_lines(result))
  assert os.listdir(os.path.join(workdir, "checkpoints_corrupt")) == ["4"]
  assert fx.checkpoint_steps(workdir)[-1] == 6


def test_all_checkpoints_damaged_is_one_error_line_and_keeps_config_json(
    tiny_dataset, killed_at_4, tmp_path):
  workdir = _copy(killed_at_4, tmp_path)
  bad = {step: _largest_data_file(workdir, step) for step in (2, 4)}
  _truncate(bad[4])
  _zero(bad[2])

  result = _relaunch(tiny_dataset, workdir, **{"log.every_steps": 2})

  assert result.returncode == 2, result.stderr[-3000:]
  assert len(_lines(result)) < MAX_LINES, "\n".join(_lines(result))
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  rel = {s: os.path.relpath(p, os.path.join(workdir, "checkpoints", str(s))) for s, p in bad.items()}
  assert last.startswith(f"error: none of the 2 checkpoint(s) can be restored: step 4: {rel[4]} "
                         "is truncated")
  assert f"; step 2: {rel[2]} is zeroed" in last
  assert last.endswith(f"({workdir}/checkpoints): restore {workdir}/checkpoints from a backup, "
                       "or move it aside to train from scratch")
  assert fx.checkpoint_steps(workdir) == [2, 4]  # Nothing moved aside.
  assert not os.path.exists(os.path.join(workdir, "checkpoints_corrupt"))
  assert _config_json(workdir)["log"]["every_steps"] == 1  # Not overwritten.


def test_resume_with_a_changed_batch_size_is_refused_naming_the_key(
    tiny_dataset, killed_at_4, tmp_path):
  workdir = _copy(killed_at_4, tmp_path)
  result = _relaunch(tiny_dataset, workdir, **{"train.batch_size": 16, "log.every_steps": 2})

  assert result.returncode == 2, result.stderr[-3000:]
  # debug.sigkill_after_step (the kill of the first run) differs too: printed, harmless.
  assert ("resuming with 3 changed config key(s) (vs "
          f"{workdir}/config.json): debug.sigkill_after_step 4 -> 0, log.every_steps 1 -> 2, "
          "train.batch_size 8 -> 16") in result.stdout
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: resuming with changed train.batch_size (8 -> 16) ({workdir}/config.json): pass "
      "--config.checkpoint.resume_with_changes=True to continue with the new values, or use a "
      "new --workdir")
  assert _config_json(workdir)["train"]["batch_size"] == 8
  assert fx.checkpoint_steps(workdir) == [2, 4]


def test_resume_with_a_changed_cadence_is_printed_and_resumes(
    tiny_dataset, killed_at_4, tmp_path):
  workdir = _copy(killed_at_4, tmp_path)
  result = _relaunch(tiny_dataset, workdir, **{"log.every_steps": 2})

  assert result.returncode == 0, result.stderr[-3000:]
  assert (f"resuming with 2 changed config key(s) (vs {workdir}/config.json): "
          "debug.sigkill_after_step 4 -> 0, log.every_steps 1 -> 2") in result.stdout
  assert "restored checkpoint at step 4" in result.stdout
  assert _config_json(workdir)["log"]["every_steps"] == 2


def test_resume_with_another_optimizer_names_the_optimizer_state(
    tiny_dataset, killed_at_4, tmp_path):
  workdir = _copy(killed_at_4, tmp_path)
  result = _relaunch(tiny_dataset, workdir, **{"optimizer.name": "sgd",
                                               "checkpoint.resume_with_changes": True})

  assert result.returncode == 2, result.stderr[-3000:]
  assert 'optimizer.name "adamw" -> "sgd"' in result.stdout
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: checkpoint step 4 does not fit this run: its opt_state differs "
                         "(only in the checkpoint: 1/count, 1/mu, 1/nu; only in this run: "
                         "1/trace), so optimizer.*")
  assert last.endswith(f"({workdir}/checkpoints/4): resume with the optimizer.* (e.g. "
                       "optimizer.name) values of the workdir's config.json, or train in a new "
                       "--workdir")
  assert "tree structures do not match" not in result.stderr
  assert fx.checkpoint_steps(workdir) == [2, 4]  # A mismatch is not damage: nothing moved.
  assert _config_json(workdir)["optimizer"]["name"] == "adamw"


def test_resume_with_a_changed_learning_rate_and_the_flag_continues(
    tiny_dataset, killed_at_4, tmp_path):
  workdir = _copy(killed_at_4, tmp_path)
  result = _relaunch(tiny_dataset, workdir, **{"optimizer.learning_rate": 2.5e-4,
                                               "checkpoint.resume_with_changes": True})

  assert result.returncode == 0, result.stderr[-3000:]
  assert "optimizer.learning_rate 0.0005 -> 0.00025" in result.stdout
  assert "restored checkpoint at step 4" in result.stdout
  assert _config_json(workdir)["optimizer"]["learning_rate"] == 2.5e-4
