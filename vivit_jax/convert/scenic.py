"""scenic's ViViT checkpoints (`scenic/projects/vivit`) -> our ViViT.

    conversion = convert_scenic("checkpoint_100000", num_frames=32, image_size=224)

Input: a Flax msgpack file (scenic's `checkpoint_N`, a train state whose
`params` / `optimizer/target` hold the model), a `.npz` of flattened names
or an Orbax folder (see `flax_tree.read_flat_tree`). scenic's names:

  Model 1 (spacetime, -> spatio_temporal):
    embedding/{kernel (t, ph, pw, C, D) or (ph, pw, C, D), bias}
    cls (1, 1, D)                                  classifier "token" only
    Transformer/posembed_input/pos_embedding (1, [1 +] nt*nh*nw, D)
    Transformer/encoderblock_{i}/{LayerNorm_0, MultiHeadDotProductAttention_0,
                                  LayerNorm_1, MlpBlock_0/{Dense_0, Dense_1}}
    Transformer/encoder_norm
    pre_logits (with representation_size), output_projection
  Model 2 (factorized_encoder, -> factorised_encoder):
    embedding, cls_SpatialTransformer, SpatialTransformer/..., and
    cls_TemporalTransformer, TemporalTransformer/... with the same layout;
    SpatialTransformer's table is (1, [1 +] nh*nw, D), the temporal one
    (1, [1 +] nt, D).

A 2D `embedding` kernel is scenic's `temporal_sampling` tokeniser: every
frame is patch-embedded on its own, our `tubelet_size=1`.

Not convertible (raise `UnsupportedCheckpointError`): Model 3
(`LayerNorm_space` / `_time` blocks) and Model 4, whose joint position table
over (t, h, w) our factorised models, with separate spatial and temporal
tables, cannot hold; sinusoidal or no position embeddings; spatial and
temporal transformers of different widths or MLP sizes.

Without a CLS token the pooling is not recorded in the checkpoint: scenic's
"gap" (mean, the default) or "0" (first token, our "first").
Flax's `nn.gelu` is the tanh approximation and its LayerNorm eps 1e-6.
"""

from typing import Any, Dict, Optional, Sequence

import numpy as np

from vivit_jax.convert import common
from vivit_jax.convert import flax_tree
from vivit_jax.convert.hf_state_dict import TensorReader
from vivit_jax.models import embedding as emb

ACTIVATION = "gelu_tanh"
LAYER_NORM_EPS = 1e-6
POOLING = {"gap": "gap", "0": "first", "first": "first"}


def _positions(reader: TensorReader, encoder: str, dim: int) -> np.ndarray:
  name = f"{encoder}/posembed_input/pos_embedding"
  if not reader.has(name):
    raise common.UnsupportedCheckpointError(
        f"no {name}: only scenic's learned_1d position embeddings have an equivalent here")
  table = reader.take(name)
  if table.ndim != 3 or table.shape[0] != 1 or table.shape[2] != dim:
    raise ValueError(f"{name} has shape {table.shape}, expected (1, L, {dim})")
  return table[0]


def _square_side(count: int, what: str) -> int:
  side = int(round(np.sqrt(count)))
  if side * side != count:
    raise ValueError(f"{what}: {count} spatial positions are not a square grid; pass "
                     "image_size")
  return side


def _grid(tokens: int, spatial: Optional[int], frames_in_tokens: Optional[int],
          patch, tubelet: int, num_frames: Optional[int], image_size) -> Dict[str, Any]:
  """Input geometry from position-table lengths and whatever the caller gave."""
  ph, pw = emb.as_pair(patch)
  if image_size is not None:
    h, w = emb.as_pair(image_size)
    spatial_given = (h // ph) * (w // pw)
    if spatial is not None and spatial != spatial_given:
      raise ValueError(f"image_size {image_size} gives {spatial_given} patches per frame, "
                       f"the checkpoint's table has {spatial}")
    spatial = spatial_given
  if num_frames is not None:
    nt = num_frames // tubelet
    if frames_in_tokens is not None and nt != frames_in_tokens:
      raise ValueError(f"num_frames {num_frames} gives {nt} time steps, the checkpoint's "
                       f"table has {frames_in_tokens}")
    frames_in_tokens = nt
  if spatial is None and frames_in_tokens is None:
    raise ValueError("the joint position table does not say how it splits into frames and "
                     "patches: pass num_frames or image_size")
  if spatial is None:
    spatial = tokens // frames_in_tokens
  if frames_in_tokens is None:
    frames_in_tokens = tokens // spatial
  if frames_in_tokens * spatial != tokens:
    raise ValueError(f"{frames_in_tokens} time steps x {spatial} patches != {tokens} "
                     "positions in the checkpoint's table")
  if image_size is None:
    side = _square_side(spatial, "scenic checkpoint")
    image_size = (side * ph, side * pw)
  return {"num_frames": frames_in_tokens * tubelet, "image_size": image_size}


def _embedding(reader: TensorReader):
  kernel = reader.take("embedding/kernel")
  if kernel.ndim == 4:
    kernel = kernel[None]
  if kernel.ndim != 5:
    raise ValueError(f"embedding/kernel has shape {kernel.shape}, expected (t, ph, pw, C, D)")
  bias = reader.take("embedding/bias", kernel.shape[-1:])
  return {"projection": {"kernel": kernel, "bias": bias}}


def _cls(reader: TensorReader, name: str, dim: int):
  return reader.take(name, (1, 1, dim)) if reader.has(name) else None


def convert_scenic(path: str, num_frames: Optional[int] = None, image_size=None,
                   pooling: str = "gap", labels: Optional[Sequence[str]] = None
                   ) -> common.Conversion:
  """Converts a scenic ViViT checkpoint (see module docstring).

  Args:
    path: msgpack file, `.npz` or Orbax folder.
    num_frames, image_size: the input the checkpoint was trained on; needed
      (one of them) for Model 1, whose position table spans (t, h, w) and
      does not record the split; Model 2's tables do.
    pooling: "gap" or "0" for checkpoints without a CLS token.
    labels: class names for `output_projection`.
  """
  reader = TensorReader(flax_tree.read_flat_tree(path))
  names = list(reader.names())
  if any("LayerNorm_space" in n or "LayerNorm_time" in n for n in names):
    raise common.UnsupportedCheckpointError(
        f"{path} is scenic's factorized_self_attention model (Model 3): its joint (t, h, w) "
        "position table has no equivalent in our factorised models")
  embedding = _embedding(reader)
  tubelet, ph, pw, channels, dim = embedding["projection"]["kernel"].shape
  factorised = any(n.startswith("SpatialTransformer/") for n in names)
  spatial_name = "SpatialTransformer" if factorised else "Transformer"
  mlp = flax_tree.mlp_dim(reader, spatial_name)
  config = {"name": "vivit", "hidden_size": int(dim),
            "num_layers": flax_tree.num_blocks(reader, spatial_name),
            "num_heads": flax_tree.attention_heads(reader, f"{spatial_name}/encoderblock_0"),
            "mlp_dim": mlp, "patch_size": [int(ph), int(pw)], "tubelet_size": int(tubelet),
            "qkv_bias": flax_tree.has_qkv_bias(reader, spatial_name),
            "activation": ACTIVATION, "layer_norm_eps": LAYER_NORM_EPS,
            "pos_embedding": "learned"}
  params: Dict[str, Any] = {"embedding": embedding}
  pos = _positions(reader, spatial_name, dim)

  if factorised:
    cls = _cls(reader, "cls_SpatialTransformer", dim)
    temporal_cls = _cls(reader, "cls_TemporalTransformer", dim)
    temporal_pos = _positions(reader, "TemporalTransformer", dim)
    prefix = int(cls is not None)
    if (temporal_cls is None) != (cls is None):
      raise common.UnsupportedCheckpointError("one of cls_SpatialTransformer / "
                                              "cls_TemporalTransformer is missing")
    spatial, steps = pos.shape[0] - prefix, temporal_pos.shape[0] - prefix
    grid = _grid(spatial * steps, spatial, steps, (ph, pw), tubelet, num_frames, image_size)
    if (flax_tree.mlp_dim(reader, "TemporalTransformer") != mlp or
        flax_tree.attention_heads(reader, "TemporalTransformer/encoderblock_0") !=
        config["num_heads"]):
      raise common.UnsupportedCheckpointError(
          "scenic's temporal transformer has another MLP size or head count than the "
          "spatial one; our factorised_encoder shares them")
    config.update(variant="factorised_encoder",
                  temporal_layers=flax_tree.num_blocks(reader, "TemporalTransformer"))
    params["encoder"] = flax_tree.encoder(reader, "SpatialTransformer", dim)
    params["temporal_encoder"] = flax_tree.encoder(reader, "TemporalTransformer", dim)
    params["temporal_pos_embedding"] = {"embedding": temporal_pos}
    if cls is not None:
      params["cls_token"], params["temporal_cls_token"] = cls, temporal_cls
  else:
    cls = _cls(reader, "cls", dim)
    prefix = int(cls is not None)
    grid = _grid(pos.shape[0] - prefix, None, None, (ph, pw), tubelet, num_frames,
                 image_size)
    config["variant"] = "spatio_temporal"
    params["encoder"] = flax_tree.encoder(reader, "Transformer", dim)
    if cls is not None:
      params["cls_token"] = cls
  params["pos_embedding"] = {"embedding": pos}

  if cls is not None:
    config["classifier"] = "token"
  elif pooling in POOLING:
    config["classifier"] = POOLING[pooling]
  else:
    raise ValueError(f"pooling must be one of {sorted(POOLING)}, got {pooling!r}")
  config["representation_size"] = None
  if reader.has("pre_logits/kernel"):
    params["pre_logits"] = flax_tree.dense(reader, "pre_logits")
    config["representation_size"] = int(params["pre_logits"]["kernel"].shape[1])
  config["num_classes"] = 0
  if reader.has("output_projection/kernel"):
    params["head"] = flax_tree.dense(reader, "output_projection")
    config["num_classes"] = int(params["head"]["kernel"].shape[1])
  unused = reader.unused()
  if unused:
    raise common.unused_error(unused, path, f"scenic {config['variant']}")
  source = {"format": "scenic", "path": path, "architecture": f"scenic/{config['variant']}",
            **common.geometry(grid["num_frames"], grid["image_size"], channels, tubelet,
                              (ph, pw))}
  return common.make_conversion(config, params, labels, source)
