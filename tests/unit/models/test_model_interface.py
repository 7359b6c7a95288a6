"""A model added through the registry alone trains, evaluates and counts its MACs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vivit_jax.models import ModelInterface, build_model, flops, interface, registry
from vivit_jax.train import default_train_config, objectives
from vivit_jax.train.distributed import make_global_batch
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.steps import init_train_state, make_eval_step, make_train_step
from vivit_jax.train.specs import ObjectiveSpec, StepSpec

CLIP = (2, 8, 8, 3)
NUM_CLASSES = 3


class PooledLinear(nn.Module):
  """Mean colour of the clip -> a Dense head: `(B, T, H, W, C)` -> `(B, num_classes)`."""
  num_classes: int = 2
  hidden_size: int = 4

  @nn.compact
  def __call__(self, video, *, train: bool = False):
    del train
    x = jnp.mean(video, axis=(1, 2, 3))
    x = nn.tanh(nn.Dense(self.hidden_size, name="hidden")(x))
    return nn.Dense(self.num_classes, name="head")(x)


def pooled_linear_macs(model, video_shape):
  return video_shape[-1] * model.hidden_size + model.hidden_size * model.num_classes


@pytest.fixture
def toy_registered():
  registry.register_model("pooled_linear", ModelInterface(
      module=PooledLinear, objective="classification", dummy_inputs=interface.video_only,
      forward_macs=pooled_linear_macs))
  yield
  registry.MODELS.pop("pooled_linear")


def _config():
  config = default_train_config()
  config.model = ml_collections.ConfigDict(
      {"name": "pooled_linear", "num_classes": NUM_CLASSES, "hidden_size": 4})
  config.optimizer.learning_rate = 0.1
  config.optimizer.weight_decay = 0.0
  config.train.batch_size = 4
  return config


def test_registered_toy_model_trains_and_evaluates_one_step(toy_registered):
  config = _config()
  model = build_model(config.model)
  assert isinstance(model,
                    PooledLinear) and objectives.check_mode(ObjectiveSpec.from_config(config),
                                                            model) == (
      "classification")
  mesh = create_mesh(config.mesh)
  state, shardings = init_train_state(StepSpec.from_config(config), model, mesh, 0, CLIP)
  rng = np.random.default_rng(0)
  batch = {"video": rng.normal(size=(4,) + CLIP).astype(np.float32),
           "label": np.array([0, 1, 2, 0], np.int32)}
  before = jax.tree_util.tree_map(np.asarray, state.params)
  train_step = make_train_step(StepSpec.from_config(config), model, mesh, shardings)
  state, metrics = train_step(state, make_global_batch(batch, mesh))
  assert bool(metrics["is_finite"]) and int(state.step) == 1
  changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, np.asarray(b)), before,
                                   state.params)
  assert all(jax.tree_util.tree_leaves(changed))
  out = make_eval_step(StepSpec.from_config(config), model, mesh, shardings)(state,
                                                                             make_global_batch(batch, mesh))
  assert out["logits"].shape == (4, NUM_CLASSES) and float(out["num_examples"]) == 4
  assert flops.forward_macs(model, CLIP) == 3 * 4 + 4 * NUM_CLASSES
  assert flops.count_params(model, CLIP) == (3 * 4 + 4) + (4 * NUM_CLASSES + NUM_CLASSES)


def test_registered_model_keys_are_checked_and_unregistered_names_fail(toy_registered):
  with pytest.raises(ValueError, match="hiden_size"):
    build_model({"name": "pooled_linear", "hiden_size": 3})
  registry.MODELS.pop("pooled_linear")
  with pytest.raises(ValueError, match="pooled_linear"):
    build_model({"name": "pooled_linear"})
  registry.register_model("pooled_linear", registry.MODELS["vivit"])  # fixture pops it


def test_pretrain_mode_refuses_a_classification_model(toy_registered):
  config = _config()
  config.mode = "pretrain"
  with pytest.raises(ValueError, match="mode='pretrain' needs a pretraining model"):
    objectives.check_mode(ObjectiveSpec.from_config(config), config.model)
