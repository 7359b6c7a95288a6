"""`checkpoints.load_model`: the one build -> shapes -> restore sequence every reader uses."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax import checkpoints
from vivit_jax.models import abstract_params, build_model

MODEL = dict(name="vivit", hidden_size=16, num_layers=1, num_heads=2, mlp_dim=32,
             num_classes=3, patch_size=8, tubelet_size=2)
CLIP = (4, 16, 16, 3)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("ckpt"))
  model = build_model(MODEL)
  params = model.init(jax.random.PRNGKey(3), jnp.zeros((1,) + CLIP))["params"]
  checkpoints.save_model_checkpoint(directory, params, {
      "model": MODEL, "labels": ["a", "b", "c"],
      "input": {"num_frames": CLIP[0], "image_size": list(CLIP[1:3])}})
  return directory, params


def test_load_model_restores_the_saved_params_into_the_built_model(saved):
  directory, params = saved
  model, loaded, meta = checkpoints.load_model(directory)
  assert meta["labels"] == ["a", "b", "c"] and model.num_classes == 3
  flat, want = checkpoints.flatten_params(loaded), checkpoints.flatten_params(params)
  assert sorted(flat) == sorted(want)
  for name in want:
    np.testing.assert_array_equal(np.asarray(flat[name]), np.asarray(want[name]), name)
  video = jax.random.normal(jax.random.PRNGKey(0), (2,) + CLIP)
  np.testing.assert_allclose(model.apply({"params": loaded}, video),
                             build_model(MODEL).apply({"params": params}, video), rtol=1e-6)


def test_overrides_change_the_model_and_a_shape_change_lists_the_difference(saved):
  directory, _ = saved
  model, _, _ = checkpoints.load_model(directory, dtype="bfloat16")
  assert model.dtype == jnp.bfloat16
  with pytest.raises(checkpoints.ParamMismatchError, match="head/kernel model"):
    checkpoints.load_model(directory, num_classes=5)


def test_video_shape_comes_from_the_config_or_the_caller(saved, tmp_path):
  directory, params = saved
  assert checkpoints.video_shape_of(checkpoints.load_model_config(directory)) == CLIP
  bare = str(tmp_path / "bare")
  checkpoints.save_model_checkpoint(bare, params, {"model": MODEL})
  with pytest.raises(ValueError, match="pass the video shape"):
    checkpoints.load_model(bare)
  model, _, _ = checkpoints.load_model(bare, CLIP)
  assert model.num_classes == 3


def test_target_shardings_are_used(saved):
  directory, _ = saved
  target = abstract_params(build_model(MODEL), CLIP)
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      nn.unbox(target))
  _, loaded, _ = checkpoints.load_model(directory, target=target)
  assert all(x.sharding == sharding for x in jax.tree_util.tree_leaves(loaded))


def test_load_model_of_a_training_workdir_names_its_model_dir(tmp_path):
  from support import videos as fx
  run = tmp_path / "run"
  (run / "checkpoints" / "5").mkdir(parents=True)
  (run / "config.json").write_text(json.dumps({"model": dict(fx.MODEL), "train": {}}))
  fx.make_checkpoint(str(run / "model"))
  with pytest.raises(FileNotFoundError,
                     match=f"{run} is a training workdir, not a model checkpoint: pass {run}/model$"):
    checkpoints.load_model(str(run))
  _, params, meta = checkpoints.load_model(str(run / "model"))
  assert meta["labels"] == fx.LABELS and params
