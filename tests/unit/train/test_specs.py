"""The config resolved once (train/specs.py): the specs carry the config's
values, are frozen, accept the partial training configs, and the modules
below the loop take specs, never the whole ConfigDict."""

import ast
import dataclasses
import os

import pytest

from vivit_jax.train import experiment, specs
from vivit_jax.train.defaults import default_train_config
from support import REPO

# Modules that must read specs only (the loop, start-up checks and the main
# job keep the whole config).
SPEC_ONLY = ("steps.py", "objectives.py", "multihead.py", "optimizer.py", "partitioning.py",
             "device_preprocess.py", "inputs.py")


def _config():
  config = experiment.experiment_config("train", dict(name="vivit", num_classes=5))
  config.train.grad_accum_steps = 2
  config.train.label_smoothing = 0.1
  config.optimizer.ema_decay = 0.99
  config.optimizer.clip_grad_norm = 1.0
  config.sharding.rules = [["embed", ["fsdp", "tensor"]]]
  config.data.num_frames, config.data.image_size = 8, 32
  config.data.class_names = ("a", "b", "c", "d", "e")
  config.data.eval_resize_short_side = 40
  config.eval.batch_size, config.eval.num_batches = 6, 3
  config.checkpoint.keep = 7
  config.distill.teacher, config.distill.kind = "/teacher/model", "logits+features"
  return experiment.finalize(config)


def test_resolve_carries_each_key_into_its_spec():
  resolved = specs.resolve(_config())
  step = resolved.step
  assert (step.mode, step.grad_accum_steps, step.nan_policy) == ("train", 2, "stop")
  assert step.rules == (("embed", ("fsdp", "tensor")),)
  assert step.objective.label_smoothing == pytest.approx(0.1)
  assert (step.optimizer.ema_decay, step.optimizer.clip_grad_norm) == (0.99, 1.0)
  assert step.optimizer.num_steps == 1000 and step.optimizer.layer_decay is None
  assert (step.distill.teacher, step.distill.kind) == ("/teacher/model", "logits+features")
  assert (step.distill.num_frames, step.distill.image_size, step.distill.num_classes) == (8, 32, 5)
  data = resolved.data
  assert (data.num_frames, data.image_size, data.resize_short_side) == (8, 32, 40)
  assert data.class_names == ("a", "b", "c", "d", "e") and data.eval_batch_size == 6
  assert (resolved.eval.batch_size, resolved.eval.num_batches) == (6, 3)
  assert resolved.checkpoint.keep == 7 and resolved.model.num_classes == 5


def test_specs_are_frozen():
  resolved = specs.resolve(_config())
  with pytest.raises(dataclasses.FrozenInstanceError):
    resolved.step.grad_accum_steps = 4
  with pytest.raises(dataclasses.FrozenInstanceError):
    resolved.step.optimizer.learning_rate = 1.0


def test_step_spec_accepts_the_partial_training_config():
  config = default_train_config()  # no eval / checkpoint / distill, data with mean/std only
  config.data.mean = None
  step = specs.StepSpec.from_config(config)
  assert step.objective.mean is None and step.preprocess.mean is None
  assert step.distill.teacher == "" and step.preprocess.color_jitter_on_device is False
  assert specs.EvalSpec.from_config(config).num_batches == 0
  assert specs.CheckpointSpec.from_config(config) == specs.CheckpointSpec()


def _parameters(path):
  tree = ast.parse(open(path).read())
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.Lambda)):
      for arg in node.args.args + node.args.kwonlyargs:
        yield getattr(node, "name", "<lambda>"), arg.arg


@pytest.mark.parametrize("name", SPEC_ONLY)
def test_step_side_modules_take_specs_not_the_config(name):
  path = os.path.join(REPO, "vivit_jax", "train", name)
  takes_config = [f for f, arg in _parameters(path) if arg == "config"]
  assert not takes_config, f"{name}: {takes_config} take the whole config"
