"""Hugging Face ViViT / VideoMAE `config.json` -> our model config.

The architecture comes from `architectures[0]` in config.json; when that is
missing or names a class we do not know, it is inferred from `model_type`
and the canonical tensor names (see `hf_state_dict`).

  VivitModel                     ViViT spatio_temporal, CLS token, learned
                                 positions, num_classes=0; with its pooler,
                                 representation_size=pooler_output_size (the
                                 model returns HF's `pooler_output`), without
                                 it the final-norm CLS features.
  VivitForVideoClassification    the same with `head` = HF's `classifier`.
  VideoMAEModel                  ViViT spatio_temporal, "gap", fixed sinusoid
                                 positions, num_classes=0; use_mean_pooling
                                 -> fc_norm=True (no encoder norm; our fc_norm
                                 gets an identity affine, HF has none), else
                                 the encoder norm (HF's `layernorm`).
  VideoMAEForVideoClassification use_mean_pooling: "gap" + fc_norm; without
                                 it "first" (the first patch token after
                                 the encoder norm).
  VideoMAEForPreTraining         MaskedVideoAutoencoder.
"""

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

from vivit_jax.models import registry
from vivit_jax.models.embedding import as_pair

VIVIT_ARCHITECTURES = ("VivitModel", "VivitForVideoClassification")
VIDEOMAE_ARCHITECTURES = ("VideoMAEModel", "VideoMAEForVideoClassification",
                          "VideoMAEForPreTraining")
ARCHITECTURES = VIVIT_ARCHITECTURES + VIDEOMAE_ARCHITECTURES

# HF `hidden_act` -> our `activation`. gelu_new / gelu_fast / gelu_pytorch_tanh
# are all the tanh approximation.
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}

# torch.nn.LayerNorm's default, which HF VideoMAE uses for `fc_norm` and the
# decoder's final `norm` whatever `layer_norm_eps` says.
TORCH_LAYER_NORM_EPS = 1e-5


# transformers' defaults for the fields we read, for config.json files that
# leave some out (save_pretrained writes them all).
DEFAULTS = {
    "vivit": dict(image_size=224, num_frames=32, tubelet_size=[2, 16, 16], num_channels=3,
                  hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, hidden_act="gelu_fast", layer_norm_eps=1e-6,
                  qkv_bias=True, pooler_act="tanh"),
    "videomae": dict(image_size=224, patch_size=16, num_channels=3, num_frames=16,
                     tubelet_size=2, hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                     layer_norm_eps=1e-12, qv_bias=True, use_mean_pooling=True,
                     decoder_num_attention_heads=6, decoder_hidden_size=384,
                     decoder_num_hidden_layers=4, decoder_intermediate_size=1536,
                     norm_pix_loss=True),
}


class UnsupportedCheckpointError(ValueError):
  """The checkpoint uses an architecture or option our models cannot express."""


def _compact(pair: Sequence[int]):
  """An int for square sizes (as our configs write them), else a list."""
  return pair[0] if pair[0] == pair[1] else list(pair)


def detect_architecture(hf_config: Mapping[str, Any], names: Iterable[str]) -> str:
  """One of ARCHITECTURES for a config.json and the canonical tensor names."""
  declared = list(hf_config.get("architectures") or [])
  for arch in declared:
    if arch in ARCHITECTURES:
      return arch
  names = set(names)
  model_type = hf_config.get("model_type")
  if model_type not in ("vivit", "videomae"):
    raise UnsupportedCheckpointError(
        f"unsupported Hugging Face checkpoint: architectures={declared}, "
        f"model_type={model_type!r}; supported architectures: {list(ARCHITECTURES)}")
  has_classifier = any(n.startswith("classifier.") for n in names)
  if model_type == "vivit":
    return "VivitForVideoClassification" if has_classifier else "VivitModel"
  if any(n.startswith("decoder.") for n in names):
    return "VideoMAEForPreTraining"
  return "VideoMAEForVideoClassification" if has_classifier else "VideoMAEModel"


def with_defaults(arch: str, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
  """config.json with transformers' defaults filled in for `arch`'s model type."""
  family = "vivit" if arch in VIVIT_ARCHITECTURES else "videomae"
  config = {**DEFAULTS[family], **hf_config}
  if family == "videomae" and "qkv_bias" in hf_config and "qv_bias" not in hf_config:
    config["qv_bias"] = hf_config["qkv_bias"]  # the name older configs used
  return config


def activation(hf_config: Mapping[str, Any]) -> str:
  act = hf_config["hidden_act"]
  if act not in ACTIVATIONS:
    raise UnsupportedCheckpointError(
        f"hidden_act={act!r} has no equivalent here; supported: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[act]


def input_geometry(arch: str, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
  """The video shape the checkpoint was built for: frames, (H, W), channels,
  tubelet length and spatial patch `(ph, pw)`."""
  hf_config = with_defaults(arch, hf_config)
  image = as_pair(hf_config["image_size"])
  if arch in VIVIT_ARCHITECTURES:
    tubelet = [int(v) for v in hf_config["tubelet_size"]]
    t, patch = tubelet[0], (tubelet[1], tubelet[2])
  else:
    t, patch = int(hf_config["tubelet_size"]), as_pair(hf_config["patch_size"])
  return {"num_frames": int(hf_config["num_frames"]), "image_size": list(image),
          "num_channels": int(hf_config["num_channels"]), "tubelet_size": t,
          "patch_size": list(patch)}


def _common(hf_config: Mapping[str, Any], geometry: Mapping[str, Any]) -> Dict[str, Any]:
  hidden, heads = int(hf_config["hidden_size"]), int(hf_config["num_attention_heads"])
  if hidden % heads:
    raise UnsupportedCheckpointError(
        f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
  return {
      "hidden_size": hidden,
      "num_layers": int(hf_config["num_hidden_layers"]),
      "num_heads": heads,
      "mlp_dim": int(hf_config["intermediate_size"]),
      "patch_size": _compact(geometry["patch_size"]),
      "tubelet_size": geometry["tubelet_size"],
      "activation": activation(hf_config),
      "layer_norm_eps": float(hf_config["layer_norm_eps"]),
  }


def _with_optional_eps(config: Dict[str, Any], field: str, value: float) -> Dict[str, Any]:
  """Sets `field` (a per-norm epsilon) when our model has it.

  HF VideoMAE's fc_norm and decoder norm use torch's default eps (1e-5), not
  `layer_norm_eps`; until our models have a separate field for them they
  share `layer_norm_eps`, and outputs differ slightly unless the two agree.
  """
  if field in registry.model_fields(config["name"]):
    config[field] = value
  return config


def model_config(arch: str, hf_config: Mapping[str, Any], names: Iterable[str],
                 num_classes: int = 0, pooler_size: Optional[int] = None) -> Dict[str, Any]:
  """Our model config (for `build_model`) for a detected architecture.

  Args:
    arch: one of ARCHITECTURES.
    hf_config: the parsed config.json.
    names: canonical tensor names (decide which optional parts exist).
    num_classes: rows of HF's `classifier.weight` (0 when absent).
    pooler_size: rows of VivitModel's `pooler.dense.weight` (None when absent).
  """
  names = set(names)
  hf_config = with_defaults(arch, hf_config)
  geometry = input_geometry(arch, hf_config)
  common = _common(hf_config, geometry)
  if arch in VIVIT_ARCHITECTURES:
    pooler_act = hf_config["pooler_act"]
    if pooler_size and pooler_act != "tanh":
      raise UnsupportedCheckpointError(
          f"VivitModel pooler_act={pooler_act!r}: our pre_logits layer is dense+tanh only")
    return {"name": "vivit", "variant": "spatio_temporal", "classifier": "token",
            "pos_embedding": "learned", "num_classes": num_classes,
            "representation_size": pooler_size or None,
            "qkv_bias": bool(hf_config["qkv_bias"]), **common}

  qkv_bias = bool(hf_config["qv_bias"])
  mean_pooling = bool(hf_config["use_mean_pooling"])
  if arch == "VideoMAEForPreTraining":
    config = {"name": "videomae", "pos_embedding": "sinusoid", "qkv_bias": qkv_bias,
              "num_channels": geometry["num_channels"],
              "encoder_final_norm": not mean_pooling,
              "decoder_hidden_size": int(hf_config["decoder_hidden_size"]),
              "decoder_layers": int(hf_config["decoder_num_hidden_layers"]),
              "decoder_heads": int(hf_config["decoder_num_attention_heads"]),
              "decoder_mlp_dim": int(hf_config["decoder_intermediate_size"]),
              **common}
    return _with_optional_eps(config, "decoder_norm_eps", TORCH_LAYER_NORM_EPS)

  fc_norm = "fc_norm.weight" in names or (arch == "VideoMAEModel" and mean_pooling)
  # Without mean pooling, VideoMAE classifies the first patch token (no CLS).
  first_token = arch == "VideoMAEForVideoClassification" and not fc_norm
  config = {"name": "vivit", "variant": "spatio_temporal",
            "classifier": "first" if first_token else "gap",
            "fc_norm": fc_norm, "pos_embedding": "sinusoid", "num_classes": num_classes,
            "representation_size": None, "qkv_bias": qkv_bias, **common}
  if fc_norm and arch == "VideoMAEForVideoClassification":
    config = _with_optional_eps(config, "fc_norm_eps", TORCH_LAYER_NORM_EPS)
  return config
