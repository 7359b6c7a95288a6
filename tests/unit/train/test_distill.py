"""mode="distill": the distillation loss, the frozen teacher, frames, and the main job."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import train_runs as fx
from vivit_jax import checkpoints
from vivit_jax.models import build_model, registry
from vivit_jax.train import distill, experiment
from vivit_jax.train.distributed import make_global_batch
from vivit_jax.train.evaluation.evaluator import Evaluator
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.steps import init_train_state, make_train_step

SIZE, CLASSES, BATCH = 16, 4, 8
FAST = {"xla_backend_optimization_level": 0}
STUDENT = dict(name="vivit", variant="spatio_temporal", hidden_size=32, num_layers=1,
               num_heads=4, mlp_dim=64, patch_size=8, tubelet_size=2, num_classes=CLASSES,
               classifier="token", pos_embedding="learned")
TEACHER = dict(STUDENT, hidden_size=48, num_layers=2, mlp_dim=96)


def write_teacher(directory, model_config=TEACHER, frames=4, stride=1, seed=1):
  """A model checkpoint of a random teacher (head not zero, so its logits differ)."""
  model = build_model(model_config)
  shape = (frames, SIZE, SIZE, 3)
  params = model.init(jax.random.PRNGKey(seed), *registry.dummy_inputs(model, shape))["params"]
  leaves, tree = jax.tree_util.tree_flatten(jax.tree_util.tree_map(np.asarray,
                                                                   nn.unbox(params)))
  rng = np.random.RandomState(seed)
  leaves = [v + 0.2 * rng.randn(*v.shape).astype(v.dtype) for v in leaves]
  params = jax.tree_util.tree_unflatten(tree, leaves)
  spec = {"num_frames": frames, "frame_stride": stride, "image_size": [SIZE, SIZE],
          "resize_short_side": SIZE, "mean": [0.5] * 3, "std": [0.25] * 3}
  checkpoints.save_model_checkpoint(str(directory), params,
                                    {"model": model_config, "input": spec})
  return params


def make_config(teacher_dir, mode="distill", frames=4, stride=1, **distill_keys):
  config = experiment.experiment_config(mode, STUDENT)
  config.data.num_frames, config.data.stride, config.data.image_size = frames, stride, SIZE
  config.data.num_classes = CLASSES
  config.train.batch_size = BATCH
  config.train.label_smoothing = 0.1
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 1
  config.distill.teacher = str(teacher_dir)
  for key, value in distill_keys.items():
    config.distill[key] = value
  return experiment.finalize(config)


def batches(num, frames=4, seed=0):
  rng = np.random.RandomState(seed)
  return [{"video": rng.randn(BATCH, frames, SIZE, SIZE, 3).astype(np.float32),
           "label": rng.randint(0, CLASSES, BATCH).astype(np.int32)} for _ in range(num)]


def setup(config, frames=4):
  model = build_model(config.model)
  mesh = create_mesh(config.mesh)
  state, shardings = init_train_state(config, model, mesh, 0, (frames, SIZE, SIZE, 3),
                                      compiler_options=FAST)
  return model, mesh, state, shardings


def train(step, state, data, mesh):
  out = []
  for batch in data:
    state, metrics = step(state, make_global_batch(batch, mesh))
    out.append(jax.device_get(metrics))
  return state, out


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("teacher") / "model"
  write_teacher(directory)
  return directory


def test_alpha_zero_is_exactly_the_hard_label_step(teacher_dir):
  data = batches(3)
  plain_config = make_config(teacher_dir, mode="train")
  model, mesh, state, shardings = setup(plain_config)
  plain, plain_metrics = train(make_train_step(plain_config, model, mesh, shardings,
                                               compiler_options=FAST),
                               jax.tree_util.tree_map(jnp.copy, state), data, mesh)

  config = make_config(teacher_dir, alpha=0.0)
  teacher = distill.load_teacher(config, mesh)
  step = make_train_step(config, model, mesh, shardings, compiler_options=FAST,
                         teacher=teacher)
  distilled, metrics = train(step, state, data, mesh)
  assert [m["loss"] for m in metrics] == [m["loss"] for m in plain_metrics]
  assert all(m["soft_loss"] > 0 for m in metrics)  # the teacher ran, weight 0
  for a, b in zip(jax.tree_util.tree_leaves(plain.params),
                  jax.tree_util.tree_leaves(distilled.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _numpy_kl(student, teacher, temperature):
  def log_softmax(x):
    x = x / temperature
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))
  lt, ls = log_softmax(teacher.astype(np.float64)), log_softmax(student.astype(np.float64))
  return temperature ** 2 * (np.exp(lt) * (lt - ls)).sum(-1)


def test_soft_loss_is_temperature_squared_kl_to_softened_teacher(teacher_dir):
  temperature = 3.0
  config = make_config(teacher_dir, alpha=1.0, temperature=temperature)
  model, mesh, state, _ = setup(config)
  teacher = distill.load_teacher(config, mesh)
  loss_fn = distill.make_loss_fn(config, model, teacher)
  batch = {k: jnp.asarray(v) for k, v in batches(1)[0].items()}
  # Non-zero student head, so both sides have non-uniform soft targets.
  params = jax.tree_util.tree_map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(3), p.shape), state.params)
  loss, metrics = loss_fn(params, batch, jax.random.PRNGKey(0), teacher.params)
  student_logits = np.asarray(model.apply({"params": params}, batch["video"], train=False))
  teacher_logits = np.asarray(teacher.model.apply({"params": teacher.params}, batch["video"]))
  want = _numpy_kl(student_logits, teacher_logits, temperature).mean()
  np.testing.assert_allclose(float(metrics["soft_loss"]), want, rtol=1e-4)
  np.testing.assert_allclose(float(loss), want, rtol=1e-4)  # alpha=1: soft term only
  # The T^2 factor: at another temperature the same logits give the other value.
  np.testing.assert_allclose(
      np.asarray(distill.kl_to_teacher(student_logits, teacher_logits, 1.0)),
      _numpy_kl(student_logits, teacher_logits, 1.0), rtol=1e-4)
  assert not np.isclose(want, _numpy_kl(student_logits, teacher_logits, 1.0).mean())


def test_teacher_is_frozen_and_not_in_the_state(teacher_dir):
  config = make_config(teacher_dir, alpha=0.5)
  model, mesh, state, shardings = setup(config)
  teacher = distill.load_teacher(config, mesh)
  before = jax.tree_util.tree_map(np.asarray, teacher.params)
  student_before = jax.tree_util.tree_map(np.asarray, state.params)
  step = make_train_step(config, model, mesh, shardings, compiler_options=FAST,
                         teacher=teacher)
  state, _ = train(step, state, batches(2), mesh)
  for a, b in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(teacher.params)):
    np.testing.assert_array_equal(a, np.asarray(b))
  _, stored = checkpoints.load_model_checkpoint(str(teacher_dir))
  for a, b in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(stored)):
    np.testing.assert_array_equal(a, np.asarray(b))
  # The state holds only the student (width 32), which did move.
  shapes = {tuple(x.shape) for x in jax.tree_util.tree_leaves(state)}
  assert (48,) not in shapes and (1, 48) not in shapes
  assert checkpoints.describe_mismatch(student_before, state.params) is None
  moved = [not np.array_equal(a, np.asarray(b)) for a, b in zip(
      jax.tree_util.tree_leaves(student_before), jax.tree_util.tree_leaves(state.params))]
  assert any(moved)


def test_features_kind_trains_a_projection_between_widths(teacher_dir):
  config = make_config(teacher_dir, kind="logits+features", alpha=0.5, feature_weight=2.0)
  model, mesh, state, shardings = setup(config)
  projection = state.params[distill.PROJECTION]
  assert projection["kernel"].shape == (32, 48) and projection["bias"].shape == (48,)
  kernel0 = np.asarray(projection["kernel"])
  teacher = distill.load_teacher(config, mesh)
  step = make_train_step(config, model, mesh, shardings, compiler_options=FAST,
                         teacher=teacher)
  state, metrics = train(step, state, batches(3), mesh)
  assert all(m["feature_loss"] > 0 for m in metrics)
  assert metrics[-1]["feature_loss"] < metrics[0]["feature_loss"]
  assert not np.array_equal(kernel0, np.asarray(state.params[distill.PROJECTION]["kernel"]))
  # What WORKDIR/model gets: exactly the student's parameters.
  fresh = registry.abstract_params(model, (4, SIZE, SIZE, 3))
  assert checkpoints.describe_mismatch(fresh, distill.student_params(state.params)) is None


def test_features_of_equal_width_need_no_projection(tmp_path):
  write_teacher(tmp_path / "same", model_config=dict(STUDENT, num_layers=2))
  config = make_config(tmp_path / "same", kind="logits+features")
  _, _, state, _ = setup(config)
  assert distill.PROJECTION not in state.params


def test_student_with_fewer_frames_sees_every_kth_frame_of_the_teachers_clip(tmp_path):
  write_teacher(tmp_path / "t", frames=4, stride=1)
  config = make_config(tmp_path / "t", frames=2, stride=2, alpha=0.0,
                       kind="logits+features")
  assert config.data.num_frames == 2
  train_config = distill.train_input_config(config)
  assert (train_config.data.num_frames, train_config.data.stride) == (4, 1)
  model, mesh, state, _ = setup(config, frames=2)
  teacher = distill.load_teacher(config, mesh)
  assert teacher.subsample == 2
  loss_fn = distill.make_loss_fn(config, model, teacher)
  batch = {k: jnp.asarray(v) for k, v in batches(1, frames=4)[0].items()}
  _, metrics = loss_fn(state.params, batch, jax.random.PRNGKey(0), teacher.params)
  logits = model.apply({"params": distill.student_params(state.params)},
                       batch["video"][:, ::2], train=False)
  targets = jax.nn.one_hot(batch["label"], CLASSES) * 0.9 + 0.1 / CLASSES
  want = -np.mean(np.sum(np.asarray(targets) * np.asarray(jax.nn.log_softmax(logits)), -1))
  np.testing.assert_allclose(float(metrics["hard_loss"]), want, rtol=1e-5)
  # Token counts differ (4 vs 8): the token means are compared.
  assert float(metrics["feature_loss"]) > 0


def test_a_teacher_clip_of_another_span_fails_naming_the_key(tmp_path):
  write_teacher(tmp_path / "t", frames=4, stride=1)
  config = make_config(tmp_path / "t", frames=2, stride=3)
  with pytest.raises(ValueError, match=r"^distill\.teacher .*data.stride"):
    experiment.validate(config)


@pytest.mark.parametrize("key,value,message", [
    ("temperature", 0.0, r"distill\.temperature must be > 0"),
    ("alpha", 1.5, r"distill\.alpha must be in \[0, 1\]"),
    ("kind", "attention", r"distill\.kind must be one of"),
    ("feature_weight", -1.0, r"distill\.feature_weight must be >= 0"),
])
def test_bad_distill_keys_fail_naming_the_key(teacher_dir, key, value, message):
  with pytest.raises(ValueError, match=message):
    experiment.validate(make_config(teacher_dir, **{key: value}))


def test_training_workdir_as_teacher_names_its_model_dir(teacher_dir):
  workdir = teacher_dir.parent  # Holds model/; a run's config.json and checkpoints/ beside it.
  (workdir / "checkpoints" / "3").mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text((teacher_dir / "config.json").read_text())
  try:
    with pytest.raises(ValueError, match=r"^distill\.teacher=.*: .* is a training workdir, not a "
                       rf"model checkpoint: pass {workdir}/model$"):
      experiment.validate(make_config(workdir))
  finally:
    (workdir / "config.json").unlink()
    (workdir / "checkpoints" / "3").rmdir()
    (workdir / "checkpoints").rmdir()


def test_missing_teacher_fails_naming_the_key(tmp_path):
  with pytest.raises(ValueError, match=r"^distill\.teacher=.* is not a model checkpoint"):
    experiment.validate(make_config(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match=r"^distill\.teacher is empty"):
    experiment.validate(make_config(""))


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
  return tiny_dataset  # conftest.py: written once per test session


@pytest.mark.slow
def test_main_job_resumes_bit_for_bit_after_sigkill_and_writes_the_student(
    dataset, tmp_path):
  teacher = tmp_path / "teacher"
  write_teacher(teacher, frames=fx.FRAMES, stride=1)
  overrides = fx.tiny_overrides(dataset, **{
      "train.num_steps": 4, "checkpoint.every_steps": 2, "eval.every_steps": 0,
      "data.num_frames": fx.FRAMES // 2, "data.stride": 2, "distill.teacher": str(teacher),
      "distill.kind": "logits+features", "model.num_heads": 4})
  runs = fx.straight_killed_resumed("demo_distill.py", str(tmp_path / "runs"), overrides,
                                    kill_step=2)
  workdir = runs.killed_dir

  want = fx.assert_same_checkpoint(runs.straight_dir, workdir, 4)
  assert distill.PROJECTION in want["params"]
  # Nothing teacher-sized (width 48, MLP 96) outside the student's projection.
  teacher_sized = [jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_leaves_with_path(want)
                   if distill.PROJECTION not in jax.tree_util.keystr(p)
                   and set(np.shape(v)) & {48, 96}]
  assert not teacher_sized, teacher_sized

  # WORKDIR/model is the student alone, loadable like any classifier.
  model, params, meta = checkpoints.load_model(os.path.join(workdir, "model"))
  assert meta["input"]["num_frames"] == fx.FRAMES // 2
  assert distill.PROJECTION not in params
  assert model.hidden_size == 32

  # Evaluating: the student's model checkpoint, and (mode=eval of the same
  # config) the training checkpoints with their projection.
  evaluate = fx.load_config("demo_distill.py", dict(overrides, mode="eval"))
  restored = Evaluator(evaluate).restore(os.path.join(workdir, "model"))
  assert distill.PROJECTION not in restored.state.params and restored.step == 4
  restored = Evaluator(evaluate).restore(workdir)
  assert restored.kind == "workdir" and restored.step == 4
  np.testing.assert_array_equal(
      np.asarray(restored.state.params[distill.PROJECTION]["kernel"]),
      want["params"][distill.PROJECTION]["kernel"])


def test_gradient_accumulation_splits_teacher_and_student_batches_alike(teacher_dir):
  data = batches(1)
  results = []
  for micro in (1, 2):
    config = make_config(teacher_dir, alpha=0.5, kind="logits+features")
    with config.unlocked():
      config.train.grad_accum_steps = micro
    model, mesh, state, shardings = setup(config)
    teacher = distill.load_teacher(config, mesh)
    step = make_train_step(config, model, mesh, shardings, compiler_options=FAST,
                           teacher=teacher)
    results.append(train(step, state, data, mesh))
  (one, m1), (two, m2) = results
  np.testing.assert_allclose(m1[0]["soft_loss"], m2[0]["soft_loss"], rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(two.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)
