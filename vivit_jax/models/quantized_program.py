"""What a model's matmuls compute in: a census of the dots in its XLA program.

    census = program_dots(model, params, (T, H, W, C))      # lowered and compiled for the CPU
    census.lowered   # Counter {("i8", "i8", "i32"): 73, ("f32", "f32", "f32"): 24}  (StableHLO)
    census.compiled  # Counter {("s8", "s8", "s32", "__ynn_fusion"): 72, ...}        (CPU HLO)

`lowered` counts the `stablehlo.dot_general`s of `jax.jit(...).lower(...)`
by `(lhs, rhs, result)` element type: what JAX and qwix asked for. `compiled`
counts the `dot`s of the compiled CPU program by `(lhs, rhs, result, runner)`:
what XLA:CPU runs. `runner` is the kind of the fusion that holds the dot
(`__ynn_fusion`: a YNNPACK library kernel; `kLoop` etc.: XLA's own code) or
`"xla"` for a dot outside any fusion (XLA's own dot thunk). An int8 matmul
that XLA upcasts shows as an `("s32", "s32", "s32", ...)` or float dot fed by
converts; one that stays int8 shows as `("s8", "s8", "s32", ...)`.
"""

import collections
import dataclasses
import re
from typing import Any, Callable, Counter, Dict, List, Sequence, Tuple

import jax
import jax.numpy as jnp

# `stablehlo.dot_general %a, %b, ... : (tensor<1x64x32xi8>, tensor<32x64xi8>)
#     -> tensor<1x64x64xi32>`
_STABLEHLO_DOT = re.compile(r"stablehlo\.dot_general [^\n]*?: \(tensor<([^>]*)>, tensor<([^>]*)>\)"
                            r" -> tensor<([^>]*)>")
# `  ROOT %dot.1 = s32[64,32]{1,0} dot(%param_0, %param_1), ...`
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\w+)\[[^\]]*\]\S* (\w[\w\-]*)\((.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{$")
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_LIBRARY_KIND = re.compile(r'"kind":"(__\w+)"')
_FUSION_KIND = re.compile(r"kind=(k\w+)")


def _element_type(tensor: str) -> str:
  """`"1x64x32xi8"` -> `"i8"`; `"f32"` (a scalar) -> `"f32"`."""
  return tensor.rsplit("x", 1)[-1]


def stablehlo_dot_types(text: str) -> Counter[Tuple[str, str, str]]:
  """`{(lhs, rhs, result) element types: count}` of a StableHLO module's dot_generals."""
  return collections.Counter(tuple(_element_type(t) for t in match.groups())
                             for match in _STABLEHLO_DOT.finditer(text))


def _computations(text: str) -> Dict[str, List[str]]:
  """`{computation name: its instruction lines}` of an HLO module's text."""
  computations, current = {}, None
  for line in text.splitlines():
    header = _COMPUTATION.match(line)
    if header:
      current = computations.setdefault(header.group(1), [])
    elif line.strip() == "}":
      current = None
    elif current is not None:
      current.append(line)
  return computations


def _runners(computations: Dict[str, List[str]]) -> Dict[str, str]:
  """`{called computation: kind of the fusion that calls it}`."""
  runners = {}
  for lines in computations.values():
    for line in lines:
      called = _CALLS.search(line)
      if called and " fusion(" in line:
        kind = _LIBRARY_KIND.search(line) or _FUSION_KIND.search(line)
        runners[called.group(1)] = kind.group(1) if kind else "fusion"
  return runners


def compiled_dot_types(text: str) -> Counter[Tuple[str, str, str, str]]:
  """`{(lhs, rhs, result, runner): count}` of a compiled HLO module's dots.

  Element types are HLO's (`s8`, `s32`, `f32`); `runner` as in the module
  docstring.
  """
  computations = _computations(text)
  runners = _runners(computations)
  census = collections.Counter()
  for name, lines in computations.items():
    types = {}
    for line in lines:
      instruction = _INSTRUCTION.match(line)
      if not instruction:
        continue
      result, dtype, opcode, rest = instruction.groups()
      types[result] = dtype
      if opcode == "dot":
        operands = re.findall(r"%([\w.\-]+)", rest.split(")", 1)[0])
        lhs, rhs = (types.get(operand, "?") for operand in operands[:2])
        census[(lhs, rhs, dtype, runners.get(name, "xla"))] += 1
  return census


@dataclasses.dataclass(frozen=True)
class DotCensus:
  """The dots of one jitted function: as lowered (StableHLO) and as compiled."""

  lowered: Counter[Tuple[str, str, str]]
  compiled: Counter[Tuple[str, str, str, str]]
  lowered_text: str
  compiled_text: str


def function_dots(fn: Callable[..., Any], *args, backend: str = "cpu") -> DotCensus:
  """`DotCensus` of `jax.jit(fn)(*args)` lowered and compiled for `backend`."""
  device = jax.devices(backend)[0]
  lowered = jax.jit(fn).lower(*jax.device_put(args, device))
  lowered_text = lowered.as_text()
  compiled_text = lowered.compile().as_text()
  return DotCensus(stablehlo_dot_types(lowered_text), compiled_dot_types(compiled_text),
                   lowered_text, compiled_text)


def program_dots(model, params, video_shape: Sequence[int], batch: int = 1,
                 backend: str = "cpu") -> DotCensus:
  """`DotCensus` of `model.apply` on `(batch, *video_shape)` float32 clips `(B, T, H, W, C)`.

  `model` is a Flax model or a `quantized.QuantizedModel` with its (plain) params.
  """
  video = jnp.zeros((batch, *video_shape), jnp.float32)
  return function_dots(lambda p, x: model.apply({"params": p}, x), params, video,
                       backend=backend)
