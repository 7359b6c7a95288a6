"""ONNX export (vivit_jax/export/onnx.py, jax2onnx) run in ONNX Runtime gives
our jitted logits: float32 models (xla and chunked attention, joint and
factorised encoders), token-merged ones, int8_weight; int8_dynamic through
ONNX Runtime's own dynamic quantization, its difference measured.

Tolerances: float32 graphs compute the same operations as XLA in another
order with other kernels; the differences seen are <= 4e-6 on logits of
magnitude ~1-3 (so 2e-5 leaves 5x margin and would still catch a wrong
operation, which moves logits by >= 1e-2)."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from support import REPO, random_params
from support import videos as fx
from vivit_jax.export import __main__ as export_cli
from vivit_jax.export import onnx as onnx_export
from vivit_jax.models import build_model, quantized
from vivit_jax.serving import onnx_backend

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

VIDEO = (4, 16, 16, 3)  # 2 x 4 x 4 = 32 tubelet tokens
SMALL = dict(name="vivit", hidden_size=32, num_layers=2, num_heads=2, mlp_dim=64, patch_size=4,
             tubelet_size=2, num_classes=5, temporal_layers=1, classifier="token")
FLOAT_TOLERANCE = 2e-5


def _video(batch, seed=0):
  return np.random.default_rng(seed).standard_normal((batch, *VIDEO)).astype(np.float32)


def _jitted(model, params, video):
  return np.asarray(random_params.jit_apply(model, params, video))


def _run(proto, video):
  return onnx_export.session(proto).run(None, {"video": video})[0]


@pytest.mark.parametrize("variant,impl", [("spatio_temporal", "xla"),
                                          ("spatio_temporal", "chunked"),
                                          ("factorised_encoder", "xla")])
def test_a_float_model_exports_with_a_symbolic_batch_and_the_jitted_logits(variant, impl):
  model = build_model(dict(SMALL, variant=variant, attention_impl=impl))
  params = random_params.random_params(model, _video(1))
  proto, graph = onnx_export.export_model(model, params, VIDEO)
  assert graph == onnx_export.GRAPH_FLOAT
  dims = proto.graph.input[0].type.tensor_type.shape.dim
  assert [d.dim_param or d.dim_value for d in dims] == ["B", *VIDEO]
  assert not any(init.data_type == onnx.TensorProto.INT8 for init in proto.graph.initializer)
  for batch in (1, 2):
    video = _video(batch, seed=batch)
    want = _jitted(model, params, video)
    np.testing.assert_allclose(_run(proto, video), want, rtol=0, atol=FLOAT_TOLERANCE)


def test_a_token_merged_model_exports_with_the_jitted_logits():
  model = build_model(dict(SMALL, variant="spatio_temporal", token_merging=(6, 4)))
  params = random_params.random_params(model, _video(1))
  proto, _ = onnx_export.export_model(model, params, VIDEO)
  video = _video(2, seed=3)
  want = _jitted(model, params, video)
  assert not np.allclose(want, _jitted(build_model(dict(SMALL, variant="spatio_temporal")),
                                       params, video), atol=1e-3)  # merging did something
  np.testing.assert_allclose(_run(proto, video), want, rtol=0, atol=FLOAT_TOLERANCE)


@pytest.fixture(scope="module")
def float_model():
  model = build_model(dict(SMALL, variant="spatio_temporal"))
  return model, random_params.random_params(model, _video(1), scale=0.2)


def test_int8_weight_exports_its_int8_weights_and_qwix_logits(float_model):
  model, params = float_model
  qmodel, qparams = quantized.quantize_model_params(model, params, VIDEO, "int8_weight")
  proto, graph = onnx_export.export_model(qmodel, qparams, VIDEO)
  assert graph == onnx_export.GRAPH_INT8_WEIGHT
  int8 = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8]
  assert len(int8) == 2 * 6 + 1  # q, k, v, out, fc1, fc2 per block, and the head
  video = _video(2, seed=4)
  np.testing.assert_allclose(_run(proto, video), _jitted(qmodel, qparams, video), rtol=0,
                             atol=FLOAT_TOLERANCE)


def test_int8_dynamic_exports_as_onnxruntime_dynamic_int8_close_to_qwix(float_model):
  model, params = float_model
  qmodel, qparams = quantized.quantize_model_params(model, params, VIDEO, "int8_dynamic")
  proto, graph = onnx_export.export_model(qmodel, qparams, VIDEO)
  assert graph == onnx_export.GRAPH_INT8_DYNAMIC
  ops = [node.op_type for node in proto.graph.node]
  assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") >= 2 * 2 + 1, ops
  video = _video(2, seed=5)
  got = _run(proto, video)
  qwix_logits, float_logits = _jitted(qmodel, qparams, video), _jitted(model, params, video)
  scale = np.abs(float_logits).max()
  # Another int8 scheme (uint8 activations per tensor, not int8 per token):
  # as close to qwix's logits as int8 is to float32, and never further than 10%.
  assert np.abs(got - qwix_logits).max() < 0.1 * scale
  assert np.abs(got - float_logits).max() < 0.1 * scale
  assert np.abs(got - float_logits).max() > 0  # it did quantize


def test_cli_writes_model_and_signature_and_a_static_batch_on_request(tmp_path, capsys):
  ckpt = fx.make_checkpoint(str(tmp_path / "ckpt"))
  out = str(tmp_path / "onnx")
  assert export_cli.main(["--checkpoint", ckpt, "--output", out, "--format", "onnx",
                          "--batch-size", "2"]) == 0
  line = capsys.readouterr().out.strip()
  assert line.startswith("onnx: video [2, 8, 32, 32, 3] -> logits [2, 5] (static batch"), line
  assert sorted(os.listdir(out)) == ["model.onnx", "signature.json"]
  signature = onnx_backend.read_signature(out)
  assert signature["format"] == "onnx" and signature["batch"] == "static"
  assert signature["labels"] == fx.LABELS and signature["input_spec"]["num_frames"] == 8
  assert signature["opset"] == onnx_export.OPSET and signature["jax2onnx_version"] == "0.17.1"


def test_a_missing_jax2onnx_is_one_line_naming_the_install_commands(tmp_path):
  ckpt = fx.make_checkpoint(str(tmp_path / "ckpt"))
  env = dict(os.environ, SIMULATED_MISSING="jax2onnx",
             PYTHONPATH=os.pathsep.join([os.path.join(REPO, "tests", "support", "gpu_image"),
                                         REPO]))
  run = subprocess.run([sys.executable, "-m", "vivit_jax.export", "--checkpoint", ckpt,
                        "--output", str(tmp_path / "out"), "--format", "onnx"],
                       capture_output=True, text=True, env=env, cwd=REPO, check=False)
  assert run.returncode == 2, run.stderr
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: jax2onnx is not installed"), lines
  assert "pip install --no-deps jax2onnx==0.17.1" in lines[0] and "[onnx]" in lines[0]
  assert not os.path.exists(tmp_path / "out")


def test_the_onnx_modules_import_without_loading_onnx_packages():
  code = ("import sys\n"
          "import vivit_jax.export.onnx, vivit_jax.serving.onnx_backend, vivit_jax.serving.predict\n"
          "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
          "('onnx', 'onnx_ir', 'onnxruntime', 'jax2onnx'))\n"
          "assert not bad, bad[:5]\n")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
