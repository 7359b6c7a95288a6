"""What README.md and docs/*.md show works as written.

* Blocks marked `<!-- runnable -->` run: Python blocks are executed and the
  shapes their comments state (`x = ...  # (1, 400)`, `# (1, 1568) bool`,
  `# predictions (1, 1408, 2*16*16*3)`) are the shapes they produce; bash
  blocks run (`set -euo pipefail`) in a scratch directory that sees the
  checkout's `configs/` and `scripts/`, with this environment's commands on
  PATH, and must exit 0. Only cheap blocks are marked runnable.
* Every command of the README's command table is a console script of
  setup.py, and answers `--help` with its own usage and exit status 0.
* Every relative link in README.md and docs/ names a file that exists, and a
  `#fragment` names a heading of that file.
"""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
from support import REPO

README = "README.md"
DOCUMENTS = [README] + sorted(os.path.relpath(p, REPO)
                              for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
BLOCK = re.compile(r"<!-- runnable -->\n```(python|bash)\n(.*?)```", flags=re.S)


def _read(document):
  with open(os.path.join(REPO, document)) as f:
    return f.read()


def runnable_blocks(language, documents=DOCUMENTS):
  """[(id, code)] of the `<!-- runnable -->` blocks in `language`, id `FILE:N`."""
  out = []
  for document in documents:
    blocks = [code for lang, code in BLOCK.findall(_read(document)) if lang == language]
    out += [(f"{document}:{i}", code) for i, code in enumerate(blocks)]
  return out


# `name = ...  # [key] (dims) [dtype]`: the shape of `name` (or of `name[key]`).
SHAPE_COMMENT = re.compile(r"^(\w+) = .*#\s*(?:(\w+)\s+)?\(([^)]*)\)\s*(\w+)?\s*$")


def shape_claims(block):
  claims = []
  for line in block.splitlines():
    match = SHAPE_COMMENT.match(line)
    if match:
      name, key, dims, dtype = match.groups()
      shape = tuple(int(eval(d, {})) for d in dims.split(",") if d.strip())  # pylint: disable=eval-used
      claims.append((name, key, shape, dtype))
  return claims


def test_readme_shows_the_api_in_runnable_examples():
  blocks = [code for _, code in runnable_blocks("python", [README])]
  assert len(blocks) >= 2
  assert sum(len(shape_claims(b)) for b in blocks) >= 3


def test_docs_have_runnable_python_and_bash_blocks():
  docs = DOCUMENTS[1:]
  assert runnable_blocks("python", docs) and runnable_blocks("bash", docs)


PYTHON_BLOCKS = runnable_blocks("python")


@pytest.mark.parametrize("code", [c for _, c in PYTHON_BLOCKS], ids=[i for i, _ in PYTHON_BLOCKS])
def test_python_block_runs_and_has_the_shapes_it_states(code):
  namespace = {}
  exec(compile(code, "runnable block", "exec"), namespace)  # pylint: disable=exec-used
  for name, key, shape, dtype in shape_claims(code):
    value = namespace[name] if key is None else namespace[name][key]
    assert tuple(value.shape) == shape, (name, key, value.shape, shape)
    if dtype is not None:
      assert str(value.dtype) == dtype, (name, value.dtype, dtype)


def _command_env():
  """PATH with this interpreter's console scripts first; this checkout importable."""
  env = dict(os.environ)
  env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
  return env


BASH_BLOCKS = runnable_blocks("bash")


@pytest.mark.parametrize("code", [c for _, c in BASH_BLOCKS], ids=[i for i, _ in BASH_BLOCKS])
def test_bash_block_runs(code, tmp_path):
  for name in ("configs", "scripts"):
    os.symlink(os.path.join(REPO, name), tmp_path / name)
  proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + code], cwd=tmp_path,
                        env=_command_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def _console_scripts():
  tree = ast.parse(_read("setup.py"))
  for node in tree.body:
    if isinstance(node, ast.Assign) and node.targets[0].id == "CONSOLE_SCRIPTS":
      return {ast.literal_eval(e).split("=")[0].strip() for e in node.value.elts}
  raise AssertionError("setup.py defines no CONSOLE_SCRIPTS")


def readme_commands():
  return re.findall(r"^\| `(vivit-[\w-]+)` \|", _read(README), flags=re.M)


def test_readme_command_table_lists_every_console_script():
  commands = readme_commands()
  assert len(commands) == len(set(commands)), commands
  assert set(commands) == _console_scripts()


# A flag each command's --help must show: its own usage, not a bare "USAGE:" line.
HELP_SHOWS = {
    "vivit-train": "--workdir", "vivit-evaluate": "--checkpoint", "vivit-predict": "--top-k",
    "vivit-stream": "--source", "vivit-export": "--format", "vivit-convert": "--from",
    "vivit-make-tfrecords": "--output_dir", "vivit-compress": "--method",
    "vivit-forecast": "--output",
}


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_answers_help(command):
  env = _command_env()
  path = shutil.which(command, path=env["PATH"])
  assert path, f"{command} is not installed: pip install -e . (make test does)"
  proc = subprocess.run([path, "--help"], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
  assert HELP_SHOWS[command] in proc.stdout, proc.stdout


def _slug(heading):
  """GitHub's anchor of a Markdown heading."""
  text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
  return text.replace(" ", "-")


def _anchors(document):
  text = re.sub(r"```.*?```", "", _read(document), flags=re.S)
  return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def relative_links():
  """[(document, target)] of every Markdown link that is not a URL."""
  out = []
  for document in DOCUMENTS:
    text = re.sub(r"```.*?```", "", _read(document), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
      if not re.match(r"[a-z]+:", target):
        out.append((document, target))
  return out


def test_every_relative_link_resolves():
  assert len(relative_links()) >= 20
  broken = []
  for document, target in relative_links():
    path, _, fragment = target.partition("#")
    file = os.path.normpath(os.path.join(os.path.dirname(document), path)) if path else document
    if not os.path.exists(os.path.join(REPO, file)):
      broken.append(f"{document}: {target} (no file {file})")
    elif fragment and (not file.endswith(".md") or fragment not in _anchors(file)):
      broken.append(f"{document}: {target} (no heading #{fragment} in {file})")
  assert not broken, "\n".join(broken)
