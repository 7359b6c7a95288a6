"""Shared pytest setup: the `slow` marker (tests over ~30 s; they still run in CI)."""


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: takes over ~30 s on a 2-core CPU machine")
