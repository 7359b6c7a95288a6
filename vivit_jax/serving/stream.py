r"""Live classification of a video stream: a file, a URL or a capture device.

    vivit-stream --checkpoint=CKPT_DIR --source=clip.mp4 --realtime
    vivit-stream --checkpoint=CKPT_DIR --source=/dev/video0 --hop 8
    vivit-stream --checkpoint=CKPT_DIR --source=rtsp://cam/live \
        --max-seconds 60 --json-log log.jsonl [--dtype bfloat16 --attention-impl cudnn]

A reader thread decodes frames as they arrive and puts them in a bounded
queue (`--queue-size`). Live sources (URLs, devices, and files with
`--realtime`, which replays a file at its own frame rate like a camera)
drop the queue's oldest frame when the model falls behind; a file without
`--realtime` is read as fast as the model takes frames, dropping none.

The model keeps a sliding window of the last `(T - 1) * stride + 1` frames
it took (T = the checkpoint's num_frames) and classifies every `stride`-th
of them, the newest last: first when the window fills, then every `--hop`
frames taken, so N frames give `(N - window) // hop + 1` predictions. Dropped
frames never enter the window. Each prediction prints the top-1 class (a
model with `class_splits`: every head's, `head_0: ...  head_1: ...`; its
`--json-log` lines carry `heads` [{"head", "label", "index", "probability"}]).

Latency is per prediction: preparing the window's frames not yet
preprocessed plus the jitted model call (compiled before the stream
starts). Delay is from the newest frame entering the queue to its
prediction. The summary (printed, and the last line of `--json-log`) gives
predictions, latency and delay p50 / p99 in ms, frames per second taken
by the model, and frames read (of those the container announced) and
dropped. A source that breaks off in a decode error (a truncated file, a
dropped connection) still gets its summary, then one line `error: ...
broke off after N of M frames ...` and exit status 1; a clean end is 0.
"""

import argparse
import dataclasses
import itertools
import json
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from vivit_jax.common import errors
from vivit_jax.serving import flags
from vivit_jax.serving import video_io
from vivit_jax.serving.stream_buffers import FrameQueue, SlidingWindow

Frame = Tuple[int, float, np.ndarray]  # (source index, seconds, (H, W, 3) uint8)


@dataclasses.dataclass
class StreamSummary:
  """What a stream run did. Times in ms, rates in frames per second."""
  predictions: int
  frames_read: int
  frames_processed: int
  frames_dropped: int
  latency_p50_ms: Optional[float]
  latency_p99_ms: Optional[float]
  delay_p50_ms: Optional[float]
  delay_p99_ms: Optional[float]
  fps: float
  source_fps: Optional[float]
  elapsed_s: float
  window: int
  hop: int
  frames_announced: Optional[int] = None  # What the container states; None if it does not.
  source_error: Optional[str] = None  # Why the source broke off, None for a clean end.

  def to_json(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def _percentile(values: List[float], q: float) -> Optional[float]:
  return float(np.percentile(values, q)) if values else None


@dataclasses.dataclass
class _Queued:
  index: int
  seconds: float
  arrival: float  # time.perf_counter() when it entered the queue.
  raw: np.ndarray
  prepared: Optional[np.ndarray] = None


def _reader(frames: Iterable[Frame], queue: FrameQueue, realtime: bool,
            stop: threading.Event, counts: Dict[str, Any]) -> None:
  """Puts `frames` into `queue`; with `realtime`, each no earlier than its
  timestamp after the first frame's (a file replayed like a camera)."""
  start_clock, start_seconds = None, 0.0
  try:
    for index, seconds, frame in frames:
      if stop.is_set():
        break
      if realtime:
        if start_clock is None:
          start_clock, start_seconds = time.perf_counter(), seconds
        wait = start_clock + (seconds - start_seconds) - time.perf_counter()
        if wait > 0 and stop.wait(wait):
          break
      counts["read"] += 1
      if not queue.put(_Queued(index, seconds, time.perf_counter(), frame), stop):
        break
  except BaseException as e:  # Re-raised by the consumer, after the summary's data.
    counts["error"] = e
  finally:
    queue.close()


def run_stream(frames: Iterable[Frame], classify: Callable[[np.ndarray], np.ndarray],
               preprocess: Callable[[np.ndarray], np.ndarray], num_frames: int, stride: int,
               hop: int, realtime: bool = False, drop_when_full: bool = False,
               queue_size: int = 8, max_seconds: Optional[float] = None,
               on_prediction: Optional[Callable[[Dict[str, Any]], None]] = None,
               source_fps: Optional[float] = None) -> StreamSummary:
  """Classifies a sliding window over `frames` (see module docstring).

  Args:
    frames: `(source index, seconds, frame (H, W, 3) uint8)` in order.
    classify: `(1, T, h, w, 3)` float32 -> `(1, num_classes)` probabilities.
    preprocess: `(n, H, W, 3)` uint8 -> `(n, h, w, 3)` float32; called on
      the first frame before the stream starts (to compile it).
    num_frames, stride: T and the sampling stride in frames taken.
    hop: frames taken between predictions.
    realtime: pace `frames` by their timestamps.
    drop_when_full: drop the oldest queued frame when the queue is full
      (live sources) instead of waiting.
    max_seconds: stop after this much wall time.
    on_prediction: called with `{"frame", "seconds", "clip_frames", "probs",
      "latency_ms", "delay_ms"}` for each prediction.
  Returns:
    The `StreamSummary`. A reader error is re-raised after the run.
  """
  if hop < 1:
    raise ValueError(f"hop must be >= 1, got {hop}")
  iterator = iter(frames)
  first = next(iterator, None)
  if first is not None:
    preprocess(first[2][None])  # Compile for this frame size before the clock starts.
  queue = FrameQueue(queue_size, drop_oldest=drop_when_full)
  window = SlidingWindow(num_frames, stride)
  stop = threading.Event()
  counts: Dict[str, Any] = {"read": 0, "error": None}
  source = itertools.chain([first], iterator) if first is not None else iter(())
  reader = threading.Thread(target=_reader, args=(source, queue, realtime, stop, counts),
                            name="frame-reader", daemon=True)
  latencies, delays = [], []
  processed, predictions = 0, 0
  start = time.perf_counter()
  reader.start()
  try:
    while not queue.finished:
      if max_seconds is not None and time.perf_counter() - start >= max_seconds:
        break
      item = queue.get()
      if item is None:
        continue
      processed += 1
      window.push(item)
      if not window.due(hop):
        continue
      begin = time.perf_counter()
      clip = window.clip()
      for entry in clip:
        if entry.prepared is None:
          entry.prepared = preprocess(entry.raw[None])[0]
          entry.raw = None  # Only the prepared frame is needed from now on.
      probs = np.asarray(classify(np.stack([e.prepared for e in clip])[None]))[0]
      done = time.perf_counter()
      predictions += 1
      latencies.append((done - begin) * 1e3)
      delays.append((done - item.arrival) * 1e3)
      if on_prediction is not None:
        on_prediction({"frame": item.index, "seconds": item.seconds,
                       "clip_frames": [e.index for e in clip], "probs": probs,
                       "latency_ms": latencies[-1], "delay_ms": delays[-1]})
  except KeyboardInterrupt:  # Ctrl-C ends a live stream; the summary still comes.
    pass
  finally:
    stop.set()
    # A live source blocked on the network only sees `stop` at its next
    # frame; the daemon reader is not waited for beyond a moment.
    reader.join(timeout=2.0)
  elapsed = time.perf_counter() - start
  if counts["error"] is not None:
    raise counts["error"]
  return StreamSummary(
      predictions=predictions, frames_read=counts["read"], frames_processed=processed,
      frames_dropped=queue.dropped, latency_p50_ms=_percentile(latencies, 50),
      latency_p99_ms=_percentile(latencies, 99), delay_p50_ms=_percentile(delays, 50),
      delay_p99_ms=_percentile(delays, 99), fps=processed / elapsed if elapsed > 0 else 0.0,
      source_fps=source_fps, elapsed_s=elapsed, window=window.span, hop=hop)


def format_summary(summary: StreamSummary) -> str:
  def ms(value):
    return "n/a" if value is None else f"{value:.1f} ms"
  source = f" (source {summary.source_fps:.1f} fps)" if summary.source_fps else ""
  of = f" of {summary.frames_announced} announced" if summary.frames_announced else ""
  return "\n".join([
      f"predictions      {summary.predictions} (window {summary.window} frames, hop {summary.hop})",
      f"latency p50/p99  {ms(summary.latency_p50_ms)} / {ms(summary.latency_p99_ms)}",
      f"delay p50/p99    {ms(summary.delay_p50_ms)} / {ms(summary.delay_p99_ms)}",
      f"frames           {summary.frames_processed} processed, {summary.frames_read} read{of}, "
      f"{summary.frames_dropped} dropped",
      f"throughput       {summary.fps:.1f} fps{source} over {summary.elapsed_s:.1f} s"])


def _option(text: str) -> Tuple[str, str]:
  key, sep, value = text.partition("=")
  if not sep or not key:
    raise argparse.ArgumentTypeError(f"needs KEY=VALUE, got {text!r}")
  return key, value


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="vivit-stream", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  flags.add_model_flags(parser)
  parser.add_argument("--source", required=True,
                      help="video file, URL (rtsp://, http://, ...) or device (/dev/video0)")
  parser.add_argument("--hop", type=int, default=4, help="frames between predictions")
  parser.add_argument("--realtime", action="store_true",
                      help="replay a file at its frame rate, dropping frames the model misses")
  parser.add_argument("--max-seconds", type=float, help="stop after this many seconds")
  parser.add_argument("--queue-size", type=int, default=8, help="frames buffered for the model")
  parser.add_argument("--json-log", help="JSON lines: one per prediction, then the summary")
  parser.add_argument("--input-format", help="FFmpeg input format (default: v4l2 for /dev/video*)")
  parser.add_argument("--input-option", type=_option, action="append", default=[],
                      metavar="KEY=VALUE", help="FFmpeg input option, e.g. video_size=640x480")
  parser.add_argument("--quiet", action="store_true", help="print only the summary")
  args = parser.parse_args(argv)
  if args.hop < 1 or args.queue_size < 1:
    parser.error("--hop and --queue-size must be >= 1")
  return args


@errors.command
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  try:
    classifier = flags.classifier_from_args(args)
    classifier.warmup()  # Compiled before the stream starts: not in the latencies.
  except (OSError, ValueError, RuntimeError) as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  spec = classifier.spec
  stride = spec.stride_for(None)
  live = video_io.LiveSource(args.source, args.input_format, dict(args.input_option))
  log = open(args.json_log, "w") if args.json_log else None
  try:
    live.open()

    def on_prediction(record):
      if classifier.class_splits:
        return on_heads_prediction(record)
      top = classifier.top_k(record["probs"], 1)[0]
      if not args.quiet:
        print(f"frame {record['frame']:6d}  t={record['seconds']:7.2f}s  {top['label']:<24s} "
              f"{top['probability']:.3f}  ({record['latency_ms']:.1f} ms)", flush=True)
      if log is not None:
        entry = {k: v for k, v in record.items() if k != "probs"}
        log.write(json.dumps({**entry, "label": top["label"], "index": top["index"],
                              "probability": top["probability"]}) + "\n")

    def on_heads_prediction(record):
      tops = [dict(h["top_k"][0], head=h["head"])
              for h in classifier.head_top_k(record["probs"], 1)]
      if not args.quiet:
        shown = "  ".join(f"{t['head']}: {t['label']} {t['probability']:.3f}" for t in tops)
        print(f"frame {record['frame']:6d}  t={record['seconds']:7.2f}s  {shown}  "
              f"({record['latency_ms']:.1f} ms)", flush=True)
      if log is not None:
        entry = {k: v for k, v in record.items() if k != "probs"}
        log.write(json.dumps({**entry, "heads": tops}) + "\n")

    summary = run_stream(
        live.frames(), classifier.classify, classifier.preprocess, spec.num_frames, stride,
        args.hop, realtime=args.realtime and live.kind == "file",
        drop_when_full=args.realtime or live.kind != "file", queue_size=args.queue_size,
        max_seconds=args.max_seconds, on_prediction=on_prediction, source_fps=live.fps)
    summary = dataclasses.replace(summary, frames_announced=live.frames_announced,
                                  source_error=live.error)
    print(format_summary(summary))
    if log is not None:
      log.write(json.dumps({"summary": summary.to_json()}) + "\n")
    if live.error is not None:
      of = (f" of {live.frames_announced} frames the container announced"
            if live.frames_announced else " frames")
      print(f"error: source broke off after {summary.frames_read}{of} ({live.error}); "
            f"the predictions above cover only those", file=sys.stderr)
      return 1
  except video_io.VideoDecodeError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  finally:
    live.close()
    if log is not None:
      log.close()
  return 0


if __name__ == "__main__":
  sys.exit(main())
