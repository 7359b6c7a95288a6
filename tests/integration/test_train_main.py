"""The main job: config errors name the key, what a run writes, init-from, NaN stops."""

import glob
import json
import os
import re
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import train_runs as fx
from vivit_jax import checkpoints
from vivit_jax.models import build_model
from vivit_jax.checkpoints import init_from
from vivit_jax.train import experiment, loop
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.steps import init_train_state
from vivit_jax.train.specs import StepSpec


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
  return tiny_dataset  # conftest.py: written once per test session


@pytest.mark.parametrize("flag, named", [
    ("--config.train.num_stepz=3", "num_stepz"),
    ("--config.train.num_steps=three", "num_steps"),
])
def test_bad_override_fails_naming_the_key(tmp_path, flag, named):
  command = [sys.executable, "-m", "vivit_jax.main",
             f"--config={os.path.join(fx.REPO, 'configs', 'demo_finetune.py')}",
             f"--workdir={tmp_path}", flag]
  result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=fx.REPO)
  assert result.returncode != 0
  assert named in result.stderr
  assert not os.path.exists(tmp_path / "config.json")


@pytest.mark.parametrize("name", ["demo_pretrain", "demo_finetune", "vivit_b_k400",
                                  "videomae_b_pretrain", "videomae_b_finetune",
                                  "demo_tfrecord", "demo_tfds", "demo_video_list"])
def test_configs_are_locked_valid_and_build(name):
  config = fx.load_config(f"{name}.py", {})
  experiment.validate(config)
  build_model(config.model)
  with pytest.raises(AttributeError):
    config.train.not_a_key = 1


def _tensorboard_bytes(workdir: str) -> bytes:
  files = glob.glob(os.path.join(workdir, "tensorboard", "events.*"))
  assert files, "no TensorBoard event file"
  chunks = []
  for path in files:
    with open(path, "rb") as f:
      chunks.append(f.read())
  return b"".join(chunks)


@pytest.mark.slow
def test_pretrain_then_finetune_writes_what_a_user_sees(dataset, tmp_path, capsys,
                                                       monkeypatch):
  """...with relative workdirs, as the docs' commands give them."""
  monkeypatch.chdir(tmp_path)
  pre_dir = "pretrain"
  config = fx.load_config("demo_pretrain.py", fx.tiny_overrides(
      dataset, pretrain=True, **{"train.num_steps": 3, "eval.every_steps": 0}))
  result = loop.run(config, pre_dir)
  assert result["step"] == 3 and result["eval/loss"] > 0
  events = _tensorboard_bytes(pre_dir)
  for tag in (b"train/loss", b"train/learning_rate", b"train/grad_norm",
              b"throughput/clips_per_sec", b"eval/loss", b"eval/reconstruction"):
    assert tag in events, tag
  assert glob.glob(os.path.join(pre_dir, "images", "reconstruction_*.png"))
  with open(os.path.join(pre_dir, "config.json")) as f:
    assert json.load(f)["train"]["num_steps"] == 3

  ft_dir = "finetune"
  config = fx.load_config("demo_finetune.py", fx.tiny_overrides(dataset, **{
      "train.num_steps": 2, "eval.every_steps": 0, "init_from.kind": "pretrain",
      "init_from.path": pre_dir}))
  result = loop.run(config, ft_dir)
  out = capsys.readouterr().out
  assert "initialised parameters from pretrain" in out
  assert "clips/s" in out and "ETA" in out and "lr " in out
  for tag in (b"eval/top1", b"eval/top5", b"train/accuracy"):
    assert tag in _tensorboard_bytes(ft_dir), tag
  assert 0.0 <= result["eval/top1"] <= result["eval/top5"] <= 1.0


GRID = (fx.SIZE // fx.TINY_ENCODER["patch_size"], fx.SIZE // fx.TINY_ENCODER["patch_size"])


def _fresh_classifier_params(hidden_size: int, num_classes: int = 4):
  model_config = dict(name="vivit", num_classes=num_classes, classifier="gap", fc_norm=True,
                      pos_embedding="sinusoid", **dict(fx.TINY_ENCODER, hidden_size=hidden_size))
  config = experiment.experiment_config("finetune", model_config)
  model = build_model(config.model)
  state, _ = init_train_state(StepSpec.from_config(config), model, create_mesh(config.mesh), 0,
                              (fx.FRAMES, fx.SIZE, fx.SIZE, 3))
  return state.params


def test_init_from_model_checkpoint_lists_mismatched_names(tmp_path):
  params = _fresh_classifier_params(hidden_size=32, num_classes=7)
  checkpoints.save_model_checkpoint(str(tmp_path / "m"), params,
                                    {"model": {"name": "vivit", "num_classes": 7}})
  fresh = _fresh_classifier_params(hidden_size=32, num_classes=4)
  init_config = experiment.experiment_config("finetune", {"name": "vivit"}).init_from
  init_config.kind, init_config.path = "model", str(tmp_path / "m")
  with pytest.raises(checkpoints.ParamMismatchError, match=r"head/kernel") as info:
    init_from.initial_params(init_config, fresh, GRID)
  assert "(32, 4)" in str(info.value) and "(32, 7)" in str(info.value)


def test_init_from_image_vit_inflates_the_patch_kernel(tmp_path):
  encoder = dict(fx.TINY_ENCODER, tubelet_size=1)
  image_vit = build_model(dict(name="vivit", num_classes=0, **encoder))
  image = jnp.zeros((1, 1, 2 * fx.TINY_ENCODER["patch_size"], 2 * fx.TINY_ENCODER["patch_size"], 3))
  vit_params = nn.unbox(image_vit.init(jax.random.key(3), image)["params"])
  checkpoints.save_model_checkpoint(str(tmp_path / "vit"), vit_params,
                                    {"model": dict(name="vivit", num_classes=0, **encoder)})
  init_config = experiment.experiment_config("finetune", {"name": "vivit"}).init_from
  init_config.kind, init_config.path = "image_vit", str(tmp_path / "vit")
  init_config.inflation = "central_frame"
  params = init_from.initial_params(init_config, _fresh_classifier_params(hidden_size=32), GRID)
  kernel = np.asarray(jax.device_get(params["embedding"]["projection"]["kernel"]))
  tubelet = kernel.shape[0]
  np.testing.assert_allclose(kernel[tubelet // 2],
                             vit_params["embedding"]["projection"]["kernel"][0], rtol=1e-6)
  assert not kernel[(tubelet // 2 + 1) % tubelet].any()


@pytest.mark.slow
def test_init_from_pretrain_mismatch_names_params_and_match_copies(dataset, tmp_path):
  pre_dir = str(tmp_path / "pretrain")
  config = fx.load_config("demo_pretrain.py", fx.tiny_overrides(
      dataset, pretrain=True, **{"train.num_steps": 1, "eval.num_images": 0}))
  loop.run(config, pre_dir)
  init_config = experiment.experiment_config("finetune", {"name": "vivit"}).init_from
  init_config.kind, init_config.path = "pretrain", pre_dir

  with pytest.raises(checkpoints.ParamMismatchError,
                     match=r"embedding/projection/kernel") as info:
    init_from.initial_params(init_config, _fresh_classifier_params(hidden_size=48), GRID)
  assert "(2, 8, 8, 3, 48)" in str(info.value) and "(2, 8, 8, 3, 32)" in str(info.value)

  params = init_from.initial_params(init_config, _fresh_classifier_params(hidden_size=32),
                                    GRID)
  stored = fx.read_checkpoint_state(pre_dir, 1)["params"]
  got = checkpoints.flatten_params(params)
  for name, value in checkpoints.flatten_params(stored).items():
    if name.startswith("encoder/block_"):
      assert (jax.device_get(got[name]) == value).all(), name


def test_nan_loss_stops_naming_the_step_and_saves_only_the_steps_before_it(dataset, tmp_path):
  workdir = str(tmp_path / "nan")
  config = fx.load_config("demo_finetune.py", fx.tiny_overrides(dataset, **{
      "train.num_steps": 4, "optimizer.learning_rate": 1e30, "optimizer.warmup_steps": 0,
      "checkpoint.every_steps": 1, "checkpoint.keep": 10}))
  with pytest.raises(FloatingPointError, match=r"at step \d") as info:
    loop.run(config, workdir)
  bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
  assert bad_step >= 2  # step 1 starts from finite init params
  assert fx.checkpoint_steps(workdir) == list(range(1, bad_step))
  for step in fx.checkpoint_steps(workdir):
    state = fx.read_checkpoint_state(workdir, step)
    for leaf in jax.tree_util.tree_leaves(state["params"]):
      assert (abs(leaf) < float("inf")).all()
  assert not os.path.exists(os.path.join(workdir, "model"))


def test_nan_policy_skip_stops_in_one_line_past_max_skipped_steps(dataset, tmp_path):
  """Every step after the first diverges (lr 1e30): with a cap of 1 the main
  job stops at the second skipped step, in one `error:` line naming the key."""
  overrides = fx.tiny_overrides(dataset, **{
      "train.num_steps": 8, "optimizer.learning_rate": 1e30, "optimizer.warmup_steps": 0,
      "train.nan_policy": "skip", "train.max_skipped_steps": 1,
      "checkpoint.every_steps": 0, "checkpoint.async_save": False})
  result = fx.run_main("demo_finetune.py", str(tmp_path / "capped"), overrides)
  assert result.returncode == 1, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert errors[0].startswith("error: 2 steps skipped with a non-finite loss by step "), errors
  assert "train.max_skipped_steps=1 (--config.train.max_skipped_steps)" in errors[0]
  assert not os.path.exists(os.path.join(tmp_path, "capped", loop.MODEL_DIR))


def test_nan_policy_skip_runs_to_the_end_keeping_the_last_finite_params(dataset, tmp_path):
  workdir = str(tmp_path / "skip")
  config = fx.load_config("demo_finetune.py", fx.tiny_overrides(dataset, **{
      "train.num_steps": 4, "optimizer.learning_rate": 1e30, "optimizer.warmup_steps": 0,
      "checkpoint.every_steps": 1, "checkpoint.keep": 10, "train.nan_policy": "skip",
      "checkpoint.async_save": False}))
  result = loop.run(config, workdir)
  assert result["step"] == 4 and result["skipped_steps"] >= 1
  finite_steps = 4 - int(result["skipped_steps"])
  last = fx.read_checkpoint_state(workdir, 4)
  kept = fx.read_checkpoint_state(workdir, finite_steps)
  for name in ("params", "opt_state"):
    for a, b in zip(jax.tree_util.tree_leaves(last[name]), jax.tree_util.tree_leaves(kept[name])):
      np.testing.assert_array_equal(a, b)
  for leaf in jax.tree_util.tree_leaves(last["params"]):
    assert np.isfinite(leaf).all()
