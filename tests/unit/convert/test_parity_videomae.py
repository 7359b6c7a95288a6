"""Converted HF VideoMAE models compute what transformers computes (CPU, float32).

Encoders and classifiers: last hidden states and logits. Pretraining: the
same `bool_masked_pos` gives the same reconstruction logits, the same
encoded visible tokens and the same loss (our `reconstruction_targets` +
`reconstruction_loss`), with `norm_pix_loss` on and off.

HF's `fc_norm` and decoder `norm` use torch's LayerNorm eps (1e-5) whatever
`layer_norm_eps` is; the converter sets our `fc_norm_eps` / `decoder_norm_eps`
to match.
"""

import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vivit_jax.convert import convert_huggingface  # pylint: disable=g-import-not-at-top
from vivit_jax.convert import parity  # pylint: disable=g-import-not-at-top

jax.config.update("jax_default_matmul_precision", "highest")

ATOL, RTOL = 1e-4, 1e-5

BASE = dict(image_size=32, num_frames=8, patch_size=8, tubelet_size=2, hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            decoder_hidden_size=16, decoder_num_hidden_layers=1,
            decoder_num_attention_heads=2, decoder_intermediate_size=32)

ODD = dict(image_size=[32, 48], num_frames=6, patch_size=16, tubelet_size=3, hidden_size=48,
           num_hidden_layers=3, num_attention_heads=3, intermediate_size=80,
           hidden_act="gelu_new", layer_norm_eps=1e-5, decoder_hidden_size=24,
           decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
           decoder_intermediate_size=40)

CASES = {
    "model_mean_pooling": ("VideoMAEModel", dict(BASE)),
    "model_layernorm_no_bias": ("VideoMAEModel", dict(BASE, use_mean_pooling=False,
                                                      qv_bias=False)),
    "classification_base": ("VideoMAEForVideoClassification", dict(BASE, num_labels=4)),
    "classification_eps": ("VideoMAEForVideoClassification",
                           dict(BASE, num_labels=4, layer_norm_eps=1e-5)),
    "classification_first_token": ("VideoMAEForVideoClassification",
                                   dict(BASE, num_labels=4, use_mean_pooling=False)),
    "classification_odd": ("VideoMAEForVideoClassification", dict(ODD, num_labels=7,
                                                                  qv_bias=False)),
    "pretraining_base": ("VideoMAEForPreTraining", dict(BASE)),
    "pretraining_norm_pix_eps": ("VideoMAEForPreTraining", dict(BASE, layer_norm_eps=1e-5)),
    "pretraining_raw_pix_layernorm": ("VideoMAEForPreTraining", dict(
        BASE, layer_norm_eps=1e-5, norm_pix_loss=False, use_mean_pooling=False,
        qv_bias=False)),
    "pretraining_odd": ("VideoMAEForPreTraining", dict(ODD, image_size=48, num_frames=4,
                                                       tubelet_size=1)),
}

EXPECTED = {
    "VideoMAEModel": {"last_hidden_state"},
    "VideoMAEForVideoClassification": {"logits", "last_hidden_state"},
    "VideoMAEForPreTraining": {"logits", "last_hidden_state", "loss"},
}


def _compare(hf_model, folder, arch, mask=None, seed=0):
  conversion = convert_huggingface(folder)
  assert conversion.architecture == arch
  video, tube_mask = parity.random_inputs(conversion, batch=2, seed=seed)
  mask = tube_mask if mask is None else mask
  reference = parity.reference_outputs(hf_model, video, mask)
  ours = parity.converted_outputs(conversion, video, mask)
  assert set(reference) == EXPECTED[arch], reference.keys()
  for name in EXPECTED[arch]:
    assert np.std(reference[name]) > 1e-3 or name == "loss", f"{name} is constant"
    np.testing.assert_allclose(ours[name], reference[name], atol=ATOL, rtol=RTOL,
                               err_msg=name)
  return conversion, reference, ours


@pytest.mark.parametrize("case", sorted(CASES))
def test_videomae_parity(case, tmp_path):
  arch, hf_config = CASES[case]
  hf_model = parity.random_hf_model(arch, seed=len(case), **hf_config)
  hf_model.save_pretrained(tmp_path)
  _compare(hf_model, str(tmp_path), arch)


def test_pretraining_random_mask_and_config(tmp_path):
  """A non-tube mask (different per example, same count) and the converted config."""
  arch, hf_config = "VideoMAEForPreTraining", dict(BASE, layer_norm_eps=1e-5)
  hf_model = parity.random_hf_model(arch, seed=11, **hf_config)
  hf_model.save_pretrained(tmp_path)
  rng = np.random.default_rng(5)
  mask = np.stack([rng.permutation(64) < 40 for _ in range(2)])
  assert (mask[0] != mask[1]).any()
  conversion, _, ours = _compare(hf_model, str(tmp_path), arch, mask=mask)
  assert ours["logits"].shape == (2, 40, 2 * 8 * 8 * 3)
  assert conversion.config["encoder_final_norm"] is False  # use_mean_pooling=True
  assert conversion.source["norm_pix_loss"] is True
  assert "norm" not in conversion.params["encoder"]
  assert conversion.params["decoder"]["norm"]["scale"].shape == (16,)


def test_videomae_key_bias_is_zero_and_unused_by_softmax(tmp_path):
  """HF VideoMAE has q/v biases only: our key bias is zeros, query/value are HF's."""
  hf_model = parity.random_hf_model("VideoMAEForVideoClassification", seed=2,
                                    **dict(BASE, num_labels=4))
  hf_model.save_pretrained(tmp_path)
  conversion = convert_huggingface(str(tmp_path))
  attention = conversion.params["encoder"]["block_01"]["attention"]
  assert not np.any(attention["key"]["bias"])
  hf_attention = hf_model.videomae.encoder.layer[1].attention.attention
  np.testing.assert_array_equal(attention["value"]["bias"].reshape(-1),
                                hf_attention.value.bias.detach().numpy())


def test_videomae_torch_bin(tmp_path):
  """`pytorch_model.bin` of a raw `state_dict()` converts like the safetensors file."""
  arch, hf_config = CASES["pretraining_norm_pix_eps"]
  hf_model = parity.random_hf_model(arch, seed=4, **hf_config)
  hf_model.config.save_pretrained(tmp_path)
  torch.save(hf_model.state_dict(), os.path.join(tmp_path, "pytorch_model.bin"))
  _compare(hf_model, str(tmp_path), arch)
