"""The GPU presets' train / pretrain / eval steps lower for CUDA on a CPU machine.

`jax.jit(...).trace(...).lower(lowering_platforms=("cuda",))` emits the
StableHLO a GPU would compile, without a GPU. Checked per preset of
scripts/benchmark.py: it lowers; attention is the fused cuDNN custom call
(no L x L score tensor anywhere); no host callback, send/recv or in/outfeed;
float32 params and optimizer state, bf16 operands in every matmul.

What cannot be checked here: XLA's GPU compilation (autotuning, fusion,
whether cuDNN accepts the call at run time) needs the GPU itself.
"""

import importlib.util
import os
import re
from unittest import mock

import jax
import jax.numpy as jnp
import pytest
from jax._src.cudnn import fused_attention_stablehlo

from vivit_jax.models import build_model
from vivit_jax.train import defaults, mesh as mesh_lib, partitioning, steps
from support import REPO

SCRIPTS = os.path.join(REPO, "scripts")
_spec = importlib.util.spec_from_file_location("benchmark", os.path.join(SCRIPTS, "benchmark.py"))
benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark)

GPU_PRESETS = sorted(name for name in benchmark.PRESETS if not name.startswith("tiny"))
HOST_OPS = ("stablehlo.send", "stablehlo.recv", "stablehlo.infeed", "stablehlo.outfeed")
ALLOWED_CUSTOM_CALLS = {"__cudnn$fmhaSoftmax", "__cudnn$fmhaSoftmaxBackward", "Sharding",
                        "SPMDFullToShardShape", "SPMDShardToFullShape"}


def _no_cudnn_check():
  # jax asks the installed cuDNN for its version while tracing the cuDNN
  # attention and fails on a CPU-only machine; stand in for a cuDNN 9.10
  # install so the lowering (which does not need the library) can proceed.
  return mock.patch.object(fused_attention_stablehlo, "check_cudnn_version",
                           return_value=91000)


def _lower(preset, model_overrides=None):
  """`(train_text, eval_text, abstract_state)` of a preset lowered for CUDA."""
  p = benchmark.PRESETS[preset]
  config = defaults.default_train_config()
  config.mode = p["mode"]
  config.model = dict(p["model"], **(model_overrides or {}))
  batch_size, clip = p["batch_size"], p["clip"]
  with _no_cudnn_check():
    model = build_model(config.model)
    mesh = mesh_lib.create_mesh(config.mesh)
    state, shardings = steps.abstract_train_state(config, model, mesh, clip)
    sharding = partitioning.batch_sharding(mesh)
    video_dtype = jnp.uint8 if p.get("data_dtype") == "uint8" else jnp.float32  # as the suite
    batch = {"video": jax.ShapeDtypeStruct((batch_size,) + clip, video_dtype, sharding=sharding),
             "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=sharding)}
    train = steps.make_train_step(config, model, mesh, shardings)
    train_text = train.trace(state, batch).lower(lowering_platforms=("cuda",)).as_text()
    evaluate = steps.make_eval_step(config, model, mesh, shardings)
    eval_text = evaluate.trace(state, batch).lower(lowering_platforms=("cuda",)).as_text()
  return train_text, eval_text, state


def _attention_lengths(text):
  """Sequence lengths L of the cuDNN attention calls' `(B, L, heads, head_dim)` queries."""
  calls = re.findall(r"custom_call @__cudnn\$fmhaSoftmax\([^)]*\)[^\n]*?: \(tensor<(\d+)x(\d+)x",
                     text)
  return {int(length) for _, length in calls}


def _check_no_host_traffic(text):
  targets = set(re.findall(r"custom_call @([^\(\s]+)\(", text))
  assert targets <= ALLOWED_CUSTOM_CALLS, targets - ALLOWED_CUSTOM_CALLS
  for op in HOST_OPS:
    assert op not in text, op
  assert "callback" not in text.lower()


def _matmul_operand_types(text):
  return re.findall(r"stablehlo\.dot_general [^\n]*?: \(tensor<[^>]*x(\w+)>, tensor<[^>]*x(\w+)>\)",
                    text)


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_gpu_preset_lowers_for_cuda_with_fused_attention_and_no_host_traffic(preset):
  assert benchmark.PRESETS[preset]["model"]["attention_impl"] == "cudnn"
  train_text, eval_text, state = _lower(preset)
  for text, backward in ((train_text, True), (eval_text, False)):
    assert text.count("__cudnn$fmhaSoftmax(") > 0
    assert ("__cudnn$fmhaSoftmaxBackward" in text) == backward
    lengths = _attention_lengths(text)
    assert lengths, "no cuDNN attention call found"
    for length in lengths:  # the scores of an L-token attention are never materialised
      assert not re.search(rf"x{length}x{length}x(?:bf16|f16|f32)>", text), length
    _check_no_host_traffic(text)
    types = _matmul_operand_types(text)
    assert types and all(t == ("bf16", "bf16") for t in types), set(types)
  leaves = jax.tree_util.tree_leaves((state.params, state.opt_state))
  floats = [x.dtype for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)]
  assert floats and all(d == jnp.float32 for d in floats), set(floats)


def test_the_xla_attention_materialises_scores_so_the_check_above_can_fail():
  train_text, _, _ = _lower("vivit_b_factorised_dot_product_16x224",
                            {"attention_impl": "xla", "num_layers": 1})
  assert "__cudnn$fmha" not in train_text
  assert re.search(r"x196x196x(?:bf16|f32)>", train_text)  # spatial heads: 14 x 14 tokens per frame


def test_an_odd_token_count_trains_through_cudnn():
  # jax refuses to differentiate cuDNN attention over odd lengths (its bias
  # check sees the empty placeholder bias); the CLS token's 1569 = 8*14*14+1
  # are padded to 1570 with the extra key masked out.
  train_text, _, _ = _lower("vivit_b_spatio_temporal_16x224", {"num_layers": 1})
  assert _attention_lengths(train_text) == {1570}
  assert "__cudnn$fmhaSoftmaxBackward" in train_text


def test_padding_an_odd_length_leaves_the_attention_unchanged():
  from vivit_jax.models.attention import _attend_padded_to_even
  q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 7, 4, 8))
  plain = jax.nn.dot_product_attention(q, k, v, implementation="xla")
  padded = _attend_padded_to_even(q, k, v, "xla")  # the cuDNN path's masking, run by XLA
  assert padded.shape == plain.shape
  assert jnp.max(jnp.abs(padded - plain)) < 1e-5
  grad = lambda f: jax.grad(lambda q: jnp.sum(f(q) ** 2))(q)
  assert jnp.max(jnp.abs(grad(lambda q: _attend_padded_to_even(q, k, v, "xla"))
                         - grad(lambda q: jax.nn.dot_product_attention(q, k, v)))) < 1e-4
