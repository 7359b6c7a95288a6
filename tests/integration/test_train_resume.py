"""Checkpoints resume exactly: SIGKILL + restart, SIGTERM, corruption, other meshes.

(A SIGKILL + restart of fine-tuning: tests/integration/test_checkpoint_faults.py, which
shares its killed run; of masked pretraining: tests/integration/test_pretrain_resume.py.)
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from support import train_runs as fx
from vivit_jax.checkpoints import train as checkpointing
from vivit_jax.train.state import TrainState
from support import TESTS_DIR


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
  return tiny_dataset  # conftest.py: written once per test session


def _ckpt_config(**kw):
  c = dict(every_steps=2, keep=2, keep_best=0, best_metric="eval/top1", best_mode="max",
           async_save=True, save_on_sigterm=True)
  c.update(kw)
  return ml_collections.ConfigDict(c)


def _state(value: float) -> TrainState:
  return TrainState(step=jnp.int32(0 if np.isnan(value) else value), params={"dense": {"kernel": jnp.full((3, 4), value)}},
                    opt_state=(jnp.zeros(2),), ema_params=None,
                    rng=jax.random.key_data(jax.random.key(0)))


@pytest.mark.slow
def test_sigterm_mid_run_leaves_restorable_checkpoint(dataset, tmp_path):
  workdir = str(tmp_path / "run")
  overrides = fx.tiny_overrides(dataset, **{"train.num_steps": 100000,
                                            "checkpoint.every_steps": 0,
                                            "eval.every_steps": 0})
  err_path = tmp_path / "stderr.txt"
  with open(err_path, "w") as err_file:  # a file, not a pipe nobody reads: no deadlock
    proc = subprocess.Popen(fx.main_command("demo_finetune.py", workdir, overrides),
                            cwd=fx.REPO, stdout=subprocess.PIPE, stderr=err_file, text=True)
    lines, started = [], threading.Event()

    def read_stdout():
      for line in proc.stdout:
        lines.append(line)
        if line.startswith("step"):
          started.set()

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
      assert started.wait(timeout=300), "training never logged a step:\n" + "".join(lines)
      proc.send_signal(signal.SIGTERM)
      proc.wait(timeout=120)
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
    reader.join(timeout=30)
  out, err = "".join(lines), err_path.read_text()
  assert proc.returncode == 0, err[-3000:]
  assert "stop requested" in out
  steps = fx.checkpoint_steps(workdir)
  assert len(steps) == 1 and 0 < steps[0] < 100000
  state = fx.read_checkpoint_state(workdir, steps[0])
  assert int(state["step"]) == steps[0]
  assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(state["params"]))
  with open(os.path.join(workdir, "checkpoints", str(steps[0]), "data", "metadata")) as f:
    assert '"next_index"' in f.read()


def _truncate_files(directory: str) -> None:
  for root, _, files in os.walk(directory):
    for name in files:
      with open(os.path.join(root, name), "r+b") as f:
        f.truncate(max(os.path.getsize(os.path.join(root, name)) // 3, 0))


def test_corrupted_newest_checkpoint_falls_back_with_warning(tmp_path, capsys):
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), _ckpt_config())
  for step in (2, 4):
    ckpt.save(step, _state(step), {"next_index": step})
  ckpt.close()
  _truncate_files(str(tmp_path / "checkpoints" / "4" / "state"))

  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), _ckpt_config())
  step, state, data_state = ckpt.restore_latest(_state(0))
  ckpt.close()
  assert step == 2 and data_state == {"next_index": 2}
  np.testing.assert_array_equal(state.params["dense"]["kernel"], np.full((3, 4), 2.0))
  err = capsys.readouterr().err
  assert "step 4" in err and "cannot be restored" in err
  assert os.listdir(tmp_path / "checkpoints_corrupt") == ["4"]
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]


def test_mismatched_checkpoint_is_not_mistaken_for_corruption(tmp_path):
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), _ckpt_config())
  ckpt.save(2, _state(2), {})
  ckpt.close()
  other = _state(0).replace(params={"dense": {"kernel": jnp.zeros((3, 5))},
                                    "head": {"bias": jnp.zeros(7)}})
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), _ckpt_config())
  with pytest.raises(ValueError, match=r"head/bias \(7,\)") as info:
    ckpt.restore_latest(other)
  ckpt.close()
  assert "dense/kernel model (3, 5) vs checkpoint (3, 4)" in str(info.value)
  assert os.listdir(tmp_path / "checkpoints") == ["2"]


def test_nan_state_is_never_saved(tmp_path):
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), _ckpt_config())
  with pytest.raises(FloatingPointError, match="step 2"):
    ckpt.save(2, _state(float("nan")), {})
  ckpt.close()
  assert fx.checkpoint_steps(str(tmp_path)) == []


def test_keeps_latest_and_best(tmp_path):
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), _ckpt_config(keep=2, keep_best=1))
  top1 = {2: 0.9, 4: 0.1, 6: 0.2, 8: 0.3}
  for step in range(1, 9):
    ckpt.save(step, _state(step), {}, metrics={"eval/top1": top1[step]} if step in top1 else None)
  ckpt.close()
  assert fx.checkpoint_steps(str(tmp_path)) == [2, 6, 8]


_MESH_SCRIPT = textwrap.dedent("""
  import sys
  import jax, numpy as np, ml_collections
  sys.path.insert(0, {tests!r})
  from support import train_runs as fx
  from vivit_jax.models import build_model
  from vivit_jax.checkpoints import train as checkpointing
  from vivit_jax.train import experiment
  from vivit_jax.train.specs import StepSpec
  from vivit_jax.train.mesh import create_mesh
  from vivit_jax.train.steps import init_train_state

  assert jax.device_count() == 8
  model_config = dict(name="vivit", num_classes=4, **fx.TINY_ENCODER)
  config = experiment.experiment_config("finetune", model_config)
  ckpt_config = config.checkpoint
  model = build_model(config.model)

  def state_on(shape, seed):
    config.mesh.shape = shape
    return init_train_state(StepSpec.from_config(config), model, create_mesh(config.mesh), seed,
                            (4, 16, 16, 3))

  saved, _ = state_on((2, 4, 1), seed=1)
  ckpt = checkpointing.TrainCheckpointer({workdir!r}, ckpt_config)
  ckpt.save(3, saved, {{"next_index": 3}}, force=True)
  ckpt.close()

  target, shardings = state_on((1, 2, 4), seed=2)
  ckpt = checkpointing.TrainCheckpointer({workdir!r}, ckpt_config)
  step, restored, data_state = ckpt.restore_latest(target)
  ckpt.close()
  assert step == 3 and data_state == {{"next_index": 3}}
  kernel = restored.params["encoder"]["block_00"]["mlp"]["fc1"]["kernel"]
  assert kernel.sharding == shardings.params["encoder"]["block_00"]["mlp"]["fc1"]["kernel"]
  saved_kernel = saved.params["encoder"]["block_00"]["mlp"]["fc1"]["kernel"]
  # (32, 64) split 4 x 1 when saved, 2 x 4 when restored.
  assert saved_kernel.sharding.shard_shape(saved_kernel.shape) == (8, 64)
  assert kernel.sharding.shard_shape(kernel.shape) == (16, 16)
  for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  print("RESTORED_ONTO_OTHER_MESH", kernel.sharding.mesh.shape)
""")


@pytest.mark.slow
def test_restore_onto_a_different_mesh(tmp_path):
  script = _MESH_SCRIPT.format(tests=TESTS_DIR,
                               workdir=str(tmp_path))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=240, cwd=fx.REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "RESTORED_ONTO_OTHER_MESH" in result.stdout
