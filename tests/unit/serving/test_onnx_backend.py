"""`--backend onnxruntime` (serving/onnx_backend.py): an ONNX export run in ONNX
Runtime predicts real mp4s like the JAX backend, with our decoding and
preprocessing; mismatched folders and flags are one error line.

Probabilities within 1e-5: the logits agree to a few 1e-6 (float32 in
another order, tests/unit/export/test_onnx.py) and softmax does not amplify
differences."""

import json

import numpy as np
import pytest

from support import videos as fx
from vivit_jax.export import export_checkpoint
from vivit_jax.serving import inference, onnx_backend, predict, stream

pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

PROB_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("onnx_backend")
  ckpt = fx.make_checkpoint(str(root / "ckpt"))
  export_checkpoint(ckpt, str(root / "onnx"), fmt="onnx")
  export_checkpoint(ckpt, str(root / "onnx_static"), batch_size=2, fmt="onnx")
  return {"root": root, "ckpt": ckpt, "onnx": str(root / "onnx"),
          "static": str(root / "onnx_static"),
          "videos": [fx.write_video(str(root / "a.mp4")),
                     fx.write_video(str(root / "b.mp4"), num_frames=11, height=40, width=30)]}


def _predict_json(capsys, *argv):
  assert predict.main([*argv, "--json", "--top-k", "5"]) == 0
  return json.loads(capsys.readouterr().out)["results"]


def test_predict_with_onnxruntime_gives_the_jax_top1_and_probabilities(workdir, capsys):
  want = _predict_json(capsys, "--checkpoint", workdir["ckpt"], *workdir["videos"])
  got = _predict_json(capsys, "--checkpoint", workdir["onnx"], "--backend", "onnxruntime",
                      "--threads", "1", *workdir["videos"])
  assert len(got) == len(want) == 2
  for g, w in zip(got, want):
    assert g["top_k"][0]["label"] == w["top_k"][0]["label"]
    by_label = {e["label"]: e["probability"] for e in w["top_k"]}
    for entry in g["top_k"]:
      assert entry["probability"] == pytest.approx(by_label[entry["label"]], abs=PROB_TOLERANCE)


def test_a_static_batch_export_classifies_any_number_of_clips(workdir):
  jax_classifier = inference.load_classifier(workdir["ckpt"])
  onnx_classifier = onnx_backend.load_onnx_classifier(workdir["static"])
  assert onnx_classifier.batch == 2 and onnx_classifier.labels == fx.LABELS
  clips = np.random.default_rng(0).standard_normal((3, 8, 32, 32, 3)).astype(np.float32)
  got = onnx_classifier.classify(clips)
  assert got.shape == (3, 5)
  np.testing.assert_allclose(got, jax_classifier.classify(clips), rtol=0, atol=PROB_TOLERANCE)


def test_stream_runs_an_onnx_export(workdir, capsys):
  log = workdir["root"] / "stream.jsonl"
  assert stream.main([f"--checkpoint={workdir['onnx']}", "--backend=onnxruntime",
                      f"--source={workdir['videos'][0]}", "--hop", "5", f"--json-log={log}",
                      "--quiet"]) == 0
  lines = [json.loads(line) for line in log.read_text().splitlines()]
  assert lines[-1]["summary"]["predictions"] == (40 - 15) // 5 + 1
  assert lines[0]["label"] in fx.LABELS


@pytest.mark.parametrize("folder,flags,message", [
    ("ckpt", ["--backend", "onnxruntime"], "is a model checkpoint"),
    ("onnx", [], "is an ONNX export, not a model checkpoint"),
    ("onnx", ["--backend", "onnxruntime", "--dtype", "bfloat16"], "--dtype applies to"),
    ("onnx", ["--backend", "onnxruntime", "--num-frames", "4"], "the export takes 8 frames"),
])
def test_a_folder_or_flag_for_the_other_backend_is_one_error_line(workdir, capsys, folder,
                                                                 flags, message):
  assert predict.main(["--checkpoint", workdir[folder], *flags, workdir["videos"][0]]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
