"""`python -m vivit_jax.train.evaluation.evaluate` and the model checkpoint training writes.

Metric functions against hand-computed numbers; a tiny fine-tuning run whose
`WORKDIR/model` loads for inference with the training params' outputs; the
evaluator on that model dir and on the workdir, writing report + PNG.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from support import train_runs as fx
from vivit_jax import checkpoints
from vivit_jax.serving import inference
from vivit_jax.models import build_model
from vivit_jax.train import loop
from vivit_jax.train.evaluation import confusion, evaluate, passes

NUM_STEPS = 2


def test_top_k_confusion_and_per_class_accuracy_by_hand():
  scores = np.array([[0.7, 0.2, 0.1],    # true 0, predicted 0
                     [0.5, 0.3, 0.2],    # true 1, predicted 0 (1 is 2nd)
                     [0.1, 0.3, 0.6],    # true 2, predicted 2
                     [0.2, 0.5, 0.3]])   # true 2, predicted 1 (2 is 2nd)
  labels = np.array([0, 1, 2, 2])
  np.testing.assert_array_equal(passes.top_k_correct(scores, labels, 1),
                                [True, False, True, False])
  np.testing.assert_array_equal(passes.top_k_correct(scores, labels, 2), [True] * 4)
  np.testing.assert_array_equal(passes.top_k_correct(scores, labels, 5), [True] * 4)
  matrix = passes.confusion_matrix(np.argmax(scores, -1), labels, 3)
  np.testing.assert_array_equal(matrix, [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
  np.testing.assert_allclose(passes.per_class_accuracy(matrix), [1.0, 0.0, 0.5])
  assert passes.mean_class_accuracy(matrix) == pytest.approx(0.5)  # top-1 is also 0.5
  # A class with no video is left out of the mean, not counted as 0.
  matrix4 = passes.confusion_matrix(np.array([0, 0]), np.array([0, 1]), 4)
  assert np.isnan(passes.per_class_accuracy(matrix4)[2])
  assert passes.mean_class_accuracy(matrix4) == pytest.approx(0.5)


def test_views_that_disagree_are_averaged_per_video():
  # Video 7 has two views: one says class 0 (0.9), one says class 1 (0.6);
  # the mean is [0.5, 0.45, 0.05] -> class 0. Video 3 has one view.
  probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.3, 0.6], [0.1, 0.8, 0.1]])
  ids = np.array([[0, 7], [0, 3], [0, 7]])
  ids_out, scores, labels = passes.average_views(probs, ids, np.array([1, 2, 1]))
  np.testing.assert_array_equal(ids_out, [[0, 3], [0, 7]])
  np.testing.assert_allclose(scores, [[0.1, 0.3, 0.6], [0.5, 0.45, 0.05]])
  np.testing.assert_array_equal(labels, [2, 1])
  # Video 7's label is 1 and the average picks 0: wrong, though one view was right.
  np.testing.assert_array_equal(passes.top_k_correct(scores, labels, 1), [True, False])
  # Views keyed by (process, video): the same index on two processes is two videos.
  ids_out, _, _ = passes.average_views(probs[:2], np.array([[0, 5], [1, 5]]),
                                           np.array([0, 0]))
  assert len(ids_out) == 2


def test_confusion_image_normalises_rows_and_checks_names():
  matrix = np.array([[3, 0], [1, 1]])
  np.testing.assert_allclose(confusion.normalise_rows(matrix), [[1.0, 0.0], [0.5, 0.5]])
  image = confusion.confusion_image(matrix, ["left", "right"])
  assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
  with pytest.raises(ValueError, match="3 class names"):
    confusion.confusion_image(matrix, ["a", "b", "c"])


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
  return tiny_dataset  # conftest.py: written once per test session


def _overrides(dataset, **extra):
  return fx.tiny_overrides(dataset, **{"train.num_steps": NUM_STEPS, "eval.every_steps": 0,
                                       "checkpoint.async_save": False, **extra})


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
  """A 2-step fine-tuning run of the tiny demo classifier: its workdir."""
  workdir = str(tmp_path_factory.mktemp("finetune"))
  result = loop.run(fx.load_config("demo_finetune.py", _overrides(dataset)), workdir)
  assert result["step"] == NUM_STEPS
  return workdir


def test_training_writes_a_model_checkpoint_inference_loads(dataset, trained):
  model_dir = os.path.join(trained, loop.MODEL_DIR)
  config = checkpoints.load_model_config(model_dir)
  assert config["source"]["step"] == NUM_STEPS
  assert config["input"] == {"num_frames": fx.FRAMES, "frame_stride": 1,
                             "image_size": [fx.SIZE, fx.SIZE], "resize_short_side": fx.SIZE,
                             "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
  assert config["labels"] == ["right", "left", "down", "up"]
  classifier = inference.load_classifier(model_dir)
  assert classifier.spec.image_size == (fx.SIZE, fx.SIZE)

  # Same outputs as the training checkpoint's params on one clip.
  state = fx.read_checkpoint_state(trained, NUM_STEPS)
  model = build_model(fx.load_config("demo_finetune.py", _overrides(dataset)).model)
  clip = np.random.default_rng(0).normal(size=(1, fx.FRAMES, fx.SIZE, fx.SIZE, 3))
  clip = clip.astype(np.float32)
  logits = model.apply({"params": state["params"]}, clip)
  np.testing.assert_allclose(classifier.classify(clip), jax.nn.softmax(logits, -1),
                             rtol=1e-5, atol=1e-6)


def _check_outputs(report, out_dir, dataset, views):
  with open(os.path.join(out_dir, evaluate.REPORT_FILE)) as f:
    assert json.load(f) == json.loads(json.dumps(report))
  with Image.open(os.path.join(out_dir, evaluate.CONFUSION_FILE)) as image:
    image.load()
    assert image.format == "PNG" and min(image.size) > 2 * fx.CLASSES
  assert 0.0 <= report["top1"] <= report["top5"] <= 1.0
  assert 0.0 <= report["mean_class_accuracy"] <= 1.0
  assert report["num_videos"] == dataset["num_eval"]
  assert report["num_views"] == views * dataset["num_eval"]
  matrix = np.array(report["confusion_matrix"])
  assert matrix.shape == (fx.CLASSES, fx.CLASSES) and matrix.sum() == dataset["num_eval"]
  assert report["top1"] == pytest.approx(np.trace(matrix) / matrix.sum())
  assert [r["num_videos"] for r in report["per_class"]] == matrix.sum(1).tolist()


def test_evaluate_model_dir_and_workdir_agree(dataset, trained, tmp_path, capsys):
  config = fx.load_config("demo_finetune.py", _overrides(dataset, **{
      "eval.num_batches": 0, "data.eval_temporal_views": 2}))
  from_model = evaluate.run_evaluation(config, os.path.join(trained, loop.MODEL_DIR),
                                       str(tmp_path / "a"), progress=False)
  assert from_model["checkpoint_kind"] == "model" and from_model["step"] == NUM_STEPS
  _check_outputs(from_model, str(tmp_path / "a"), dataset, views=2)
  printed = capsys.readouterr().out
  assert "top-1" in printed and "up" in printed

  # The checkpoints/ folder of the workdir: the newest step's params, same numbers.
  from_workdir = evaluate.run_evaluation(config, os.path.join(trained, "checkpoints"),
                                         str(tmp_path / "b"), progress=False)
  assert from_workdir["checkpoint_kind"] == "workdir" and from_workdir["checkpoint"] == trained
  _check_outputs(from_workdir, str(tmp_path / "b"), dataset, views=2)
  assert from_workdir["confusion_matrix"] == from_model["confusion_matrix"]
  assert from_workdir["loss"] == pytest.approx(from_model["loss"], rel=1e-5)


def test_evaluate_rejects_what_is_not_a_checkpoint(dataset, tmp_path):
  config = fx.load_config("demo_finetune.py", _overrides(dataset))
  with pytest.raises(FileNotFoundError, match="neither a model checkpoint"):
    evaluate.run_evaluation(config, str(tmp_path), progress=False)


@pytest.mark.slow
def test_evaluate_command_line_and_mismatch(dataset, trained, tmp_path):
  overrides = _overrides(dataset, **{"eval.num_batches": 0})
  base = [sys.executable, "-m", "vivit_jax.train.evaluation.evaluate",
          f"--config={os.path.join(fx.REPO, 'configs', 'demo_finetune.py')}"]
  flags = [f"--config.{k}={v}" for k, v in overrides.items()]
  out = str(tmp_path / "cli")
  result = subprocess.run(base + [f"--checkpoint={trained}", f"--output={out}"] + flags,
                          cwd=fx.REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "mean class accuracy" in result.stdout
  assert "eval: 100%" in result.stderr  # tqdm's bar (with elapsed<remaining)
  with open(os.path.join(out, evaluate.REPORT_FILE)) as f:
    assert json.load(f)["num_videos"] == dataset["num_eval"]

  wider = [f for f in flags if not f.startswith("--config.model.hidden_size")]
  result = subprocess.run(base + [f"--checkpoint={trained}/model"] + wider +
                          ["--config.model.hidden_size=48"], cwd=fx.REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 2  # a user mistake: one `error:` line (vivit_jax/common/errors.py)
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("error: checkpoint of another model") and "32)" in line and "48)" in line


@pytest.mark.slow
def test_evaluate_ema_uses_the_ema_params(dataset, tmp_path):
  """`--ema` on a training workdir evaluates `state.ema_params` (other numbers
  than the params); a model
  checkpoint has no EMA, so there it evaluates the params."""
  workdir = str(tmp_path / "ema_run")
  overrides = _overrides(dataset, **{"optimizer.ema_decay": 0.5,
                                     "optimizer.learning_rate": 1e-2,
                                     "optimizer.warmup_steps": 0})
  loop.run(fx.load_config("demo_finetune.py", overrides), workdir)
  config = fx.load_config("demo_finetune.py", dict(overrides, **{"eval.num_batches": 0}))
  checkpoint = os.path.join(workdir, "checkpoints")
  plain = evaluate.run_evaluation(config, checkpoint, str(tmp_path / "p"), progress=False)
  ema = evaluate.run_evaluation(config, checkpoint, str(tmp_path / "e"), use_ema=True,
                                progress=False)
  assert plain["params"] == "params" and ema["params"] == "ema"
  assert abs(ema["loss"] - plain["loss"]) > 1e-4, (ema["loss"], plain["loss"])

  # The checkpoint's EMA differs from its params (else the losses could not).
  state = fx.read_checkpoint_state(workdir, NUM_STEPS)
  ema_params, params = state["ema_params"], state["params"]
  assert any(np.any(a != b) for a, b in zip(jax.tree_util.tree_leaves(ema_params),
                                            jax.tree_util.tree_leaves(params)))
  model_dir = os.path.join(workdir, loop.MODEL_DIR)
  from_model = evaluate.run_evaluation(config, model_dir, str(tmp_path / "m"), use_ema=True,
                                       progress=False)
  assert from_model["params"] == "params"
  assert from_model["loss"] == pytest.approx(plain["loss"], rel=1e-5)
