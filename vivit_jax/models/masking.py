"""Token masks for masked video modelling, with a static kept-token count.

A mask is a boolean `(B, N)` array over tokens in (t, h, w) order, True where
the token is hidden from the encoder, the layout of Hugging Face's
`bool_masked_pos`. Every generator hides the same number of tokens in every
example, a Python int known before tracing, so the encoder's input shape is
static under `jax.jit`.

  tube    one spatial mask shared by every time index (VideoMAE), per example.
  random  independent over all spatio-temporal tokens (MAE-ST).
  future  every token of the last `future_frames` time indices; the
          autoencoder then learns to predict the future from the past.

Dual masking (VideoMAE V2): `decoder_indices` picks, of the tokens hidden
from the encoder, a fixed number the decoder reconstructs, preferring those
a "running cell" pattern keeps (within each 2 x 2 spatial cell, a fraction
of the positions, shifted by one position per time index).
"""

from typing import Sequence, Tuple

import jax
import jax.numpy as jnp

MASK_TYPES = ("tube", "random", "future")
CELL = 4  # positions in a running cell (2 x 2)


def num_masked_tokens(grid: Sequence[int], mask_type: str, mask_ratio: float = 0.9,
                      future_frames: int = 1) -> int:
  """Number of hidden tokens per example for a `(nt, nh, nw)` token grid."""
  nt, nh, nw = grid
  if mask_type == "tube":
    count = int(mask_ratio * nh * nw) * nt
  elif mask_type == "random":
    count = int(mask_ratio * nt * nh * nw)
  elif mask_type == "future":
    if not 0 < future_frames < nt:
      raise ValueError(f"future_frames must be in [1, {nt - 1}] for {nt} time indices, "
                       f"got {future_frames}")
    count = future_frames * nh * nw
  else:
    raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
  if not 0 < count < nt * nh * nw:
    raise ValueError(f"mask_ratio={mask_ratio} hides {count} of {nt * nh * nw} tokens; "
                     "at least one must be hidden and one kept")
  return count


def _random_mask(rng, batch: int, length: int, count: int):
  """`(batch, length)` boolean masks, each with exactly `count` True entries."""
  noise = jax.random.uniform(rng, (batch, length))
  ranks = jnp.argsort(jnp.argsort(noise, axis=1), axis=1)
  return ranks < count


def make_mask(rng, batch: int, grid: Sequence[int], mask_type: str = "tube",
              mask_ratio: float = 0.9, future_frames: int = 1):
  """Draws a `(batch, nt*nh*nw)` boolean mask; True = hidden. See module docstring."""
  nt, nh, nw = grid
  count = num_masked_tokens(grid, mask_type, mask_ratio, future_frames)
  if mask_type == "tube":
    spatial = _random_mask(rng, batch, nh * nw, count // nt)
    return jnp.broadcast_to(spatial[:, None, :], (batch, nt, nh * nw)).reshape(batch, -1)
  if mask_type == "random":
    return _random_mask(rng, batch, nt * nh * nw, count)
  future = jnp.arange(nt) >= nt - future_frames
  return jnp.broadcast_to(future[None, :, None], (batch, nt, nh * nw)).reshape(batch, -1)


def split_indices(mask, num_masked: int) -> Tuple[jax.Array, jax.Array]:
  """Visible and masked token indices, each in ascending position order.

  Args:
    mask: `(B, N)` boolean, True = hidden, exactly `num_masked` True per row.
    num_masked: the static count.

  Returns:
    `visible (B, N - num_masked)` and `masked (B, num_masked)` int32 indices.
  """
  order = jnp.argsort(mask.astype(jnp.int32), axis=1, stable=True).astype(jnp.int32)
  n_visible = mask.shape[1] - num_masked
  return order[:, :n_visible], order[:, n_visible:]


def gather_tokens(x, indices):
  """`x (B, N, D)`, `indices (B, K)` -> `(B, K, D)`."""
  return jnp.take_along_axis(x, indices[..., None], axis=1)


def num_decoded_tokens(num_masked: int, decoder_keep_ratio: float) -> int:
  """Hidden tokens the decoder reconstructs per example (static): the
  `decoder_keep_ratio` fraction of `num_masked`, at least one."""
  if not 0.0 < decoder_keep_ratio <= 1.0:
    raise ValueError(f"decoder_keep_ratio must be in (0, 1], got {decoder_keep_ratio}")
  return max(1, min(num_masked, int(round(decoder_keep_ratio * num_masked))))


def running_cell_keep(grid: Sequence[int], decoder_keep_ratio: float):
  """`(N,)` boolean over tokens in (t, h, w) order: True where the running
  cell keeps the token for the decoder.

  Each 2 x 2 spatial cell keeps `round(4 * decoder_keep_ratio)` (at least 1)
  of its positions, numbered `2 * (h % 2) + (w % 2)`; the kept positions
  rotate by one per time index, so over 4 time indices every position is
  decoded equally often.
  """
  nt, nh, nw = grid
  kept = max(1, min(CELL, int(round(CELL * decoder_keep_ratio))))
  t, h, w = jnp.meshgrid(jnp.arange(nt), jnp.arange(nh), jnp.arange(nw), indexing="ij")
  position = 2 * (h % 2) + (w % 2)
  return (((position + t) % CELL) < kept).reshape(-1)


def decoder_indices(masked_indices, grid: Sequence[int], decoder_keep_ratio: float):
  """`(B, M)` hidden-token positions -> `(B, M_d)` ascending positions the
  decoder reconstructs, `M_d = num_decoded_tokens(M, decoder_keep_ratio)`.

  The running cell's kept tokens come first (in position order), then the
  other hidden tokens, so every example decodes exactly `M_d` tokens (static
  shapes) and `decoder_keep_ratio=1` decodes all of them.
  """
  n = int(grid[0] * grid[1] * grid[2])
  count = num_decoded_tokens(masked_indices.shape[1], decoder_keep_ratio)
  keep = running_cell_keep(grid, decoder_keep_ratio)
  priority = jnp.where(keep[masked_indices], 0, n) + masked_indices
  chosen = jnp.take_along_axis(masked_indices, jnp.argsort(priority, axis=1)[:, :count],
                               axis=1)
  return jnp.sort(chosen, axis=1).astype(jnp.int32)
