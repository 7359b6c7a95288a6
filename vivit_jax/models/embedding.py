"""Video tokenisers and positional embeddings.

Token order everywhere is (time, height, width), row-major, the order of
Hugging Face's ViViT / VideoMAE and of `bool_masked_pos`.
"""

import numbers
from typing import Any, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.models.axes import EMBED

Dtype = Any
IntOrPair = Union[int, Sequence[int]]

INFLATION_METHODS = ("central_frame", "average")


def as_pair(x: IntOrPair) -> Tuple[int, int]:
  """`(h, w)` ints from an int (square) or a length-2 sequence (`(H, W)`, a list
  from JSON); the one parser of sizes and patch shapes."""
  if isinstance(x, numbers.Integral):
    return (int(x), int(x))
  x = tuple(int(v) for v in x)
  if len(x) != 2:
    raise ValueError(f"expected an int or a pair, got {x}")
  return x


def token_grid(video_shape: Sequence[int], patch_size: IntOrPair, tubelet_size: int,
               frame_stride: int = 1) -> Tuple[int, int, int]:
  """`(nt, nh, nw)` token grid of a video of shape `(T, H, W)` or `(T, H, W, C)`."""
  t, h, w = video_shape[:3]
  ph, pw = as_pair(patch_size)
  t = -(-t // frame_stride)
  for name, size, patch in (("num_frames", t, tubelet_size), ("height", h, ph),
                            ("width", w, pw)):
    if size % patch:
      raise ValueError(f"{name}={size} is not divisible by its patch/tubelet size {patch}")
  return t // tubelet_size, h // ph, w // pw


def inflate_2d_kernel(kernel_2d, tubelet_size: int, method: str = "central_frame"):
  """Turns a 2D patch kernel `(ph, pw, C, D)` into a tubelet kernel `(t, ph, pw, C, D)`.

  central_frame: the 2D kernel at time index t // 2, zeros elsewhere.
  average: the 2D kernel divided by t at every time index.
  Either way a static clip (the same frame t times) embeds exactly as the
  2D model embeds that frame.
  """
  kernel_2d = jnp.asarray(kernel_2d)
  if kernel_2d.ndim != 4:
    raise ValueError(f"2D patch kernel must be (ph, pw, C, D), got {kernel_2d.shape}")
  if method == "average":
    return jnp.broadcast_to(kernel_2d / tubelet_size, (tubelet_size,) + kernel_2d.shape)
  if method == "central_frame":
    kernel = jnp.zeros((tubelet_size,) + kernel_2d.shape, kernel_2d.dtype)
    return kernel.at[tubelet_size // 2].set(kernel_2d)
  raise ValueError(f"inflation method must be one of {INFLATION_METHODS}, got {method!r}")


def sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
  """Fixed sinusoidal table `(num_positions, dim)`, float32.

  Channel 2i is sin(p / 10000^(2i/dim)), channel 2i+1 the matching cos
  (the table of "Attention is all you need", interleaved as VideoMAE does).
  """
  positions = np.arange(num_positions, dtype=np.float64)[:, None]
  exponents = 2 * (np.arange(dim) // 2) / dim
  angles = positions / np.power(10000.0, exponents)[None, :]
  table = np.where(np.arange(dim) % 2 == 0, np.sin(angles), np.cos(angles))
  return table.astype(np.float32)


def interpolate_grid_embedding(pos, old_grid: Sequence[int], new_grid: Sequence[int],
                               method: str = "linear"):
  """Resizes a positional embedding laid out on a token grid.

  Args:
    pos: `(..., prod(old_grid), D)`; leading axes are kept.
    old_grid, new_grid: grids of equal rank, e.g. `(nt, nh, nw)` or `(nh, nw)`.
    method: any `jax.image.resize` method ("linear", "cubic", "nearest").

  Returns:
    `(..., prod(new_grid), D)`.
  """
  old_grid, new_grid = tuple(old_grid), tuple(new_grid)
  if old_grid == new_grid:
    return pos
  lead, dim = pos.shape[:-2], pos.shape[-1]
  if pos.shape[-2] != int(np.prod(old_grid)):
    raise ValueError(f"embedding has {pos.shape[-2]} positions, grid {old_grid} needs "
                     f"{int(np.prod(old_grid))}")
  grid = pos.reshape(lead + old_grid + (dim,))
  grid = jax.image.resize(grid, lead + new_grid + (dim,), method=method)
  return grid.reshape(lead + (int(np.prod(new_grid)), dim))


class TubeletEmbedding(nn.Module):
  """Non-overlapping `t x ph x pw` tubelets, linearly projected (a Conv3D).

  `tubelet_size=1` is ViViT's uniform frame sampling: each of the frames
  kept by `frame_stride` is patch-embedded on its own.

  Input `(B, T, H, W, C)`; output `(B, nt, nh, nw, D)`.
  """

  hidden_size: int
  patch_size: IntOrPair = 16
  tubelet_size: int = 2
  frame_stride: int = 1
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, video):
    if video.ndim != 5:
      raise ValueError(f"video must be (B, T, H, W, C), got shape {video.shape}")
    token_grid(video.shape[1:], self.patch_size, self.tubelet_size, self.frame_stride)
    if self.frame_stride > 1:
      video = video[:, ::self.frame_stride]
    ph, pw = as_pair(self.patch_size)
    tubelet = (self.tubelet_size, ph, pw)
    return nn.Conv(
        self.hidden_size, kernel_size=tubelet, strides=tubelet, padding="VALID",
        dtype=self.dtype, param_dtype=self.param_dtype, name="projection",
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                 (None, None, None, None, EMBED)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (EMBED,)),
    )(video)


class PositionEmbedding(nn.Module):
  """Adds a positional embedding of shape `(num_positions, D)` to `(..., L, D)`.

  kind="learned": a trained parameter named `embedding`, N(0, 0.02) init.
  kind="sinusoid": the fixed table of `sinusoid_table`, no parameter.
  `broadcast_shape` reshapes the table before adding (for the separable
  spatial/temporal embeddings of the factorised models).
  """

  num_positions: int
  kind: str = "learned"
  broadcast_shape: Tuple[int, ...] = ()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    if self.kind == "learned":
      table = self.param(
          "embedding",
          nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, EMBED)),
          (self.num_positions, dim), self.param_dtype)
    elif self.kind == "sinusoid":
      table = jnp.asarray(sinusoid_table(self.num_positions, dim))
    else:
      raise ValueError(f"pos_embedding must be 'learned' or 'sinusoid', got {self.kind!r}")
    shape = self.broadcast_shape or (self.num_positions, dim)
    return x + jnp.asarray(table, self.dtype).reshape(shape)
