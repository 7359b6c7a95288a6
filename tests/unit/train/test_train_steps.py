"""Train and eval steps on one device: classification and pretraining, EMA,
NaN guard, gradient accumulation, Mixup/CutMix, remat and bfloat16 compute.

Compilation dominates the run time, so one module-scoped setup serves most
tests and model variants (dropout, remat, bf16) reuse its state: their
parameter trees are identical."""

import chex
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vivit_jax.models import build_model
from vivit_jax.train import objectives
from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.distributed import make_global_batch
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.optimizer import make_schedule
from vivit_jax.train.steps import (check_finite, init_train_state, make_eval_step,
                                   make_train_step)
from vivit_jax.train.specs import ObjectiveSpec, OptimizerSpec, StepSpec

CLIP = (8, 32, 32, 3)  # (T, H, W, C)
BATCH = 8
NUM_CLASSES = 4
TINY = dict(hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, patch_size=16,
            tubelet_size=4)
METRICS = {"loss", "learning_rate", "grad_norm", "is_finite", "accuracy"}
FAST = {"xla_backend_optimization_level": 0}  # ~3x quicker CPU compiles


def make_config(mode="train", **model):
  config = default_train_config()
  config.mode = mode
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 1
  config.optimizer.clip_grad_norm = 1.0
  config.train.num_steps = 20
  config.train.batch_size = BATCH
  if mode == "pretrain":
    base = dict(TINY, name="videomae", decoder_hidden_size=16, decoder_layers=1,
                decoder_heads=2, decoder_mlp_dim=32, mask_ratio=0.5)
  else:
    base = dict(TINY, name="vivit", num_classes=NUM_CLASSES)
    config.train.label_smoothing = 0.1
    config.optimizer.ema_decay = 0.9
  config.model = ml_collections.ConfigDict(dict(base, **model))
  return config


def batches(num, seed=0):
  """Learnable synthetic clips: each class adds its own fixed pattern to noise."""
  rng = np.random.RandomState(seed)
  patterns = np.random.RandomState(99).randn(NUM_CLASSES, *CLIP).astype(np.float32)
  out = []
  for _ in range(num):
    labels = rng.randint(0, NUM_CLASSES, BATCH).astype(np.int32)
    video = 0.5 * rng.randn(BATCH, *CLIP).astype(np.float32) + patterns[labels]
    out.append({"video": video, "label": labels})
  return out


def copy_state(state):
  return jax.tree_util.tree_map(jnp.copy, state)


def run(step_fn, state, data, mesh):
  """Runs `step_fn` over `data`; returns the final state and the losses."""
  losses = []
  for batch in data:
    state, metrics = step_fn(state, make_global_batch(batch, mesh))
    losses.append(float(metrics["loss"]))
  return state, np.array(losses)


@pytest.fixture(scope="module")
def cls():
  """A classification setup: config, model, mesh, initial state, shardings, step."""
  config = make_config()
  model = build_model(config.model)
  mesh = create_mesh(config.mesh)
  state, shardings = init_train_state(StepSpec.from_config(config), model, mesh, 0, CLIP,
                                      compiler_options=FAST)
  step = make_train_step(StepSpec.from_config(config), model, mesh, shardings,
                         compiler_options=FAST)
  data = batches(4)
  _, losses = run(step, copy_state(state), data, mesh)
  return dict(config=config, model=model, mesh=mesh, state0=state, shardings=shardings,
              step=step, data=data, losses=losses)


def test_initial_state(cls):
  state = cls["state0"]
  assert int(state.step) == 0
  assert state.rng.dtype == jnp.uint32 and state.rng.shape == (2,)
  for leaf in jax.tree_util.tree_leaves(state.params):
    assert leaf.dtype == jnp.float32
  chex.assert_trees_all_equal(state.ema_params, state.params)
  chex.assert_trees_all_equal_structs(cls["shardings"].params, state.params)


def test_training_reduces_loss_and_reports_metrics(cls):
  config, mesh = cls["config"], cls["mesh"]
  state = copy_state(cls["state0"])
  schedule = make_schedule(OptimizerSpec.from_config(config))
  losses = []
  for i, batch in enumerate(cls["data"] * 2):
    state, metrics = cls["step"](state, make_global_batch(batch, mesh))
    assert set(metrics) == METRICS
    for value in metrics.values():
      assert value.shape == () and value.dtype == jnp.float32
    assert float(metrics["is_finite"]) == 1.0
    np.testing.assert_allclose(float(metrics["learning_rate"]), schedule(i), rtol=1e-6)
    assert float(metrics["grad_norm"]) > 0
    losses.append(float(metrics["loss"]))
  assert int(state.step) == 8
  np.testing.assert_allclose(losses[:4], cls["losses"], rtol=1e-6)  # deterministic
  assert losses[-1] < 0.9 * losses[0], losses


def test_train_step_donates_the_state(cls):
  state = copy_state(cls["state0"])
  leaf = jax.tree_util.tree_leaves(state.params)[0]
  new, _ = cls["step"](state, make_global_batch(cls["data"][0], cls["mesh"]))
  assert leaf.is_deleted()
  assert not jax.tree_util.tree_leaves(new.params)[0].is_deleted()


def test_ema_follows_params(cls):
  state = copy_state(cls["state0"])
  ema0 = jax.device_get(state.ema_params)
  state, _ = cls["step"](state, make_global_batch(cls["data"][0], cls["mesh"]))
  expected = jax.tree_util.tree_map(lambda e, p: 0.9 * e + 0.1 * p, ema0,
                                    jax.device_get(state.params))
  chex.assert_trees_all_close(jax.device_get(state.ema_params), expected, rtol=1e-5,
                              atol=1e-7)


def test_non_finite_step_leaves_state_unchanged(cls):
  mesh = cls["mesh"]
  state, _ = cls["step"](copy_state(cls["state0"]), make_global_batch(cls["data"][0], mesh))
  before = jax.device_get(state)
  bad = dict(cls["data"][1])
  bad["video"] = bad["video"].copy()
  bad["video"][0, 0, 0, 0, 0] = np.nan
  state, metrics = cls["step"](state, make_global_batch(bad, mesh))
  assert float(metrics["is_finite"]) == 0.0
  assert int(state.step) == 2  # the batch was consumed
  chex.assert_trees_all_equal(jax.device_get(state.params), before.params)
  chex.assert_trees_all_equal(jax.device_get(state.opt_state), before.opt_state)
  chex.assert_trees_all_equal(jax.device_get(state.ema_params), before.ema_params)
  with pytest.raises(FloatingPointError, match="step 1"):
    check_finite(jax.device_get(metrics), 1)
  check_finite(jax.device_get(metrics), 1, nan_policy="skip")
  state, metrics = cls["step"](state, make_global_batch(cls["data"][2], mesh))
  assert float(metrics["is_finite"]) == 1.0


def test_gradient_accumulation_matches_one_big_batch(cls):
  config = make_config()
  config.train.grad_accum_steps = 2
  step = make_train_step(StepSpec.from_config(config), cls["model"], cls["mesh"], cls["shardings"],
                         compiler_options=FAST)
  state, losses = run(step, copy_state(cls["state0"]), cls["data"], cls["mesh"])
  np.testing.assert_allclose(losses, cls["losses"], rtol=2e-5)
  reference, _ = run(cls["step"], copy_state(cls["state0"]), cls["data"], cls["mesh"])
  # Adam's normalisation magnifies float noise in tiny gradients: atol, not rtol.
  # A key bias adds the same value to every logit of a query, which softmax
  # ignores: its true gradient is 0, so both runs move it by rounding noise
  # alone (Adam scales that noise up to ~1e-5). Those leaves must stay at that
  # noise level, far below the lr-sized (3e-3) moves of every other parameter.
  ours, theirs = (traverse_util.flatten_dict(jax.device_get(s.params), sep="/")
                  for s in (state, reference))
  key_bias = [k for k in ours if k.endswith("attention/key/bias")]
  assert key_bias
  for name in key_bias:
    assert np.abs(ours.pop(name)).max() < 2e-4 and np.abs(theirs.pop(name)).max() < 2e-4, name
  chex.assert_trees_all_close(ours, theirs, rtol=1e-4, atol=3e-5)


def _cross_entropy(logits, labels):
  logits = np.asarray(logits, np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return -logp[np.arange(len(labels)), labels]


def test_eval_step_logits_and_padding_mask(cls):
  eval_step = make_eval_step(StepSpec.from_config(cls["config"]), cls["model"], cls["mesh"],
                             cls["shardings"],
                             compiler_options=FAST)
  trained, _ = run(cls["step"], copy_state(cls["state0"]), cls["data"], cls["mesh"])
  batch = dict(cls["data"][0], mask=np.ones(BATCH, np.float32))
  out = eval_step(trained, make_global_batch(batch, cls["mesh"]))
  assert set(out) == {"loss", "accuracy", "num_examples", "logits"}
  assert out["logits"].shape == (BATCH, NUM_CLASSES)
  ce = _cross_entropy(out["logits"], batch["label"])
  correct = np.asarray(out["logits"]).argmax(-1) == batch["label"]
  np.testing.assert_allclose(float(out["loss"]), ce.mean(), rtol=1e-5)
  np.testing.assert_allclose(float(out["accuracy"]), correct.mean(), rtol=1e-6)
  assert float(out["num_examples"]) == BATCH
  # Padding: the last three examples get wrong labels and are marked invalid.
  batch["label"] = np.concatenate([batch["label"][:5], (batch["label"][5:] + 1) % NUM_CLASSES])
  batch["mask"] = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)
  out = eval_step(trained, make_global_batch(batch, cls["mesh"]))
  np.testing.assert_allclose(float(out["loss"]), ce[:5].mean(), rtol=1e-5)
  np.testing.assert_allclose(float(out["accuracy"]), correct[:5].mean(), rtol=1e-6)
  assert float(out["num_examples"]) == 5.0
  batch["mask"] = np.ones(BATCH, np.float32)
  unmasked = eval_step(trained, make_global_batch(batch, cls["mesh"]))
  assert abs(float(unmasked["loss"]) - float(out["loss"])) > 1e-3


def test_mixup_cutmix_dropout_and_drop_path_train(cls):
  config = make_config(dropout_rate=0.1, drop_path_rate=0.2)
  config.train.mixup_alpha = 0.8
  config.train.cutmix_alpha = 1.0
  model = build_model(config.model)
  step = make_train_step(StepSpec.from_config(config), model, cls["mesh"], cls["shardings"],
                         compiler_options=FAST)
  _, losses = run(step, copy_state(cls["state0"]), cls["data"], cls["mesh"])
  _, again = run(step, copy_state(cls["state0"]), cls["data"], cls["mesh"])
  assert np.all(np.isfinite(losses))
  np.testing.assert_array_equal(losses, again)  # randomness comes from the state
  assert np.abs(losses[1:] - cls["losses"][1:]).max() > 1e-3


def test_bfloat16_compute_with_remat_keeps_float32_params_and_state(cls):
  config = make_config(dtype="bfloat16", remat_policy="dots_no_batch")
  step = make_train_step(StepSpec.from_config(config), build_model(config.model), cls["mesh"],
                         cls["shardings"],
                         compiler_options=FAST)
  state, losses = run(step, copy_state(cls["state0"]), cls["data"], cls["mesh"])
  np.testing.assert_allclose(losses, cls["losses"], atol=5e-2)
  assert losses[-1] < losses[0]
  for leaf in jax.tree_util.tree_leaves((state.params, state.opt_state, state.ema_params)):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype


@pytest.mark.slow
def test_pretrain_reduces_reconstruction_loss():
  config = make_config("pretrain")
  model = build_model(config.model)
  mesh = create_mesh(config.mesh)
  state, shardings = init_train_state(StepSpec.from_config(config), model, mesh, 1, CLIP,
                                      compiler_options=FAST)
  step = make_train_step(StepSpec.from_config(config), model, mesh, shardings,
                         compiler_options=FAST)
  data = batches(1) * 8
  state, losses = run(step, state, data, mesh)
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0] - 0.03, losses
  eval_step = make_eval_step(StepSpec.from_config(config), model, mesh, shardings,
                             return_reconstruction=True,
                             compiler_options=FAST)
  out = eval_step(state, make_global_batch(data[0], mesh))
  assert set(out) == {"loss", "num_examples", "reconstruction", "mask", "pixel_mse",
                      "mean_baseline_pixel_mse"}
  assert out["mask"].shape[0] == BATCH and out["mask"].dtype == bool
  assert out["reconstruction"].shape == (BATCH,) + CLIP
  assert np.isfinite(float(out["loss"])) and float(out["num_examples"]) == BATCH


def test_mode_and_model_must_agree():
  config = make_config()
  config.mode = "pretrain"
  with pytest.raises(ValueError, match="mode='pretrain' needs a pretraining model"):
    objectives.check_mode(ObjectiveSpec.from_config(config), build_model(make_config().model))
  config.mode = "classify"
  with pytest.raises(ValueError, match="mode must be one of"):
    objectives.check_mode(ObjectiveSpec.from_config(config), build_model(make_config().model))
