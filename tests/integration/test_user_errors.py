"""Every user mistake of the main job (and the TFRecord converter) ends in one
line `error: <what> (<where>): <fix>` on stderr with exit status 2, found at
start-up before anything is trained or written; the traceback only with
`--verbosity=1` or `VIVIT_TRACEBACK=1`. A failing final eval loses no work."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from support import train_runs as fx
from vivit_jax import checkpoints
from vivit_jax.models import build_model
from vivit_jax.train import loop

TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def _main(workdir, overrides=None, flags=(), env=None, config="demo_finetune.py"):
  command = fx.main_command(config, workdir, overrides or {}) + list(flags)
  return subprocess.run(command, cwd=fx.REPO, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, **(env or {})))


def _the_line(result) -> str:
  """The only stderr line of a refused run; asserts status 2 and one line."""
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith("error: "), lines[0]
  assert "Traceback" not in result.stderr
  return lines[0]


@pytest.mark.parametrize("flag, named, fix", [
    ("--config.train.num_stepz=3", "(--config.train.num_stepz)",
     "did you mean --config.train.num_steps?"),
    ("--config.trainx.num_steps=3", "(--config.trainx.num_steps)",
     "did you mean --config.train.num_steps?"),
    ("--config.train.num_steps=three", "(--config.train.num_steps)", "value of the key's type"),
    ("--no_such_flag=1", "unknown flag --no_such_flag", "--helpshort"),
])
def test_bad_flags_end_in_one_line_naming_the_flag(tmp_path, flag, named, fix):
  line = _the_line(_main(str(tmp_path / "run"), flags=[flag]))
  assert named in line and fix in line, line
  assert not os.path.exists(tmp_path / "run")


def test_missing_config_file_and_workdir_are_one_line(tmp_path):
  command = [sys.executable, "-m", "vivit_jax.main", "--config=configs/no_such.py",
             f"--workdir={tmp_path}"]
  result = subprocess.run(command, cwd=fx.REPO, capture_output=True, text=True, timeout=120)
  line = _the_line(result)
  assert "(--config=configs/no_such.py)" in line and "get_config()" in line
  command = [sys.executable, "-m", "vivit_jax.main", "--config=configs/demo_finetune.py"]
  result = subprocess.run(command, cwd=fx.REPO, capture_output=True, text=True, timeout=120)
  assert _the_line(result) == ("error: missing required flag --workdir (--workdir): "
                               "pass --workdir=...")


# Each value is refused at start-up: no workdir is created, nothing compiled.
@pytest.mark.parametrize("overrides, env, named, fix", [
    ({"train.nan_policy": "sometimes"}, None, "(--config.train.nan_policy)", "'stop', 'skip'"),
    ({"train.num_steps": 0}, None, "(--config.train.num_steps)", ">= 1"),
    ({"optimizer.learning_rate": -0.001}, None, "(--config.optimizer.learning_rate)",
     "1e-3"),
    ({"checkpoint.keep": 0}, None, "(--config.checkpoint.keep)", "at least 1"),
    ({"mesh.shape": "(3,1,1)"}, None, "(--config.mesh.shape)", "(-1, 1, 1)"),
    ({"data.num_frames": 3}, None, "(--config.data.num_frames)", "multiple of 2, e.g. 2 or 4"),
    ({"data.image_size": 12}, None, "(--config.data.image_size)", "multiple of 8, e.g. 8 or 16"),
    ({"train.batch_size": 5}, TWO_DEVICES, "(--config.train.batch_size)",
     "multiple of 2, e.g. 4 or 6"),
    ({"eval.batch_size": 3}, TWO_DEVICES, "(--config.eval.batch_size)",
     "multiple of 2, e.g. 2 or 4"),
    ({"data.eval_files": "/no/such/eval-*.tfrecord"}, None, "(--config.data.eval_files)",
     "existing TFRecords"),
    ({"init_from.kind": "pretrain", "init_from.path": "/no/such/workdir"}, None,
     "(--config.init_from.path)", "--config.init_from.kind= for random init"),
])
def test_bad_values_are_refused_at_start_up_in_one_line(tiny_dataset, tmp_path, overrides, env,
                                                        named, fix):
  workdir = tmp_path / "run"
  result = _main(str(workdir), fx.tiny_overrides(tiny_dataset, **overrides), env=env)
  line = _the_line(result)
  assert named in line and fix in line, line
  key = named.strip("()").replace("--config.", "")
  assert line.startswith(f"error: {key}"), line
  if env:  # the device count is named
    assert "2 devices" in line, line
  assert not workdir.exists()  # refused before config.json or a checkpoint
  assert "step " not in result.stdout


def test_empty_eval_split_is_one_line_naming_the_file(tiny_dataset, tmp_path):
  empty = tmp_path / "eval-00000-of-00001.tfrecord"
  empty.write_bytes(b"")
  line = _the_line(_main(str(tmp_path / "run"), fx.tiny_overrides(
      tiny_dataset, **{"data.eval_files": str(tmp_path / "eval-*.tfrecord")})))
  assert "no records" in line and str(empty) in line and "(--config.data.eval_files)" in line


def test_traceback_only_with_the_env_var_or_verbosity(tmp_path):
  bad = "--config.train.num_stepz=3"
  quiet = _main(str(tmp_path / "a"), flags=[bad])
  loud = _main(str(tmp_path / "b"), flags=[bad], env={"VIVIT_TRACEBACK": "1"})
  verbose = _main(str(tmp_path / "c"), flags=[bad, "--verbosity=1"])
  line = _the_line(quiet)
  for result in (loud, verbose):
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == line


@pytest.mark.slow  # compiles the model's init: ~60 s on a loaded 2-core machine
def test_checkpoint_of_another_model_is_one_line(tiny_dataset, tmp_path):
  wide = build_model(dict(name="vivit", num_classes=fx.CLASSES,
                          **dict(fx.TINY_ENCODER, hidden_size=48)))
  clip = jnp.zeros((1, fx.FRAMES, fx.SIZE, fx.SIZE, 3))
  params = nn.unbox(wide.init(jax.random.key(0), clip)["params"])
  other = str(tmp_path / "other_model")
  checkpoints.save_model_checkpoint(other, params, {"model": {"name": "vivit"}})
  line = _the_line(_main(str(tmp_path / "run"), fx.tiny_overrides(
      tiny_dataset, **{"init_from.kind": "model", "init_from.path": other})))
  assert f"(--config.init_from.path={other})" in line, line
  assert "48)" in line and "32)" in line and "random init" in line


def test_tfrecord_converter_missing_list_is_one_line(tmp_path):
  command = [sys.executable, "-m", "vivit_jax.data.make_tfrecords",
             f"--list={tmp_path / 'no_such_list.txt'}", f"--output_dir={tmp_path / 'out'}",
             "--no_progress", "--workers=0"]
  result = subprocess.run(command, cwd=fx.REPO, capture_output=True, text=True, timeout=120)
  line = _the_line(result)
  assert "no_such_list.txt" in line


def test_bad_eval_glob_fails_before_training_with_no_checkpoint_yet(tiny_dataset, tmp_path):
  workdir = tmp_path / "run"
  result = _main(str(workdir), fx.tiny_overrides(tiny_dataset, **{
      "train.num_steps": 20, "checkpoint.every_steps": 0, "eval.every_steps": 0,
      "data.eval_files": str(tmp_path / "typo-*.tfrecord")}))
  assert "(--config.data.eval_files)" in _the_line(result)
  assert result.stdout == ""  # not one step trained
  assert not workdir.exists()


@pytest.mark.slow  # 20 train steps: 35-75 s on a loaded 2-core machine
@pytest.mark.parametrize("keep_best", [0, 1])  # checkpoint before the eval / after it fails
def test_failing_final_eval_keeps_the_final_checkpoint(tiny_dataset, tmp_path, keep_best):
  workdir = str(tmp_path / "run")
  config = fx.load_config("demo_finetune.py", fx.tiny_overrides(tiny_dataset, **{
      "train.num_steps": 20, "checkpoint.every_steps": 0, "eval.every_steps": 0,
      "log.every_steps": 10, "checkpoint.keep_best": keep_best,
      "debug.fail_eval_at_step": 20}))
  with pytest.raises(RuntimeError, match="fail_eval_at_step=20"):
    loop.run(config, workdir)
  assert fx.checkpoint_steps(workdir) == [20]
  fx.read_checkpoint_state(workdir, 20)  # complete and readable
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))


def test_forecast_without_a_video_or_with_a_missing_checkpoint_is_one_line(tmp_path):
  base = [sys.executable, "-m", "vivit_jax.train.evaluation.forecast"]
  line = _the_line(subprocess.run(base, cwd=fx.REPO, capture_output=True, text=True,
                                  timeout=120))
  assert "(command line)" in line and "--checkpoint=WORKDIR VIDEO" in line
  missing = str(tmp_path / "no_run")
  line = _the_line(subprocess.run(base + [f"--checkpoint={missing}", "clip.mp4"], cwd=fx.REPO,
                                  capture_output=True, text=True, timeout=120))
  assert f"{missing}/config.json not found" in line and "pretraining workdir" in line
