"""Float projections of a jax2onnx graph as the MatMul + Add ONNX Runtime fuses.

jax2onnx lowers the attention projections (`DenseND`: tokens `(B, N, D)`
times a kernel `(D, heads, head_dim)`, or `(B, N, heads, head_dim)` times
`(heads, head_dim, D)`) to an `Einsum` and a broadcast bias `Add`. ONNX
Runtime runs `Einsum` as a generic contraction and fuses nothing around it,
so these 4 projections a block cost more than the same matmuls in a
`torch.onnx` graph. `projections_as_matmul` rewrites each

    Einsum(x, W) [-> Add(., b)]       (`abc,cde->abde`, `abcd,cde->abe`; W, b initializers)

into

    Reshape(x, [-1, K]) -> MatMul(., W as (K, N)) [-> Add(., b as (N,))] -> Reshape(out)

which ONNX Runtime fuses into one `Gemm` with its bias, as it does for
`torch.onnx`'s `Linear`. The arithmetic is the same matmul (parity tests in
tests/unit/export/test_onnx.py). Leading dims other than the first must be
static for the 2-D form; otherwise the batch dims are kept (`[0, ..., K]`),
still a MatMul. Other Einsums (attention's own, activations on both sides)
are left as they are.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

from vivit_jax.common import onnx_deps


def projection_ranks(equation: str) -> Optional[Tuple[int, int]]:
  """`(batch_rank, contracted_rank)` of `lhs,rhs->out` when it contracts the
  trailing dims of lhs with the leading dims of rhs (a projection), else None."""
  inputs, out = equation.replace(" ", "").split("->")
  lhs, rhs = inputs.split(",")
  k = sum(letter in lhs for letter in rhs)
  batch = len(lhs) - k
  if not (k and lhs[batch:] == rhs[:k] and out == lhs[:batch] + rhs[k:]):
    return None
  return batch, k


def value_types_and_shapes(proto, onnx) -> Tuple[Dict[str, int], Dict[str, List[Optional[int]]]]:
  """Every value's element type and inferred dims (None where symbolic or
  unknown), initializers included: one shape inference over `proto`."""
  inferred = onnx.shape_inference.infer_shapes(proto)
  values = (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
  types = {v.name: v.type.tensor_type.elem_type for v in values}
  shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None
                     for d in v.type.tensor_type.shape.dim] for v in values}
  for init in proto.graph.initializer:
    types[init.name], shapes[init.name] = init.data_type, list(init.dims)
  return types, shapes


def _bias_add(node, consumers, initializers, kept: Sequence[int]):
  """The single `Add` after `node` whose other input is a bias over `kept`
  (leading 1s allowed), or None."""
  after = consumers.get(node.output[0], [])
  if len(after) != 1 or after[0].op_type != "Add":
    return None
  other = next((name for name in after[0].input if name != node.output[0]), None)
  bias = initializers.get(other)
  if bias is None or len(bias.dims) < len(kept):
    return None
  dims = list(bias.dims)
  lead, tail = dims[:len(dims) - len(kept)], dims[len(dims) - len(kept):]
  return after[0] if tail == list(kept) and all(d == 1 for d in lead) else None


def _reshaped_initializer(init, shape: Sequence[int], onnx) -> None:
  array = onnx.numpy_helper.to_array(init).reshape(shape)
  init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))


def projections_as_matmul(proto):
  """Returns `proto` (an `onnx.ModelProto`, changed in place) with its float
  Einsum projections as MatMul + Add (module docstring)."""
  onnx = onnx_deps.require("onnx", "vivit-export --format onnx")
  initializers = {init.name: init for init in proto.graph.initializer}
  consumers: Dict[str, list] = {}
  for node in proto.graph.node:
    for name in node.input:
      consumers.setdefault(name, []).append(node)
  shapes = None  # inferred at the first projection: most int8 graphs have none
  nodes, constants, folded = [], [], set()
  rewritten = set()  # values whose shape changed or that are gone
  for node in proto.graph.node:
    if id(node) in folded:
      continue
    weight = initializers.get(node.input[1]) if node.op_type == "Einsum" else None
    ranks = projection_ranks(next(a.s.decode() for a in node.attribute
                                  if a.name == "equation")) if weight is not None else None
    if (ranks is None or weight.data_type != onnx.TensorProto.FLOAT
        or len(consumers.get(weight.name, [])) != 1):
      nodes.append(node)
      continue
    batch, k = ranks
    shapes = shapes if shapes is not None else value_types_and_shapes(proto, onnx)[1]
    contracted, kept = math.prod(weight.dims[:k]), list(weight.dims[k:])
    batch_dims = (shapes.get(node.input[0]) or [None] * batch)[:batch]
    flat = batch > 0 and all(d is not None for d in batch_dims[1:])
    a_shape = [-1, contracted] if flat else [0] * batch + [contracted]
    out_shape = ([-1, *batch_dims[1:]] if flat else [0] * batch) + kept
    prefix = f"{node.name or node.output[0]}_matmul"
    for suffix, dims in (("a_shape", a_shape), ("out_shape", out_shape)):
      constants.append(onnx.helper.make_tensor(f"{prefix}_{suffix}", onnx.TensorProto.INT64,
                                               [len(dims)], dims))
    _reshaped_initializer(weight, (contracted, math.prod(kept)), onnx)
    rewritten.add(weight.name)
    nodes += [onnx.helper.make_node("Reshape", [node.input[0], f"{prefix}_a_shape"],
                                    [f"{prefix}_a"]),
              onnx.helper.make_node("MatMul", [f"{prefix}_a", weight.name], [f"{prefix}_y"],
                                    name=prefix)]
    result, output = f"{prefix}_y", node.output[0]
    add = _bias_add(node, consumers, initializers, kept)
    bias_name = add and next(name for name in add.input if name != node.output[0])
    if add is not None and len(consumers.get(bias_name, [])) == 1:
      _reshaped_initializer(initializers[bias_name], (math.prod(kept),), onnx)
      rewritten.add(bias_name)
      nodes.append(onnx.helper.make_node("Add", [result, bias_name], [f"{prefix}_biased"]))
      result, output = f"{prefix}_biased", add.output[0]
      folded.add(id(add))
    nodes.append(onnx.helper.make_node("Reshape", [result, f"{prefix}_out_shape"], [output]))
    rewritten.add(node.output[0])
  del proto.graph.node[:]
  proto.graph.node.extend(nodes)
  proto.graph.initializer.extend(constants)
  kept_info = [v for v in proto.graph.value_info if v.name not in rewritten]
  del proto.graph.value_info[:]
  proto.graph.value_info.extend(kept_info)
  return proto
