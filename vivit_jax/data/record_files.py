"""TFRecord files read by offset: the file index and a thread-safe record reader.

A TFRecord file is a sequence of frames
  uint64 length | uint32 masked crc(length) | data[length] | uint32 masked crc(data).
`scan_tfrecord` walks the length headers (seeking over the data, checking
each header's checksum) and returns each record's data offset and length, so
a pipeline can read record i of a shard directly; training order then needs
no shuffle buffer and resuming needs no replay. A file that is empty, not a
TFRecord file, cut off, or has a damaged header is named for what it is.
`RecordReader` reads records by offset from many threads and checks each
record's data checksum (`integrity.record_damage`).
"""

import dataclasses
import os
import struct
import threading
from concurrent import futures
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from vivit_jax.data import integrity

_HEADER = 12  # uint64 length + uint32 crc.
_FOOTER = 4  # uint32 crc of the data.


@dataclasses.dataclass
class FileIndex:
  """Records of one TFRecord file: byte offsets of their data, and lengths.

  `problem`: "" (intact), "empty" (0 bytes), "not_tfrecord" (the first
  header fails its checksum: some other kind of file), "truncated" (the last
  record is cut off) or "corrupt_header" (a later header fails its checksum;
  the records before it are used).
  """
  path: str
  offsets: np.ndarray  # (R,) int64, first byte of each record's data.
  lengths: np.ndarray  # (R,) int64, bytes of each record's data.
  truncated_bytes: int = 0  # Bytes after the last usable record.
  problem: str = ""
  message: str = ""  # What is wrong, for a warning ("" when intact).


def _open(path: str):
  if "://" in path:  # Remote filesystems (gs://) go through TF.
    return tf.io.gfile.GFile(path, "rb")
  return open(path, "rb")


_PROBLEM_WORDS = {"empty": "empty file", "not_tfrecord": "not a TFRecord file",
                  "truncated": "truncated", "corrupt_header": "corrupt record header"}


def scan_tfrecord(path: str) -> FileIndex:
  """Indexes the records of one file by reading only their headers (each
  header's length checksum is verified; the data's when a record is read)."""
  offsets, lengths = [], []
  problem = ""
  with _open(path) as f:
    size = f.seek(0, os.SEEK_END) if "://" not in path else f.size()
    position = 0
    while position < size:
      f.seek(position)
      header = f.read(_HEADER)
      if len(header) < _HEADER:
        problem = "truncated" if offsets else "not_tfrecord"
        break
      (length,) = struct.unpack("<Q", header[:8])
      end = position + _HEADER + length + _FOOTER
      intact = integrity.header_intact(header)
      if not (intact or offsets):
        problem = "not_tfrecord"
        break
      if end > size:  # A record cut off (its header may be cut too).
        problem = "truncated"
        break
      if not intact:
        problem = "corrupt_header"
        break
      offsets.append(position + _HEADER)
      lengths.append(length)
      position = end
  if size == 0:
    problem = "empty"
  rest = size - position
  message = {
      "empty": "empty file (0 bytes): no records",
      "not_tfrecord": f"not a TFRecord file ({size} bytes, no valid record header at "
                      "byte 0): ignored",
      "truncated": f"truncated file: {rest} trailing bytes do not form a complete record; "
                   f"its {len(offsets)} complete records are used",
      "corrupt_header": f"corrupt record header at byte {position} (checksum mismatch): "
                        f"the {rest} bytes from there are skipped, the {len(offsets)} "
                        "records before it are used",
  }.get(problem, "")
  return FileIndex(path, np.asarray(offsets, np.int64), np.asarray(lengths, np.int64),
                   rest, problem, message)


def scan_tfrecords(paths: Sequence[str], num_threads: int = 16) -> list:
  """`scan_tfrecord` over many files, threaded (the work is I/O)."""
  with futures.ThreadPoolExecutor(max_workers=max(1, min(num_threads, len(paths)))) as pool:
    return list(pool.map(scan_tfrecord, paths))


class RecordReader:
  """Reads record data by (file id, offset, length); safe from many threads.

  Local files use `os.pread` on one descriptor per file; other filesystems
  one `tf.io.gfile.GFile` per file and thread.
  """

  def __init__(self, paths: Sequence[str]):
    self.paths = list(paths)
    self._fds = {}
    self._failures = {}
    self._lock = threading.Lock()
    self._local = threading.local()

  def read(self, file_id, offset, length) -> bytes:
    """The record's data after checking its checksums; b"" (a video with no
    frames, skipped) on I/O errors or a checksum mismatch, whose reason
    `failure(file_id, offset)` then gives."""
    file_id, offset, length = int(file_id), int(offset), int(length)
    try:
      framed = self._read(file_id, offset - _HEADER, length + _HEADER + _FOOTER)
    except OSError as error:
      return self._failed(file_id, offset, f"cannot read: {error}")
    if len(framed) != length + _HEADER + _FOOTER:
      return self._failed(file_id, offset, "file shrank since it was indexed")
    damage = integrity.record_damage(framed)
    if damage:
      return self._failed(file_id, offset, damage)
    return framed[_HEADER:-_FOOTER]

  def _failed(self, file_id: int, offset: int, reason: str) -> bytes:
    with self._lock:
      self._failures[(file_id, offset)] = reason
    return b""

  def failure(self, file_id, offset) -> Optional[str]:
    """Why the record at (file id, data offset) read as b"", or None."""
    with self._lock:
      return self._failures.get((int(file_id), int(offset)))

  def _read(self, file_id: int, offset: int, length: int) -> bytes:
    path = self.paths[file_id]
    if "://" in path:
      handles = self._local.__dict__.setdefault("handles", {})
      if path not in handles:
        handles[path] = _open(path)
      handle = handles[path]
      handle.seek(offset)
      return handle.read(length)
    fd = self._fds.get(path)
    if fd is None:
      with self._lock:
        fd = self._fds.get(path)
        if fd is None:
          fd = os.open(path, os.O_RDONLY)
          self._fds[path] = fd
    return os.pread(fd, length, offset)

  def close(self):
    with self._lock:
      for fd in self._fds.values():
        os.close(fd)
      self._fds.clear()

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass
