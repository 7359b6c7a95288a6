"""The Hugging Face converter as a tool: CLI, checkpoints, detection, errors."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from vivit_jax import checkpoints
from vivit_jax.convert import (UnsupportedCheckpointError, convert_huggingface,
                               from_huggingface, hf_state_dict)
from vivit_jax.models import build_model

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vivit_jax.convert import parity  # pylint: disable=g-import-not-at-top

jax.config.update("jax_default_matmul_precision", "highest")

VIVIT = dict(image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=32,
             num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
VIDEOMAE = dict(image_size=32, num_frames=8, patch_size=8, tubelet_size=2, hidden_size=32,
                num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                decoder_hidden_size=16, decoder_num_hidden_layers=1,
                decoder_num_attention_heads=2, decoder_intermediate_size=32)
LABELS = ["archery", "bowling", "cooking", "dancing", "eating"]


def _save(tmp_path, arch, seed=0, **config):
  hf_model = parity.random_hf_model(arch, seed=seed, **config)
  folder = tmp_path / "hf"
  hf_model.save_pretrained(folder)
  return hf_model, str(folder)


def _edit_config(folder, **changes):
  path = os.path.join(folder, "config.json")
  with open(path) as f:
    config = json.load(f)
  for key, value in changes.items():
    if value is None:
      config.pop(key, None)
    else:
      config[key] = value
  with open(path, "w") as f:
    json.dump(config, f)


@pytest.mark.slow  # a subprocess importing jax/flax/orbax: ~15 s alone, ~30 s under load.
def test_cli_end_to_end_and_restore(tmp_path):
  id2label = dict(enumerate(LABELS))
  hf_model, folder = _save(tmp_path, "VivitForVideoClassification", num_labels=5,
                           id2label=id2label, label2id={v: k for k, v in id2label.items()},
                           **VIVIT)
  out_dir = tmp_path / "ckpt"
  result = subprocess.run(
      [sys.executable, "-m", "vivit_jax.convert", "--from", "huggingface", "--input",
       folder, "--output", str(out_dir)],
      check=True, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1, result.stdout
  n_params = sum(p.numel() for p in hf_model.parameters())
  assert "VivitForVideoClassification" in lines[0] and f"{n_params:,} params" in lines[0]

  with open(out_dir / "config.json") as f:
    written = json.load(f)
  assert set(written) == {"model", "labels", "source"}
  assert written["labels"] == LABELS
  assert written["model"]["name"] == "vivit" and written["model"]["num_classes"] == 5
  assert written["source"]["architecture"] == "VivitForVideoClassification"
  assert written["source"]["num_frames"] == 8 and written["source"]["image_size"] == [32, 32]

  model = build_model(written["model"])
  video, _ = parity.random_inputs(convert_huggingface(folder), batch=2, seed=1)
  expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), video)["params"]
  config, params = checkpoints.load_model_checkpoint(str(out_dir), expected)
  assert config == written
  logits = jax.jit(model.apply)({"params": params}, video)
  reference = parity.reference_outputs(hf_model, video)["logits"]
  np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=1e-5)


def test_checkpoint_into_other_shape_names_the_differing_params(tmp_path):
  _, folder = _save(tmp_path, "VideoMAEForVideoClassification", num_labels=3, **VIDEOMAE)
  conversion = convert_huggingface(folder)
  ckpt = tmp_path / "ckpt"
  checkpoints.save_model_checkpoint(str(ckpt), conversion.params,
                                    conversion.checkpoint_config())
  other = dict(conversion.config, num_layers=3, num_classes=4)
  video = conversion.dummy_inputs()[0]
  expected = jax.eval_shape(build_model(other).init, jax.random.PRNGKey(0), video)["params"]
  with pytest.raises(checkpoints.ParamMismatchError) as error:
    checkpoints.load_model_checkpoint(str(ckpt), expected)
  message = str(error.value)
  assert "missing from checkpoint: encoder/block_02/attention/query/kernel" in message
  assert "shape differs: head/kernel model (32, 4) vs checkpoint (32, 3)" in message
  assert "encoder/block_01" not in message


def test_from_huggingface_returns_buildable_config(tmp_path):
  _, folder = _save(tmp_path, "VideoMAEForPreTraining", **VIDEOMAE)
  model, config, params = from_huggingface(folder)
  assert config["name"] == "videomae"
  assert build_model(config) == model
  assert params["decoder_head"]["kernel"].shape == (16, 2 * 8 * 8 * 3)
  assert all(x.dtype == np.float32 for x in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize("arch,config", [
    ("VivitForVideoClassification", dict(VIVIT, num_labels=3)),
    ("VivitModel", VIVIT),
    ("VideoMAEForPreTraining", VIDEOMAE),
    ("VideoMAEForVideoClassification", dict(VIDEOMAE, num_labels=3)),
    ("VideoMAEModel", VIDEOMAE),
])
def test_architecture_inferred_without_architectures_field(tmp_path, arch, config):
  _, folder = _save(tmp_path, arch, **config)
  _edit_config(folder, architectures=None)
  assert convert_huggingface(folder).architecture == arch


def test_unknown_architecture_names_itself_and_the_supported_ones(tmp_path):
  _, folder = _save(tmp_path, "VivitModel", **VIVIT)
  _edit_config(folder, architectures=["BertModel"], model_type="bert")
  with pytest.raises(UnsupportedCheckpointError, match="BertModel") as error:
    convert_huggingface(folder)
  assert "VideoMAEForPreTraining" in str(error.value) and "VivitModel" in str(error.value)


def test_first_token_videomae_classifier_converts_to_first_pooling(tmp_path):
  _, folder = _save(tmp_path, "VideoMAEForVideoClassification", num_labels=3,
                    use_mean_pooling=False, **VIDEOMAE)
  config = convert_huggingface(folder).config
  assert config["classifier"] == "first" and not config["fc_norm"]


def test_unconverted_tensor_is_an_error(tmp_path):
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  _, folder = _save(tmp_path, "VivitModel", **VIVIT)
  path = os.path.join(folder, "model.safetensors")
  state = load_file(path)
  state["encoder.layer.0.attention.attention.extra_scale"] = np.ones((4,), np.float32)
  save_file(state, path)
  with pytest.raises(ValueError, match="extra_scale"):
    convert_huggingface(folder)


def test_wrong_shape_names_the_tensor(tmp_path):
  _, folder = _save(tmp_path, "VivitModel", **VIVIT)
  _edit_config(folder, num_frames=16)  # the position table was built for 8 frames
  with pytest.raises(ValueError, match="embeddings.position_embeddings"):
    convert_huggingface(folder)


def test_missing_weights_lists_expected_files(tmp_path):
  _, folder = _save(tmp_path, "VivitModel", **VIVIT)
  os.remove(os.path.join(folder, "model.safetensors"))
  with pytest.raises(FileNotFoundError, match="model.safetensors"):
    convert_huggingface(folder)


def test_canonical_names_cover_every_naming():
  names = {
      "vivit.layers.3.attention.q_proj.weight": "encoder.layer.3.attention.attention.query.weight",
      "layers.0.attention.o_proj.bias": "encoder.layer.0.attention.output.dense.bias",
      "vivit.layers.1.mlp.fc1.weight": "encoder.layer.1.intermediate.dense.weight",
      "layers.1.mlp.fc2.bias": "encoder.layer.1.output.dense.bias",
      "videomae.encoder.layer.2.attention.attention.q_bias":
          "encoder.layer.2.attention.attention.query.bias",
      "decoder.decoder_layers.0.attention.attention.v_bias":
          "decoder.decoder_layers.0.attention.attention.value.bias",
      "vivit.embeddings.cls_token": "embeddings.cls_token",
      "classifier.weight": "classifier.weight",
  }
  for stored, canonical in names.items():
    assert hf_state_dict.canonical_name(stored) == canonical, stored


def test_bfloat16_checkpoint_converts_to_float32(tmp_path):
  hf_model = parity.random_hf_model("VivitForVideoClassification", num_labels=3, **VIVIT)
  hf_model.to(torch.bfloat16).save_pretrained(tmp_path)
  conversion = convert_huggingface(str(tmp_path))
  kernel = conversion.params["head"]["kernel"]
  assert kernel.dtype == np.float32
  np.testing.assert_array_equal(kernel, hf_model.classifier.weight.detach().float().numpy().T)


def test_safetensors_conversion_does_not_import_torch(tmp_path):
  _, folder = _save(tmp_path, "VideoMAEForPreTraining", **VIDEOMAE)
  code = ("import sys; sys.modules['torch'] = None\n"
          "from vivit_jax.convert import convert_huggingface\n"
          f"c = convert_huggingface({folder!r})\n"
          "assert c.architecture == 'VideoMAEForPreTraining', c.architecture\n"
          "assert sys.modules['torch'] is None\n")
  subprocess.run([sys.executable, "-c", code], check=True,
                 env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.mark.parametrize("arch,config,expected", [
    ("VivitModel", VIVIT, dict(activation="gelu_tanh", layer_norm_eps=1e-6, qkv_bias=True)),
    ("VideoMAEModel", VIDEOMAE, dict(activation="gelu", layer_norm_eps=1e-12, fc_norm=True)),
])
def test_fields_missing_from_config_take_transformers_defaults(tmp_path, arch, config,
                                                                expected):
  _, folder = _save(tmp_path, arch, **config)
  _edit_config(folder, hidden_act=None, layer_norm_eps=None, qkv_bias=None, qv_bias=None,
               use_mean_pooling=None)
  converted = convert_huggingface(folder).config
  assert {k: converted[k] for k in expected} == expected


def test_cli_verify_prints_small_differences_and_force_overwrites(tmp_path, capsys):
  from vivit_jax.convert import __main__ as convert_cli  # pylint: disable=import-outside-toplevel
  _, folder = _save(tmp_path, "VivitForVideoClassification", num_labels=5, **VIVIT)
  out = tmp_path / "ckpt"
  args = ["--from", "huggingface", "--input", folder, "--output", str(out)]
  assert convert_cli.main(args + ["--verify"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 2 and lines[0].startswith("converted VivitForVideoClassification")
  assert lines[1].startswith("max abs difference vs transformers: "), lines
  diffs = dict(re.findall(r"(\w+)=([-+.\deE]+)", lines[1]))
  assert "logits" in diffs and all(0 <= float(v) < 1e-4 for v in diffs.values()), diffs

  # An existing output is kept unless --force; with it, rewritten.
  (out / "marker").write_text("old")
  with pytest.raises(Exception, match="exist"):
    convert_cli.main(args)
  assert (out / "marker").exists()
  assert convert_cli.main(args + ["--force"]) == 0
  assert checkpoints.load_model_config(str(out))["labels"] is not None

  capsys.readouterr()
  assert convert_cli.main(["--from", "scenic", "--input", folder, "--output", str(out),
                           "--verify"]) == 2
  line, = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("error: --verify compares with transformers (--verify)"), line
