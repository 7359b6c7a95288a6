"""int8 post-training quantization: checkpoints that every loader reads."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import videos as fx
from vivit_jax import checkpoints
from vivit_jax.serving import inference, predict, stream
from vivit_jax.compress import __main__ as compress_cli
from vivit_jax.export import export_checkpoint, load_exported
from vivit_jax.common.params import param_bytes
from vivit_jax.models import build_model, quantized

VIDEO_SHAPE = (fx.INPUT["num_frames"], *fx.INPUT["image_size"], 3)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("compress")
  paths = {"float": fx.make_checkpoint(str(root / "float")),
           "video": fx.write_video(str(root / "clip.mp4"), num_frames=40)}
  for method in quantized.METHODS:
    paths[method] = str(root / method)
    paths[f"{method}_report"] = compress_cli.compress_checkpoint(
        paths["float"], paths[method], method, check_clips=1, progress=False)
  return paths


def _clip(seed=0, batch=1):
  return np.random.default_rng(seed).standard_normal((batch, *VIDEO_SHAPE)).astype(np.float32)


def _float_logits(path, clip):
  config, params = checkpoints.load_model_checkpoint(path)
  return np.asarray(build_model(config["model"]).apply({"params": params}, clip))


@pytest.mark.parametrize("method", sorted(quantized.METHODS))
def test_quantized_checkpoint_round_trips_int8_weights_and_logits(workdir, method):
  config = checkpoints.load_model_config(workdir[method])
  assert config["quantization"]["method"] == method
  assert config["labels"] == fx.LABELS and config["input"] == fx.INPUT
  model, params = checkpoints.load_quantized(workdir[method], build_model(config["model"]),
                                          VIDEO_SHAPE)
  flat = checkpoints.flatten_params(params)
  kernel = "encoder/block_00/attention/query/kernel/array"
  assert flat[f"{kernel}/qvalue"].dtype == jnp.int8 and kernel[:-len("/array")] not in flat
  # Stored int8 values are exactly what quantizing the float weights gives.
  float_config, float_params = checkpoints.load_model_checkpoint(workdir["float"])
  float_model = build_model(float_config["model"])
  _, fresh = quantized.quantize_model_params(float_model, float_params, VIDEO_SHAPE, method)
  for name, value in checkpoints.flatten_params(fresh).items():
    np.testing.assert_array_equal(np.asarray(flat[name]), np.asarray(value), err_msg=name)
  clip = _clip()
  logits = np.asarray(model.apply({"params": params}, clip))
  reference = _float_logits(workdir["float"], clip)
  assert logits.shape == reference.shape == (1, len(fx.LABELS))
  error = np.abs(logits - reference).max()
  assert 0 < error < 0.05 * np.abs(reference).max(), (error, reference)
  report = workdir[f"{method}_report"]
  # Each quantized kernel: 4 bytes -> 1 per weight, plus its float32 scales.
  qvalues = sum(v.size for k, v in flat.items() if k.endswith("/qvalue"))
  scales = sum(v.size * 4 for k, v in flat.items() if k.endswith("/scale") and "/array/" in k)
  assert qvalues > 0
  assert report["param_bytes_after"] == report["param_bytes_before"] - 3 * qvalues + scales
  assert report["param_bytes_after"] == param_bytes(params)


def test_dynamic_range_quantizes_activations_too(workdir):
  config = checkpoints.load_model_config(workdir["int8_dynamic"])
  model, params = checkpoints.load_quantized(workdir["int8_dynamic"], build_model(config["model"]),
                                          VIDEO_SHAPE)
  text = jax.jit(lambda p, x: model.apply({"params": p}, x)).lower(params, _clip()).as_text()
  weight_only = checkpoints.load_quantized(workdir["int8_weight"], build_model(config["model"]),
                                        VIDEO_SHAPE)
  text_w = jax.jit(lambda p, x: weight_only[0].apply({"params": p}, x)).lower(
      weight_only[1], _clip()).as_text()
  int8_dots = lambda t: sum("dot_general" in line and "i8>, tensor" in line
                            for line in t.splitlines())
  assert int8_dots(text) > 0 and int8_dots(text_w) == 0


def test_predict_loads_a_quantized_checkpoint_like_a_float_one(workdir, capsys):
  float_probs = predict.predict_video(inference.load_classifier(workdir["float"]),
                                      workdir["video"])
  classifier = inference.load_classifier(workdir["int8_weight"])
  probs = predict.predict_video(classifier, workdir["video"])
  assert probs.shape == (len(fx.LABELS),)
  np.testing.assert_allclose(probs, float_probs, atol=0.03)
  assert predict.main([f"--checkpoint={workdir['int8_dynamic']}", workdir["video"],
                       "--json"]) == 0
  result = json.loads(capsys.readouterr().out)["results"][0]
  assert result["top_k"][0]["label"] == fx.LABELS[int(np.argmax(float_probs))]


def test_stream_realtime_runs_on_a_quantized_checkpoint(workdir, capsys, tmp_path):
  log = tmp_path / "log.jsonl"
  assert stream.main([f"--checkpoint={workdir['int8_dynamic']}", f"--source={workdir['video']}",
                      "--realtime", "--hop", "4", "--quiet", f"--json-log={log}"]) == 0
  lines = [json.loads(line) for line in log.read_text().splitlines()]
  summary = lines[-1]["summary"]
  assert summary["frames_read"] == 40 and summary["window"] == 15
  taken = summary["frames_processed"]
  assert summary["predictions"] == (taken - 15) // 4 + 1 == len(lines) - 1
  assert all(line["label"] in fx.LABELS for line in lines[:-1])


def test_export_of_a_quantized_checkpoint_matches_the_loaded_model(workdir, tmp_path):
  out = str(tmp_path / "export")
  export_checkpoint(workdir["int8_weight"], out, platforms=("cpu",))
  exported = load_exported(out)
  classifier = inference.load_classifier(workdir["int8_weight"])
  clip = _clip(seed=3, batch=2)
  logits = np.asarray(classifier.model.apply({"params": classifier.params}, clip))
  np.testing.assert_allclose(exported(clip), logits, atol=1e-5, rtol=1e-5)
  with np.load(os.path.join(out, "params.npz")) as data:
    assert data["encoder/block_00/mlp/fc2/kernel/array/qvalue"].dtype == np.int8


def test_cli_refuses_bad_input_with_one_line(workdir, tmp_path, capsys):
  out = str(tmp_path / "again")
  assert compress_cli.main([f"--checkpoint={workdir['int8_weight']}", f"--output={out}",
                            "--method=int8_dynamic"]) == 2
  assert "already quantized" in capsys.readouterr().err
  assert compress_cli.main([f"--checkpoint={workdir['float']}", f"--output={out}",
                            "--method=int8_weight", "--calibration=rms"]) == 2
  assert "rms,<multiple>" in capsys.readouterr().err
  assert compress_cli.main([f"--checkpoint={workdir['float']}",
                            f"--output={workdir['int8_weight']}", "--method=int8_weight"]) == 2
  assert "--force" in capsys.readouterr().err


def test_cli_clipped_calibration_writes_its_config(workdir, tmp_path, capsys):
  out = str(tmp_path / "clipped")
  assert compress_cli.main([f"--checkpoint={workdir['float']}", f"--output={out}",
                            "--method=int8_weight", "--calibration=absmax,0.9",
                            "--check-clips=0"]) == 0
  report = json.loads(capsys.readouterr().out)
  assert report["quantization"]["weight_calibration"] == "absmax,0.9"
  assert checkpoints.load_model_config(out)["quantization"]["weight_calibration"] == "absmax,0.9"
  clipped = inference.load_classifier(out).params
  full = inference.load_classifier(workdir["int8_weight"]).params
  name = "encoder/block_00/mlp/fc1/kernel/array/scale"
  ratio = (np.asarray(checkpoints.flatten_params(clipped)[name])
           / np.asarray(checkpoints.flatten_params(full)[name]))
  np.testing.assert_allclose(ratio, 0.9, rtol=1e-5)


def test_compress_imports_without_tensorflow_or_torch():
  code = ("import sys, vivit_jax.compress, vivit_jax.compress.__main__\n"
          "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch'))\n"
          "assert not bad, bad[:5]\n")
  subprocess.run([sys.executable, "-c", code], check=True)
