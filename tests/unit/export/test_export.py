"""Exported inference functions (StableHLO via jax.export, TF SavedModel via
jax2tf) compute the Flax model's logits."""

import json
import os
import sys

import flax
import jax
import numpy as np
import pytest

from vivit_jax import checkpoints
from vivit_jax.export import __main__ as export_cli
from vivit_jax.export import export_checkpoint, load_exported
from vivit_jax.export.saved_model import TensorFlowMissingError
from vivit_jax.models import build_model

CONFIG = dict(name="vivit", variant="factorised_encoder", hidden_size=32, num_layers=1,
              num_heads=4, mlp_dim=64, temporal_layers=1, patch_size=8, tubelet_size=2,
              num_classes=5, classifier="token")
LABELS = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A tiny Model 2 checkpoint with random weights, its model and params."""
  model = build_model(CONFIG)
  shapes = flax.linen.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0),
                                           np.zeros((1, 4, 32, 32, 3), np.float32)))
  rng = np.random.default_rng(0)
  params = jax.tree_util.tree_map(
      lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32), shapes["params"])
  path = str(tmp_path_factory.mktemp("export") / "ckpt")
  checkpoints.save_model_checkpoint(path, params, {
      "model": CONFIG, "labels": LABELS,
      "source": {"num_frames": 4, "image_size": [32, 32], "num_channels": 3}})
  return path, model, params


def _video(batch, seed=1):
  return np.random.default_rng(seed).standard_normal((batch, 4, 32, 32, 3)).astype(np.float32)


def _flax_logits(model, params, video):
  return np.asarray(jax.jit(model.apply)({"params": params}, video))


def test_stablehlo_symbolic_batch_matches_flax(checkpoint, tmp_path):
  path, model, params = checkpoint
  written = export_checkpoint(path, str(tmp_path / "out"), platforms=("cpu",))
  assert written["signature"]["batch"] == "symbolic"
  assert {"model.stablehlo.bin", "model.mlir", "params.npz", "signature.json"} <= set(
      os.listdir(tmp_path / "out"))
  with open(tmp_path / "out" / "signature.json") as f:
    signature = json.load(f)
  assert signature["video"]["shape"] == ["b", 4, 32, 32, 3]
  assert signature["output"] == {"name": "logits", "shape": ["b", 5], "dtype": "float32"}
  assert signature["labels"] == LABELS and signature["input_spec"]["num_frames"] == 4

  exported = load_exported(str(tmp_path / "out" / "model.stablehlo.bin"))
  for batch in (1, 3):
    video = _video(batch)
    np.testing.assert_allclose(exported(video), _flax_logits(model, params, video),
                               atol=1e-5, rtol=1e-5)
  with pytest.raises(ValueError, match="shape"):
    exported(np.zeros((1, 4, 32, 32), np.float32))


def test_cli_static_batch(checkpoint, tmp_path, capsys):
  path, model, params = checkpoint
  out = str(tmp_path / "static")
  assert export_cli.main(["--checkpoint", path, "--output", out, "--batch-size", "2",
                          "--platforms", "cpu,cuda"]) == 0
  line = capsys.readouterr().out.strip()
  assert "static batch" in line and "cpu,cuda" in line, line
  exported = load_exported(out)
  assert exported.signature["video"]["shape"] == [2, 4, 32, 32, 3]
  video = _video(2, seed=2)
  np.testing.assert_allclose(exported(video), _flax_logits(model, params, video),
                             atol=1e-5, rtol=1e-5)
  with pytest.raises(ValueError, match=r"\[2, 4, 32, 32, 3\]"):
    exported(_video(3))


@pytest.mark.slow  # TensorFlow import + jax2tf conversion: ~30 s on a loaded 2-core machine.
def test_cli_format_both_writes_two_exports_that_match_flax(checkpoint, tmp_path, capsys):
  tf = pytest.importorskip("tensorflow")
  path, model, params = checkpoint
  out = str(tmp_path / "both")
  assert export_cli.main(["--checkpoint", path, "--output", out, "--format", "both",
                          "--platforms", "cpu"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert [line.split(":")[0] for line in lines] == ["stablehlo", "saved_model"], lines
  exported = load_exported(out)
  loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
  serve = loaded.signatures["serving_default"]
  for batch in (1, 3):
    video = _video(batch, seed=batch)
    want = _flax_logits(model, params, video)
    np.testing.assert_allclose(exported(video), want, atol=1e-5, rtol=1e-5)
    logits = serve(video=tf.constant(video))["logits"].numpy()
    np.testing.assert_allclose(logits, want, atol=1e-5, rtol=1e-5)


def test_missing_tensorflow_and_non_classifier_are_clear(checkpoint, tmp_path, monkeypatch,
                                                         capsys):
  path, _, _ = checkpoint
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails as if absent
  with pytest.raises(TensorFlowMissingError, match="TensorFlow"):
    export_checkpoint(path, str(tmp_path / "x"), fmt="both")
  assert not os.path.exists(tmp_path / "x" / "model.stablehlo.bin")  # failed before work
  assert export_cli.main(["--checkpoint", path, "--output", str(tmp_path / "y"),
                          "--format", "saved_model"]) == 2
  assert "tensorflow" in capsys.readouterr().err.lower()

  mae = tmp_path / "mae"
  mae.mkdir()
  (mae / "config.json").write_text(json.dumps({"model": {"name": "videomae"}}))
  with pytest.raises(ValueError, match="videomae"):
    export_checkpoint(str(mae), str(tmp_path / "z"))
