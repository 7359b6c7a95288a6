"""qwix int8 x int8 -> int32 matmuls of a jax2onnx graph, made runnable and exact.

jax2onnx 0.17 lowers a `dot_general` of two int8 operands accumulating in
int32 (qwix `int8_dynamic`: int8 activations times int8 weights,
`preferred_element_type=int32`) to an `Einsum` or `Gemm` on int8 whose
output stays int8: ONNX Runtime refuses the graph, and int8 accumulation
would overflow anyway. `int8_matmuls_as_integer` replaces each such node by

    Reshape(a, [batch..., K]) -> MatMulInteger(., Reshape(b, [K, N])) -> Reshape([batch..., n...])

whose int32 output is the exact integer product (the graph's next node
already casts it to float32 and applies qwix's scales). Only the pattern of
a projection is rewritten, the activation's trailing dims contracted with
the weight's leading dims (`abc,cde->abde`, `abcd,cde->abe`, a plain 2-D
Gemm); another is refused with a `UnsupportedInt8Graph` naming the node and
the way out (`--onnx-int8 onnxruntime`, which needs no rewrite).

It also makes float -> int8 casts saturate, as XLA's `convert_element_type`
does: qwix divides by absmax / 127.5, so a token's largest activation
rounds to 128, which XLA clamps to 127 but an ONNX `Cast` wraps to -128.
Each such Cast gets a `Clip(-128, 127)` in front.
"""

import math
from typing import Dict, List, Sequence, Tuple

from vivit_jax.common import errors, onnx_deps
from vivit_jax.export import onnx_graph

WHERE = "vivit-export --format onnx --onnx-int8 qwix"
FIX = ("export with --onnx-int8 onnxruntime (ONNX Runtime's own dynamic int8 of the same "
       "weights; export_model(..., int8_dynamic='onnxruntime') from Python)")


class UnsupportedInt8Graph(errors.UserError):
  """An int8 x int8 node of a shape the rewrite does not handle."""

  def __init__(self, what: str):
    super().__init__(what, WHERE, FIX)


def _projection(equation: str) -> Tuple[int, int]:
  """`(batch_rank, contracted_rank)` of a projection's equation; UnsupportedInt8Graph otherwise."""
  ranks = onnx_graph.projection_ranks(equation)
  if ranks is None:
    raise UnsupportedInt8Graph(f"int8 Einsum {equation!r} is not a projection")
  return ranks


def _gemm_is_plain(node, onnx) -> bool:
  attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
  no_c = len(node.input) < 3 or not node.input[2] or attrs.get("beta", 1.0) == 0.0
  return (attrs.get("alpha", 1.0) == 1.0 and not attrs.get("transA", 0)
          and not attrs.get("transB", 0) and no_c)


def _casts_float_to(node, to: int, types: Dict[str, int], onnx) -> bool:
  if node.op_type != "Cast" or types.get(node.input[0]) != onnx.TensorProto.FLOAT:
    return False
  return any(a.name == "to" and a.i == to for a in node.attribute)


def _static_shape(name: str, shapes: Dict[str, Sequence], what: str) -> List[int]:
  dims = shapes.get(name)
  if dims is None or any(not isinstance(d, int) or d <= 0 for d in dims):
    raise UnsupportedInt8Graph(f"{what}: the weight {name!r} has no static shape ({dims})")
  return list(dims)


def int8_matmuls_as_integer(proto):
  """Returns `proto` (an `onnx.ModelProto`, changed in place) with every
  int8 x int8 Einsum / Gemm replaced by MatMulInteger and every float ->
  int8 Cast saturating (module docstring)."""
  onnx = onnx_deps.require("onnx", "vivit-export --format onnx")
  int8 = onnx.TensorProto.INT8
  types, shapes = onnx_graph.value_types_and_shapes(proto, onnx)

  int8_range = [onnx.helper.make_tensor(name, onnx.TensorProto.FLOAT, [], [value])
                for name, value in (("int8_min", -128.0), ("int8_max", 127.0))]
  nodes, rewritten, constants = [], set(), []
  for node in proto.graph.node:
    if _casts_float_to(node, int8, types, onnx):
      clipped = f"{node.input[0]}_saturated"
      nodes.append(onnx.helper.make_node("Clip", [node.input[0], "int8_min", "int8_max"],
                                         [clipped]))
      node.input[0] = clipped
      constants += int8_range
      int8_range = []
    if node.op_type not in ("Einsum", "Gemm") or any(types.get(i) != int8
                                                     for i in node.input[:2]):
      nodes.append(node)
      continue
    if node.op_type == "Gemm":
      if not _gemm_is_plain(node, onnx):
        raise UnsupportedInt8Graph(f"int8 Gemm {node.name} with transposes, alpha or a bias")
      batch, k = 1, 1
    else:
      equation = next(a.s.decode() for a in node.attribute if a.name == "equation")
      batch, k = _projection(equation)
    a, b = node.input[:2]
    b_shape = _static_shape(b, shapes, node.name)
    contracted, kept = math.prod(b_shape[:k]), b_shape[k:]
    prefix = f"{node.name}_int"
    for suffix, dims in (("a_shape", [0] * batch + [contracted]),
                         ("b_shape", [contracted, math.prod(kept)]),
                         ("out_shape", [0] * batch + kept)):
      constants.append(onnx.helper.make_tensor(f"{prefix}_{suffix}", onnx.TensorProto.INT64,
                                               [len(dims)], dims))
    nodes += [
        onnx.helper.make_node("Reshape", [a, f"{prefix}_a_shape"], [f"{prefix}_a"]),
        onnx.helper.make_node("Reshape", [b, f"{prefix}_b_shape"], [f"{prefix}_b"]),
        onnx.helper.make_node("MatMulInteger", [f"{prefix}_a", f"{prefix}_b"],
                              [f"{prefix}_product"], name=f"{prefix}_matmul"),
        onnx.helper.make_node("Reshape", [f"{prefix}_product", f"{prefix}_out_shape"],
                              [node.output[0]]),
    ]
    rewritten.add(node.output[0])
  del proto.graph.node[:]
  proto.graph.node.extend(nodes)
  proto.graph.initializer.extend(constants)
  used = {name for node in proto.graph.node for name in node.input}
  kept_initializers = [init for init in proto.graph.initializer if init.name in used]
  del proto.graph.initializer[:]
  proto.graph.initializer.extend(kept_initializers)  # a dropped Gemm bias
  kept_info = [v for v in proto.graph.value_info if v.name not in rewritten]
  del proto.graph.value_info[:]
  proto.graph.value_info.extend(kept_info)
  return proto
