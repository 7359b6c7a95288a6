"""Checkpoint problems the user must act on, each one line: `what (where): how to fix`.

They are `UserError`s: every command prints `error: <str(e)>` and exits with status 2.

  CheckpointError        base class (`what`, `where`, `fix`).
  NoRestorableCheckpoint every checkpoint in WORKDIR/checkpoints is damaged.
  StateMismatchError     a checkpoint's optimizer state / EMA / step layout
                         differs from this run's (another optimizer, EMA on
                         or off); parameters differing raise
                         `ParamMismatchError` instead.
  CheckpointSaveError    a save failed (no space left, permissions, ...);
                         the previous checkpoint is untouched.
  ResumeConfigError      resuming with config keys that change the run's
                         meaning, without `checkpoint.resume_with_changes`.
"""

import errno
import re

from vivit_jax.common.errors import UserError


class CheckpointError(UserError):
  """One-line checkpoint error; `str(e)` is `what (where): fix`."""


class NoRestorableCheckpoint(CheckpointError):
  pass


class StateMismatchError(CheckpointError):
  pass


class CheckpointSaveError(CheckpointError):

  def __init__(self, what: str, where: str, fix: str, step: int):
    super().__init__(what, where, fix)
    self.step = step


class ResumeConfigError(CheckpointError):
  pass


_NO_SPACE = re.compile(r"No space left on device|os_error_code='28'|Disk quota exceeded|"
                       r"os_error_code='122'|File too large|os_error_code='27'")


def chain(error: BaseException):
  """`error` and its causes / contexts, outermost first."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def is_out_of_space(error: BaseException) -> bool:
  """Whether `error` (or a cause) is ENOSPC / EDQUOT / EFBIG, from Python or TensorStore."""
  for e in chain(error):
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
      return True
    if _NO_SPACE.search(str(e)):
      return True
  return False
