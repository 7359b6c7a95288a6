"""2D ImageNet ViTs -> any ViViT variant, by inflation (ViViT, Sec. 3.4).

    spec = VideoSpec("factorised_encoder", num_frames=32, image_size=224, num_classes=400)
    conversion = convert_vit_npz("ViT-B_16.npz", spec)
    conversion = convert_hf_vit("google_vit_dir", VideoSpec("spatio_temporal", 16))

Sources:
  vit_npz  google-research/vision_transformer and big_vision `.npz` files (or
           a Flax msgpack / Orbax tree, see `flax_tree`):
             embedding/{kernel (ph, pw, C, D), bias}, cls (1, 1, D) (optional),
             Transformer/posembed_input/pos_embedding (1, [1 +] nh*nw, D) or,
             big_vision, pos_embedding (1, nh*nw, D) added before the CLS token,
             Transformer/encoderblock_{i}/..., Transformer/encoder_norm,
             head / pre_logits / MAPHead_0 (image heads, dropped).
           Flax `nn.gelu` is the tanh approximation; LayerNorm eps 1e-6.
  hf_vit   a `save_pretrained` folder of transformers' `ViTModel` /
           `ViTForImageClassification` (`embeddings.*`, `encoder.layer.{i}.*`,
           `layernorm`; `pooler` and `classifier` dropped); activation and
           eps from its config.json.

Both become a 2D tree in our naming (`embedding/projection/kernel (ph, pw, C,
D)`, `cls_token`, `pos_embedding/embedding ([1 +] nh*nw, D)`, `encoder`),
which `transfer.inflate_image_vit` puts into a freshly initialised video
model: the patch kernel becomes a tubelet kernel ("central_frame" or
"average"), the spatial position table is interpolated to the video's grid
(and tiled over time for Model 1), and the temporal parts and the head keep
their fresh init. With "central_frame" or "average" a static clip embeds as
the image does, so the spatial encoder of Model 2 computes exactly the
image ViT on each frame.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jax
import numpy as np

from vivit_jax.convert import common
from vivit_jax.convert import flax_tree
from vivit_jax.convert import hf_config
from vivit_jax.convert import hf_params
from vivit_jax.convert import hf_state_dict
from vivit_jax.convert.hf_state_dict import TensorReader
from vivit_jax.models import build_model
from vivit_jax.models import embedding as emb
from vivit_jax.models import transfer
from vivit_jax.models.vivit import VARIANTS

# Image-classifier parts that have no place in a video model.
DROPPED_NPZ = ("head/", "pre_logits/", "MAPHead_0/")
DROPPED_HF = ("pooler.", "classifier.", "embeddings.mask_token")


@dataclasses.dataclass(frozen=True)
class VideoSpec:
  """The video model to inflate into.

  Attributes:
    variant: one of `vivit.VARIANTS`.
    num_frames, image_size: the video input `(T, H, W)` (`image_size` an
      int or `(H, W)`; None: the image ViT's own resolution).
    tubelet_size: frames per token.
    inflation: "central_frame" or "average".
    num_classes: width of the fresh head (0: pooled features).
    temporal_layers: depth of Model 2's temporal encoder.
    classifier: "token", "gap" or None (token when the ViT has a CLS token
      and the variant takes one, else gap).
    seed: PRNG seed of the fresh parameters.
  """

  variant: str = "spatio_temporal"
  num_frames: int = 32
  image_size: Any = None
  tubelet_size: int = 2
  inflation: str = "central_frame"
  num_classes: int = 0
  temporal_layers: int = 4
  classifier: Optional[str] = None
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class ImageViT:
  """A 2D ViT in our naming (`params`) and what the video model needs of it."""

  params: Dict[str, Any]
  patch_size: Tuple[int, int]
  grid: Tuple[int, int]
  num_channels: int
  num_heads: int
  qkv_bias: bool
  activation: str
  layer_norm_eps: float
  dropped: List[str]

  @property
  def has_cls(self) -> bool:
    return "cls_token" in self.params

  def config_fields(self) -> Dict[str, Any]:
    kernel = self.params["embedding"]["projection"]["kernel"]
    return {"hidden_size": int(kernel.shape[-1]),
            "num_layers": sum(k.startswith("block_") for k in self.params["encoder"]),
            "num_heads": self.num_heads,
            "mlp_dim": int(self.params["encoder"]["block_00"]["mlp"]["fc1"]["kernel"].shape[1]),
            "qkv_bias": self.qkv_bias, "activation": self.activation,
            "layer_norm_eps": self.layer_norm_eps}


def _side(count: int, what: str) -> int:
  side = int(round(np.sqrt(count)))
  if side * side != count:
    raise ValueError(f"{what}: {count} positions are not a square grid")
  return side


def _npz_positions(reader: TensorReader, has_cls: bool, dim: int) -> Tuple[np.ndarray, int]:
  """`([1 +] nh*nw, D)` table (a zero row for a CLS token that had none) and nh."""
  prefix = int(has_cls)
  if reader.has("Transformer/posembed_input/pos_embedding"):
    table = reader.take("Transformer/posembed_input/pos_embedding")[0]
    return table, _side(table.shape[0] - prefix, "Transformer/posembed_input/pos_embedding")
  if not reader.has("pos_embedding"):
    raise common.UnsupportedCheckpointError(
        "no Transformer/posembed_input/pos_embedding nor pos_embedding: fixed (sincos2d) "
        "position embeddings have no learned table to inflate")
  table = reader.take("pos_embedding")[0]
  rows = table.shape[0]
  if has_cls and int(np.sqrt(rows - 1)) ** 2 == rows - 1:  # old big_vision: CLS row inside
    return table, _side(rows - 1, "pos_embedding")
  side = _side(rows, "pos_embedding")
  if has_cls:  # big_vision adds positions before the CLS token: it gets none.
    table = np.concatenate([np.zeros((1, dim), table.dtype), table], axis=0)
  return table, side


def read_vit_npz(path: str) -> ImageViT:
  """A vision_transformer / big_vision checkpoint -> `ImageViT`."""
  reader = TensorReader(flax_tree.read_flat_tree(path))
  kernel = reader.take("embedding/kernel")
  if kernel.ndim != 4:
    raise common.UnsupportedCheckpointError(
        f"{path}: embedding/kernel has shape {kernel.shape}, a 2D ViT's is (ph, pw, C, D)")
  ph, pw, channels, dim = (int(s) for s in kernel.shape)
  params: Dict[str, Any] = {"embedding": {"projection": {
      "kernel": kernel, "bias": reader.take("embedding/bias", (dim,))}}}
  has_cls = reader.has("cls")
  if has_cls:
    params["cls_token"] = reader.take("cls", (1, 1, dim))
  table, side = _npz_positions(reader, has_cls, dim)
  params["pos_embedding"] = {"embedding": table}
  params["encoder"] = flax_tree.encoder(reader, "Transformer", dim)
  dropped = [n for n in reader.unused() if n.startswith(DROPPED_NPZ)]
  unused = [n for n in reader.unused() if not n.startswith(DROPPED_NPZ)]
  if unused:
    raise common.unused_error(unused, path, "2D ViT (hybrid ResNet stems are not supported)")
  return ImageViT(params, (ph, pw), (side, side), channels,
                  flax_tree.attention_heads(reader, "Transformer/encoderblock_0"),
                  flax_tree.has_qkv_bias(reader, "Transformer"), "gelu_tanh", 1e-6, dropped)


def read_hf_vit(folder: str) -> ImageViT:
  """A transformers `ViTModel` / `ViTForImageClassification` folder -> `ImageViT`."""
  hf_cfg = {"model_type": "vit", "image_size": 224, "patch_size": 16, "num_channels": 3,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "qkv_bias": True,
            **common_hf_config(folder)}
  raw = hf_state_dict.read_weights(folder)
  state = hf_state_dict.canonical_state(
      {n[len("vit."):] if n.startswith("vit.") else n: v for n, v in raw.items()})
  reader = TensorReader(state)
  dim, heads = int(hf_cfg["hidden_size"]), int(hf_cfg["num_attention_heads"])
  layers, mlp = int(hf_cfg["num_hidden_layers"]), int(hf_cfg["intermediate_size"])
  ph, pw = emb.as_pair(hf_cfg["patch_size"])
  channels = int(hf_cfg["num_channels"])
  h, w = emb.as_pair(hf_cfg["image_size"])
  grid = (h // ph, w // pw)
  conv = reader.take("embeddings.patch_embeddings.projection.weight", (dim, channels, ph, pw))
  params: Dict[str, Any] = {
      "embedding": {"projection": {
          "kernel": conv.transpose(2, 3, 1, 0),
          "bias": reader.take("embeddings.patch_embeddings.projection.bias", (dim,))}},
      "cls_token": reader.take("embeddings.cls_token", (1, 1, dim)),
      "pos_embedding": {"embedding": reader.take(
          "embeddings.position_embeddings", (1, 1 + grid[0] * grid[1], dim))[0]},
      "encoder": hf_params.encoder(reader, "encoder.layer", layers, dim, heads, mlp,
                                   bool(hf_cfg["qkv_bias"]), final_norm="layernorm"),
  }
  dropped = [n for n in reader.unused() if n.startswith(DROPPED_HF)]
  unused = [n for n in reader.unused() if not n.startswith(DROPPED_HF)]
  if unused:
    raise common.unused_error(unused, folder, "Hugging Face ViT")
  return ImageViT(params, (ph, pw), grid, channels, heads, bool(hf_cfg["qkv_bias"]),
                  hf_config.activation(hf_cfg), float(hf_cfg["layer_norm_eps"]), dropped)


def common_hf_config(folder: str) -> Dict[str, Any]:
  """config.json of a transformers ViT folder (model_type must be "vit")."""
  from vivit_jax.convert.huggingface import read_config  # pylint: disable=g-import-not-at-top
  cfg = read_config(folder)
  if cfg.get("model_type") != "vit":
    raise common.UnsupportedCheckpointError(
        f"{folder}: model_type={cfg.get('model_type')!r}, expected 'vit' (use --from "
        "huggingface for ViViT / VideoMAE folders)")
  return cfg


def video_config(vit: ImageViT, spec: VideoSpec) -> Dict[str, Any]:
  """Our ViViT config for `spec` with the ViT's width, depth, heads and MLP."""
  if spec.variant not in VARIANTS:
    raise ValueError(f"variant must be one of {VARIANTS}, got {spec.variant!r}")
  takes_token = spec.variant in ("spatio_temporal", "factorised_encoder")
  classifier = spec.classifier or ("token" if vit.has_cls and takes_token else "gap")
  config = {"name": "vivit", "variant": spec.variant, "num_classes": int(spec.num_classes),
            "patch_size": list(vit.patch_size), "tubelet_size": int(spec.tubelet_size),
            "classifier": classifier, "pos_embedding": "learned",
            "representation_size": None, **vit.config_fields()}
  if spec.variant == "factorised_encoder":
    config["temporal_layers"] = int(spec.temporal_layers)
  return config


def inflate(vit: ImageViT, spec: VideoSpec, path: str, fmt: str,
            labels: Optional[Sequence[str]] = None) -> common.Conversion:
  """Builds the video model of `spec` and loads the inflated ViT into it."""
  config = video_config(vit, spec)
  image_size = spec.image_size or [g * p for g, p in zip(vit.grid, vit.patch_size)]
  geometry = common.geometry(spec.num_frames, image_size, vit.num_channels,
                             spec.tubelet_size, vit.patch_size)
  model = build_model(config)
  h, w = geometry["image_size"]
  video = np.zeros((1, spec.num_frames, h, w, vit.num_channels), np.float32)
  fresh = jax.jit(model.init)(jax.random.PRNGKey(spec.seed), video)["params"]
  grid = emb.token_grid(video.shape[1:], vit.patch_size, spec.tubelet_size)[1:]
  params = transfer.inflate_image_vit(fresh, vit.params, grid, spec.inflation,
                                      num_prefix_tokens=int(vit.has_cls))
  source = {"format": fmt, "path": path, "architecture": f"image_vit/{spec.variant}",
            "inflation": spec.inflation, "image_grid": list(vit.grid),
            "dropped": vit.dropped, **geometry}
  return common.make_conversion(config, jax.device_get(params), labels, source)


def convert_vit_npz(path: str, spec: VideoSpec = VideoSpec(),
                    labels: Optional[Sequence[str]] = None) -> common.Conversion:
  """A vision_transformer / big_vision ViT file, inflated into `spec`."""
  return inflate(read_vit_npz(path), spec, path, "vit_npz", labels)


def convert_hf_vit(folder: str, spec: VideoSpec = VideoSpec(),
                   labels: Optional[Sequence[str]] = None) -> common.Conversion:
  """A transformers ViT folder, inflated into `spec`."""
  return inflate(read_hf_vit(folder), spec, folder, "hf_vit", labels)
