"""ONNX export (vivit_jax/export/onnx.py, jax2onnx) run in ONNX Runtime gives
our jitted logits: float32 models (xla and chunked attention, joint and
factorised encoders), token-merged ones, int8_weight and int8_dynamic (its
int8 matmuls rewritten as MatMulInteger), and int8_dynamic through ONNX
Runtime's own dynamic quantization, their differences measured.

Tolerances: float32 graphs compute the same operations as XLA in another
order with other kernels; the differences seen are <= 4e-6 on logits of
magnitude ~1-3 (so 2e-5 leaves 5x margin and would still catch a wrong
operation, which moves logits by >= 1e-2)."""

import json
import os
import subprocess
import sys

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import REPO, random_params
from support import videos as fx
from vivit_jax.export import __main__ as export_cli
from vivit_jax.export import onnx as onnx_export
from vivit_jax.export import onnx_int8
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
                                          ("factorised_encoder", "xla"),
                                          ("factorised_self_attention", "xla"),
                                          ("factorised_dot_product", "chunked")])
def test_a_float_model_exports_with_a_symbolic_batch_and_the_jitted_logits(variant, impl):
  pooling = "gap" if variant.startswith("factorised_") and variant != "factorised_encoder" \
      else "token"
  model = build_model(dict(SMALL, variant=variant, attention_impl=impl, classifier=pooling))
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


def test_a_float_graph_is_made_of_the_nodes_onnxruntime_fuses(tmp_path):
  """LayerNormalization and Gelu nodes, projections as MatMul + Add (not
  Einsum), which ONNX Runtime turns into one Gemm each, as in torch.onnx's
  graph of the same model."""
  model = build_model(dict(SMALL, variant="spatio_temporal"))
  params = random_params.random_params(model, _video(1))
  proto, _ = onnx_export.export_model(model, params, VIDEO)
  ops = [node.op_type for node in proto.graph.node]
  assert ops.count("LayerNormalization") == 2 * 2 + 1 and ops.count("Gelu") == 2, ops
  assert "Einsum" not in ops and "Erf" not in ops and "ReduceMean" not in ops, ops
  ort = pytest.importorskip("onnxruntime")
  options = ort.SessionOptions()
  options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
  ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
  optimized = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
  assert optimized.count("Gemm") == 2 * 6 + 1, optimized  # q, k, v, out, fc1, fc2; head


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


def test_int8_dynamic_exports_its_int8_matmuls_as_matmulinteger(float_model):
  model, params = float_model
  qmodel, qparams = quantized.quantize_model_params(model, params, VIDEO, "int8_dynamic")
  proto, graph = onnx_export.export_model(qmodel, qparams, VIDEO)
  assert graph == onnx_export.GRAPH_INT8_DYNAMIC
  ops = [node.op_type for node in proto.graph.node]
  assert ops.count("MatMulInteger") == 2 * 6 + 1 and "Gemm" not in ops, ops
  video = _video(3, seed=5)
  got = _run(proto, video)
  want = _jitted(qmodel, qparams, video)
  # ONNX Runtime divides by each token's scale where XLA multiplies by its
  # reciprocal: ~1 activation in 1000 rounds to the neighbouring int8 value,
  # which moves a logit of this 32-wide model by up to ~1.5% (measured).
  assert np.abs(got - want).max() < 0.03 * np.abs(want).max()
  np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))


def test_int8_and_token_merging_combined_export_and_agree_on_top1():
  model = build_model(dict(SMALL, variant="spatio_temporal", token_merging=(4,)))
  params = random_params.random_params(model, _video(1), scale=0.2)
  qmodel, qparams = quantized.quantize_model_params(model, params, VIDEO, "int8_dynamic")
  proto, _ = onnx_export.export_model(qmodel, qparams, VIDEO)
  video = _video(3, seed=6)
  got, want = _run(proto, video), _jitted(qmodel, qparams, video)
  assert np.abs(got - want).max() < 0.03 * np.abs(want).max()
  np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))


def test_int8_dynamic_can_take_onnxruntimes_own_dynamic_quantization(float_model):
  model, params = float_model
  qmodel, qparams = quantized.quantize_model_params(model, params, VIDEO, "int8_dynamic")
  proto, graph = onnx_export.export_model(qmodel, qparams, VIDEO, int8_dynamic="onnxruntime")
  assert graph == onnx_export.GRAPH_INT8_DYNAMIC_ORT
  ops = [node.op_type for node in proto.graph.node]
  # Every projection (q, k, v, out, fc1, fc2 per block, the head) is int8.
  assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") == 2 * 6 + 1, ops
  video = _video(2, seed=5)
  got = _run(proto, video)
  float_logits = _jitted(model, params, video)
  # Another int8 scheme (uint8 activations per tensor, not int8 per token):
  # measured 7e-3 from qwix's logits and from float32 (logits up to 0.66).
  assert 0 < np.abs(got - float_logits).max() < 0.05 * np.abs(float_logits).max()


def test_the_int8_rewrite_gives_exact_integer_products_and_saturating_casts():
  weights = np.random.default_rng(0).integers(-127, 128, (8, 2, 3)).astype(np.int8)
  head = np.random.default_rng(1).integers(-127, 128, (8, 4)).astype(np.int8)

  def function(_, x):  # x (B, 5, 8): |100 x| exceeds 127 often, so casts saturate
    a = jnp.round(100 * x).astype(jnp.int8)
    projected = jax.lax.dot_general(a, weights, (((2,), (0,)), ((), ())),
                                    preferred_element_type=jnp.int32)  # (B, 5, 2, 3)
    pooled = jax.lax.dot_general(a[:, 0], head, (((1,), (0,)), ((), ())),
                                 preferred_element_type=jnp.int32)  # (B, 4)
    return jnp.concatenate([projected.reshape(x.shape[0], -1), pooled], axis=1).astype(jnp.float32)

  proto = onnx_export.export_function(function, {}, (5, 8))
  proto = onnx_int8.int8_matmuls_as_integer(proto)
  x = np.random.default_rng(2).standard_normal((2, 5, 8)).astype(np.float32)
  assert np.abs(np.round(100 * x)).max() > 128
  np.testing.assert_array_equal(_run(proto, x), jax.jit(function)({}, x))


def test_an_int8_matmul_the_rewrite_does_not_handle_is_one_error_naming_the_way_out():
  """Not a projection (an attention-like contraction): refused as a user error
  that names --onnx-int8 onnxruntime, not left as a traceback."""
  i8 = onnx.TensorProto.INT8
  node = onnx.helper.make_node("Einsum", ["q", "k"], ["logits"], equation="bqd,bkd->bqk")
  graph = onnx.helper.make_graph(
      [node], "attention_like",
      [onnx.helper.make_tensor_value_info("q", i8, [1, 4, 8]),
       onnx.helper.make_tensor_value_info("k", i8, [1, 4, 8])],
      [onnx.helper.make_tensor_value_info("logits", i8, [1, 4, 4])])
  with pytest.raises(onnx_int8.UnsupportedInt8Graph) as raised:
    onnx_int8.int8_matmuls_as_integer(onnx.helper.make_model(graph))
  line = raised.value.line
  assert "bqd,bkd->bqk" in line and "--onnx-int8 onnxruntime" in line and "\n" not in line


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


def test_cli_exports_an_int8_dynamic_checkpoint_as_onnxruntimes_int8_unless_asked_for_qwix(
    tmp_path):
  """The default is the graph ONNX Runtime runs fastest (its fused dynamic int8);
  --onnx-int8 qwix keeps our arithmetic op by op. Both classify alike."""
  from vivit_jax.compress import __main__ as compress_cli  # pylint: disable=import-outside-toplevel
  ckpt = fx.make_checkpoint(str(tmp_path / "ckpt"))
  int8 = str(tmp_path / "int8")
  compress_cli.compress_checkpoint(ckpt, int8, "int8_dynamic", check_clips=0, progress=False)
  probs = {}
  for choice, graph in (("onnxruntime", onnx_export.GRAPH_INT8_DYNAMIC_ORT),
                        ("qwix", onnx_export.GRAPH_INT8_DYNAMIC)):
    out = str(tmp_path / choice)
    args = ["--checkpoint", int8, "--output", out, "--format", "onnx"]
    assert export_cli.main(args + ([] if choice == "onnxruntime" else
                                   ["--onnx-int8", choice])) == 0
    assert onnx_backend.read_signature(out)["graph"] == graph
    clips = np.random.default_rng(0).standard_normal((4, 8, 32, 32, 3)).astype(np.float32)
    probs[choice] = onnx_backend.load_onnx_classifier(out).classify(clips)
  np.testing.assert_array_equal(probs["onnxruntime"].argmax(-1), probs["qwix"].argmax(-1))


def test_a_checkpoint_trained_in_bfloat16_exports_to_onnx_computing_in_float32(tmp_path):
  """The shipped accelerator configs train with model.dtype bfloat16; ONNX
  Runtime's CPU kernels have no bfloat16 matmul, so the export computes in
  float32 and classifies as the float32 JAX model does."""
  from vivit_jax.serving import inference  # pylint: disable=import-outside-toplevel
  ckpt = fx.make_checkpoint(str(tmp_path / "ckpt"))
  config_path = os.path.join(ckpt, "config.json")
  with open(config_path) as f:
    config = json.load(f)
  config["model"]["dtype"] = "bfloat16"
  with open(config_path, "w") as f:
    json.dump(config, f)
  out = str(tmp_path / "onnx")
  assert export_cli.main(["--checkpoint", ckpt, "--output", out, "--format", "onnx"]) == 0
  assert onnx_backend.read_signature(out)["model"]["dtype"] == "float32"
  clips = np.random.default_rng(0).standard_normal((2, 8, 32, 32, 3)).astype(np.float32)
  expected = inference.load_classifier(ckpt, dtype="float32").classify(clips)
  np.testing.assert_allclose(onnx_backend.load_onnx_classifier(out).classify(clips), expected,
                             atol=1e-5)


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
          "import vivit_jax.export.onnx, vivit_jax.serving.onnx_backend\n"
          "import vivit_jax.serving.predict\n"
          "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
          "('onnx', 'onnx_ir', 'onnxruntime', 'jax2onnx'))\n"
          "assert not bad, bad[:5]\n")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_an_int8_dynamic_layer_in_onnxruntime_is_exactly_qwixs_arithmetic_in_numpy():
  """Per-token absmax / 127.5 scale, round half to even, saturate, int32
  product, rescale: ONNX Runtime equals NumPy bit for bit; XLA (jit)
  multiplies by the scale's reciprocal and is the one that differs."""
  layer = flax.linen.Dense(64)
  x = np.random.default_rng(0).standard_normal((4, 50, 128)).astype(np.float32)
  params = random_params.random_params(layer, x, scale=0.1)
  qlayer, qparams = quantized.quantize_model_params(layer, params, x.shape[1:], "int8_dynamic")
  proto, _ = onnx_export.export_model(qlayer, qparams, x.shape[1:])
  qvalue = np.asarray(qparams["kernel"]["array"]["qvalue"], np.int32)
  scale = np.asarray(qparams["kernel"]["array"]["scale"])
  token_scale = np.abs(x).max(-1, keepdims=True) / np.float32(127.5)
  activations = np.clip(np.round(x / token_scale), -128, 127).astype(np.int32)
  want = (activations @ qvalue).astype(np.float32) * token_scale * scale + qparams["bias"]
  np.testing.assert_array_equal(_run(proto, x), want)
