"""VideoMAE's own release (MCG-NJU `.pth` files) -> our models.

    conversion = convert_videomae("videomae_base_k400_finetuned.pth")
    conversion = convert_videomae("videomae_base_pretrain.pth")  # -> MaskedVideoAutoencoder

The file's tensors (optionally under a `model` / `module` key) use the
release's names:

  fine-tuned (-> ViViT spatio_temporal, sinusoid positions, no CLS):
    patch_embed.proj.{weight (D, C, t, p, p), bias}
    blocks.{i}.norm1, blocks.{i}.attn.qkv.weight (3D, D) [q; k; v rows],
    blocks.{i}.attn.{q_bias, v_bias} (D,), blocks.{i}.attn.proj,
    blocks.{i}.norm2, blocks.{i}.mlp.{fc1, fc2}
    fc_norm (mean pooling) or norm (first token), head (optional)
  pretraining (-> MaskedVideoAutoencoder):
    encoder.{patch_embed, blocks.{i}, norm}, encoder_to_decoder.weight,
    mask_token (1, 1, Dd), decoder.{blocks.{i}, norm, head}

They are renamed to the canonical Hugging Face names (`hf_state_dict`),
which is what transformers' own VideoMAE conversion does, and converted by
`hf_params`. Attention heads are not recorded in the file: they default to
the release's sizes (`DEFAULT_HEADS`, by width) and can be given. The token
grid is not recorded either (positions are a fixed sinusoid table); the
`num_frames` / `image_size` arguments only describe the expected input.

Every LayerNorm of the release uses eps 1e-6 and the MLP exact GELU.
Layer-scale checkpoints (`gamma_1` / `gamma_2`) have no equivalent here.
"""

import re
from typing import Dict, Optional, Sequence

import numpy as np

from vivit_jax.convert import common
from vivit_jax.convert import hf_params
from vivit_jax.convert.hf_state_dict import TensorReader
from vivit_jax.models import embedding as emb

LAYER_NORM_EPS = 1e-6
# Encoder / decoder width -> attention heads in the release's model factories.
DEFAULT_HEADS = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}
DEFAULT_DECODER_HEADS = {192: 3, 384: 6, 512: 8, 640: 8}

# Block module of the release -> canonical HF module (under `{layers}.{i}.`).
_BLOCK_RENAMES = {
    "norm1": "layernorm_before", "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense", "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense", "attn.q_bias": "attention.attention.query.bias",
    "attn.v_bias": "attention.attention.value.bias",
}
_TOP_RENAMES = {"patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
                "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
                "pos_embed": "embeddings.position_embeddings",
                "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias",
                "head.weight": "classifier.weight", "head.bias": "classifier.bias"}


def _rename_part(state: Dict[str, np.ndarray], layer_prefix: str,
                 top: Dict[str, str]) -> Dict[str, np.ndarray]:
  """One encoder (or the decoder) of the release -> canonical names."""
  out = {}
  for name, value in state.items():
    if re.search(r"\.(gamma_1|gamma_2)$", name):
      raise common.UnsupportedCheckpointError(
          f"tensor {name!r}: layer-scale (init_values > 0) checkpoints have no "
          "equivalent in our blocks")
    match = re.match(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", name)
    if match:
      i, kind = match.groups()
      if value.shape[0] % 3:
        raise ValueError(f"tensor {name!r} has shape {value.shape}: rows are not 3 x width")
      for part, chunk in zip(("query", "key", "value"), np.split(value, 3, axis=0)):
        out[f"{layer_prefix}.{i}.attention.attention.{part}.{kind}"] = chunk
      continue
    match = re.match(r"^blocks\.(\d+)\.(.+?)(\.weight|\.bias|)$", name)
    if match and match.group(2) in _BLOCK_RENAMES:
      i, module, kind = match.groups()
      out[f"{layer_prefix}.{i}.{_BLOCK_RENAMES[module]}{kind}"] = value
    else:
      out[top.get(name, name)] = value
  return out


def canonical_state(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """Release names -> the canonical HF names `hf_params` reads.

  Names the release does not have are kept as they are, so that they show
  up as unconverted tensors.
  """
  state = {name[len("module."):] if name.startswith("module.") else name: value
           for name, value in state.items()}
  if not any(name.startswith("encoder.") for name in state):
    return _rename_part(state, "encoder.layer", _TOP_RENAMES)
  encoder = {n[len("encoder."):]: v for n, v in state.items() if n.startswith("encoder.")}
  decoder = {n[len("decoder."):]: v for n, v in state.items() if n.startswith("decoder.")}
  rest = {n: v for n, v in state.items() if not n.startswith(("encoder.", "decoder."))}
  out = _rename_part(encoder, "encoder.layer", _TOP_RENAMES)
  decoder_top = {"norm.weight": "decoder.norm.weight", "norm.bias": "decoder.norm.bias",
                 "head.weight": "decoder.head.weight", "head.bias": "decoder.head.bias"}
  out.update(_rename_part(decoder, "decoder.decoder_layers", decoder_top))
  for name, value in rest.items():
    if name == "pos_embed":
      continue  # the decoder's fixed sinusoid table, rebuilt by our model.
    out[name] = value
  return out


def _num_layers(names, prefix: str) -> int:
  found = {int(m.group(1)) for n in names for m in [re.match(rf"^{prefix}\.(\d+)\.", n)] if m}
  if found != set(range(len(found))):
    raise ValueError(f"blocks under {prefix!r} are not numbered 0..n-1: {sorted(found)}")
  return len(found)


def _heads(width: int, given: Optional[int], table: Dict[int, int], flag: str) -> int:
  heads = given or table.get(width)
  if not heads:
    raise common.UnsupportedCheckpointError(
        f"width {width} is not one of the release's sizes {sorted(table)}: pass {flag}")
  if width % heads:
    raise ValueError(f"width {width} is not divisible by {heads} heads ({flag})")
  return heads


def _learned_positions(reader: TensorReader, n: int, d: int) -> Optional[np.ndarray]:
  """The fine-tuned model's `pos_embed` if it is learned, None if it is the
  fixed sinusoid table (some files store that buffer too)."""
  name = "embeddings.position_embeddings"
  if not reader.has(name):
    return None
  table = reader.take(name, (1, n, d))[0]
  if np.allclose(table, emb.sinusoid_table(n, d), atol=1e-4):
    return None
  return table


def convert_videomae(path: str, num_heads: Optional[int] = None,
                     decoder_num_heads: Optional[int] = None, num_frames: int = 16,
                     image_size=224, labels: Optional[Sequence[str]] = None,
                     allow_pickle: bool = False) -> common.Conversion:
  """Converts a VideoMAE release file (see module docstring).

  Args:
    path: the `.pth` file.
    num_heads, decoder_num_heads: attention heads (default: by width).
    num_frames, image_size: the input the checkpoint was trained on (16 and
      224 for every file of the release); for a learned `pos_embed` they
      must match its length.
    labels: class names for a fine-tuned head.
    allow_pickle: unpickle Python objects stored beside the weights (runs
      code from the file; see `common.read_torch_state`).
  """
  state = canonical_state(common.read_torch_state(path, allow_pickle))
  reader = TensorReader(state)
  kernel = reader.take("embeddings.patch_embeddings.projection.weight")
  if kernel.ndim != 5 or kernel.shape[3] != kernel.shape[4]:
    raise ValueError(f"{path}: patch_embed.proj.weight has shape {kernel.shape}, expected "
                     "(D, C, t, p, p)")
  d, channels, tubelet, patch = (int(kernel.shape[0]), int(kernel.shape[1]),
                                 int(kernel.shape[2]), int(kernel.shape[3]))
  geometry = common.geometry(num_frames, image_size, channels, tubelet, patch)
  layers = _num_layers(state, r"encoder\.layer")
  mlp_dim = int(state["encoder.layer.0.intermediate.dense.weight"].shape[0])
  common_config = {"hidden_size": d, "num_layers": layers,
                   "num_heads": _heads(d, num_heads, DEFAULT_HEADS, "num_heads"),
                   "mlp_dim": mlp_dim, "patch_size": patch, "tubelet_size": tubelet,
                   "qkv_bias": "encoder.layer.0.attention.attention.query.bias" in state,
                   "activation": "gelu", "layer_norm_eps": LAYER_NORM_EPS}
  pretraining = any(name.startswith("decoder.") for name in state)

  if pretraining:
    dd = int(state["mask_token"].shape[-1])
    config = {"name": "videomae", "pos_embedding": "sinusoid", "num_channels": channels,
              "encoder_final_norm": "layernorm.weight" in state,
              "decoder_hidden_size": dd,
              "decoder_layers": _num_layers(state, r"decoder\.decoder_layers"),
              "decoder_heads": _heads(dd, decoder_num_heads, DEFAULT_DECODER_HEADS,
                                      "decoder_num_heads"),
              "decoder_mlp_dim": int(state["decoder.decoder_layers.0.intermediate.dense."
                                           "weight"].shape[0]),
              "decoder_norm_eps": LAYER_NORM_EPS, **common_config}
    params = hf_params.pretraining_params(reader, config, geometry)
    architecture, labels = "videomae_original/pretraining", None
  else:
    num_classes = int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else 0
    fc_norm = "fc_norm.weight" in state
    config = {"name": "vivit", "variant": "spatio_temporal",
              "classifier": "gap" if fc_norm else "first", "fc_norm": fc_norm,
              "fc_norm_eps": LAYER_NORM_EPS, "pos_embedding": "sinusoid",
              "num_classes": num_classes, "representation_size": None, **common_config}
    learned = _learned_positions(reader, hf_params.num_tokens(geometry), d)
    if learned is not None:
      config["pos_embedding"] = "learned"
    params = hf_params.classifier_params(reader, config, geometry)
    architecture = "videomae_original/finetuned"
  unused = reader.unused()
  if unused:
    raise common.unused_error(unused, path, architecture)
  source = {"format": "videomae", "path": path, "architecture": architecture,
            "norm_pix_loss": True, **geometry}
  return common.make_conversion(config, params, labels, source)
