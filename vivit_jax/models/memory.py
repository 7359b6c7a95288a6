"""Analytic device-memory estimate of one training step [bytes].

`training_memory(model, clip, batch_size, optimizer)` adds
  params        4 bytes x P (float32),
  grads         4 bytes x P (float32; the state is donated, so no second copy),
  opt_state     8 bytes x P for AdamW (two float32 moments), 4 for SGD with
                momentum, 0 for plain SGD,
  activations   what the backward pass keeps, per encoder block and token of
                hidden size h, with bf16 compute and fused (flash) attention,
                so no L x L matrix is ever stored:
                  remat "none":  34 h bytes (an attention sub-layer 14 h: its
                      LayerNorm input, q/k/v, attention output; an MLP
                      sub-layer 20 h: LayerNorm input, both hidden
                      activations, output; Korthikanti et al. 2022 without
                      dropout masks), +14 h per extra attention sub-layer
                      (Model 3 has two);
                  "dots" / "dots_no_batch": 20 h (block input + every matmul
                      output; +8 h per extra attention sub-layer);
                  "full": 2 h (the block input) plus one block's "none"
                      activations live during its recomputation;
                plus the input clip (float32 and its bf16 copy).
The estimate leaves out XLA's temporary buffers and fragmentation; expect
the measured peak to be up to ~1.3x it.
"""

from typing import Dict, List, Sequence, Tuple

from vivit_jax.models import embedding as emb
from vivit_jax.models import flops
from vivit_jax.models import masking
from vivit_jax.models.videomae import MaskedVideoAutoencoder

NONE_BYTES = (34, 14)  # per token x hidden: a block, each extra attention sub-layer.
DOTS_BYTES = (20, 8)
OPTIMIZER_BYTES_PER_PARAM = {"adamw": 8, "sgd": 4, "sgd_no_momentum": 0}


def _stacks(model, clip: Sequence[int]) -> List[Tuple[int, int, int, int]]:
  """`(blocks, tokens per clip, hidden, extra attention sub-layers)` per encoder."""
  m = flops._as_model(model)
  if isinstance(m, MaskedVideoAutoencoder):
    grid = emb.token_grid(clip, m.patch_size, m.tubelet_size)
    n = grid[0] * grid[1] * grid[2]
    visible = n - masking.num_masked_tokens(grid, m.mask_type, m.mask_ratio, m.future_frames)
    return [(m.num_layers, visible, m.hidden_size, 0),
            (m.decoder_layers, n, m.decoder_hidden_size, 0)]
  nt, nh, nw = emb.token_grid(clip, m.patch_size, m.tubelet_size, m.frame_stride)
  cls = 1 if m.classifier == "token" else 0
  d = m.hidden_size
  if m.variant == "spatio_temporal":
    return [(m.num_layers, nt * nh * nw + cls, d, 0)]
  if m.variant == "factorised_encoder":
    return [(m.num_layers, nt * (nh * nw + cls), d, 0), (m.temporal_layers, nt + cls, d, 0)]
  extra = 1 if m.variant == "factorised_self_attention" else 0
  return [(m.num_layers, nt * nh * nw, d, extra)]


def activation_bytes(model, clip: Sequence[int], batch_size: int, remat_policy: str) -> int:
  """Activations kept for the backward pass of `batch_size` clips (module docstring)."""
  total, largest_block = 0, 0
  for blocks, tokens, hidden, extra in _stacks(model, clip):
    none = (NONE_BYTES[0] + extra * NONE_BYTES[1]) * hidden * tokens * batch_size
    largest_block = max(largest_block, none)
    if remat_policy == "none":
      total += blocks * none
    elif remat_policy in ("dots", "dots_no_batch"):
      total += blocks * (DOTS_BYTES[0] + extra * DOTS_BYTES[1]) * hidden * tokens * batch_size
    elif remat_policy == "full":
      total += blocks * 2 * hidden * tokens * batch_size
    else:
      raise ValueError(f"unknown remat_policy {remat_policy!r}")
  if remat_policy == "full":
    total += largest_block
  clip_elements = batch_size * clip[0] * clip[1] * clip[2] * clip[3]
  return total + 6 * clip_elements


def training_memory(model, clip: Sequence[int], batch_size: int, optimizer: str = "adamw",
                    remat_policy: str = None) -> Dict[str, int]:
  """`{params, grads, opt_state, activations, total}` in bytes for one train step.

  `clip` is `(T, H, W, C)`; `remat_policy` defaults to the model's.
  """
  m = flops._as_model(model)
  num_params = flops.count_params(m.clone(attention_impl="xla"), clip)  # same shapes
  out = dict(params=4 * num_params, grads=4 * num_params,
             opt_state=OPTIMIZER_BYTES_PER_PARAM[optimizer] * num_params,
             activations=activation_bytes(m, clip, batch_size,
                                          remat_policy or m.remat_policy))
  out["total"] = sum(out.values())
  return out


def lightest_remat_that_fits(model, clip, batch_size, device_bytes: float,
                             optimizer: str = "adamw", headroom: float = 0.75) -> str:
  """The first of none, dots, full whose estimate fits `headroom x device_bytes`."""
  for policy in ("none", "dots", "full"):
    if training_memory(model, clip, batch_size, optimizer, policy)["total"] <= (
        headroom * device_bytes):
      return policy
  return "full"
