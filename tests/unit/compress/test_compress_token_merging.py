"""`vivit-compress --token-merging` writes model.token_merging into the
output checkpoint; predict and export then run the merged model, alone or
on top of int8."""

import json

import jax
import numpy as np
import pytest

from support import videos as fx
from vivit_jax import checkpoints
from vivit_jax.compress import __main__ as compress_cli
from vivit_jax.export import export_checkpoint, load_exported
from vivit_jax.models import build_model
from vivit_jax.models import token_merging as tome
from vivit_jax.serving import inference, predict

VIDEO_SHAPE = (fx.INPUT["num_frames"], *fx.INPUT["image_size"], 3)
MODEL = dict(fx.MODEL, num_layers=2)  # a class token's logits change from the 2nd block on
R = 12  # tokens merged per block, of 64 tubelet tokens + a class token


def _make_checkpoint(directory):
  """The fixture checkpoint (`fx.make_checkpoint`) with two blocks."""
  model = build_model(MODEL)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros((1, *VIDEO_SHAPE)))
  rng = np.random.default_rng(1)
  params = jax.tree_util.tree_map(lambda x: rng.normal(0, 0.5, x.shape).astype(np.float32),
                                  shapes["params"])
  config = {"model": MODEL, "labels": fx.LABELS, "input": fx.INPUT, "source": {"format": "test"}}
  return checkpoints.save_model_checkpoint(directory, params, config)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("merge")
  paths = {"float": _make_checkpoint(str(root / "float")),
           "video": fx.write_video(str(root / "clip.mp4"), num_frames=40),
           "merged": str(root / "merged"), "int8": str(root / "int8_merged"),
           "percent": str(root / "percent")}
  assert compress_cli.main([f"--checkpoint={paths['float']}", f"--output={paths['merged']}",
                            f"--token-merging={R}", "--check-clips=1"]) == 0
  assert compress_cli.main([f"--checkpoint={paths['float']}", f"--output={paths['int8']}",
                            f"--token-merging={R}", "--method=int8_weight",
                            "--check-clips=0"]) == 0
  assert compress_cli.main([f"--checkpoint={paths['float']}", f"--output={paths['percent']}",
                            "--token-merging=25%", "--check-clips=0"]) == 0
  return paths


def _clip(seed=0, batch=1):
  return np.random.default_rng(seed).standard_normal((batch, *VIDEO_SHAPE)).astype(np.float32)


def _merged_float_logits(workdir, clip):
  """The float checkpoint's parameters in a model built with merging directly."""
  config, params = checkpoints.load_model_checkpoint(workdir["float"])
  model = build_model(dict(config["model"], token_merging=(R,)))
  return np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(params, clip))


def test_the_flag_writes_the_option_and_keeps_the_float_parameters(workdir):
  config = checkpoints.load_model_config(workdir["merged"])
  assert config["model"]["token_merging"] == [R] and "quantization" not in config
  assert config["labels"] == fx.LABELS and config["input"] == fx.INPUT
  _, stored = checkpoints.load_model_checkpoint(workdir["merged"])
  _, original = checkpoints.load_model_checkpoint(workdir["float"])
  for name, value in checkpoints.flatten_params(original).items():
    np.testing.assert_array_equal(checkpoints.flatten_params(stored)[name], value)


@pytest.mark.slow
def test_predict_on_the_compressed_checkpoint_runs_the_merged_model(workdir, capsys):
  classifier = inference.load_classifier(workdir["merged"])
  assert tuple(classifier.model.token_merging) == (R,)
  clip = _clip(seed=1, batch=2)
  want = _merged_float_logits(workdir, clip)
  np.testing.assert_allclose(classifier.classify(clip), jax.nn.softmax(want, axis=-1),
                             rtol=1e-6, atol=1e-6)
  _, state = classifier.model.apply({"params": classifier.params}, clip,
                                    mutable=["intermediates"])
  assert state["intermediates"]["tokens"][0].shape == (2, 65 - 2 * R, 32)
  plain = np.asarray(inference.load_classifier(workdir["float"]).classify(clip))
  assert not np.allclose(plain, classifier.classify(clip), atol=1e-4)  # merging did something
  assert predict.main([f"--checkpoint={workdir['merged']}", workdir["video"], "--json"]) == 0
  result = json.loads(capsys.readouterr().out)["results"][0]
  assert result["top_k"][0]["label"] in fx.LABELS


def test_export_of_the_merged_checkpoint_gives_the_same_logits(workdir, tmp_path):
  out = str(tmp_path / "export")
  export_checkpoint(workdir["merged"], out, platforms=("cpu",))
  clip = _clip(seed=2, batch=2)
  np.testing.assert_allclose(load_exported(out)(clip), _merged_float_logits(workdir, clip),
                             rtol=1e-5, atol=1e-5)


def test_int8_and_merging_in_one_checkpoint(workdir):
  config = checkpoints.load_model_config(workdir["int8"])
  assert config["model"]["token_merging"] == [R]
  assert config["quantization"]["method"] == "int8_weight"
  classifier = inference.load_classifier(workdir["int8"])
  clip = _clip(seed=3, batch=2)
  logits = np.asarray(classifier.model.apply({"params": classifier.params}, clip))
  want = _merged_float_logits(workdir, clip)
  error = np.abs(logits - want).max()
  assert 0 < error < 0.1 * np.abs(want).max(), (error, want)


def test_a_percentage_is_stored_as_the_checkpoints_per_block_schedule(workdir):
  config = checkpoints.load_model_config(workdir["percent"])
  # 64 tubelet tokens + a class token (never merged): 25% of 64, then of 48.
  assert config["model"]["token_merging"] == [16, 12]
  assert tome.token_counts(65, (16, 12), protect_first=True) == (49, 37)
  classifier = inference.load_classifier(workdir["percent"])
  _, state = classifier.model.apply({"params": classifier.params}, _clip(seed=4),
                                    mutable=["intermediates"])
  assert state["intermediates"]["tokens"][0].shape == (1, 37, 32)


def test_bad_token_merging_flags_end_in_one_line(workdir, tmp_path, capsys):
  out = str(tmp_path / "bad")
  for flag, message in [("--token-merging=x", "R0,R1"),
                        ("--token-merging=4,4,4", "one per block"),
                        ("--token-merging=60%", "0 <= P <= 50"),
                        ("--token-merging=x%", "not a percentage")]:
    assert compress_cli.main([f"--checkpoint={workdir['float']}", f"--output={out}",
                              flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
  assert compress_cli.main([f"--checkpoint={workdir['float']}", f"--output={out}"]) == 2
  assert "--method, --token-merging" in capsys.readouterr().err
