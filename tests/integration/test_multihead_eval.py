"""A two-head ViViT (class_splits, like Epic-Kitchens verb + noun) trained a few
steps by `vivit_jax.main` on real TFRecords, then evaluated by the loop, by
mode=eval and by `vivit_jax.train.evaluation.evaluate`, and served by predict / stream: every
per-head number is recomputed here from the model checkpoint's logits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from support import datasets as data_fixtures
from support import train_runs as fixtures

SPLITS = (2, 3)  # sum 5 scores, prod 6 combined labels: a count mix-up cannot pass
NUM_TRAIN, NUM_EVAL, VIEWS = 24, 6, 2


def clip(rng, label):
  """`(T, H, W, 3)` uint8 noise with a label-dependent brightness."""
  base = rng.integers(0, 120, (fixtures.FRAMES, 24, 24, 3))
  return (base + 20 * label).astype(np.uint8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """`(workdir, config overrides)` after 4 training steps."""
  root = tmp_path_factory.mktemp("multihead")
  rng = np.random.default_rng(0)
  labels = np.arange(NUM_TRAIN + NUM_EVAL) % int(np.prod(SPLITS))
  videos = [(clip(rng, y), int(y)) for y in labels]
  dataset = {"train_files": data_fixtures.write_dmvr_tfrecords(
                 str(root / "train"), videos[:NUM_TRAIN]),
             "eval_files": data_fixtures.write_dmvr_tfrecords(
                 str(root / "eval"), videos[NUM_TRAIN:], num_shards=1)}
  overrides = fixtures.tiny_overrides(dataset, **{
      "model.class_splits": "(2,3)", "model.num_classes": sum(SPLITS),
      "data.num_classes": int(np.prod(SPLITS)), "data.class_names": "('a','b','c','d','e','f')",
      "data.eval_temporal_views": VIEWS, "eval.batch_size": 4, "eval.num_batches": 0,
      "train.num_steps": 4, "eval.every_steps": 0, "checkpoint.every_steps": 0,
      "optimizer.learning_rate": 0.01})
  workdir = str(root / "workdir")
  proc = fixtures.run_main("demo_tfrecord.py", workdir, overrides)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, overrides


def recomputed(workdir, overrides):
  """Per-video metrics from the model checkpoint's logits on the eval split."""
  import jax  # pylint: disable=import-outside-toplevel
  from vivit_jax import checkpoints  # pylint: disable=import-outside-toplevel
  from vivit_jax.train import device_preprocess, inputs  # pylint: disable=import-outside-toplevel
  config = fixtures.load_config("demo_tfrecord.py", dict(
      overrides, **{"model.class_splits": SPLITS, "data.class_names": tuple("abcdef")}))
  model, params, _ = checkpoints.load_model(os.path.join(workdir, "model"),
                                            inputs.video_shape(config))
  sums, counts, video_label = {}, {}, {}
  clip_right = np.zeros(3)  # head 0, head 1, both
  for batch in inputs.create_iterator(config, train=False):
    video = device_preprocess.prepare_batch({"video": batch["video"]}, config)["video"]
    logits = np.asarray(model.apply({"params": params}, video), np.float64)
    for row, label, vid, ok in zip(logits, batch["label"], batch["video_index"],
                                   batch["valid"]):
      if not ok:
        continue
      heads = [row[:SPLITS[0]], row[SPLITS[0]:]]
      probs = np.concatenate([np.exp(h - h.max()) / np.exp(h - h.max()).sum() for h in heads])
      want = (int(label) // SPLITS[1], int(label) % SPLITS[1])
      right = [int(np.argmax(h)) == w for h, w in zip(heads, want)]
      clip_right += [right[0], right[1], all(right)]
      sums[int(vid)] = sums.get(int(vid), 0) + probs
      counts[int(vid)] = counts.get(int(vid), 0) + 1
      video_label[int(vid)] = want
  assert set(counts.values()) == {VIEWS} and len(counts) == NUM_EVAL
  del jax
  out = {"clip": clip_right / (VIEWS * NUM_EVAL), "confusion": [np.zeros((c, c), int)
                                                                for c in SPLITS]}
  right = []
  for vid, total in sums.items():
    pred = (int(np.argmax(total[:SPLITS[0]])), int(np.argmax(total[SPLITS[0]:])))
    right.append([p == w for p, w in zip(pred, video_label[vid])])
    for h in range(2):
      out["confusion"][h][video_label[vid][h], pred[h]] += 1
  right = np.array(right)
  out.update(head_0=right[:, 0].mean(), head_1=right[:, 1].mean(),
             action=np.all(right, 1).mean())
  return out


def assert_eval_metrics(metrics, want):
  assert metrics["eval/top1"] == pytest.approx(want["action"])
  assert metrics["eval/head_0_top1"] == pytest.approx(want["head_0"])
  assert metrics["eval/head_1_top1"] == pytest.approx(want["head_1"])
  assert metrics["eval/clip_top1"] == pytest.approx(want["clip"][2])
  assert metrics["eval/head_0_clip_top1"] == pytest.approx(want["clip"][0])
  assert metrics["eval/head_1_clip_top1"] == pytest.approx(want["clip"][1])
  assert metrics["eval/head_1_top5"] == 1.0  # 3 nouns: always among the top 5
  assert metrics["eval/num_videos"] == NUM_EVAL
  assert metrics["eval/num_clips"] == NUM_EVAL * VIEWS
  assert "eval/top5" not in metrics and "eval/mean_class_accuracy" not in metrics


def test_classifier_pass_scores_each_head_and_refuses_one_combined_confusion():
  from vivit_jax.train import multihead  # pylint: disable=import-outside-toplevel
  from vivit_jax.train.evaluation import passes  # pylint: disable=import-outside-toplevel
  # Video 0: verb 1, noun 2 (both right); video 1: verb 0 right, noun 0 wrong.
  scores = np.array([[0.2, 0.8, 0.1, 0.2, 0.7], [0.9, 0.1, 0.3, 0.6, 0.1]])
  labels = multihead.encode_labels([np.array([1, 0]), np.array([2, 0])], SPLITS)
  result = passes.ClassifierPass(scores, labels, loss_sum=3.0, num_clips=4.0,
                                     clip_correct=1.0, class_splits=SPLITS,
                                     clip_head_correct=np.array([3.0, 2.0]))
  metrics = result.metrics()
  assert metrics["eval/top1"] == 0.5 and metrics["eval/clip_top1"] == 0.25
  assert metrics["eval/head_0_top1"] == 1.0 and metrics["eval/head_1_top1"] == 0.5
  assert metrics["eval/head_0_clip_top1"] == 0.75 and metrics["eval/head_1_clip_top1"] == 0.5
  assert metrics["eval/head_1_mean_class_accuracy"] == 0.5  # nouns 0 and 2 present
  np.testing.assert_array_equal(result.confusion(1), [[0, 1, 0], [0, 0, 0], [0, 0, 1]])
  with pytest.raises(ValueError, match="one confusion matrix per head: pass head="):
    result.confusion()


@pytest.mark.slow
def test_training_loop_and_mode_eval_report_every_heads_accuracy(run):
  workdir, overrides = run
  want = recomputed(workdir, overrides)
  with open(os.path.join(workdir, "metrics.json")) as f:
    assert_eval_metrics(json.load(f), want)
  images = sorted(os.listdir(os.path.join(workdir, "images")))
  assert images == ["confusion_head_0_0000004.png", "confusion_head_1_0000004.png"]

  proc = fixtures.run_main("demo_tfrecord.py", workdir, dict(overrides, mode="eval"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, "eval_step4.json")) as f:
    assert_eval_metrics(json.load(f), want)
  assert sorted(os.listdir(os.path.join(workdir, "eval", "images"))) == images


@pytest.mark.slow
def test_evaluate_writes_per_head_report_and_confusion_pngs(run, tmp_path):
  workdir, overrides = run
  want = recomputed(workdir, overrides)
  command = [sys.executable, "-m", "vivit_jax.train.evaluation.evaluate",
             f"--config={os.path.join(fixtures.REPO, 'configs', 'demo_tfrecord.py')}",
             f"--checkpoint={os.path.join(workdir, 'model')}", f"--output={tmp_path}"]
  command += [f"--config.{k}={v}" for k, v in overrides.items()]
  proc = subprocess.run(command, cwd=fixtures.REPO, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "report.json") as f:
    report = json.load(f)
  assert report["top1"] == pytest.approx(want["action"])
  assert report["clip_top1"] == pytest.approx(want["clip"][2])
  assert report["class_splits"] == list(SPLITS)
  assert [h["name"] for h in report["heads"]] == ["head_0", "head_1"]
  for h, head in enumerate(report["heads"]):
    assert head["num_classes"] == SPLITS[h]
    assert head["top1"] == pytest.approx(want[f"head_{h}"])
    assert head["clip_top1"] == pytest.approx(want["clip"][h])
    np.testing.assert_array_equal(head["confusion_matrix"], want["confusion"][h])
    assert [r["name"] for r in head["per_class"]] == [f"class_{i}" for i in range(SPLITS[h])]
    assert (tmp_path / f"confusion_matrix_head_{h}.png").stat().st_size > 0
  assert "action top-1" in proc.stdout and "head_1 (3 classes)" in proc.stdout


@pytest.mark.slow
def test_predict_and_stream_rank_each_head_on_a_real_mp4(run, tmp_path, capsys):
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from vivit_jax import checkpoints  # pylint: disable=import-outside-toplevel
  from vivit_jax.serving import inference, predict, stream  # pylint: disable=import-outside-toplevel
  from vivit_jax.serving import video_io  # pylint: disable=import-outside-toplevel
  workdir, _ = run
  model_dir = os.path.join(workdir, "model")
  mp4 = data_fixtures.write_mp4(str(tmp_path / "clip.mp4"),
                                clip(np.random.default_rng(1), 4).repeat(2, 0))
  assert predict.main(["--checkpoint", model_dir, mp4, "--json", "--top-k", "2"]) == 0
  result = json.loads(capsys.readouterr().out)["results"][0]

  spec = checkpoints.input_spec.resolve_input_spec(checkpoints.load_model_config(model_dir))
  indices = predict.eval_views.view_indices(video_io.probe(mp4).num_frames, spec.num_frames,
                                            spec.stride_for(video_io.probe(mp4).num_frames))[0]
  frames = inference.preprocess(video_io.read_frames(mp4, indices), spec)
  model, params, _ = checkpoints.load_model(model_dir, frames.shape)
  row = np.asarray(model.apply({"params": params}, jnp.asarray(frames[None])),
                   np.float64)[0]
  assert [h["head"] for h in result["heads"]] == ["head_0", "head_1"]
  for head, logits in zip(result["heads"], (row[:SPLITS[0]], row[SPLITS[0]:])):
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    order = np.argsort(-probs)[:2]
    assert [e["index"] for e in head["top_k"]] == order.tolist()
    assert [e["label"] for e in head["top_k"]] == [f"class_{i}" for i in order]
    np.testing.assert_allclose([e["probability"] for e in head["top_k"]], probs[order],
                               rtol=1e-4)

  assert predict.main(["--checkpoint", model_dir, mp4, "--top-k", "1"]) == 0
  text = capsys.readouterr().out
  assert "  head_0:\n    1. class_" in text and "  head_1:\n    1. class_" in text

  log = tmp_path / "stream.jsonl"
  assert stream.main(["--checkpoint", model_dir, "--source", mp4, "--hop", "2",
                      "--json-log", str(log)]) == 0
  assert "head_0: class_" in capsys.readouterr().out
  lines = [json.loads(line) for line in log.read_text().splitlines()]
  assert lines[0]["heads"][0]["head"] == "head_0" and lines[0]["heads"][1]["head"] == "head_1"
  assert lines[0]["heads"][1]["index"] < SPLITS[1]
