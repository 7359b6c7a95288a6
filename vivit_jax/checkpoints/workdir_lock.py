"""One training run per workdir: `WORKDIR/run.lock`.

    with workdir_lock.hold(workdir):  # WorkdirLockedError if another run has it
      ...train...

The lock file holds `{"host", "pid"}` of the run that took it, created
atomically (`O_CREAT | O_EXCL`) and removed when the run ends (also on an
exception). A lock left by a process that died without removing it
(kill -9, a crash) is taken over when its host is this host and its pid is
no longer alive; a lock from another host cannot be checked, so it refuses
and names the file to delete once that run is known to be gone.

In a multi-process (multi-host) run only process 0 takes the lock: the other
processes of the same run share its workdir by design, and a second run's
process 0 is refused before any of its processes write.
"""

import contextlib
import json
import os
import socket
from typing import Iterator, Optional, Tuple

from vivit_jax.common.errors import VerbatimMistake

LOCK_FILE = "run.lock"


class WorkdirLockedError(VerbatimMistake, RuntimeError):
  """Another live run holds the workdir's lock (a user mistake: one line, exit 2)."""


def _read(path: str) -> Optional[Tuple[str, int]]:
  try:
    with open(path) as f:
      data = json.load(f)
    return str(data["host"]), int(data["pid"])
  except FileNotFoundError:
    return None
  except (OSError, ValueError, KeyError, TypeError):
    return "", -1  # Unreadable (a write cut short): only its age could tell; refuse.


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by someone else.
    return True
  return True


def acquire(workdir: str) -> str:
  """Takes `WORKDIR/run.lock` for this process; returns its path.

  Raises WorkdirLockedError naming the holder's host and pid.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  host, pid = socket.gethostname(), os.getpid()
  for _ in range(3):  # A stale lock removed by a racing run is retried, then refused.
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = _read(path)
      if holder is None:
        continue
      holder_host, holder_pid = holder
      if holder_host == host and holder_pid > 0 and not _alive(holder_pid):
        with contextlib.suppress(FileNotFoundError):
          os.remove(path)
        continue
      who = (f"pid {holder_pid} on host {holder_host}" if holder_pid > 0
             else "a run whose lock file is unreadable")
      raise WorkdirLockedError(
          f"workdir {workdir} is in use by {who} ({path}): wait for that run to end, use "
          f"another --workdir, or delete {path} if that run is gone") from None
    with os.fdopen(fd, "w") as f:
      json.dump({"host": host, "pid": pid}, f)
    return path
  raise WorkdirLockedError(f"workdir {workdir}: could not take {path}; another run is "
                           "starting in it")


def release(path: str) -> None:
  """Removes the lock file if this process still holds it."""
  if _read(path) == (socket.gethostname(), os.getpid()):
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


@contextlib.contextmanager
def hold(workdir: str, process_index: int = 0) -> Iterator[Optional[str]]:
  """The lock for the body (process 0 only; others yield None)."""
  if process_index != 0:
    yield None
    return
  path = acquire(workdir)
  try:
    yield path
  finally:
    release(path)
