"""The GPU image's wheels (scripts/gpu_wheels.txt), rebuilt from this venv.

The simulated-GPU-image test installs wheels the way `scripts/gpu_suite.sh`
does on the GPU machine (`pip install --no-index --no-deps --target` from a
wheel folder), but it does not download them: `scripts/gpu_wheels.sh` needs
the package registry, and a test should not. All the GPU wheels are pure
Python (`py3-none-any`, asserted here), so an installed distribution holds
everything its wheel held: the files its RECORD lists. `wheels_from_venv`
copies those (less `__pycache__`, anything outside site-packages and the
installer's own INSTALLER / REQUESTED / direct_url.json) into a folder laid
out like an unpacked wheel and packs it with `wheel pack`, which writes a
fresh RECORD. The versions are this venv's; they match the pins whenever the
venv was installed from them (`test_gpu_suite` checks the pins against
setup.py's ranges separately).
"""

import importlib.metadata
import os
import shutil
import subprocess
import sys

from support import REPO

WHEEL_LIST = os.path.join(REPO, "scripts", "gpu_wheels.txt")
_INSTALLER_FILES = ("INSTALLER", "REQUESTED", "RECORD", "direct_url.json")


def pinned() -> dict:
  """`{name: version}` from scripts/gpu_wheels.txt."""
  with open(WHEEL_LIST) as f:
    lines = [line.split("#")[0].strip() for line in f]
  return dict(line.split("==") for line in lines if line)


def wheels_from_venv(out_dir: str) -> list:
  """Writes one `.whl` per pinned name (installed version) to `out_dir`; their paths."""
  os.makedirs(out_dir, exist_ok=True)
  staging_root = os.path.join(out_dir, "staging")
  paths = []
  for name in pinned():
    dist = importlib.metadata.distribution(name)
    info_dir = next(f for f in dist.files if f.parts[0].endswith(".dist-info")).parts[0]
    wheel_meta = dist.read_text("WHEEL") or ""
    assert "Tag: py3-none-any" in wheel_meta, f"{name} is not a pure-Python wheel"
    staging = os.path.join(staging_root, info_dir[:-len(".dist-info")])
    for file in dist.files:
      if (file.parts[0] == ".." or "__pycache__" in file.parts
          or (file.parts[0] == info_dir and file.name in _INSTALLER_FILES)):
        continue
      target = os.path.join(staging, *file.parts)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copy2(dist.locate_file(file), target)
    before = set(os.listdir(out_dir))
    subprocess.run([sys.executable, "-m", "wheel", "pack", "--dest-dir", out_dir, staging],
                   check=True, capture_output=True)
    paths += [os.path.join(out_dir, f) for f in set(os.listdir(out_dir)) - before]
  shutil.rmtree(staging_root)
  return sorted(paths)
