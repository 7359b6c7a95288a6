"""Shared pytest setup for `tests/unit/<package>/` and `tests/integration/`.

- The `slow` marker: tests over ~30 s on a 2-core CPU (they still run in CI).
- `tests/` on `sys.path`, so every test imports the shared helpers as
  `from support import datasets, train_runs, videos` (see tests/support/).
- Fixtures used across rooms: `tiny_dataset` (the demo's moving shapes at
  4 frames of 16 x 16, written once per session as TFRecords).
"""

import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
  sys.path.insert(0, TESTS_DIR)


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: takes over ~30 s on a 2-core CPU machine")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
  """`write_demo_dataset`'s result dict for a tiny split (train_runs.write_tiny_dataset)."""
  from support import train_runs  # pylint: disable=import-outside-toplevel
  return train_runs.write_tiny_dataset(str(tmp_path_factory.mktemp("tiny_dataset")))
