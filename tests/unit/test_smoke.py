"""Promises about imports and configs that every later part relies on."""

import subprocess
import sys

import pytest
import support

from vivit_jax.models import build_model

# Everything but vivit_jax.data must import on a machine without TensorFlow.
TF_FREE_MODULES = [
    "vivit_jax.models", "vivit_jax.models.flops", "vivit_jax.models.transfer",
    "vivit_jax.checkpoints", "vivit_jax.checkpoints.train", "vivit_jax.checkpoints.init_from",
    "vivit_jax.convert", "vivit_jax.serving.inference", "vivit_jax.serving.served_model",
    "vivit_jax.serving.predict", "vivit_jax.serving.stream", "vivit_jax.export",
    "vivit_jax.train.evaluation.evaluator", "vivit_jax.train.loop",
]

TF_FREE_MODULES += [
    "vivit_jax.common", "vivit_jax.common.constants", "vivit_jax.common.errors",
    "vivit_jax.common.params", "vivit_jax.common.console", "vivit_jax.models.axes",
    "vivit_jax.convert.conversion", "vivit_jax.models.quantized", "vivit_jax.compress",
    "vivit_jax.train.metric_writer", "vivit_jax.train.evaluation.plots",
    # The data registries list and validate names without TensorFlow.
    "vivit_jax.data.registry", "vivit_jax.data.sources", "vivit_jax.data.ops",
]
# Serving, export, train steps and the main job run on the GPU image, which has
# no TensorFlow (the data pipeline is imported lazily, only when data is read).
SERVING_MODULES = [
    "vivit_jax.serving", "vivit_jax.serving.stream_buffers", "vivit_jax.serving.video_io",
    "vivit_jax.serving.flags", "vivit_jax.export", "vivit_jax.export.saved_model",
    "vivit_jax.export.stablehlo", "vivit_jax.export.onnx", "vivit_jax.serving.onnx_backend",
    "vivit_jax.train.steps", "vivit_jax.train.loop",
]


# The two CLIs define the same absl flags, so each imports in its own process.
@pytest.mark.parametrize("modules", [TF_FREE_MODULES, SERVING_MODULES,
                                     ["vivit_jax.train.evaluation.evaluate"], ["vivit_jax.main"]],
                         ids=["models_checkpoints_convert", "serving_export_train", "evaluate",
                              "main"])
def test_tf_free_modules_do_not_import_tensorflow(modules):
  code = ("import importlib, sys\n"
          f"for name in {modules!r}:\n"
          "  importlib.import_module(name)\n"
          "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch'))\n"
          "assert not bad, bad[:5]\n")
  subprocess.run([sys.executable, "-c", code], check=True)


# The core packages, imported and run where the data extras cannot be imported.
DATA_EXTRAS = ("tensorflow", "tensorflow_datasets", "av", "dm_pix")
CORE_PACKAGES = [
    "vivit_jax.models", "vivit_jax.train", "vivit_jax.train.steps", "vivit_jax.train.loop",
    "vivit_jax.checkpoints", "vivit_jax.serving", "vivit_jax.serving.inference",
    "vivit_jax.serving.served_model", "vivit_jax.serving.predict", "vivit_jax.serving.stream",
    "vivit_jax.export", "vivit_jax.export.saved_model", "vivit_jax.export.stablehlo",
    "vivit_jax.compress", "vivit_jax.compress.__main__", "vivit_jax.models.quantized",
    "vivit_jax.train.evaluation", "vivit_jax.train.evaluation.evaluator",
]
TINY_TRAIN_STEP = """
import importlib, sys
for name in {modules!r}:
  importlib.import_module(name)
for name in {blocked!r}:  # the blocker works: each one is really unimportable here
  try:
    importlib.import_module(name)
  except ModuleNotFoundError:
    continue
  raise AssertionError(name + " imported")
import jax, jax.numpy as jnp
from vivit_jax.models import build_model
from vivit_jax.train import defaults, mesh as mesh_lib, specs, steps
config = defaults.default_train_config()
config.model = dict(name="vivit", hidden_size=16, num_layers=1, num_heads=2, mlp_dim=32,
                    patch_size=8, tubelet_size=2, num_classes=3)
config.train.batch_size = 2
model, mesh = build_model(config.model), mesh_lib.create_mesh(config.mesh)
clip = (4, 16, 16, 3)
spec = specs.StepSpec.from_config(config)
state, shardings = steps.init_train_state(spec, model, mesh, 0, clip)
batch = dict(video=jnp.full((2,) + clip, 128, jnp.uint8), label=jnp.array([0, 2], jnp.int32))
state, metrics = steps.make_train_step(spec, model, mesh, shardings)(state, batch)
assert int(state.step) == 1 and bool(jnp.isfinite(metrics["loss"])), metrics
bad = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r})
assert not bad, bad[:5]
print("one train step, loss", float(metrics["loss"]))
"""


def test_core_imports_and_trains_without_the_data_extras():
  """Issue 22 item 1: TensorFlow, TFDS, PyAV and dm-pix unimportable in the
  process (tests/support/gpu_image), the core packages import and one tiny
  train step (uint8 video, normalised on device) runs."""
  code = TINY_TRAIN_STEP.format(modules=CORE_PACKAGES, blocked=DATA_EXTRAS)
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=support.gpu_image_env(missing=DATA_EXTRAS), timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "one train step, loss" in done.stdout


def test_unknown_model_key_names_itself():
  with pytest.raises(ValueError, match="hiden_size"):
    build_model({"name": "vivit", "hiden_size": 3})
