"""Canonical HF tensors (see `hf_state_dict`) -> our Flax parameter trees.

Layouts:
  torch Linear weight `(out, in)`          -> Dense kernel `(in, out)`.
  q/k/v Linear weight `(H*hd, D)`          -> DenseGeneral kernel `(D, H, hd)`,
                                              bias `(H*hd,)` -> `(H, hd)`; HF
                                              splits the output features head-major.
  attention output weight `(D, H*hd)`      -> DenseGeneral kernel `(H, hd, D)`.
  Conv3d weight `(D, C, t, ph, pw)`        -> Conv kernel `(t, ph, pw, C, D)`.
  LayerNorm weight / bias                  -> scale / bias.
  ViViT position_embeddings `(1, N+1, D)`  -> `pos_embedding/embedding (N+1, D)`.

VideoMAE has query and value biases but no key bias: the key bias becomes
zeros, which changes nothing (softmax is invariant to adding the same
q.b_k to every logit of a query).
"""

from typing import Any, Dict, Mapping, Optional

import numpy as np

from vivit_jax.convert.hf_state_dict import TensorReader

Params = Dict[str, Any]


def linear(reader: TensorReader, prefix: str, in_dim: int, out_dim: int,
           bias: bool = True) -> Params:
  out = {"kernel": reader.take(f"{prefix}.weight", (out_dim, in_dim)).T}
  if bias:
    out["bias"] = reader.take(f"{prefix}.bias", (out_dim,))
  return out


def layer_norm(reader: TensorReader, prefix: str, dim: int) -> Params:
  return {"scale": reader.take(f"{prefix}.weight", (dim,)),
          "bias": reader.take(f"{prefix}.bias", (dim,))}


def identity_layer_norm(dim: int) -> Params:
  """Affine-free LayerNorm parameters, for a norm HF applies without weights."""
  return {"scale": np.ones((dim,), np.float32), "bias": np.zeros((dim,), np.float32)}


def patch_embedding(reader: TensorReader, prefix: str, hidden: int,
                    geometry: Mapping[str, Any]) -> Params:
  """Conv3d over `(C, T, H, W)` -> our `embedding/projection` (channels-last)."""
  ph, pw = geometry["patch_size"]
  shape = (hidden, geometry["num_channels"], geometry["tubelet_size"], ph, pw)
  kernel = reader.take(f"{prefix}.projection.weight", shape).transpose(2, 3, 4, 1, 0)
  return {"projection": {"kernel": kernel,
                         "bias": reader.take(f"{prefix}.projection.bias", (hidden,))}}


def _qkv(reader: TensorReader, prefix: str, hidden: int, heads: int, bias: bool) -> Params:
  head_dim = hidden // heads
  out = {"kernel": reader.take(f"{prefix}.weight", (hidden, hidden)).T.reshape(
      hidden, heads, head_dim)}
  if bias:
    if prefix.endswith(".key") and not reader.has(f"{prefix}.bias"):
      out["bias"] = np.zeros((heads, head_dim), np.float32)  # VideoMAE: q/v bias only.
    else:
      out["bias"] = reader.take(f"{prefix}.bias", (hidden,)).reshape(heads, head_dim)
  return out


def encoder_block(reader: TensorReader, prefix: str, hidden: int, heads: int, mlp_dim: int,
                  qkv_bias: bool) -> Params:
  """One HF pre-norm layer at `prefix` (e.g. `encoder.layer.3`) -> our `block_03`."""
  attn = f"{prefix}.attention"
  head_dim = hidden // heads
  out_proj = linear(reader, f"{attn}.output.dense", hidden, hidden)
  return {
      "norm_attention": layer_norm(reader, f"{prefix}.layernorm_before", hidden),
      "attention": {
          "query": _qkv(reader, f"{attn}.attention.query", hidden, heads, qkv_bias),
          "key": _qkv(reader, f"{attn}.attention.key", hidden, heads, qkv_bias),
          "value": _qkv(reader, f"{attn}.attention.value", hidden, heads, qkv_bias),
          "out": {"kernel": out_proj["kernel"].reshape(heads, head_dim, hidden),
                  "bias": out_proj["bias"]},
      },
      "norm_mlp": layer_norm(reader, f"{prefix}.layernorm_after", hidden),
      "mlp": {"fc1": linear(reader, f"{prefix}.intermediate.dense", hidden, mlp_dim),
              "fc2": linear(reader, f"{prefix}.output.dense", mlp_dim, hidden)},
  }


def encoder(reader: TensorReader, layer_prefix: str, num_layers: int, hidden: int,
            heads: int, mlp_dim: int, qkv_bias: bool,
            final_norm: Optional[str] = None) -> Params:
  """HF layers `{layer_prefix}.{i}` (+ a final LayerNorm) -> our `Encoder` tree."""
  out = {f"block_{i:02d}": encoder_block(reader, f"{layer_prefix}.{i}", hidden, heads,
                                         mlp_dim, qkv_bias)
         for i in range(num_layers)}
  if final_norm:
    out["norm"] = layer_norm(reader, final_norm, hidden)
  return out


def num_tokens(geometry: Mapping[str, Any]) -> int:
  """Tubelet tokens of the checkpoint's input: `nt * nh * nw`."""
  (h, w), (ph, pw) = geometry["image_size"], geometry["patch_size"]
  return (geometry["num_frames"] // geometry["tubelet_size"]) * (h // ph) * (w // pw)


def classifier_params(reader: TensorReader, config: Mapping[str, Any],
                      geometry: Mapping[str, Any]) -> Params:
  """Any HF ViViT / VideoMAE encoder model -> our `ViViT` parameters.

  `config` is our model config from `hf_config.model_config`.
  """
  d, heads, mlp = config["hidden_size"], config["num_heads"], config["mlp_dim"]
  params: Params = {"embedding": patch_embedding(reader, "embeddings.patch_embeddings", d,
                                                 geometry)}
  if config["classifier"] == "token":
    params["cls_token"] = reader.take("embeddings.cls_token", (1, 1, d))
  if config["pos_embedding"] == "learned":
    n = num_tokens(geometry) + (config["classifier"] == "token")
    params["pos_embedding"] = {
        "embedding": reader.take("embeddings.position_embeddings", (1, n, d))[0]}
  params["encoder"] = encoder(reader, "encoder.layer", config["num_layers"], d, heads, mlp,
                              config["qkv_bias"],
                              final_norm=None if config.get("fc_norm") else "layernorm")
  if config.get("fc_norm"):
    params["fc_norm"] = (layer_norm(reader, "fc_norm", d) if reader.has("fc_norm.weight")
                         else identity_layer_norm(d))
  width = d
  if config.get("representation_size"):
    width = config["representation_size"]
    params["pre_logits"] = linear(reader, "pooler.dense", d, width)
  if config.get("num_classes"):
    params["head"] = linear(reader, "classifier", width, config["num_classes"])
  return params


def pretraining_params(reader: TensorReader, config: Mapping[str, Any],
                       geometry: Mapping[str, Any]) -> Params:
  """HF `VideoMAEForPreTraining` -> our `MaskedVideoAutoencoder` parameters."""
  d, dd = config["hidden_size"], config["decoder_hidden_size"]
  ph, pw = geometry["patch_size"]
  pixels = geometry["tubelet_size"] * ph * pw * geometry["num_channels"]
  return {
      "embedding": patch_embedding(reader, "embeddings.patch_embeddings", d, geometry),
      "encoder": encoder(reader, "encoder.layer", config["num_layers"], d,
                         config["num_heads"], config["mlp_dim"], config["qkv_bias"],
                         final_norm="layernorm" if config["encoder_final_norm"] else None),
      "encoder_to_decoder": linear(reader, "encoder_to_decoder", d, dd, bias=False),
      "mask_token": reader.take("mask_token", (1, 1, dd)),
      "decoder": encoder(reader, "decoder.decoder_layers", config["decoder_layers"], dd,
                         config["decoder_heads"], config["decoder_mlp_dim"],
                         config["qkv_bias"], final_norm="decoder.norm"),
      "decoder_head": linear(reader, "decoder.head", dd, pixels),
  }
