"""Promises about imports and configs that every later part relies on."""

import subprocess
import sys

import pytest

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
    "vivit_jax.export.stablehlo", "vivit_jax.train.steps", "vivit_jax.train.loop",
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


def test_unknown_model_key_names_itself():
  with pytest.raises(ValueError, match="hiden_size"):
    build_model({"name": "vivit", "hiden_size": 3})
