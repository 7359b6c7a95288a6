"""What process 0 prints: the console helpers every room may use.

  is_writer()      True on the one process that writes logs (process 0).
  console(msg)     a line on stdout from process 0, flushed at once.
  warn(msg)        a `WARNING: ...` line on stderr from every process.
"""

import sys

import jax


def is_writer() -> bool:
  """True on the one process that writes logs (process 0)."""
  return jax.process_index() == 0


def console(message: str) -> None:
  """Prints `message` on process 0, flushed at once (logs are often piped)."""
  if is_writer():
    print(message, flush=True)


def warn(message: str) -> None:
  """Prints a warning to stderr on every process (it may concern that host)."""
  print(f"WARNING: {message}", file=sys.stderr, flush=True)
