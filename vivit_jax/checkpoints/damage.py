"""What is wrong with which file of an unreadable training checkpoint.

Orbax reports a damaged checkpoint as, e.g., "Encountered error while reading
array index: (slice(0, 32, 1), ...)", naming neither the file nor the
damage. `describe(step_dir, error)` looks at the files instead:

  - any file of 0 bytes: "empty";
  - the JSON files Orbax writes (`_CHECKPOINT_METADATA`, `*/_METADATA`,
    `*/_sharding`, `*/metadata`, `array_metadatas/*`): "all zero bytes" or
    "not valid JSON";
  - each OCDBT database (`*/manifest.ocdbt`, TensorStore's format for the
    arrays): the manifest and B-tree nodes must decode, and every stored
    value's byte range `[offset, offset + length)` must lie inside its data
    file ("truncated: N bytes, a value ends at byte M") and must not be all
    zero bytes ("zeroed").

Only if no file shows damage does it fall back to the innermost cause of
`error`, cleaned of TensorStore's spec dumps. The checks read a few KiB per
stored value, never whole arrays.
"""

import json
import os
import re
from typing import List, Optional

_JSON_NAMES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata")
_SAMPLE_BYTES = 4096
_MAX_LISTED = 3


def _rel(path: str, root: str) -> str:
  return os.path.relpath(path, root)


def _all_zero(data: bytes) -> bool:
  return bool(data) and data.count(0) == len(data)


def _check_json(path: str, root: str) -> Optional[str]:
  with open(path, "rb") as f:
    data = f.read()
  if _all_zero(data):
    return f"{_rel(path, root)} is all zero bytes ({len(data)} bytes)"
  try:
    json.loads(data)
  except ValueError:
    return f"{_rel(path, root)} is not valid JSON ({len(data)} bytes; truncated or overwritten)"
  return None


def _location(text: str):
  """`value:<base>:<file>:<offset>:<length>` (or btreenode:...) -> (kind, relpath, offset, length)."""
  kind, base, rest = text.split(":", 2)
  name, offset, length = rest.rsplit(":", 2)
  return kind, os.path.join(base, name), int(offset), int(length)


def _check_range(item_dir: str, root: str, relpath: str, offset: int, length: int,
                 what: str, seen: dict) -> Optional[str]:
  path = os.path.join(item_dir, relpath)
  if not os.path.exists(path):
    return f"{_rel(path, root)} is missing ({what} stored there)"
  size = os.path.getsize(path)
  end = offset + length
  if size < end:
    seen[path] = max(seen.get(path, 0), end)
    return None  # Reported once per file below, with the furthest end.
  with open(path, "rb") as f:
    f.seek(offset)
    if _all_zero(f.read(min(length, _SAMPLE_BYTES))):
      return f"{_rel(path, root)} is zeroed (bytes {offset}-{end} of a {what} are all 0)"
  return None


def _error_text(error: BaseException) -> str:
  text = str(error).splitlines()[0] if str(error) else type(error).__name__
  text = re.sub(r"\s*\[tensorstore_spec=.*", "", text)
  text = re.sub(r"\s*See full TensorStore details.*", "", text)
  return text[:240]


def _check_ocdbt(item_dir: str, root: str, truncated: dict) -> List[str]:
  """Damage of the OCDBT database in `item_dir`; truncated files go to `truncated`."""
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  problems: List[str] = []
  try:
    base = ts.KvStore.open(f"file://{os.path.abspath(item_dir)}/").result()
    manifest = ts.ocdbt.dump(base).result()
  except Exception as e:  # pylint: disable=broad-except
    return [f"{_rel(os.path.join(item_dir, 'manifest.ocdbt'), root)} cannot be decoded "
            f"({_error_text(e)})"]
  pending = [v["root"]["location"] for v in manifest.get("versions", [])
             if v.get("root", {}).get("location")]
  while pending and len(problems) < _MAX_LISTED:
    node = pending.pop()
    _, relpath, offset, length = _location(node)
    problem = _check_range(item_dir, root, relpath, offset, length, "B-tree node", truncated)
    if problem or os.path.join(item_dir, relpath) in truncated:
      if problem:
        problems.append(problem)
      continue
    try:
      entries = ts.ocdbt.dump(base, node).result().get("entries", [])
    except Exception as e:  # pylint: disable=broad-except
      problems.append(f"{_rel(os.path.join(item_dir, relpath), root)} holds a B-tree node "
                      f"that cannot be decoded ({_error_text(e)})")
      continue
    for entry in entries:
      if "indirect_value" in entry:
        _, relpath, offset, length = _location(entry["indirect_value"])
        problem = _check_range(item_dir, root, relpath, offset, length, "stored array", truncated)
        if problem and problem not in problems:
          problems.append(problem)
      elif "location" in entry:
        pending.append(entry["location"])
  return problems


def find_problems(step_dir: str) -> List[str]:
  """Every damage found in `step_dir` (a `checkpoints/<step>` directory), as phrases."""
  root = str(step_dir)
  problems: List[str] = []
  ocdbt_dirs = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
      path = os.path.join(dirpath, name)
      if os.path.getsize(path) == 0 and name != "commit_success.txt":
        problems.append(f"{_rel(path, root)} is empty (0 bytes)")
      elif name in _JSON_NAMES or os.path.basename(dirpath) == "array_metadatas":
        problem = _check_json(path, root)
        if problem:
          problems.append(problem)
    if "manifest.ocdbt" in filenames:
      ocdbt_dirs.append(dirpath)
  truncated: dict = {}
  for item_dir in ocdbt_dirs:
    problems.extend(_check_ocdbt(item_dir, root, truncated))
  for path, end in sorted(truncated.items()):
    problems.append(f"{_rel(path, root)} is truncated ({os.path.getsize(path)} bytes; "
                    f"stored data reaches byte {end})")
  by_file = {}  # One phrase per file: several databases can point into one data file.
  for problem in problems:
    by_file.setdefault(problem.split(" ", 1)[0], problem)
  return list(by_file.values())


def root_cause(error: BaseException) -> str:
  """The innermost exception of `error`'s chain, one line, without TensorStore's spec dumps."""
  seen = set()
  while id(error) not in seen:
    seen.add(id(error))
    inner = error.__cause__ or error.__context__
    if inner is None:
      break
    error = inner
  return f"{type(error).__name__}: {_error_text(error)}"


def describe(step_dir: str, error: Optional[BaseException]) -> str:
  """One phrase saying what is wrong with which file of `step_dir` (see module docstring)."""
  try:
    problems = find_problems(step_dir)
  except Exception as e:  # pylint: disable=broad-except
    problems = [f"its files cannot be inspected ({_error_text(e)})"]
  if problems:
    shown = "; ".join(problems[:_MAX_LISTED])
    more = len(problems) - _MAX_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")
  if error is None:
    return "unreadable"
  return f"no damaged file found; reading failed with {root_cause(error)}"
