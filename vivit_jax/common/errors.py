"""User mistakes end in one line: `error: <what> (<where>): <how to fix>`, exit 2.

Validation code raises `UserError(what, where, fix)` (a `ValueError`, so
callers that catch `ValueError` keep working). Every command's entry point is
wrapped by `command` (argparse-style `main(argv) -> int`) or `run_absl`
(absl `app.run` commands: `vivit-train`, `vivit-evaluate`, `vivit-forecast`);
the wrapper prints the line on stderr and exits with status 2 for

  * `UserError`;
  * a `VerbatimMistake` (its message is already the line);
  * the known library exceptions of a user mistake, translated here: a bad
    `--config.<key>` (unknown key, with ml_collections' "did you mean"
    hint; a value of the wrong type), an unknown or missing flag, a config
    file that does not load, a missing file (`FileNotFoundError`) and a
    checkpoint of another model (`vivit_jax.common.params.ParamMismatchError`).

This module imports nothing of the package at import time (`translate`
looks up `ParamMismatchError` in `common.params`, the same floor).

Mistakes found while running are `UserError`s too (a label outside
`data.num_classes` in the streamed data; a workdir or checkpoint JSON file
that does not parse, via `read_json`). Anything else is a bug or a fault and keeps its traceback. The traceback of a
user mistake is printed too (before the line) with `--verbosity=1` (absl
commands) or the environment variable `VIVIT_TRACEBACK=1` (every command).
"""

import functools
import os
import re
import sys
import traceback
from typing import Callable, Optional, Sequence

EXIT_STATUS = 2
TRACEBACK_ENV = "VIVIT_TRACEBACK"


class UserError(ValueError):
  """A mistake the user can fix: what is wrong, where (a config key, flag or
  file) and how to fix it. `str()` is the line without the `error: ` prefix."""

  def __init__(self, what: str, where: str, fix: str):
    self.what, self.where, self.fix = one_line(what), one_line(where), one_line(fix)
    super().__init__(f"{self.what} ({self.where}): {self.fix}")

  @property
  def line(self) -> str:
    return f"error: {self}"


def read_json(path: str, fix: str):
  """The JSON document in the file `path`; a file that is not JSON (cut short,
  edited by hand) raises `UserError` naming it, with `fix`."""
  import json  # pylint: disable=import-outside-toplevel
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise UserError(f"not a valid JSON file ({error})", path, fix) from error


def one_line(text: str) -> str:
  """`text` with its line breaks and runs of spaces folded into single spaces."""
  return " ".join(str(text).split())


def _config_key_in_argv(bad: str, argv: Sequence[str]) -> str:
  """The `--config.a.b` flag whose path contains the component `bad`."""
  for arg in argv:
    match = re.match(r"--?(\w+(?:\.[\w\[\]'\"]+)+)(?:=|$)", arg)
    if match and bad in re.split(r"[.\[\]'\"]+", match.group(1)):
      return "--" + match.group(1)
  return "--config"


def translate(error: BaseException, argv: Sequence[str] = ()) -> Optional[UserError]:
  """The `UserError` a known library exception of a user mistake stands for, or None."""
  if isinstance(error, UserError):
    return error
  from absl import flags  # pylint: disable=import-outside-toplevel
  if isinstance(error, (AttributeError, KeyError)) and _is_config_lookup(error):
    # ml_collections: "'foo'\nDid you mean "bar" instead of "foo"?" (maybe escaped).
    text = str(error.args[0]) if error.args else str(error)
    text = text.replace("\\n", "\n").replace("\\'", "'")
    first, _, hint = text.strip("'\"").partition("\n")
    bad = first.strip("'\" ")
    flag = _config_key_in_argv(bad, argv)
    fix = "every key is listed in vivit_jax/train/experiment.py"
    match = re.search(r'Did you mean "([^"]+)" instead of', hint)
    if match:
      parts = flag.split(".")
      suggestion = ".".join(match.group(1) if p == bad else p for p in parts)
      fix = f"did you mean {suggestion}? ({fix})"
    return UserError(f"unknown config key {bad!r}", flag, fix)
  if isinstance(error, flags.UnrecognizedFlagError):
    return UserError(f"unknown flag --{error.flagname}", "command line",
                     "see --helpshort for the flags")
  if isinstance(error, flags.Error):
    text = one_line(error)
    match = re.match(r"flag (--[^=\s]+)=(.*?): (.*)$", text)
    if match and "must have a value other than None" in text:
      return UserError(f"missing required flag {match.group(1)}", match.group(1),
                       f"pass {match.group(1)}=...")
    if match and "Error whilst parsing config file" in text:
      # The config file's get_config() raised: keep its last exception line.
      causes = re.findall(r"\b(\w+(?:Error|Exception)): (.+?)(?= File \"|$)", match.group(3))
      cause = f"{causes[-1][0]}: {causes[-1][1]}" if causes else match.group(3)
      return UserError(f"{match.group(2)} does not load: {cause.removesuffix(' (--config)')}",
                       match.group(1), "pass a variant the file lists, or fix its get_config()")
    if match:
      return UserError(f"bad value {match.group(2)!r}: {match.group(3)}", match.group(1),
                       "pass a value of the key's type (see vivit_jax/train/experiment.py)")
    return UserError(text, "command line", "see --helpshort for the flags")
  if isinstance(error, OSError) and "Failed loading config file" in str(error):
    paths = re.findall(r"No such file or directory: '([^']+)'", str(error))
    where = f"--config={paths[0]}" if paths else "--config"
    return UserError("the config file does not load", where,
                     "pass the path of a Python file with get_config(), e.g. "
                     "--config=configs/demo_finetune.py")
  if isinstance(error, FileNotFoundError):
    named = re.search(r"(--[\w.-]+)=|\b((?:data|init_from|distill)\.\w+)", str(error))
    where = error.filename or (named and (named.group(1) or "--config." + named.group(2)))
    where = where or "a path on the command line or in the config"
    what = error.strerror if error.filename else str(error)
    return UserError(what or "file not found", str(where),
                     "check the path (and the working directory), then rerun")
  from vivit_jax.common.params import ParamMismatchError  # pylint: disable=import-outside-toplevel
  if isinstance(error, ParamMismatchError):
    flag = next((a for a in argv if a.startswith("--checkpoint=")), "the checkpoint")
    return UserError(f"checkpoint of another model: {error}", flag,
                     "pass a checkpoint of this model, or make --config.model.* match it")
  if isinstance(error, VerbatimMistake):  # e.g. checkpoints.workdir_lock.WorkdirLockedError
    return _Verbatim(str(error))
  return None


class VerbatimMistake(Exception):
  """A mixin for exceptions of a user mistake whose message already reads
  `what (where): fix` (e.g. `WorkdirLockedError(VerbatimMistake, RuntimeError)`):
  `translate` passes the message on as it is."""


class _Verbatim(UserError):
  """A message already in `what (where): fix` form (WorkdirLockedError's)."""

  def __init__(self, message: str):  # pylint: disable=super-init-not-called
    self.what, self.where, self.fix = one_line(message), "", ""
    ValueError.__init__(self, self.what)


def _is_config_lookup(error: BaseException) -> bool:
  """True for ml_collections' KeyError / AttributeError of a missing key."""
  frames = traceback.extract_tb(error.__traceback__)
  return any("ml_collections" in frame.filename for frame in frames[-3:])


def traceback_wanted(argv: Sequence[str] = ()) -> bool:
  """`VIVIT_TRACEBACK=1`, or `--verbosity=N` / `-v N` with N >= 1 in `argv`."""
  if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
    return True
  args = list(argv)
  for i, arg in enumerate(args):
    value = None
    if arg.startswith(("--verbosity=", "-v=")):
      value = arg.split("=", 1)[1]
    elif arg in ("--verbosity", "-v") and i + 1 < len(args):
      value = args[i + 1]
    if value is not None:
      try:
        return int(value) >= 1
      except ValueError:
        return False
  return False


def report(error: BaseException, argv: Sequence[str] = ()) -> Optional[int]:
  """Prints `error`'s one line (and traceback if wanted) if it is a user mistake;
  returns the exit status then, else None (the caller re-raises)."""
  user_error = translate(error, argv)
  if user_error is None:
    return None
  if traceback_wanted(argv):
    traceback.print_exception(error)
  sys.stdout.flush()
  print(user_error.line, file=sys.stderr, flush=True)
  return EXIT_STATUS


def command(main: Callable[..., Optional[int]]) -> Callable[..., Optional[int]]:
  """Wraps an argparse-style `main(argv=None) -> int`: user mistakes return 2."""
  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except Exception as error:  # pylint: disable=broad-except
      argv = args[0] if args and args[0] is not None else sys.argv
      status = report(error, list(argv))
      if status is None:
        raise
      return status
  return wrapped


def parse_absl_flags(argv: Sequence[str]):
  """absl's flag parsing without its own error handling (ours names the key)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  return flags.FLAGS(list(argv))


HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def _show_command_help(main: Callable) -> None:
  """absl's `--help` prints `__main__`'s docstring and flags; a console script's
  `__main__` (`vivit-train`) has neither, so lend it those of `main`'s module."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  script = sys.modules["__main__"]
  if script.__doc__ or main.__module__ == "__main__":
    return
  script.__doc__ = sys.modules[main.__module__].__doc__
  for flag in flags.FLAGS.get_key_flags_for_module(main.__module__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run_absl(main: Callable[[Sequence[str]], None]) -> None:
  """`app.run(main)`, with user mistakes (also in flags) as one line and exit 2;
  `--help` shows the command's docstring and flags and exits 0 (absl: 1)."""
  from absl import app  # pylint: disable=import-outside-toplevel
  _show_command_help(main)
  try:
    app.run(main, flags_parser=parse_absl_flags)
  except SystemExit as exit_:
    asked = any(arg in HELP_FLAGS for arg in sys.argv[1:])
    sys.exit(0 if asked and exit_.code == 1 else exit_.code)
  except Exception as error:  # pylint: disable=broad-except
    status = report(error, sys.argv)
    if status is None:
      raise
    sys.exit(status)
