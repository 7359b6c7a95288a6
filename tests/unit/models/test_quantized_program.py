"""What the quantized models' matmuls compute in, read from their XLA programs
(models/quantized_program.py): int8_dynamic's dense layers are s8 x s8 -> s32
dots run by XLA:CPU's YNNPACK library kernel (no upcast), int8_weight's are
float32 dots of a dequantized weight, attention's own products stay float32."""

import jax
import jax.numpy as jnp
import pytest

from support import random_params
from vivit_jax.common import params as params_lib
from vivit_jax.models import build_model, quantized
from vivit_jax.models import quantized_program as program

VIDEO = (4, 16, 16, 3)  # 2 x 4 x 4 = 32 tubelet tokens with patch 4, tubelet 2
LAYERS = 2
SMALL = dict(name="vivit", variant="spatio_temporal", hidden_size=32, num_layers=LAYERS,
             num_heads=2, mlp_dim=64, patch_size=4, tubelet_size=2, num_classes=5,
             attention_impl="chunked")
INT8_DOT = ("s8", "s8", "s32")


FLOAT_DOT = ("f32", "f32", "f32")


def _float_dots(compiled):
  """How many compiled dots are f32 x f32 -> f32, whatever runs them."""
  return sum(n for key, n in compiled.items() if key[:3] == FLOAT_DOT)


def _integer_dots(compiled):
  """The compiled census without its f32 dots."""
  return {key: n for key, n in compiled.items() if key[:3] != FLOAT_DOT}


@pytest.fixture(scope="module")
def quantized_models():
  model = build_model(SMALL)
  params = random_params.random_params(model, jnp.zeros((1, *VIDEO)))
  return {method: quantized.quantize_model_params(model, params, VIDEO, method)
          for method in quantized.METHODS}


def _quantized_kernels(qparams):
  return sum(name.endswith("kernel/array/qvalue") for name in params_lib.flatten_params(qparams))


def test_int8_dynamic_dense_layers_are_int8_dots_accumulated_in_int32(quantized_models):
  qmodel, qparams = quantized_models["int8_dynamic"]
  kernels = _quantized_kernels(qparams)  # q, k, v, out, fc1, fc2 per block + head
  assert kernels == 6 * LAYERS + 1
  census = program.program_dots(qmodel, qparams, VIDEO, batch=2)
  assert census.lowered == {("i8", "i8", "i32"): kernels, FLOAT_DOT: 2 * LAYERS}
  # Compiled for the CPU: still int8 operands (no convert to s32 / f32 before
  # the dot), each in a YNNPACK fusion (a library int8 GEMM, not XLA's loops).
  assert _integer_dots(census.compiled) == {(*INT8_DOT, "__ynn_fusion"): kernels}
  assert _float_dots(census.compiled) == 2 * LAYERS  # attention's QK^T and PV


def test_at_batch_one_only_the_head_vector_product_is_upcast(quantized_models):
  qmodel, qparams = quantized_models["int8_dynamic"]
  kernels = _quantized_kernels(qparams)
  census = program.program_dots(qmodel, qparams, VIDEO, batch=1)
  assert census.lowered[("i8", "i8", "i32")] == kernels
  # YNNPACK takes no matrix-vector dot: XLA converts the head's (1, D) x
  # (D, classes) int8 operands to s32 and runs its own dot.
  assert _integer_dots(census.compiled) == {(*INT8_DOT, "__ynn_fusion"): kernels - 1,
                                            ("s32", "s32", "s32", "xla"): 1}


def test_int8_weight_dequantizes_to_float32_dots(quantized_models):
  qmodel, qparams = quantized_models["int8_weight"]
  census = program.program_dots(qmodel, qparams, VIDEO, batch=2)
  assert set(census.lowered) == {FLOAT_DOT}
  dots = 6 * LAYERS + 1 + 2 * LAYERS  # dense layers, head, attention's products
  assert _float_dots(census.compiled) == sum(census.compiled.values()) == dots
  assert "stablehlo.convert" in census.lowered_text  # the int8 kernel, dequantized per call


def test_census_reads_operand_types_through_fusion_parameters():
  a8, b8 = jnp.ones((16, 32), jnp.int8), jnp.ones((32, 24), jnp.int8)
  int_dot = program.function_dots(
      lambda a, b: jax.lax.dot(a, b, preferred_element_type=jnp.int32), a8, b8)
  assert int_dot.lowered == {("i8", "i8", "i32"): 1}
  assert int_dot.compiled == {(*INT8_DOT, "__ynn_fusion"): 1}
  mixed = program.function_dots(  # JAX itself converts u8 x s8 to s32 x s32
      lambda a, b: jax.lax.dot(a, b, preferred_element_type=jnp.int32),
      a8.astype(jnp.uint8), b8)
  assert mixed.lowered == {("i32", "i32", "i32"): 1}
  assert set(mixed.compiled) == {("s32", "s32", "s32", "xla")}
