"""What the rest of the package needs from a model: `ModelInterface`.

A model module defines its Flax module and one `ModelInterface` beside it;
`registry.register_model(name, interface)` makes `model.name=<name>` build
it. Training, evaluation, checkpoint loading, serving and the FLOP counter
read only this interface, so a new model is one file plus one registration
(see docs/architecture.md).
"""

import dataclasses
from typing import Any, Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

OBJECTIVES = ("classification", "pretrain")

# (model, video_shape (T, H, W, C), rng) -> the positional inputs of `model.init`.
DummyInputs = Callable[[nn.Module, Tuple[int, ...], jax.Array], Tuple[Any, ...]]
# (model, video_shape (T, H, W, C)) -> multiply-adds of one forward pass on one clip.
ForwardMacs = Callable[[nn.Module, Tuple[int, ...]], int]


@dataclasses.dataclass(frozen=True)
class ModelInterface:
  """A model as the rest of the package sees it.

  Attributes:
    module: the Flax module class; its dataclass fields are the model
      config's keys (besides `name` and `size`).
    objective: "classification" (`apply(params, video)` -> logits `(B, C)`,
      trained with cross-entropy) or "pretrain" (`apply(params, video, mask)`
      -> dict with `predictions` and `masked_indices`, trained to reconstruct
      the hidden tubelets); the key into `vivit_jax.train.objectives`.
    dummy_inputs: the inputs of batch 1 that `init` needs for a clip shape.
    forward_macs: analytic multiply-adds of one forward pass (None: unknown).
  """

  module: type
  objective: str
  dummy_inputs: DummyInputs
  forward_macs: Optional[ForwardMacs] = None

  def __post_init__(self):
    if self.objective not in OBJECTIVES:
      raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")


def zeros_video(video_shape: Sequence[int]) -> jax.Array:
  """`(1, T, H, W, C)` float32 zeros for a clip shape `(T, H, W, C)` (or `(B, ...)`)."""
  shape = tuple(int(d) for d in video_shape)
  if len(shape) == 5:
    shape = shape[1:]
  if len(shape) != 4:
    raise ValueError(f"video_shape must be (T, H, W, C) or (B, T, H, W, C), got {video_shape}")
  return jnp.zeros((1,) + shape, jnp.float32)


def video_only(model: nn.Module, video_shape: Sequence[int], rng) -> Tuple[Any, ...]:
  """`dummy_inputs` of a model whose only input is the video."""
  del model, rng
  return (zeros_video(video_shape),)


def joint_block_macs(tokens: int, groups: int, hidden: int, mlp_dim: int) -> int:
  """MACs of one pre-norm block over `groups` independent sequences of `tokens` tokens."""
  length = tokens * groups
  projections = 4 * length * hidden * hidden
  attention = 2 * groups * tokens * tokens * hidden
  mlp = 2 * length * hidden * mlp_dim
  return projections + attention + mlp
