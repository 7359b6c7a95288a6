"""VideoMAE release files (`.pth`, the release's own tensor names) -> our models.

The reference is transformers' VideoMAE with the same random weights: the
test writes a release-named file from the HF model's tensors (q/k/v fused
into one `qkv` matrix, q and v biases separate, as the release stores them)
and checks that the converted model computes what the HF model computes.
"""

import re
from argparse import Namespace

import jax
import numpy as np
import pytest

from vivit_jax import checkpoints
from vivit_jax.convert import UnsupportedCheckpointError, convert_videomae, save_converted
from vivit_jax.models import embedding as emb

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vivit_jax.convert import parity  # pylint: disable=g-import-not-at-top

jax.config.update("jax_default_matmul_precision", "highest")

TINY = dict(image_size=32, num_frames=8, patch_size=8, tubelet_size=2, hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            layer_norm_eps=1e-6, hidden_act="gelu")
DECODER = dict(decoder_hidden_size=16, decoder_num_hidden_layers=1,
               decoder_num_attention_heads=2, decoder_intermediate_size=32)
BLOCK_NAMES = {"layernorm_before": "norm1", "layernorm_after": "norm2",
               "attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1",
               "output.dense": "mlp.fc2"}
TOP_NAMES = {"embeddings.patch_embeddings.projection": "patch_embed.proj",
             "layernorm": "norm", "classifier": "head"}


def release_state(hf_model, pretraining: bool):
  """The HF model's tensors under the release's names (inverse of the converter,
  written out independently)."""
  state = {re.sub(r"^videomae\.", "", k): v.detach().clone()
           for k, v in hf_model.state_dict().items()}
  out, encoder = {}, "encoder." if pretraining else ""
  for name, value in state.items():
    match = re.match(r"^(encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.+)\.(weight|bias)$",
                     name)
    if match:
      part, i, module, kind = match.groups()
      prefix = ("decoder." if part.startswith("decoder") else encoder) + f"blocks.{i}."
      if module.startswith("attention.attention."):
        continue  # fused below
      out[f"{prefix}{BLOCK_NAMES[module]}.{kind}"] = value
      continue
    module, _, kind = name.rpartition(".")
    if module in TOP_NAMES:
      out[f"{encoder}{TOP_NAMES[module]}.{kind}"] = value
    else:
      out[name] = value  # fc_norm, mask_token, encoder_to_decoder, decoder.norm/head
  for name in state:
    match = re.match(r"^(encoder\.layer|decoder\.decoder_layers)\.(\d+)\.attention\.attention"
                     r"\.query\.weight$", name)
    if match:
      part, i = match.groups()
      base = f"{part}.{i}.attention.attention"
      prefix = ("decoder." if part.startswith("decoder") else encoder) + f"blocks.{i}.attn."
      out[prefix + "qkv.weight"] = torch.cat([state[f"{base}.{p}.weight"]
                                              for p in ("query", "key", "value")], 0)
      out[prefix + "q_bias"] = state[f"{base}.query.bias"]
      out[prefix + "v_bias"] = state[f"{base}.value.bias"]
  return out


def _video_and_mask(batch=2, seed=0):
  rng = np.random.default_rng(seed)
  video = rng.standard_normal((batch, 8, 32, 32, 3)).astype(np.float32)
  mask = np.zeros((batch, 4, 16), bool)
  for b in range(batch):
    mask[b, :, rng.permutation(16)[:12]] = True
  return video, mask.reshape(batch, 64)


@pytest.mark.parametrize("mean_pooling", [True, False])
def test_finetuned_release_file_matches_transformers(tmp_path, mean_pooling):
  hf_model = parity.random_hf_model("VideoMAEForVideoClassification", num_labels=5,
                                    use_mean_pooling=mean_pooling, **TINY)
  if mean_pooling:
    hf_model.fc_norm.eps = 1e-6  # the release's fc_norm eps; HF hard-codes torch's 1e-5
  state = release_state(hf_model, pretraining=False)
  assert "blocks.1.attn.qkv.weight" in state and "head.weight" in state
  assert ("fc_norm.weight" in state) == mean_pooling
  # Some files also carry the fixed sinusoid buffer; it must be recognised.
  state["pos_embed"] = torch.from_numpy(emb.sinusoid_table(64, 32)[None])
  path = tmp_path / "videomae_finetuned.pth"
  torch.save({"module": state, "epoch": 3}, path)

  conversion = convert_videomae(str(path), num_heads=4, num_frames=8, image_size=32)
  assert conversion.config["classifier"] == ("gap" if mean_pooling else "first")
  assert conversion.config["pos_embedding"] == "sinusoid"
  video, _ = _video_and_mask()
  ref = parity.reference_outputs(hf_model, video)
  ours = np.asarray(jax.jit(conversion.model.apply)({"params": conversion.params}, video))
  assert ours.shape == (2, 5)
  np.testing.assert_allclose(ours, ref["logits"], atol=2e-5, rtol=1e-4)


def test_pretraining_release_file_matches_transformers(tmp_path):
  hf_model = parity.random_hf_model("VideoMAEForPreTraining", use_mean_pooling=False,
                                    **TINY, **DECODER)
  hf_model.decoder.norm.eps = 1e-6
  state = release_state(hf_model, pretraining=True)
  assert {"encoder.patch_embed.proj.weight", "encoder.norm.weight", "decoder.head.weight",
          "decoder.blocks.0.attn.qkv.weight", "mask_token"} <= set(state)
  path = tmp_path / "videomae_pretrain.pth"
  torch.save({"model": state}, path)

  conversion = convert_videomae(str(path), num_heads=4, decoder_num_heads=2, num_frames=8,
                                image_size=32)
  assert conversion.config["name"] == "videomae"
  assert conversion.config["encoder_final_norm"] is True
  video, mask = _video_and_mask()
  ref = parity.reference_outputs(hf_model, video, mask)
  out = conversion.model.apply({"params": conversion.params}, video, mask)
  np.testing.assert_allclose(np.asarray(out["encoded"]), ref["last_hidden_state"],
                             atol=2e-5, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(out["predictions"]), ref["logits"], atol=2e-5,
                             rtol=1e-4)


def test_saved_checkpoint_restores(tmp_path):
  hf_model = parity.random_hf_model("VideoMAEForVideoClassification", num_labels=3, **TINY)
  torch.save(release_state(hf_model, pretraining=False), tmp_path / "ft.pth")
  conversion = convert_videomae(str(tmp_path / "ft.pth"), num_heads=4, num_frames=8,
                                image_size=32, labels=["a", "b", "c"])
  out = tmp_path / "ckpt"
  save_converted(conversion, str(out))
  config, params = checkpoints.load_model_checkpoint(str(out), conversion.params)
  assert config["labels"] == ["a", "b", "c"]
  assert config["source"]["format"] == "videomae"
  assert config["source"]["num_frames"] == 8 and config["source"]["image_size"] == [32, 32]
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(
      conversion.params)):
    np.testing.assert_array_equal(np.asarray(a), b)


def test_layer_scale_and_leftover_tensors_are_named(tmp_path):
  hf_model = parity.random_hf_model("VideoMAEForVideoClassification", num_labels=3, **TINY)
  state = release_state(hf_model, pretraining=False)
  torch.save({**state, "blocks.0.gamma_1": torch.ones(32)}, tmp_path / "ls.pth")
  with pytest.raises(UnsupportedCheckpointError, match="blocks.0.gamma_1"):
    convert_videomae(str(tmp_path / "ls.pth"), num_heads=4, num_frames=8, image_size=32)
  torch.save({**state, "head_extra.weight": torch.ones(3)}, tmp_path / "extra.pth")
  with pytest.raises(ValueError, match="head_extra.weight"):
    convert_videomae(str(tmp_path / "extra.pth"), num_heads=4, num_frames=8, image_size=32)
  torch.save({"model": state, "args": Namespace(lr=1e-3)}, tmp_path / "args.pth")
  with pytest.raises(ValueError, match="allow-pickle"):
    convert_videomae(str(tmp_path / "args.pth"), num_heads=4, num_frames=8, image_size=32)
  assert convert_videomae(str(tmp_path / "args.pth"), num_heads=4, num_frames=8,
                          image_size=32, allow_pickle=True).config["num_classes"] == 3
  with pytest.raises(UnsupportedCheckpointError, match="num_heads"):
    convert_videomae(str(tmp_path / "extra.pth"), num_frames=8, image_size=32)
