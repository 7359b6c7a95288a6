"""Videos + a list file -> sharded DMVR TFRecords of JPEG frames.

    python -m vivit_jax.data.make_tfrecords --list train.csv --video_root videos/ \\
        --output_dir tfrecords/ --name train --num_shards 64 --short_side 256 \\
        --workers 8

Every frame is resized to `--short_side` (256 by default; 320 for
higher-resolution fine-tuning) and JPEG-encoded; one record per video (see
`sources/tfrecord.py`). Shard s holds list lines [s N / S, (s + 1) N / S). Shards are
written in parallel processes to `*.tmp` and renamed when complete, next to a
`<name>.SSSSS-of-NNNNN.summary.json` (which the shard pattern `<name>-*` does
not match); a rerun skips complete shards, so an interrupted conversion
resumes. Videos that cannot be decoded are skipped and reported
with the reason in `<name>.summary.json` and on stdout. One rule for short
videos: a truncated file (it ends before the frames its header announces)
or a damaged one (a decode error mid-file) keeps the frames decoded before
that point if they are at least `--min_frames_fraction` (0.5) of the
announced ones, else it is skipped; the summary counts each kind kept and
skipped (docs/data.md). A progress bar (videos
done, rate, ETA) goes to stderr; `--no_progress` turns it off.

The run exits 2 with one `error:` line when fewer than
`--min_converted_fraction` (0.5) of the videos convert; a shard that converted
nothing or missed a listed file is not complete, so a corrected rerun redoes
it. `<name>.options.json` records the options that shape the records; a rerun
with other ones refuses unless `--overwrite`.
"""

import argparse
import collections
import io
import json
import multiprocessing
import os
import sys
from concurrent import futures
from typing import List, Sequence, Tuple

import av
import tqdm

from vivit_jax.common import errors
from vivit_jax.data.sources import video_list


class NoVideoStreamError(ValueError):
  """A file that opens but holds no video stream (e.g. audio only)."""


class ConversionError(ValueError):
  """An expected user mistake; its message is one line naming cause and fix."""


def shard_path(output_dir: str, name: str, shard: int, num_shards: int) -> str:
  return os.path.join(output_dir, f"{name}-{shard:05d}-of-{num_shards:05d}.tfrecord")


def shard_summary_path(shard_file: str) -> str:
  """`<dir>/<name>.SSSSS-of-NNNNN.summary.json` for the shard `<dir>/<name>-SSSSS-of-
  NNNNN.tfrecord`: a `.` after the name, so the shard pattern `<name>-*` that
  training is given does not match it."""
  head, _, tail = shard_file.removesuffix(".tfrecord").rpartition("-")
  head, _, of = head.rpartition("-")
  head, _, shard = head.rpartition("-")
  return f"{head}.{shard}-{of}-{tail}.summary.json"


# A header may overstate the frame count by a frame or two (see pyav_decode).
_FRAME_COUNT_SLACK = 2


class ShortVideoError(ValueError):
  """A truncated or damaged video with too few readable frames to keep."""


class TruncatedVideoError(ShortVideoError):
  """The file ends before the frames its header announces."""


class DamagedVideoError(ShortVideoError):
  """A decode error mid-file, the data after it still there."""


def _resized_jpeg_frames(path: str, short_side: int, quality: int,
                         min_frames_fraction: float = 0.5) -> Tuple[List[bytes], str, str]:
  """`(frames, kind, detail)`: JPEG frames decoded up to the end or the first
  error; kind "" (complete), "truncated" (the file ends before the frames
  its header announces) or "damaged" (a decode error with the data still
  there). Raises ShortVideoError when fewer than `min_frames_fraction` of
  the announced frames (or none) decode."""
  frames, error, packets = [], None, 0
  with av.open(path) as container:
    if not container.streams.video:
      kinds = sorted({stream.type for stream in container.streams}) or ["none"]
      raise NoVideoStreamError(f"no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    announced = int(stream.frames or 0)
    height, width = stream.codec_context.height, stream.codec_context.width
    scale = short_side / min(height, width)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    demuxed = container.demux(stream)
    while True:
      try:
        packet = next(demuxed)
      except StopIteration:
        break
      except av.FFmpegError as demux_error:  # The file ends mid-packet.
        error = error or demux_error
        break
      packets += 1 if packet.size else 0
      if error is not None:
        continue  # Only count what the file still holds.
      try:
        decoded = packet.decode()
      except av.FFmpegError as decode_error:
        error = decode_error
        continue
      for frame in decoded:
        image = frame.reformat(width=size[0], height=size[1], format="rgb24").to_image()
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        frames.append(buffer.getvalue())
  short = announced and len(frames) < announced - _FRAME_COUNT_SLACK
  if error is None and not short:
    if not frames:
      raise ValueError("no frames decoded")
    return frames, "", ""
  kind = "truncated" if packets < announced - _FRAME_COUNT_SLACK else "damaged"
  detail = (f"{len(frames)} of {announced or '?'} frames readable"
            + (f" ({type(error).__name__}: {error})" if error is not None else ""))
  if not frames or len(frames) < min_frames_fraction * announced:
    error_class = TruncatedVideoError if kind == "truncated" else DamagedVideoError
    raise error_class(f"{kind}: {detail}, fewer than --min_frames_fraction="
                      f"{min_frames_fraction:g} of them")
  return frames, kind, detail


def convert_shard(videos: Sequence[Tuple[str, int]], output_path: str, short_side: int,
                  quality: int, label_names: Sequence[str] = (),
                  min_frames_fraction: float = 0.5, progress=None) -> dict:
  """Writes one shard; returns its summary {"converted", "skipped": {path: reason},
  "truncated" / "damaged": {path: detail} of the videos kept short}.

  `progress`: called with 1 after each video (converted or skipped), or a
  queue that gets a 1 put for each (from a worker process); None: silent.
  """
  tick = getattr(progress, "put", progress) or (lambda n: None)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from vivit_jax.data.sources import tfrecord  # pylint: disable=import-outside-toplevel
  summary = {"shard": os.path.basename(output_path), "converted": 0, "frames": 0,
             "skipped": {}, "truncated": {}, "damaged": {}}
  with tf.io.TFRecordWriter(output_path + ".tmp") as writer:
    for path, label in videos:
      try:
        frames, kind, detail = _resized_jpeg_frames(path, short_side, quality,
                                                    min_frames_fraction)
      except Exception as error:  # pylint: disable=broad-except
        summary["skipped"][path] = f"{type(error).__name__}: {error}"
        tick(1)
        continue
      if kind:
        summary[kind][path] = detail
      text = label_names[label] if label < len(label_names) else ""
      writer.write(tfrecord.make_sequence_example(frames, [label], text, path))
      summary["converted"] += 1
      summary["frames"] += len(frames)
      tick(1)
  missing = [p for p, reason in summary["skipped"].items()
             if reason.startswith("FileNotFoundError")]
  # Missing files are an input mistake (e.g. a wrong --video_root), not damage:
  # such a shard, or one that converted nothing, is rewritten on the next run.
  summary["complete"] = summary["converted"] > 0 and not missing
  summary_path = shard_summary_path(output_path)
  with open(summary_path + ".tmp", "w") as f:
    json.dump(summary, f, indent=1)
  os.replace(summary_path + ".tmp", summary_path)
  if summary["converted"]:
    os.replace(output_path + ".tmp", output_path)
  else:
    os.remove(output_path + ".tmp")
    if os.path.exists(output_path):
      os.remove(output_path)
  return summary


def _is_complete(output_path: str) -> bool:
  summary_path = shard_summary_path(output_path)
  if not (os.path.exists(output_path) and os.path.exists(summary_path)):
    return False
  try:
    with open(summary_path) as f:
      return json.load(f).get("complete", True)
  except (ValueError, AttributeError):  # Damaged or edited: redo the shard.
    return False


def _check_options(options_path: str, options: dict, overwrite: bool, shards: List[str]):
  """Refuses output options that differ from those that wrote existing shards."""
  if overwrite:
    for path in shards:
      for stale in (path, shard_summary_path(path)):
        if os.path.exists(stale):
          os.remove(stale)
  elif os.path.exists(options_path) and any(os.path.exists(path) for path in shards):
    recorded = errors.read_json(options_path, "delete it and pass --overwrite to redo "
                                     "the shards")
    for key, value in options.items():
      if key in recorded and recorded[key] != value:
        if key == "label_names":
          change = "--label_names names other classes than those"
        else:
          change = f"--{key}={value} differs from {recorded[key]}"
        raise ConversionError(
            f"{change} recorded for the existing shards in {options_path}: pass the same "
            "value, or --overwrite to redo the shards")
  with open(options_path + ".tmp", "w") as f:
    json.dump(options, f, indent=1)
  os.replace(options_path + ".tmp", options_path)


def _run_in_processes(jobs: Sequence[tuple], workers: int, bar) -> None:
  """`convert_shard(*job)` for every job in `workers` spawned processes; each
  worker reports finished videos through a managed queue to `bar`."""
  context = multiprocessing.get_context("spawn")
  with context.Manager() as manager:
    done_videos = manager.Queue()
    with futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
      pending = {pool.submit(convert_shard, *job, progress=done_videos) for job in jobs}
      while pending:
        finished, pending = futures.wait(pending, timeout=0.5)
        while not done_videos.empty():
          bar.update(done_videos.get())
        for future in finished:
          future.result()


def write_tfrecords(list_path: str, output_dir: str, name: str = "train",
                    num_shards: int = 16, short_side: int = 256, workers: int = 0,
                    video_root: str = "", jpeg_quality: int = 90,
                    label_names_path: str = "", progress: bool = True,
                    overwrite: bool = False, min_frames_fraction: float = 0.5) -> dict:
  """Converts every video of `list_path`; returns the overall summary.

  A truncated or mid-file damaged video keeps the frames decoded before the
  end or the first error if they are at least `min_frames_fraction` of the
  frames its header announces, else it is skipped; both outcomes are
  counted per kind ("truncated_kept", "damaged_skipped", ...).

  `workers` processes write shards in parallel (0: in this process);
  `progress` shows a tqdm bar over the videos still to convert. The options
  that shape the records are kept in `<name>.options.json`; a rerun with other
  ones raises `ConversionError` unless `overwrite` (which redoes every shard).
  """
  paths, labels = video_list.read_video_list(list_path, "list", video_root)
  if num_shards < 1 or num_shards > len(paths):
    raise ValueError(f"--num_shards={num_shards} must lie in [1, {len(paths)} videos]")
  label_names = []
  if label_names_path:
    with open(label_names_path) as f:
      label_names = [line.strip() for line in f if line.strip()]
  os.makedirs(output_dir, exist_ok=True)
  _check_options(os.path.join(output_dir, f"{name}.options.json"),
                 {"short_side": short_side, "jpeg_quality": jpeg_quality,
                  "label_names": label_names, "min_frames_fraction": min_frames_fraction},
                 overwrite,
                 [shard_path(output_dir, name, s, num_shards) for s in range(num_shards)])
  videos = list(zip(paths, labels))
  jobs, resumed = {}, []
  for shard in range(num_shards):
    output_path = shard_path(output_dir, name, shard, num_shards)
    if _is_complete(output_path):
      resumed.append(output_path)
      continue
    chunk = videos[shard * len(videos) // num_shards:(shard + 1) * len(videos) // num_shards]
    jobs[output_path] = (chunk, output_path, short_side, jpeg_quality, label_names,
                         min_frames_fraction)
  with tqdm.tqdm(total=sum(len(job[0]) for job in jobs.values()), desc=f"{name} videos",
                 unit="video", dynamic_ncols=True, disable=not progress) as bar:
    if workers > 0 and len(jobs) > 1:
      _run_in_processes(list(jobs.values()), workers, bar)
    else:
      for job in jobs.values():
        convert_shard(*job, progress=bar.update)
  shard_summaries = []
  for shard in range(num_shards):
    with open(shard_summary_path(shard_path(output_dir, name, shard, num_shards))) as f:
      shard_summaries.append(json.load(f))
  skipped, short = {}, {"truncated": {}, "damaged": {}}
  for summary in shard_summaries:
    skipped.update(summary["skipped"])
    for kind, kept in short.items():
      kept.update(summary.get(kind, {}))
  reasons = collections.Counter(reason.split(":")[0] for reason in skipped.values())
  for kind, error_class in (("truncated", TruncatedVideoError),
                            ("damaged", DamagedVideoError)):
    short[f"{kind}_kept"] = len(short[kind])
    short[f"{kind}_skipped"] = reasons.get(error_class.__name__, 0)
  total = {"videos": len(videos), "converted": sum(s["converted"] for s in shard_summaries),
           "frames": sum(s["frames"] for s in shard_summaries), "skipped": skipped,
           "skipped_by_reason": dict(reasons), "shards": num_shards,
           "shards_written": len(jobs), "shards_already_complete": len(resumed),
           "pattern": os.path.join(output_dir, f"{name}-*-of-{num_shards:05d}.tfrecord"),
           "short_side": short_side, "jpeg_quality": jpeg_quality,
           "video_root": video_root,
           "shards_incomplete": sum(not s.get("complete", True) for s in shard_summaries),
           "min_frames_fraction": min_frames_fraction, **short}
  with open(os.path.join(output_dir, f"{name}.summary.json"), "w") as f:
    json.dump(total, f, indent=1)
  return total


@errors.command
def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--list", required=True, help="`path label` or `path,label` lines")
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--name", default="train", help="shard file prefix, e.g. train/val")
  parser.add_argument("--video_root", default="", help="prefix for relative list paths")
  parser.add_argument("--num_shards", type=int, default=16)
  parser.add_argument("--short_side", type=int, default=256, help="e.g. 256 or 320")
  parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                      help="parallel processes (0: none)")
  parser.add_argument("--jpeg_quality", type=int, default=90)
  parser.add_argument("--label_names", default="", help="class names, one per line")
  parser.add_argument("--no_progress", action="store_true", help="no progress bar")
  parser.add_argument("--min_converted_fraction", type=float, default=0.5,
                      help="exit 2 when fewer of the listed videos convert (0: never)")
  parser.add_argument("--min_frames_fraction", type=float, default=0.5,
                      help="a truncated or damaged video keeps its readable frames if "
                      "they are at least this fraction of those announced, else is skipped")
  parser.add_argument("--overwrite", action="store_true",
                      help="redo every shard, e.g. after changing --short_side")
  args = parser.parse_args(argv)
  try:
    summary = write_tfrecords(args.list, args.output_dir, args.name, args.num_shards,
                              args.short_side, args.workers, args.video_root,
                              args.jpeg_quality, args.label_names,
                              progress=not args.no_progress, overwrite=args.overwrite,
                              min_frames_fraction=args.min_frames_fraction)
  except (ConversionError, FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"converted {summary['converted']} of {summary['videos']} videos "
        f"({summary['frames']} frames) into {summary['shards']} shards "
        f"({summary['shards_written']} written now, {summary['shards_already_complete']} "
        f"already complete): {summary['pattern']}")
  if summary["skipped"]:
    print(f"skipped {len(summary['skipped'])} videos: {summary['skipped_by_reason']}")
    for path, reason in sorted(summary["skipped"].items()):
      print(f"  {path}: {reason}")
  if any(summary[f"{kind}_{outcome}"] for kind in ("truncated", "damaged")
         for outcome in ("kept", "skipped")):
    print(f"truncated videos: {summary['truncated_kept']} kept short, "
          f"{summary['truncated_skipped']} skipped; damaged mid-file: "
          f"{summary['damaged_kept']} kept short, {summary['damaged_skipped']} skipped "
          f"(--min_frames_fraction={summary['min_frames_fraction']:g})")
    for kind in ("truncated", "damaged"):
      for path, detail in sorted(summary[kind].items()):
        print(f"  kept {kind} {path}: {detail}")
  fraction = summary["converted"] / summary["videos"]
  if fraction < args.min_converted_fraction:
    print(f"error: {_low_yield_reason(summary, args.min_converted_fraction)}",
          file=sys.stderr)
    return 2
  return 0


def _low_yield_reason(summary: dict, min_fraction: float) -> str:
  """One line: how few converted, the commonest cause, and its fix."""
  head = (f"only {summary['converted']} of {summary['videos']} videos converted "
          f"(below --min_converted_fraction={min_fraction:g})")
  reasons = collections.Counter(summary["skipped_by_reason"])
  if not reasons:
    return head
  reason, count = reasons.most_common(1)[0]
  first = sorted(p for p, r in summary["skipped"].items() if r.split(":")[0] == reason)[0]
  if reason == "FileNotFoundError":
    root = summary["video_root"] or "(unset)"
    return (f"{head}: {count} listed files do not exist, e.g. {first!r}: check "
            f"--video_root (now {root}) and the list's paths, then rerun")
  return (f"{head}: {count} failed with {reason}, e.g. {first!r}: see {summary['pattern']}"
          " summaries; lower --min_converted_fraction to accept")


if __name__ == "__main__":
  sys.exit(main())
