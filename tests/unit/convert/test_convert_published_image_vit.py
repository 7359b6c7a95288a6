"""2D ViTs (transformers ViT folders, vision_transformer / big_vision `.npz`) ->
inflated ViViT.

Reference: transformers' `ViTModel` on one image. Inflated into Model 2
(factorised encoder), a static clip (that image repeated) passes through the
spatial encoder exactly as the image passes through the ViT, so the spatial
encoder's output tokens of every time step must equal HF's
`last_hidden_state`. The `.npz` files are written here from the same HF
weights in each project's naming, so all three routes meet one reference.
"""

import dataclasses
import re

import flax
import jax
import numpy as np
import pytest

from vivit_jax.convert import UnsupportedCheckpointError, convert_hf_vit, convert_vit_npz
from vivit_jax.convert.image_vit import VideoSpec

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

jax.config.update("jax_default_matmul_precision", "highest")

D, HEADS = 32, 4
SPEC = VideoSpec("factorised_encoder", num_frames=4, image_size=32, tubelet_size=2,
                 num_classes=3, temporal_layers=1)


def random_vit(hidden_act="gelu", layer_norm_eps=1e-12, seed=0):
  torch.manual_seed(seed)
  config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=D,
                                  num_hidden_layers=2, num_attention_heads=HEADS,
                                  intermediate_size=64, hidden_act=hidden_act,
                                  layer_norm_eps=layer_norm_eps)
  model = transformers.ViTModel(config)
  generator = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for param in model.parameters():  # HF's constant inits would hide swaps.
      param.add_(0.05 * torch.randn(param.shape, generator=generator))
  return model.eval()


def _np(t):
  return t.detach().numpy().astype(np.float32)


def to_npz(hf_model, layout: str):
  """HF ViT tensors in vision_transformer's or big_vision's naming."""
  s = {k: _np(v) for k, v in hf_model.state_dict().items()}
  s = {re.sub(r"^layers\.", "encoder.layer.", k): v for k, v in s.items()}
  hd = D // HEADS
  norms, attn, mlp = (("LayerNorm_0", "LayerNorm_2"), "MultiHeadDotProductAttention_1",
                      "MlpBlock_3")
  if layout == "big_vision":
    norms, attn, mlp = ("LayerNorm_0", "LayerNorm_1"), "MultiHeadDotProductAttention_0", \
        "MlpBlock_0"
  out = {"embedding/kernel": s["embeddings.patch_embeddings.projection.weight"].transpose(
      2, 3, 1, 0), "embedding/bias": s["embeddings.patch_embeddings.projection.bias"],
         "cls": s["embeddings.cls_token"],
         "Transformer/encoder_norm/scale": s["layernorm.weight"],
         "Transformer/encoder_norm/bias": s["layernorm.bias"],
         "head/kernel": np.ones((D, 10), np.float32), "head/bias": np.zeros(10, np.float32)}
  pos = s["embeddings.position_embeddings"]
  if layout == "big_vision":
    out["pos_embedding"] = pos[:, 1:]  # added before the CLS token, which gets none
  else:
    out["Transformer/posembed_input/pos_embedding"] = pos
  for i in range(2):
    hf, ours = f"encoder.layer.{i}.", f"Transformer/encoderblock_{i}/"
    weight = lambda n: s[hf + n + ".weight"]
    bias = lambda n: s[hf + n + ".bias"]
    for part, proj in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
      out[f"{ours}{attn}/{part}/kernel"] = weight(f"attention.{proj}").T.reshape(D, HEADS, hd)
      out[f"{ours}{attn}/{part}/bias"] = bias(f"attention.{proj}").reshape(HEADS, hd)
    out[f"{ours}{attn}/out/kernel"] = weight("attention.o_proj").T.reshape(HEADS, hd, D)
    out[f"{ours}{attn}/out/bias"] = bias("attention.o_proj")
    for norm, name in zip(norms, ("layernorm_before", "layernorm_after")):
      out[f"{ours}{norm}/scale"], out[f"{ours}{norm}/bias"] = weight(name), bias(name)
    for dense, name in (("Dense_0", "mlp.fc1"), ("Dense_1", "mlp.fc2")):
      out[f"{ours}{mlp}/{dense}/kernel"], out[f"{ours}{mlp}/{dense}/bias"] = (
          weight(name).T, bias(name))
  if layout == "big_vision":  # a scanned encoder under a train state's params/
    blocks = sorted({k.split("/", 2)[2] for k in out if "encoderblock_" in k})
    for name in blocks:
      out[f"Transformer/encoderblock/{name}"] = np.stack(
          [out.pop(f"Transformer/encoderblock_{i}/{name}") for i in range(2)])
    out = {f"params/{k}": v for k, v in out.items()}
  return out


def spatial_tokens(conversion, video):
  """Model 2's spatial-encoder output `(B * nt, 1 + nh*nw, D)`."""
  def run(params, video):
    _, state = conversion.model.apply(
        {"params": params}, video, mutable=["intermediates"],
        capture_intermediates=lambda m, method: m.name == "encoder" and method == "__call__")
    return state["intermediates"]["encoder"]["__call__"][0]
  return np.asarray(jax.jit(run)(conversion.params, video))


def _check_against_hf(conversion, hf_model, spec=SPEC):
  rng = np.random.default_rng(0)
  image = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
  video = np.repeat(image[:, None], spec.num_frames, axis=1)
  with torch.no_grad():
    ref = hf_model(torch.from_numpy(image.transpose(0, 3, 1, 2))).last_hidden_state.numpy()
  ours = spatial_tokens(conversion, video)
  steps = spec.num_frames // spec.tubelet_size
  assert ours.shape == (2 * steps, 17, D)
  np.testing.assert_allclose(ours, np.repeat(ref, steps, axis=0), atol=3e-5, rtol=1e-4)


def test_hf_vit_folder_inflates_to_the_image_model(tmp_path):
  hf_model = random_vit()
  hf_model.save_pretrained(tmp_path / "vit")
  conversion = convert_hf_vit(str(tmp_path / "vit"), SPEC, labels=["a", "b", "c"])
  assert conversion.config["classifier"] == "token"
  assert conversion.config["activation"] == "gelu"
  assert conversion.source["dropped"] and all(n.startswith("pooler.")
                                              for n in conversion.source["dropped"])
  kernel = conversion.params["embedding"]["projection"]["kernel"]
  assert kernel.shape == (2, 8, 8, 3, D) and not kernel[0].any()  # central frame
  _check_against_hf(conversion, hf_model)


@pytest.mark.parametrize("layout", ["vision_transformer", "big_vision"])
def test_npz_inflates_to_the_image_model(tmp_path, layout):
  hf_model = random_vit(hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
  if layout == "big_vision":
    with torch.no_grad():
      hf_model.embeddings.position_embeddings[:, 0] = 0.0
  path = tmp_path / "vit.npz"
  np.savez(path, **to_npz(hf_model, layout))
  spec = dataclasses.replace(SPEC, inflation="average")
  conversion = convert_vit_npz(str(path), spec)
  assert conversion.config["activation"] == "gelu_tanh"
  assert conversion.source["dropped"] == [f"head/{n}" for n in ("bias", "kernel")]
  kernel = conversion.params["embedding"]["projection"]["kernel"]
  np.testing.assert_allclose(kernel[0], kernel[1])
  _check_against_hf(conversion, hf_model, spec)


def test_spatio_temporal_grid_change_and_errors(tmp_path):
  hf_model = random_vit(hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
  flat = to_npz(hf_model, "vision_transformer")
  path = tmp_path / "vit.msgpack"
  path.write_bytes(flax.serialization.msgpack_serialize(
      {"params": flax.traverse_util.unflatten_dict(flat, sep="/")}))
  spec = VideoSpec("spatio_temporal", num_frames=4, image_size=48, tubelet_size=2)
  conversion = convert_vit_npz(str(path), spec)
  pos = conversion.params["pos_embedding"]["embedding"]
  assert pos.shape == (1 + 2 * 36, D)  # CLS + 2 time steps x 6x6 patches
  np.testing.assert_allclose(pos[0], flat["Transformer/posembed_input/pos_embedding"][0, 0])
  np.testing.assert_allclose(pos[1:37], pos[37:])  # the spatial table repeats over time
  assert conversion.config["num_classes"] == 0 and conversion.source["image_size"] == [48, 48]

  hybrid = dict(flat, **{"conv_root/kernel": np.ones((7, 7, 3, 8), np.float32)})
  np.savez(tmp_path / "hybrid.npz", **hybrid)
  with pytest.raises(ValueError, match="conv_root/kernel"):
    convert_vit_npz(str(tmp_path / "hybrid.npz"), spec)
  no_pos = {k: v for k, v in flat.items() if "posembed" not in k}
  np.savez(tmp_path / "sincos.npz", **no_pos)
  with pytest.raises(UnsupportedCheckpointError, match="sincos2d"):
    convert_vit_npz(str(tmp_path / "sincos.npz"), spec)
