"""Train and eval steps (train/steps.py) on a tiny classifier, checked against
the pieces they compose: the loss's own gradient, the optimiser's update,
the EMA formula, the micro-batch average and the non-finite guard."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vivit_jax.models import build_model
from vivit_jax.train import objectives, steps
from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.distributed import make_global_batch
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.optimizer import make_optimizer, make_schedule
from vivit_jax.train.specs import ObjectiveSpec, OptimizerSpec, StepSpec

CLIP = (2, 8, 8, 3)
FAST = {"xla_backend_optimization_level": 0}


def _config(**train):
  config = default_train_config()
  config.mode = "train"
  config.optimizer.learning_rate = 0.05
  config.optimizer.warmup_steps = 2
  config.optimizer.ema_decay = 0.75
  config.train.batch_size = 4
  config.train.num_steps = 10
  config.model = ml_collections.ConfigDict(dict(
      name="vivit", num_classes=3, hidden_size=8, num_layers=1, num_heads=2, mlp_dim=16,
      patch_size=4, tubelet_size=2))
  for key, value in train.items():
    setattr(config.train, key, value)
  return config


def _batch(seed=0, n=4):
  rng = np.random.default_rng(seed)
  return {"video": rng.standard_normal((n,) + CLIP).astype(np.float32),
          "label": rng.integers(0, 3, n).astype(np.int32)}


@pytest.fixture(scope="module")
def setup():
  config = _config()
  model = build_model(config.model)
  mesh = create_mesh(config.mesh)
  state, shardings = steps.init_train_state(StepSpec.from_config(config), model, mesh, 0, CLIP,
                                            compiler_options=FAST)
  step = steps.make_train_step(StepSpec.from_config(config), model, mesh, shardings,
                               compiler_options=FAST)
  return dict(config=config, model=model, mesh=mesh, state=state, shardings=shardings,
              step=step)


def _copy(state):
  return jax.tree_util.tree_map(jnp.copy, state)


def test_initial_state_starts_at_zero_with_the_ema_equal_to_the_params(setup):
  state = setup["state"]
  assert int(state.step) == 0 and state.rng.shape == (2,) and state.rng.dtype == jnp.uint32
  chex.assert_trees_all_equal(state.ema_params, state.params)
  again, _ = steps.init_train_state(StepSpec.from_config(setup["config"]), setup["model"],
                                    setup["mesh"], 0, CLIP,
                                    compiler_options=FAST)
  chex.assert_trees_all_equal(again.params, state.params)
  other, _ = steps.init_train_state(StepSpec.from_config(setup["config"]), setup["model"],
                                    setup["mesh"], 1, CLIP,
                                    compiler_options=FAST)
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree_util.tree_leaves(other.params), jax.tree_util.tree_leaves(state.params)))
  abstract, _ = steps.abstract_train_state(StepSpec.from_config(setup["config"]), setup["model"],
                                           setup["mesh"], CLIP)
  chex.assert_trees_all_equal_shapes_and_dtypes(abstract, state)


def test_a_step_applies_the_optimiser_to_the_loss_gradient_and_updates_the_ema(setup):
  config, model, mesh = setup["config"], setup["model"], setup["mesh"]
  state = _copy(setup["state"])
  batch = _batch()
  params0 = jax.device_get(state.params)
  opt0 = jax.device_get(state.opt_state)
  key = jax.random.fold_in(state.key(), state.step)
  loss_fn = objectives.make_loss_fn(ObjectiveSpec.from_config(config), model)
  (loss, _), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params0, batch, key)
  tx, _ = make_optimizer(OptimizerSpec.from_config(config), params0)
  updates, _ = jax.jit(tx.update)(grads, opt0, params0)
  new, metrics = setup["step"](state, make_global_batch(batch, mesh))
  assert int(new.step) == 1 and float(metrics["is_finite"]) == 1.0
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["grad_norm"], steps.global_norm(grads), rtol=1e-4)
  np.testing.assert_allclose(metrics["learning_rate"],
                             make_schedule(OptimizerSpec.from_config(config))(0), rtol=1e-6)
  expected = jax.tree_util.tree_map(lambda p, u: p + u, params0, updates)
  chex.assert_trees_all_close(jax.device_get(new.params), expected, rtol=1e-4, atol=1e-6)
  ema = jax.tree_util.tree_map(lambda e, p: 0.75 * e + 0.25 * p, params0,
                               jax.device_get(new.params))
  chex.assert_trees_all_close(jax.device_get(new.ema_params), ema, rtol=1e-5, atol=1e-7)
  second, metrics = setup["step"](new, make_global_batch(_batch(1), mesh))
  assert int(second.step) == 2
  np.testing.assert_allclose(metrics["learning_rate"],
                             make_schedule(OptimizerSpec.from_config(config))(1), rtol=1e-6)


def test_a_non_finite_step_keeps_params_optimiser_and_ema_and_advances_the_step(setup):
  state = _copy(setup["state"])
  before = jax.device_get(state)
  batch = _batch()
  batch["video"][0, 0, 0, 0, 0] = np.nan
  new, metrics = setup["step"](state, make_global_batch(batch, setup["mesh"]))
  assert float(metrics["is_finite"]) == 0.0 and int(new.step) == 1
  chex.assert_trees_all_equal(jax.device_get(new.params), before.params)
  chex.assert_trees_all_equal(jax.device_get(new.opt_state), before.opt_state)
  chex.assert_trees_all_equal(jax.device_get(new.ema_params), before.ema_params)


def test_gradient_accumulation_averages_micro_batches_like_one_batch(setup):
  config = _config(grad_accum_steps=2)
  step = steps.make_train_step(StepSpec.from_config(config), setup["model"], setup["mesh"],
                               setup["shardings"],
                               compiler_options=FAST)
  batch = _batch(2)
  one, m1 = setup["step"](_copy(setup["state"]), make_global_batch(batch, setup["mesh"]))
  two, m2 = step(_copy(setup["state"]), make_global_batch(batch, setup["mesh"]))
  for name in ("loss", "grad_norm", "accuracy"):
    np.testing.assert_allclose(m2[name], m1[name], rtol=1e-4, atol=1e-6)
  chex.assert_trees_all_close(jax.device_get(two.params), jax.device_get(one.params),
                              rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="batch of 3 is not divisible by train.grad_accum_steps=2"):
    step(_copy(setup["state"]), make_global_batch(_batch(3, n=3), setup["mesh"]))


def test_step_options_are_checked_by_name(setup):
  for train, message in (({"grad_accum_steps": 0}, "grad_accum_steps must be >= 1"),
                         ({"nan_policy": "ignore"}, "nan_policy must be one of")):
    with pytest.raises(ValueError, match=message):
      steps.make_train_step(StepSpec.from_config(_config(**train)), setup["model"], setup["mesh"],
                            setup["shardings"])


def test_eval_step_evaluates_params_or_ema_through_the_objective(setup):
  config, model, mesh = setup["config"], setup["model"], setup["mesh"]
  state, _ = setup["step"](_copy(setup["state"]), make_global_batch(_batch(), mesh))
  batch = dict(_batch(4), mask=np.array([1, 0, 1, 1], np.float32))
  eval_fn = objectives.make_eval_fn(ObjectiveSpec.from_config(config), model)
  for use_ema, params in ((False, state.params), (True, state.ema_params)):
    eval_step = steps.make_eval_step(StepSpec.from_config(config), model, mesh, setup["shardings"],
                                     use_ema=use_ema,
                                     compiler_options=FAST)
    got = eval_step(state, make_global_batch(batch, mesh))
    want = eval_fn(jax.device_get(params), batch, None)
    for name in ("loss", "accuracy", "num_examples"):
      assert got[name].shape == () and got[name].dtype == jnp.float32
      np.testing.assert_allclose(got[name], want[name], rtol=1e-5)
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-6)
  no_ema = setup["shardings"].replace(ema_params=None)
  with pytest.raises(ValueError, match="use_ema=True needs optimizer.ema_decay"):
    steps.make_eval_step(StepSpec.from_config(config), model, mesh, no_ema, use_ema=True)


def test_global_norm_is_the_l2_norm_over_all_leaves():
  tree = {"a": jnp.array([3.0, 0.0]), "b": {"c": jnp.array([[4.0]], jnp.bfloat16)}}
  assert float(steps.global_norm(tree)) == 5.0


def test_check_finite_stops_or_skips_by_policy():
  steps.check_finite({"is_finite": np.float32(1.0)}, 3)
  bad = {"is_finite": np.float32(0.0), "loss": np.float32(np.nan), "grad_norm": 2.0}
  steps.check_finite(bad, 3, "skip")
  with pytest.raises(FloatingPointError, match="non-finite training loss at step 3: "
                                               "loss=nan, grad_norm=2.0"):
    steps.check_finite(bad, 3, "stop")
  with pytest.raises(ValueError, match="nan_policy must be one of"):
    steps.check_finite(bad, 3, "warn")
