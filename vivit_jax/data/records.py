"""Random access to TFRecord files: an offset index and a thread-safe reader.

A TFRecord file is a sequence of frames
  uint64 length | uint32 masked crc(length) | data[length] | uint32 masked crc(data).
`scan_tfrecord` walks the length headers (seeking over the data) and returns
each record's data offset and length, so a pipeline can read record i of a
shard directly; training order then needs no shuffle buffer and resuming
needs no replay. A truncated tail (a record cut off by a crash or a partial
copy) is dropped and reported.
"""

import dataclasses
import logging
import os
import struct
import threading
from concurrent import futures
from typing import Sequence

import numpy as np

_HEADER = 12  # uint64 length + uint32 crc.
_FOOTER = 4  # uint32 crc of the data.


@dataclasses.dataclass
class FileIndex:
  """Records of one TFRecord file: byte offsets of their data, and lengths."""
  path: str
  offsets: np.ndarray  # (R,) int64, first byte of each record's data.
  lengths: np.ndarray  # (R,) int64, bytes of each record's data.
  truncated_bytes: int = 0  # Bytes after the last complete record.


def _open(path: str):
  if "://" in path:
    import tensorflow as tf  # Remote filesystems (gs://) go through TF.
    return tf.io.gfile.GFile(path, "rb")
  return open(path, "rb")


def scan_tfrecord(path: str) -> FileIndex:
  """Indexes the records of one file by reading only their headers."""
  offsets, lengths = [], []
  with _open(path) as f:
    size = f.seek(0, os.SEEK_END) if "://" not in path else f.size()
    position = 0
    while position + _HEADER <= size:
      f.seek(position)
      header = f.read(_HEADER)
      (length,) = struct.unpack("<Q", header[:8])
      end = position + _HEADER + length + _FOOTER
      if end > size:
        break
      offsets.append(position + _HEADER)
      lengths.append(length)
      position = end
  truncated = size - position
  if truncated:
    logging.warning("%s: %d trailing bytes do not form a complete record (truncated "
                    "file); its %d complete records are used", path, truncated, len(offsets))
  return FileIndex(path, np.asarray(offsets, np.int64), np.asarray(lengths, np.int64),
                   truncated)


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
    self._lock = threading.Lock()
    self._local = threading.local()

  def read(self, file_id, offset, length) -> bytes:
    """The record's bytes; b"" (a video with no frames, skipped) on I/O errors."""
    try:
      return self._read(int(file_id), int(offset), int(length))
    except OSError as error:
      logging.warning("cannot read %s at byte %d: %s", self.paths[int(file_id)],
                      int(offset), error)
      return b""

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
