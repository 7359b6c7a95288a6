"""Masked video autoencoder (VideoMAE / MAE-ST) for self-supervised pretraining.

The encoder sees only the visible tubelet tokens; a light decoder gets the
encoded visible tokens plus a learned mask token at every hidden position
and predicts the pixels of the hidden tubelets. The encoder's parameters
(`embedding`, `encoder`) carry the names of ViViT's `spatio_temporal`
variant, so a pretrained encoder loads into the classifier
(`vivit_jax.models.transfer.encoder_to_classifier`).

A tubelet's pixels are flattened in `(t, ph, pw, C)` order: `patchify` and
`unpatchify` convert between `(B, T, H, W, C)` video and `(B, N, t*ph*pw*C)`
patches.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD
from vivit_jax.models import embedding as emb
from vivit_jax.models import interface
from vivit_jax.models import layers
from vivit_jax.models import masking
from vivit_jax.models.axes import DECODER_EMBED, EMBED

Dtype = Any



def patchify(video, patch_size: emb.IntOrPair, tubelet_size: int):
  """`(B, T, H, W, C)` -> `(B, nt*nh*nw, t*ph*pw*C)`."""
  b, t, h, w, c = video.shape
  ph, pw = emb.as_pair(patch_size)
  nt, nh, nw = emb.token_grid(video.shape[1:], patch_size, tubelet_size)
  x = video.reshape(b, nt, tubelet_size, nh, ph, nw, pw, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
  return x.reshape(b, nt * nh * nw, tubelet_size * ph * pw * c)


def unpatchify(patches, video_shape: Sequence[int], patch_size: emb.IntOrPair,
               tubelet_size: int):
  """Inverse of `patchify`; `video_shape` is `(T, H, W, C)`."""
  t, h, w, c = video_shape
  ph, pw = emb.as_pair(patch_size)
  nt, nh, nw = emb.token_grid(video_shape, patch_size, tubelet_size)
  b = patches.shape[0]
  x = patches.reshape(b, nt, nh, nw, tubelet_size, ph, pw, c)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(b, t, h, w, c)


def _tubelet_stats(patches, channels: int):
  """Per-tubelet, per-channel mean and std (unbiased, as VideoMAE) of `(B, N, P*C)`."""
  x = patches.reshape(patches.shape[:2] + (-1, channels))
  mean = jnp.mean(x, axis=2, keepdims=True)
  std = jnp.sqrt(jnp.var(x, axis=2, keepdims=True, ddof=1))
  return x, mean, std


def reconstruction_targets(video, patch_size, tubelet_size, norm_pix_loss: bool = True,
                           pixel_mean: Optional[Sequence[float]] = IMAGENET_MEAN,
                           pixel_std: Optional[Sequence[float]] = IMAGENET_STD):
  """Pixel targets `(B, N, t*ph*pw*C)` for every tubelet, float32.

  The input video is normalised by `pixel_mean`/`pixel_std` (pass None when
  it is not): targets are built from the unnormalised pixels, and with
  `norm_pix_loss` each tubelet is normalised per channel to zero mean and
  unit (unbiased) std, + 1e-6 in the denominator.
  """
  video = jnp.asarray(video, jnp.float32)
  if pixel_mean is not None and video.shape[-1] == len(pixel_mean):
    video = video * jnp.asarray(pixel_std) + jnp.asarray(pixel_mean)
  patches = patchify(video, patch_size, tubelet_size)
  if not norm_pix_loss:
    return patches
  x, mean, std = _tubelet_stats(patches, video.shape[-1])
  return ((x - mean) / (std + 1e-6)).reshape(patches.shape)


LOSSES = ("l2", "l1")


def reconstruction_errors(predictions, targets, masked_indices, loss: str = "l2"):
  """Per-example mean error `(B,)` over the predicted tubelets only.

  Args:
    predictions: `(B, M, P)` decoder outputs for M hidden tokens.
    targets: `(B, N, P)` from `reconstruction_targets`.
    masked_indices: `(B, M)` positions of the predicted tokens (the model's
      `masked_indices` output).
    loss: "l2" (squared error) or "l1" (absolute error), in target units.
  """
  if loss not in LOSSES:
    raise ValueError(f"reconstruction loss must be one of {LOSSES}, got {loss!r}")
  error = jnp.asarray(predictions, jnp.float32) - masking.gather_tokens(targets, masked_indices)
  error = jnp.square(error) if loss == "l2" else jnp.abs(error)
  return jnp.mean(error, axis=(1, 2))


def reconstruction_loss(predictions, targets, masked_indices, loss: str = "l2"):
  """Mean squared (l2) or absolute (l1) error over the predicted hidden
  tubelets; arguments as `reconstruction_errors`."""
  return jnp.mean(reconstruction_errors(predictions, targets, masked_indices, loss))


def reconstruct_video(video, predictions, masked_indices, patch_size, tubelet_size,
                      norm_pix_loss: bool = True, pixel_mean=IMAGENET_MEAN,
                      pixel_std=IMAGENET_STD):
  """Frames for visualisation: the input with hidden tubelets replaced by predictions.

  Returns `(B, T, H, W, C)` float32 in unnormalised pixel units (0..1 for
  ImageNet-normalised input). Normalised-pixel predictions are mapped back
  with the true tubelet's mean and std, as VideoMAE's visualisation does.
  """
  video = jnp.asarray(video, jnp.float32)
  if pixel_mean is not None and video.shape[-1] == len(pixel_mean):
    video = video * jnp.asarray(pixel_std) + jnp.asarray(pixel_mean)
  patches = patchify(video, patch_size, tubelet_size)
  predictions = jnp.asarray(predictions, jnp.float32)
  if norm_pix_loss:
    channels = video.shape[-1]
    _, mean, std = _tubelet_stats(masking.gather_tokens(patches, masked_indices), channels)
    pred = predictions.reshape(predictions.shape[:2] + (-1, channels))
    predictions = (pred * (std + 1e-6) + mean).reshape(predictions.shape)
  rows = jnp.arange(patches.shape[0])[:, None]
  patches = patches.at[rows, masked_indices].set(predictions)
  return unpatchify(patches, video.shape[1:], patch_size, tubelet_size)


class MaskedVideoAutoencoder(nn.Module):
  """VideoMAE-style autoencoder; see the module docstring.

  `__call__(video, mask)`: video `(B, T, H, W, C)`, mask `(B, N)` boolean
  (True = hidden, same count per example). The count is read from the mask
  when it is concrete; under `jax.jit` it comes from `mask_type` /
  `mask_ratio` / `future_frames`, and a traced mask with another count makes
  the predictions NaN (so a training run's NaN guard stops) rather than
  silently wrong.

  Dual masking (VideoMAE V2): with `decoder_keep_ratio < 1` and
  `train=True` the decoder gets mask tokens for only `M_d =
  num_decoded_tokens(M, decoder_keep_ratio)` of the M hidden tokens, chosen
  by `masking.decoder_indices` (running cell), and predicts those; the loss
  then covers only them. With `train=False` (evaluation) it decodes all M.

  Returns a dict:
    predictions (B, M_d, t*ph*pw*C)  decoder output at the decoded hidden
        tokens (M_d = M without dual masking or at evaluation),
    masked_indices (B, M_d)  their ascending positions (the loss's targets),
    hidden_indices (B, M), visible_indices (B, N - M)  ascending positions
        of all tokens hidden from / shown to the encoder,
    encoded (B, N - M, D)  encoder output for the visible tokens.
  """

  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  patch_size: emb.IntOrPair = 16
  tubelet_size: int = 2
  num_channels: int = 3
  encoder_final_norm: bool = True
  decoder_hidden_size: int = 384
  decoder_layers: int = 4
  decoder_heads: int = 6
  decoder_mlp_dim: int = 1536
  decoder_norm_eps: Optional[float] = None  # final decoder norm; None: layer_norm_eps
  pos_embedding: str = "sinusoid"
  mask_type: str = "tube"
  mask_ratio: float = 0.9
  future_frames: int = 1
  decoder_keep_ratio: float = 1.0  # < 1: dual masking (VideoMAE V2), train only
  drop_path_rate: float = 0.0
  qkv_bias: bool = True
  activation: str = "gelu"
  layer_norm_eps: float = 1e-6
  attention_impl: Optional[str] = "xla"
  remat_policy: str = "none"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _encoder(self, name, num_layers, num_heads, mlp_dim, final_norm, drop_path_rate,
               final_norm_eps=None):
    return layers.Encoder(
        num_layers=num_layers, num_heads=num_heads, mlp_dim=mlp_dim,
        drop_path_rate=drop_path_rate, qkv_bias=self.qkv_bias, activation=self.activation,
        layer_norm_eps=self.layer_norm_eps, final_norm=final_norm,
        final_norm_eps=final_norm_eps,
        attention_impl=self.attention_impl, remat_policy=self.remat_policy,
        dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  def num_masked(self, video_shape, mask=None) -> int:
    """Static number of hidden tokens for `(B, T, H, W, C)` video."""
    if mask is not None:
      try:
        counts = np.asarray(mask).sum(axis=1)
      except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        counts = None  # traced: fall through to the configured count
      if counts is not None:
        if counts.min() != counts.max():
          raise ValueError("every example must hide the same number of tokens, got "
                           f"counts from {counts.min()} to {counts.max()}")
        return int(counts[0])
    grid = emb.token_grid(video_shape[1:], self.patch_size, self.tubelet_size)
    return masking.num_masked_tokens(grid, self.mask_type, self.mask_ratio, self.future_frames)

  @nn.compact
  def __call__(self, video, mask, *, train: bool = False):
    num_masked = self.num_masked(video.shape, mask)
    visible_idx, hidden_idx = masking.split_indices(jnp.asarray(mask), num_masked)

    tokens = emb.TubeletEmbedding(self.hidden_size, self.patch_size, self.tubelet_size,
                                  1, self.dtype, self.param_dtype,
                                  name="embedding")(jnp.asarray(video, self.dtype))
    b, nt, nh, nw, d = tokens.shape
    n = nt * nh * nw
    masked_idx = hidden_idx
    if train and self.decoder_keep_ratio < 1.0:
      masked_idx = masking.decoder_indices(hidden_idx, (nt, nh, nw), self.decoder_keep_ratio)
    num_decoded = masked_idx.shape[1]
    x = tokens.reshape(b, n, d)
    x = emb.PositionEmbedding(n, self.pos_embedding, (), self.dtype, self.param_dtype,
                              name="pos_embedding")(x)
    x = masking.gather_tokens(x, visible_idx)
    encoded = self._encoder("encoder", self.num_layers, self.num_heads, self.mlp_dim,
                            self.encoder_final_norm, self.drop_path_rate)(x, train=train)

    y = nn.Dense(self.decoder_hidden_size, use_bias=False, dtype=self.dtype,
                 param_dtype=self.param_dtype, name="encoder_to_decoder",
                 kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                          (EMBED, DECODER_EMBED)))(encoded)
    mask_token = self.param(
        "mask_token", nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                   (None, None, DECODER_EMBED)),
        (1, 1, self.decoder_hidden_size), self.param_dtype)
    hidden_tokens = jnp.broadcast_to(jnp.asarray(mask_token, y.dtype),
                                     (b, num_decoded, self.decoder_hidden_size))
    # Decoder positional embeddings, added after the gather so each token
    # keeps the embedding of its own position.
    positions = emb.PositionEmbedding(n, self.pos_embedding, (), self.dtype,
                                      self.param_dtype, name="decoder_pos_embedding")(
                                          jnp.zeros((1, n, self.decoder_hidden_size),
                                                    self.dtype))
    positions = jnp.broadcast_to(positions, (b, n, self.decoder_hidden_size))
    y = jnp.concatenate([y + masking.gather_tokens(positions, visible_idx),
                         hidden_tokens + masking.gather_tokens(positions, masked_idx)], axis=1)
    y = self._encoder("decoder", self.decoder_layers, self.decoder_heads,
                      self.decoder_mlp_dim, True, 0.0, self.decoder_norm_eps)(y, train=train)
    y = y[:, y.shape[1] - num_decoded:]
    count_ok = jnp.all(jnp.sum(jnp.asarray(mask, jnp.int32), axis=1) == num_masked)
    ph, pw = emb.as_pair(self.patch_size)
    pixels_per_token = self.tubelet_size * ph * pw * self.num_channels
    predictions = nn.Dense(pixels_per_token, dtype=self.dtype, param_dtype=self.param_dtype,
                           name="decoder_head",
                           kernel_init=nn.with_logical_partitioning(
                               nn.initializers.xavier_uniform(), (DECODER_EMBED, None)),
                           bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                                                  (None,)))(y)
    return {
        "predictions": jnp.where(count_ok, jnp.asarray(predictions, jnp.float32), jnp.nan),
        "masked_indices": masked_idx,
        "hidden_indices": hidden_idx,
        "visible_indices": visible_idx,
        "encoded": encoded,
    }


def dummy_inputs(model: MaskedVideoAutoencoder, video_shape, rng):
  """`(video (1, T, H, W, C), mask (1, N))` for `init`, the mask drawn from `rng`."""
  video = interface.zeros_video(video_shape)
  grid = emb.token_grid(video.shape[1:], model.patch_size, model.tubelet_size)
  return video, masking.make_mask(rng, 1, grid, model.mask_type, model.mask_ratio,
                                  model.future_frames)


def forward_macs(m: MaskedVideoAutoencoder, video_shape) -> int:
  """Multiply-adds of one forward pass on one clip `(T, H, W, C)` (`flops.py` convention)."""
  grid = emb.token_grid(video_shape, m.patch_size, m.tubelet_size)
  channels = video_shape[3] if len(video_shape) > 3 else 3
  ph, pw = emb.as_pair(m.patch_size)
  n = int(np.prod(grid))
  masked = masking.num_masked_tokens(grid, m.mask_type, m.mask_ratio, m.future_frames)
  visible = n - masked
  pixels = m.tubelet_size * ph * pw * channels
  block = interface.joint_block_macs
  macs = n * pixels * m.hidden_size
  macs += m.num_layers * block(visible, 1, m.hidden_size, m.mlp_dim)
  macs += visible * m.hidden_size * m.decoder_hidden_size
  macs += m.decoder_layers * block(n, 1, m.decoder_hidden_size, m.decoder_mlp_dim)
  return macs + masked * m.decoder_hidden_size * pixels


INTERFACE = interface.ModelInterface(module=MaskedVideoAutoencoder, objective="pretrain",
                                     dummy_inputs=dummy_inputs, forward_macs=forward_macs)
