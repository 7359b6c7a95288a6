"""Keeps Orbax / TensorStore / asyncio aftermath of a failed read or write off the console.

Where the noise comes from (orbax 0.12, tensorstore 0.1.8x): Orbax runs each
restore or save as one asyncio coroutine on a fresh event loop
(`asyncio_utils.run_sync`: `run_until_complete`, then `loop.close()`),
gathering one TensorStore read or write per array. When one array fails the
gather raises and the loop is closed while the other reads are still in
flight. As each of those finishes, TensorStore's C++ thread calls
`loop.call_soon_threadsafe` on the closed loop; the `RuntimeError: Event loop
is closed` goes to `sys.unraisablehook` (a bare traceback, hundreds of them
for a real model), the abandoned tasks are reported by asyncio's logger
("Task was destroyed but it is pending!", "Task exception was never
retrieved"), and Orbax logs every failing thread at ERROR with its traceback
through absl. The failure itself reaches us as one exception, which the
checkpointer reports as one line; this module hides the rest:

  install()          once per process (idempotent): drops exactly the
                     closed-loop `RuntimeError`s raised in asyncio's
                     `call_soon_threadsafe` (nothing else can raise them)
                     and the errors of abandoned Orbax / TensorStore
                     coroutines finalised later (whenever they are collected),
                     asyncio's reports of abandoned tasks that wait on a
                     TensorStore future or run Orbax code, and, at absl verbosity WARNING or quieter (the main
                     job's default), Orbax's and TensorStore's own absl log
                     records; `--verbosity=0` shows them again.
  aftermath()        a context for the code that handles a failed read or
                     write: inside it every unraisable exception and
                     asyncio's task reports are dropped too (they are that
                     failure's aftermath), and on leaving it a garbage
                     collection runs, so the abandoned coroutines are
                     finalised there instead of at some later point or at
                     interpreter shutdown; unawaited-coroutine warnings
                     are ignored there. `aftermath(keep=True)` (a failed
                     save: the run is stopping) leaves the broad filter on.
  dropped()          how many reports were dropped (for tests and debugging).
"""

import contextlib
import gc
import logging
import re
import sys
import threading
import warnings

_LOCK = threading.Lock()
_STATE = {"installed": False, "after_failure": False, "dropped": 0}
_NOISY_PATHS = ("/orbax/", "/tensorstore/")
# asyncio names the future's class first: "_GatheringFuture exception was never retrieved".
_ASYNCIO_TASK_REPORTS = re.compile(r"\w*(Task was destroyed but it is pending"
                                   r"|(Task|Future) exception was never retrieved)")


def _is_closed_loop_callback(exc_value, exc_traceback) -> bool:
  if not isinstance(exc_value, RuntimeError) or str(exc_value) != "Event loop is closed":
    return False
  frame_names = []
  tb = exc_traceback
  while tb is not None:
    frame_names.append(tb.tb_frame.f_code.co_name)
    tb = tb.tb_next
  return "call_soon_threadsafe" in frame_names


def _is_abandoned_orbax_coroutine(unraisable) -> bool:
  """An Orbax / TensorStore coroutine finalised after its gather failed (it may
  be collected long after the failure, when TensorStore's threads let go of it)."""
  code = getattr(unraisable.object, "cr_code", None)
  filename = (getattr(code, "co_filename", "") or "").replace("\\", "/")
  return any(part in filename for part in _NOISY_PATHS)


def _make_unraisable_hook(previous, state=_STATE):
  # Bound as default arguments: at interpreter shutdown module globals may be gone.
  def hook(unraisable):
    try:
      if (state["after_failure"] or _is_abandoned_orbax_coroutine(unraisable)
          or _is_closed_loop_callback(unraisable.exc_value, unraisable.exc_traceback)):
        state["dropped"] += 1
        return
    except Exception:  # pylint: disable=broad-except
      return
    previous(unraisable)
  return hook


class _AsyncioTaskReports(logging.Filter):
  """Drops asyncio's reports of tasks Orbax / TensorStore abandoned (all, after a failure)."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = str(record.msg)
    if not _ASYNCIO_TASK_REPORTS.match(message):
      return True
    if (_STATE["after_failure"] or "/orbax/" in message or "pybind11" in message
        or _raised_in_orbax(record.exc_info)):
      _STATE["dropped"] += 1
      return False
    return True


def _raised_in_orbax(exc_info) -> bool:
  """Whether the traceback of a log record's `exc_info` passes through Orbax / TensorStore."""
  tb = exc_info[2] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
  while tb is not None:
    filename = (tb.tb_frame.f_code.co_filename or "").replace("\\", "/")
    if any(part in filename for part in _NOISY_PATHS):
      return True
    tb = tb.tb_next
  return False


class _OrbaxLogRecords(logging.Filter):
  """Drops Orbax's / TensorStore's absl records unless absl verbosity is INFO or louder."""

  def filter(self, record: logging.LogRecord) -> bool:
    path = (record.pathname or "").replace("\\", "/")
    if not any(part in path for part in _NOISY_PATHS):
      return True
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    if absl_logging.get_verbosity() >= absl_logging.INFO:
      return True
    _STATE["dropped"] += 1
    return False


def install() -> None:
  """Installs the filters (idempotent); see module docstring."""
  with _LOCK:
    if _STATE["installed"]:
      return
    _STATE["installed"] = True
    sys.unraisablehook = _make_unraisable_hook(sys.unraisablehook)
    logging.getLogger("asyncio").addFilter(_AsyncioTaskReports())
    logging.getLogger("absl").addFilter(_OrbaxLogRecords())


_UNAWAITED = r"coroutine '.*' was never awaited"


@contextlib.contextmanager
def aftermath(keep: bool = False):
  """Drops every unraisable exception, asyncio task report and "coroutine ...
  was never awaited" warning inside; see module docstring."""
  install()
  previous = _STATE["after_failure"]
  _STATE["after_failure"] = True
  if keep:  # The run is stopping: its abandoned coroutines are collected at exit.
    warnings.filterwarnings("ignore", message=_UNAWAITED, category=RuntimeWarning)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=_UNAWAITED, category=RuntimeWarning)
      try:
        yield
      finally:
        gc.collect()
  finally:
    if not keep:
      _STATE["after_failure"] = previous


def dropped() -> int:
  return _STATE["dropped"]
