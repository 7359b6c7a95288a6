"""The two buffers of live classification (`vivit_jax.serving.stream`).

`FrameQueue`: bounded, between the reader thread and the model; when full,
a live source drops its oldest frame (counted) and a file read at full speed
waits instead. `SlidingWindow`: the last `(num_frames - 1) * stride + 1`
frames the model took from the queue; a clip is every `stride`-th of them,
ending at the newest.
"""

import collections
import threading
from typing import Any, List, Optional


class FrameQueue:
  """A bounded FIFO shared by one producer thread and one consumer.

  Attributes:
    maxsize: capacity in frames.
    drop_oldest: when full, `put` discards the oldest frame (True) or waits
      for room (False).
    dropped: frames discarded so far.
  """

  def __init__(self, maxsize: int, drop_oldest: bool):
    if maxsize < 1:
      raise ValueError(f"queue size must be >= 1, got {maxsize}")
    self.maxsize, self.drop_oldest = maxsize, drop_oldest
    self.dropped = 0
    self._items = collections.deque()
    self._closed = False
    self._cond = threading.Condition()

  def put(self, item: Any, stop: Optional[threading.Event] = None) -> bool:
    """Appends `item`; False (item not added) once `stop` is set while waiting."""
    with self._cond:
      while len(self._items) >= self.maxsize:
        if self.drop_oldest:
          self._items.popleft()
          self.dropped += 1
        elif stop is not None and stop.is_set():
          return False
        else:
          self._cond.wait(0.05)
      self._items.append(item)
      self._cond.notify_all()
      return True

  def get(self, timeout: float = 0.05) -> Any:
    """The oldest item; `None` when closed and empty, or after `timeout` s."""
    with self._cond:
      if not self._items and not self._closed:
        self._cond.wait(timeout)
      if not self._items:
        return None
      item = self._items.popleft()
      self._cond.notify_all()
      return item

  def close(self) -> None:
    """No more puts: `get` returns None once the queue is drained."""
    with self._cond:
      self._closed = True
      self._cond.notify_all()

  @property
  def finished(self) -> bool:
    with self._cond:
      return self._closed and not self._items


class SlidingWindow:
  """A ring buffer of the last `span = (num_frames - 1) * stride + 1` items.

  `clip()` (once `full`) is `num_frames` items `stride` apart, the newest
  last: with items 0, 1, 2, ... pushed, after item n it is items
  `n - (num_frames - 1 - t) * stride` for t = 0 .. num_frames - 1.
  """

  def __init__(self, num_frames: int, stride: int):
    if num_frames < 1 or stride < 1:
      raise ValueError(f"need num_frames >= 1 and stride >= 1, got {num_frames}, {stride}")
    self.num_frames, self.stride = num_frames, stride
    self.span = (num_frames - 1) * stride + 1
    self._items: List[Any] = [None] * self.span
    self.pushed = 0  # Items pushed so far.

  def push(self, item: Any) -> None:
    self._items[self.pushed % self.span] = item
    self.pushed += 1

  @property
  def full(self) -> bool:
    return self.pushed >= self.span

  def clip(self) -> List[Any]:
    """The `num_frames` strided items ending at the newest, oldest first."""
    if not self.full:
      raise ValueError(f"window holds {self.pushed} of the {self.span} frames it needs")
    newest = self.pushed - 1
    return [self._items[(newest - (self.num_frames - 1 - t) * self.stride) % self.span]
            for t in range(self.num_frames)]

  def due(self, hop: int) -> bool:
    """Whether a prediction is due after the latest push: when the window
    first fills, then every `hop` pushes. Over N pushes that makes
    `(N - span) // hop + 1` predictions (0 when N < span)."""
    return self.full and (self.pushed - self.span) % hop == 0
