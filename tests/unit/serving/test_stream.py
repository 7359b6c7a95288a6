"""`vivit_jax.serving.stream`: the sliding window, prediction counts, drops, the CLI."""

import json
import time

import numpy as np
import pytest

from support import videos as fx
from vivit_jax.serving import inference
from vivit_jax.serving import stream
from vivit_jax.serving import video_io
from vivit_jax.serving.stream_buffers import FrameQueue, SlidingWindow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("stream")
  return {"root": root, "ckpt": fx.make_checkpoint(str(root / "ckpt")),
          "video": fx.write_video(str(root / "a.mp4"))}


@pytest.fixture(scope="module")
def classifier(workdir):
  c = inference.load_classifier(workdir["ckpt"])
  c.warmup()
  return c


def test_sliding_window_holds_strided_frames_newest_last():
  window = SlidingWindow(num_frames=4, stride=3)
  assert window.span == 10
  due = []
  for i in range(30):
    window.push(i)
    if window.full:
      assert window.clip() == [i - 9, i - 6, i - 3, i]
    if window.due(hop=4):
      due.append(i)
  assert due == [9, 13, 17, 21, 25, 29]  # (30 - 10) // 4 + 1 predictions.
  with pytest.raises(ValueError, match="holds 0"):
    SlidingWindow(2, 1).clip()


def test_frame_queue_drops_oldest_or_waits():
  q = FrameQueue(2, drop_oldest=True)
  for i in range(5):
    assert q.put(i)
  assert q.dropped == 3 and q.get() == 3 and q.get() == 4
  q.close()
  assert q.get() is None and q.finished
  import threading
  stop = threading.Event()
  blocking = FrameQueue(1, drop_oldest=False)
  assert blocking.put("a")
  stop.set()
  assert not blocking.put("b", stop) and blocking.dropped == 0


@pytest.mark.parametrize("hop", [1, 4, 7])
def test_file_stream_prediction_count_and_windows(workdir, classifier, hop):
  records = []
  live = video_io.LiveSource(workdir["video"]).open()
  summary = stream.run_stream(live.frames(), classifier.classify, classifier.preprocess,
                              num_frames=8, stride=2, hop=hop, on_prediction=records.append)
  live.close()
  span = 15
  assert summary.predictions == len(records) == (40 - span) // hop + 1
  assert summary.frames_processed == summary.frames_read == 40
  assert summary.frames_dropped == 0 and summary.window == span
  assert [r["frame"] for r in records] == list(range(span - 1, 40, hop))
  for r in records:
    assert r["clip_frames"] == list(range(r["frame"] - 14, r["frame"] + 1, 2))
    assert abs(float(np.sum(r["probs"])) - 1) < 1e-5
  assert summary.latency_p50_ms is not None and summary.latency_p99_ms >= summary.latency_p50_ms


def test_stream_prediction_equals_clip_classification(workdir, classifier):
  records = []
  live = video_io.LiveSource(workdir["video"]).open()
  stream.run_stream(live.frames(), classifier.classify, classifier.preprocess, 8, 2, hop=10,
                    on_prediction=records.append)
  live.close()
  for r in records:
    frames = video_io.read_frames(workdir["video"], r["clip_frames"])
    want = classifier.classify(classifier.preprocess(frames)[None])[0]
    np.testing.assert_allclose(r["probs"], want, rtol=1e-5, atol=1e-6)


def _synthetic_frames(n, fps):
  for i in range(n):
    yield i, i / fps, fx.frame_pattern(i, 24, 32)


def test_slow_consumer_drops_frames_and_counts_them():
  def slow_classify(clips):
    time.sleep(0.1)
    return np.full((1, 3), 1 / 3, np.float32)

  records = []
  summary = stream.run_stream(
      _synthetic_frames(60, fps=1000.0), slow_classify, lambda f: f.astype(np.float32),
      num_frames=2, stride=1, hop=1, realtime=True, drop_when_full=True, queue_size=2,
      on_prediction=records.append)
  assert summary.frames_read == 60
  assert summary.frames_dropped > 0
  assert summary.frames_processed + summary.frames_dropped == 60
  assert summary.predictions == summary.frames_processed - 1 == len(records)
  # The window holds the frames the model took: gaps where frames were dropped.
  clips = [r["clip_frames"] for r in records]
  assert all(a < b for a, b in clips) and any(b - a > 1 for a, b in clips)


def test_without_drops_a_slow_consumer_sees_every_frame():
  def slow_classify(clips):
    time.sleep(0.01)
    return np.ones((1, 2), np.float32) / 2
  summary = stream.run_stream(_synthetic_frames(20, 1000.0), slow_classify,
                              lambda f: f.astype(np.float32), 4, 1, hop=2, queue_size=1)
  assert summary.frames_dropped == 0 and summary.frames_processed == 20
  assert summary.predictions == (20 - 4) // 2 + 1


def test_cli_json_log_and_summary(workdir, capsys):
  log = workdir["root"] / "log.jsonl"
  assert stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={workdir['video']}",
                      "--hop", "5", f"--json-log={log}"]) == 0
  out = capsys.readouterr().out
  assert "latency p50/p99" in out and "dropped" in out
  lines = [json.loads(line) for line in log.read_text().splitlines()]
  predictions, summary = lines[:-1], lines[-1]["summary"]
  assert len(predictions) == summary["predictions"] == (40 - 15) // 5 + 1
  assert predictions[0]["label"] in fx.LABELS and 0 < predictions[0]["probability"] <= 1
  assert summary["frames_dropped"] == 0 and summary["fps"] > 0


def _json_log(workdir, name, *flags):
  log = workdir["root"] / f"{name}.jsonl"
  assert stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={workdir['video']}",
                      f"--json-log={log}", "--quiet", *flags]) == 0
  lines = [json.loads(line) for line in log.read_text().splitlines()]
  return lines[:-1], lines[-1]["summary"]


def test_cli_realtime_replay_runs_and_summarises(workdir, capsys):
  predictions, summary = _json_log(workdir, "realtime", "--realtime", "--max-seconds", "10",
                                   "--queue-size", "64")
  out = capsys.readouterr().out
  assert "throughput" in out and "source 25.0 fps" in out
  # All 40 frames of the 25 fps file were replayed; with a queue deep enough
  # for the whole file none is dropped, so every window was classified.
  assert summary["frames_processed"] + summary["frames_dropped"] == 40
  assert summary["frames_dropped"] == 0
  assert len(predictions) == summary["predictions"] == (40 - 15) // 4 + 1
  # The replay classifies the same windows, with the same results, as reading
  # the file at full speed; timestamps are the source's (frame / 25 fps).
  offline, _ = _json_log(workdir, "offline", "--hop", "4")
  assert [p["frame"] for p in predictions] == [p["frame"] for p in offline] == \
      list(range(14, 40, 4))
  for got, want in zip(predictions, offline):
    assert got["seconds"] == pytest.approx(got["frame"] / 25.0)
    assert got["label"] == want["label"] and got["index"] == want["index"]
    assert got["probability"] == pytest.approx(want["probability"], abs=1e-6)


def test_cli_dtype_override_runs_in_bfloat16(workdir, capsys):
  want, _ = _json_log(workdir, "float32", "--hop", "8")
  got, summary = _json_log(workdir, "bfloat16", "--hop", "8", "--dtype", "bfloat16")
  assert summary["predictions"] == len(got) == len(want) == 4
  assert "predictions      4" in capsys.readouterr().out
  top32 = np.array([b["probability"] for b in want])
  top16 = np.array([a["probability"] for a in got])
  assert [a["label"] for a in got] == [b["label"] for b in want]
  # Confident predictions (uniform would be 0.2), close to float32's but not
  # bitwise equal to them: the override reached the model.
  assert np.all(top32 > 0.4), top32
  np.testing.assert_allclose(top16, top32, atol=0.02)
  assert np.any(top16 != top32)


def test_bfloat16_probabilities_match_float32_for_every_class(workdir, classifier):
  """All class probabilities, not only the top one, within bfloat16's precision."""
  bf16 = inference.load_classifier(workdir["ckpt"], dtype="bfloat16")
  clips = np.random.default_rng(0).uniform(-2, 2, (2, 8, 32, 32, 3)).astype(np.float32)
  p32, p16 = classifier.classify(clips), bf16.classify(clips)
  assert p32.shape == p16.shape == (2, len(fx.LABELS))
  np.testing.assert_allclose(p16.sum(-1), 1.0, atol=1e-3)
  assert np.ptp(p32, axis=-1).min() > 0.3, p32  # far from uniform: a real comparison
  diff = np.abs(p16.astype(np.float64) - p32)
  assert 0 < diff.max() < 0.02, diff


def test_cli_queue_size_and_hop_must_be_positive(workdir, capsys):
  for flag in ("--queue-size", "--hop"):
    with pytest.raises(SystemExit) as info:
      stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={workdir['video']}",
                   flag, "0"])
    assert info.value.code == 2
    assert "--hop and --queue-size must be >= 1" in capsys.readouterr().err


def test_cli_input_format_and_options_open_raw_video(workdir, tmp_path, capsys):
  """`--input-format rawvideo` with `--input-option` KEY=VALUEs (size, pixel
  format, rate) decodes headerless frames; without the size FFmpeg refuses."""
  frames = np.stack([fx.frame_pattern(i, 48, 64) for i in range(20)]).astype(np.uint8)
  raw = tmp_path / "clip.rgb"
  raw.write_bytes(np.ascontiguousarray(frames).tobytes())
  h, w = frames.shape[1:3]
  log = tmp_path / "raw.jsonl"
  assert stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={raw}", "--quiet",
                      "--input-format", "rawvideo", "--input-option", f"video_size={w}x{h}",
                      "--input-option", "pixel_format=rgb24", "--input-option", "framerate=10",
                      "--hop", "5", f"--json-log={log}"]) == 0
  summary = json.loads(log.read_text().splitlines()[-1])["summary"]
  assert summary["frames_read"] == 20 and summary["source_fps"] == 10.0
  assert summary["predictions"] == (20 - 15) // 5 + 1
  capsys.readouterr()
  assert stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={raw}", "--quiet",
                      "--input-format", "rawvideo"]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error:")
  with pytest.raises(SystemExit):
    stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={raw}",
                 "--input-option", "video_size"])
  assert "needs KEY=VALUE, got 'video_size'" in capsys.readouterr().err


def test_cli_undecodable_source_is_one_error_line(workdir, capsys):
  bad = fx.corrupt_files(str(workdir["root"]), workdir["video"])["random"]
  assert stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={bad}"]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and bad in err[0]


def test_cli_source_that_breaks_off_counts_frames_and_exits_nonzero(workdir, capsys, tmp_path):
  whole = fx.write_video(str(tmp_path / "whole.mp4"), num_frames=40, faststart=True)
  with open(whole, "rb") as f:
    data = f.read()
  cut = str(tmp_path / "cut.mp4")
  with open(cut, "wb") as f:
    f.write(data[: int(len(data) * 0.8)])
  log = str(tmp_path / "cut.jsonl")
  assert stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={cut}", "--quiet",
                      f"--json-log={log}"]) == 1
  out, err = capsys.readouterr()
  with open(log) as f:
    summary = json.loads(f.read().splitlines()[-1])["summary"]
  read = summary["frames_read"]
  assert 0 < read < 40 and summary["frames_announced"] == 40
  assert cut in summary["source_error"]
  assert f"{read} read of 40 announced" in out
  err = err.strip().splitlines()
  assert len(err) == 1
  assert err[0].startswith(f"error: source broke off after {read} of 40 frames the container "
                           f"announced ({cut}: ")

  assert stream.main([f"--checkpoint={workdir['ckpt']}", f"--source={whole}", "--quiet"]) == 0
  out, err = capsys.readouterr()
  assert "40 read of 40 announced" in out and err == ""


def test_source_kinds_and_open_options():
  assert video_io.source_kind("/dev/video0") == "device"
  assert video_io.source_kind("rtsp://cam/live") == "url"
  assert video_io.source_kind("clip.mp4") == "file"
  assert video_io.open_options("/dev/video2") == ("v4l2", {})
  assert video_io.open_options("rtsp://x/y") == (None, {"rtsp_transport": "tcp"})
