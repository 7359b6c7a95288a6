"""`vivit_jax.serving.predict` / `vivit_jax.serving.inference` on a tiny random checkpoint and
mp4s written here (40 frames, 64x48, 25 fps)."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from support import videos as fx
from vivit_jax.checkpoints import input_spec
from vivit_jax.data.eval_views import view_indices
from vivit_jax.serving import inference
from vivit_jax.serving import predict
from vivit_jax.serving import video_io
from support import REPO



@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("predict")
  ckpt = fx.make_checkpoint(str(root / "ckpt"))
  videos = [fx.write_video(str(root / "a.mp4")),
            fx.write_video(str(root / "b.mp4"), num_frames=11, height=40, width=30)]
  return {"root": root, "ckpt": ckpt, "videos": videos,
          "bad": fx.corrupt_files(str(root), videos[0])}


@pytest.fixture(scope="module")
def classifier(workdir):
  return inference.load_classifier(workdir["ckpt"])


def test_input_spec_from_input_block_and_overrides(classifier):
  spec = classifier.spec
  assert (spec.num_frames, spec.frame_stride, spec.image_size) == (8, 2, (32, 32))
  assert spec.resize_short_side == 36 and spec.mean == (0.45,) * 3
  over = input_spec.resolve_input_spec({"input": fx.INPUT}, frame_stride=1, mean=None)
  assert over.frame_stride == 1 and over.mean == (0.45,) * 3


def test_preprocess_resizes_short_side_and_centre_crops():
  spec = input_spec.InputSpec(4, 1, (32, 32), 36, (0.0,) * 3, (1.0,) * 3)
  frames = np.zeros((2, 48, 64, 3), np.uint8)
  frames[:, :, 32:] = 255  # Right half white: after resize to 36x48, crop x 8..40.
  out = inference.preprocess(frames, spec)
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.float32
  np.testing.assert_allclose(out[0, :, :14], 0.0, atol=1e-6)
  np.testing.assert_allclose(out[0, :, 18:], 1.0, atol=1e-6)
  assert inference.resize_geometry(48, 64, spec) == (0.75, 0.75, 2, 8)


def test_predict_topk_sorted_named_and_normalised(workdir, classifier):
  results = predict.predict_files(classifier, workdir["videos"], top_k=3)
  for result in results:
    assert "error" not in result
    probs = [e["probability"] for e in result["top_k"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1 + 1e-6
    assert {e["label"] for e in result["top_k"]} <= set(fx.LABELS)


def test_prediction_equals_model_apply_on_same_clip(workdir, classifier):
  path = workdir["videos"][0]
  indices = view_indices(40, 8, 2)[0]
  frames = video_io.read_frames(path, indices)
  assert [fx.frame_index(f) for f in frames] == list(indices)
  clip = inference.preprocess(frames, classifier.spec)
  logits = classifier.model.apply({"params": classifier.params}, clip[None])
  want = np.asarray(jax.nn.softmax(logits, axis=-1))[0]
  np.testing.assert_allclose(predict.predict_video(classifier, path), want, rtol=1e-5, atol=1e-6)


def test_views_average_softmax(workdir, classifier):
  path = workdir["videos"][0]
  views = view_indices(40, 8, 2, num_views=3)
  clips = np.stack([inference.preprocess(video_io.read_frames(path, v), classifier.spec)
                    for v in views])
  want = classifier.classify(clips).mean(axis=0)
  np.testing.assert_allclose(predict.predict_video(classifier, path, num_views=3), want,
                             rtol=1e-5, atol=1e-6)


def test_bad_files_get_errors_and_good_files_still_predicted(workdir, classifier):
  bad = workdir["bad"]
  paths = [bad["random"], workdir["videos"][0], bad["truncated"], bad["empty"],
           str(workdir["root"] / "missing.mp4")]
  errors = []
  results = predict.predict_files(classifier, paths, on_error=errors.append)
  assert [("error" in r) for r in results] == [True, False, True, True, True]
  for path, message in zip(paths[:1] + paths[2:], errors):
    assert message.startswith(path) and "\n" not in message


def test_labels_file_and_default_names(workdir, tmp_path):
  labels = tmp_path / "labels.txt"
  labels.write_text("\n".join(f"L{i}" for i in range(5)) + "\n")
  c = inference.load_classifier(workdir["ckpt"], labels_file=str(labels))
  assert c.labels == [f"L{i}" for i in range(5)]
  labels.write_text("only\ntwo\n")
  with pytest.raises(ValueError, match="2 labels"):
    inference.load_classifier(workdir["ckpt"], labels_file=str(labels))
  bare = fx.make_checkpoint(str(tmp_path / "bare"), with_input=False, labels=None)
  c = inference.load_classifier(bare)
  assert c.labels[:2] == ["class_0", "class_1"] and c.spec.frame_stride is None


def test_cli_json_with_a_corrupt_file(workdir):
  bad = workdir["bad"]["random"]
  cmd = [sys.executable, "-m", "vivit_jax.serving.predict",
         f"--checkpoint={workdir['ckpt']}",
         workdir["videos"][0], bad, workdir["videos"][1], "--top-k", "2", "--json"]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
  assert proc.returncode == 0, proc.stderr
  error_lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(error_lines) == 1 and bad in error_lines[0]
  document = json.loads(proc.stdout)
  results = document["results"]
  assert [r["file"] for r in results] == [workdir["videos"][0], bad, workdir["videos"][1]]
  assert "error" in results[1] and len(results[0]["top_k"]) == 2
  assert document["input"]["num_frames"] == 8


def test_main_exit_status_when_every_file_fails(workdir, capsys):
  bad = workdir["bad"]
  assert predict.main([f"--checkpoint={workdir['ckpt']}", bad["empty"], bad["random"]]) == 1
  assert predict.main([f"--checkpoint={workdir['ckpt']}", workdir["videos"][1]]) == 0
  out = capsys.readouterr()
  assert "empty.mp4" in out.err and workdir["videos"][1] in out.out
  assert predict.main(["--checkpoint=/nonexistent/ckpt", workdir["videos"][1]]) == 2


def test_preprocess_matches_training_eval_transforms():
  """Same pixels as the tf.data eval path (short-side resize, centre crop)."""
  pytest.importorskip("tensorflow")
  from vivit_jax.data import transforms  # Imports TensorFlow.
  frames = np.random.default_rng(0).integers(0, 256, (2, 37, 53, 3), np.uint8)
  want = transforms.spatial_views(transforms.resize_short_side(frames, 40), 1, 33)[0]
  spec = input_spec.InputSpec(2, 1, (33, 33), 40, (0.0,) * 3, (1 / 255,) * 3)
  np.testing.assert_allclose(inference.preprocess(frames, spec), np.asarray(want), atol=0.01)


def test_cli_flags_reach_the_prediction(workdir, tmp_path, capsys):
  """--views, --labels, --stride, --image-size, --mean/--std, --attention-impl
  each change what predict reports or computes; a size the model cannot take
  exits 2 with one line naming it."""
  labels = tmp_path / "labels.txt"
  labels.write_text("\n".join(f"L{i}" for i in range(5)) + "\n")
  video = workdir["videos"][0]

  def run(*flags):
    assert predict.main([f"--checkpoint={workdir['ckpt']}", video, "--json", "--top-k", "5",
                         *flags]) == 0
    return json.loads(capsys.readouterr().out)

  def probabilities(document):
    return {e["label"]: e["probability"] for e in document["results"][0]["top_k"]}

  base = run()
  flagged = run("--views", "2", f"--labels={labels}", "--stride", "1", "--image-size", "32,32",
                "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--attention-impl", "xla")
  assert flagged["views"] == 2 and base["views"] == 1
  assert flagged["input"]["frame_stride"] == 1 and base["input"]["frame_stride"] == 2
  assert flagged["input"]["mean"] == [0.5] * 3 and flagged["input"]["std"] == [0.25] * 3
  assert sorted(probabilities(flagged)) == [f"L{i}" for i in range(5)]
  assert sorted(probabilities(base)) == sorted(fx.LABELS)
  for flags in (["--views", "2"], ["--stride", "1"], ["--mean", "0.5,0.5,0.5"]):
    moved = probabilities(run(*flags))
    assert max(abs(moved[k] - v) for k, v in probabilities(base).items()) > 1e-4, flags
  assert predict.main([f"--checkpoint={workdir['ckpt']}", video, "--image-size", "16"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error:"), err


def _training_workdir(root, with_model: bool) -> str:
  """A workdir laid out as a training run leaves it: its training config.json
  (written by the run's own writer), `checkpoints/<step>/`, and, once
  finished, `model/`."""
  from support import train_runs
  from vivit_jax.train import metric_writer
  run = str(root)
  metric_writer.write_config_json(run, train_runs.load_config("demo_finetune.py", {}))
  (root / "checkpoints" / "20").mkdir(parents=True)
  if with_model:
    fx.make_checkpoint(str(root / "model"))
  return run


def test_training_workdir_as_checkpoint_names_its_model_dir(workdir, tmp_path, capsys):
  run = _training_workdir(tmp_path / "run", with_model=True)
  video = workdir["videos"][1]
  assert predict.main([f"--checkpoint={run}", video]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f"error: {run} is a training workdir, not a model checkpoint: "
                 f"pass {run}/model"]
  assert predict.main([f"--checkpoint={run}/model", video]) == 0
  assert video in capsys.readouterr().out

  unfinished = _training_workdir(tmp_path / "unfinished", with_model=False)
  assert predict.main([f"--checkpoint={unfinished}", video]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and f"pass {unfinished}/model (not written yet" in err[0]
