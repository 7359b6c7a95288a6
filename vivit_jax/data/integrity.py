"""Is this input damaged? TFRecord checksums and JPEG structure, without TensorFlow.

  masked_crc(data)          the masked CRC-32C a TFRecord stores after its
                            length and after its data (`sources/tfrecord.py`).
  record_damage(framed)     None, or why one framed record (header, data,
                            footer) fails its checksums.
  jpeg_damage(encoded)      None, or why one encoded frame is broken: not a
                            JPEG/PNG, cut short, or a marker inside the
                            entropy-coded data (what makes libjpeg print
                            "Corrupt JPEG data: premature end of data segment"
                            while it still returns a picture).
  frames_intact(encoded)    numpy bool: every frame of a `(N,)` object array passes.

Structure checks cannot see damage that keeps the JPEG well-formed (bits
flipped inside the Huffman data): such a frame decodes to a wrong picture.
Records written by `make_tfrecords` carry checksums, which catch any byte
changed after writing. docs/data.md lists every kind of damage and its count.
"""

import re
import struct
from typing import Optional

import google_crc32c
import numpy as np

_MASK_DELTA = 0xA282EAD8
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG"
_EOI, _SOS = 0xD9, 0xDA
# Markers that may sit between the scans of a progressive or multi-scan JPEG.
_BETWEEN_SCANS = {0xC4, 0xCC, 0xDA, 0xDB, 0xDD, 0xFE} | set(range(0xE0, 0xF0))
# In entropy-coded data 0xFF is followed by 0x00 (stuffing), 0xFF (fill) or
# RST0-7 (0xD0-0xD7); anything else is the next marker.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def masked_crc(data: bytes) -> int:
  """TFRecord's masked CRC-32C of `data` (uint32)."""
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def header_intact(header: bytes) -> bool:
  """True if a 12-byte record header's length matches its checksum."""
  return len(header) == 12 and masked_crc(header[:8]) == struct.unpack("<I", header[8:])[0]


def record_damage(framed: bytes) -> Optional[str]:
  """Checks `length | crc(length) | data | crc(data)`; None if intact."""
  if not header_intact(framed[:12]):
    return "record checksum mismatch in its length header (bytes damaged)"
  data, (stored,) = framed[12:-4], struct.unpack("<I", framed[-4:])
  if masked_crc(data) != stored:
    return "record checksum mismatch (bytes damaged after writing)"
  return None


def jpeg_damage(encoded: bytes) -> Optional[str]:
  """None for a well-formed JPEG (or any PNG), else what is wrong, in words."""
  data = bytes(encoded)
  if data.startswith(_PNG_MAGIC):
    return None
  if not data:
    return "empty frame (0 bytes)"
  if not data.startswith(_JPEG_MAGIC):
    return "not JPEG or PNG data"
  size, pos = len(data), 2
  in_scan = None  # After image data: the marker that ended it, as damage.
  while True:
    if pos + 4 > size or data[pos] != 0xFF:
      if in_scan:
        return in_scan
      if pos + 4 > size:
        return f"Corrupt JPEG data: cut short at byte {size} (inside the header)"
      return f"Corrupt JPEG data: no marker at byte {pos}"
    marker = data[pos + 1]
    if marker == 0xFF:  # Fill byte before a marker.
      pos += 1
      continue
    if marker == _EOI:
      return None if in_scan else "Corrupt JPEG data: end of image before any image data"
    end = pos + 2 + (data[pos + 2] << 8 | data[pos + 3])
    if end > size:
      return in_scan or f"Corrupt JPEG data: cut short at byte {size} (inside the header)"
    if marker != _SOS:
      pos = end
      continue
    found = _SCAN_END.search(data, end)
    if found is None:
      return f"Corrupt JPEG data: cut short at byte {size} (no end-of-image marker)"
    pos = found.start()
    code = data[pos + 1]
    if code == _EOI:
      return None
    in_scan = (f"Corrupt JPEG data: marker 0x{code:02x} inside the image data at byte "
               f"{pos} of {size}")
    if code not in _BETWEEN_SCANS:
      return in_scan


def frames_intact(encoded_frames) -> np.bool_:
  """numpy bool: True if no frame of `(N,)` encoded frames has `jpeg_damage`."""
  return np.bool_(all(jpeg_damage(frame) is None for frame in encoded_frames))
