"""Shared pytest setup for `tests/unit/<package>/` and `tests/integration/`.

- The `slow` marker: tests over ~30 s on a 2-core CPU (they still run in CI).
- `tests/` on `sys.path`, so every test imports the shared helpers as
  `from support import datasets, train_runs, videos` (see tests/support/).
- Fixtures used across rooms: `tiny_dataset` (the demo's moving shapes at
  4 frames of 16 x 16, written once per session as TFRecords).
- Known third-party deprecation warnings filtered by exact message
  (`THIRD_PARTY_WARNINGS`); the one home of the test run's warning filters.
- One JAX persistent compilation cache per session (a fresh temporary
  directory, shared by the xdist workers and every subprocess they start
  through the environment): the many `vivit_jax.main` runs of the same tiny
  config compile their steps once. Set `JAX_COMPILATION_CACHE_DIR` yourself
  to use another directory (it is then kept).
"""

import os
import shutil
import sys
import tempfile

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
  sys.path.insert(0, TESTS_DIR)

# Set before anything imports jax (it reads these at import); xdist workers
# and subprocesses inherit the controller's environment, so all share it.
_OWN_CACHE = None
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
  _OWN_CACHE = tempfile.mkdtemp(prefix="vivit_jax_test_compile_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


# Known third-party deprecations, each by its exact message (pytest's
# `filterwarnings` syntax; the message is a regular expression matched from
# its start). Warnings of our own code are fixed, never listed here.
THIRD_PARTY_WARNINGS = (
    # ml_collections.config_flags loads a --config file with load_module().
    r"ignore:the load_module\(\) method is deprecated and slated for removal in "
    r"Python 3\.12; use exec_module\(\) instead:DeprecationWarning",
    # qwix (utils/flax_util.py) still names nnx.VariableState.
    r"ignore:'VariableState' was removed, this is just an alias to 'Variable'\. "
    r"Plase use 'Variable' directly instead\.:DeprecationWarning",
)


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: takes over ~30 s on a 2-core CPU machine")
  for line in THIRD_PARTY_WARNINGS:
    config.addinivalue_line("filterwarnings", line)


def pytest_unconfigure(config):
  if _OWN_CACHE is not None:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
  """`write_demo_dataset`'s result dict for a tiny split (train_runs.write_tiny_dataset)."""
  from support import train_runs  # pylint: disable=import-outside-toplevel
  return train_runs.write_tiny_dataset(str(tmp_path_factory.mktemp("tiny_dataset")))
