"""Converted HF ViViT models compute what transformers computes (CPU, float32).

Each case builds a transformers model with random (perturbed) weights,
saves it with `save_pretrained`, converts the folder and compares the
classifier logits / pooler output and the last hidden states.
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

BASE = dict(image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)

CASES = {
    # The shape of google/vivit-b-16x2-kinetics400, shrunk: gelu_fast, qkv_bias.
    "classification_base": ("VivitForVideoClassification", dict(BASE, num_labels=5)),
    # Non-square frames and patches, odd frame count and tubelet, no qkv bias,
    # exact gelu, another eps, three layers, six heads.
    "classification_odd": ("VivitForVideoClassification", dict(
        image_size=[32, 48], num_frames=6, tubelet_size=[3, 8, 16], hidden_size=48,
        num_hidden_layers=3, num_attention_heads=6, intermediate_size=96, qkv_bias=False,
        hidden_act="gelu", layer_norm_eps=1e-5, num_labels=3)),
    # Base model with a pooler narrower than the hidden size; frame-wise tubelets.
    "model_pooler": ("VivitModel", dict(
        image_size=32, num_frames=4, tubelet_size=[1, 16, 16], hidden_size=32,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
        hidden_act="gelu_new", pooler_output_size=24)),
}


def _convert_and_compare(hf_model, folder, seed=0):
  conversion = convert_huggingface(folder)
  video, mask = parity.random_inputs(conversion, batch=2, seed=seed)
  reference = parity.reference_outputs(hf_model, video, mask)
  ours = parity.converted_outputs(conversion, video, mask)
  return conversion, reference, ours


def _assert_parity(reference, ours, expected_outputs):
  assert set(reference) == set(expected_outputs), reference.keys()
  assert set(ours) >= set(expected_outputs), ours.keys()
  for name in expected_outputs:
    assert np.std(reference[name]) > 1e-3, f"{name} is constant: the test would be blind"
    np.testing.assert_allclose(ours[name], reference[name], atol=ATOL, rtol=RTOL,
                               err_msg=name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_vivit_parity(case, tmp_path):
  arch, hf_config = CASES[case]
  hf_model = parity.random_hf_model(arch, seed=len(case), **hf_config)
  hf_model.save_pretrained(tmp_path)
  conversion, reference, ours = _convert_and_compare(hf_model, str(tmp_path))
  assert conversion.architecture == arch
  expected = {"logits", "last_hidden_state"} if arch.endswith("Classification") else {
      "pooled", "last_hidden_state"}
  _assert_parity(reference, ours, expected)


def test_vivit_model_without_pooler(tmp_path):
  """`VivitModel(add_pooling_layer=False)`: our model returns the CLS features."""
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  hf_model = transformers.VivitModel(transformers.VivitConfig(**BASE),
                                     add_pooling_layer=False).eval()
  with torch.no_grad():
    for param in hf_model.parameters():
      param.add_(0.05 * torch.randn_like(param))
  hf_model.save_pretrained(tmp_path)
  conversion, reference, ours = _convert_and_compare(hf_model, str(tmp_path))
  assert conversion.config["num_classes"] == 0
  assert not conversion.config["representation_size"]
  assert "pre_logits" not in conversion.params
  _assert_parity(reference, ours, {"last_hidden_state"})
  video, _ = parity.random_inputs(conversion, batch=2, seed=0)
  features = jax.jit(conversion.model.apply)({"params": conversion.params}, video)
  np.testing.assert_allclose(features, reference["last_hidden_state"][:, 0], atol=ATOL,
                             rtol=RTOL)


def test_vivit_torch_bin_with_in_memory_names(tmp_path):
  """`pytorch_model.bin` of a raw `state_dict()` (transformers 5 names its modules
  `layers.N.attention.q_proj`, ..., unlike the files `save_pretrained` writes)."""
  arch, hf_config = CASES["classification_base"]
  hf_model = parity.random_hf_model(arch, seed=3, **hf_config)
  state = hf_model.state_dict()
  hf_model.config.save_pretrained(tmp_path)
  torch.save(state, os.path.join(tmp_path, "pytorch_model.bin"))
  _, reference, ours = _convert_and_compare(hf_model, str(tmp_path))
  _assert_parity(reference, ours, {"logits", "last_hidden_state"})
