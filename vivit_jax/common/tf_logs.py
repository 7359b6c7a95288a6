"""TensorFlow's C++ start-up lines kept off the console of every command.

TensorFlow (2.21, CPU) writes, on `import tensorflow`, from C++ straight to
file descriptor 2:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...

and on its first op `I0000 ... cpu_feature_guard.cc:227] This TensorFlow
binary is optimized to use ...`. The first two come from absl logging before
it is initialised, which no environment variable filters; the last obeys
`TF_CPP_MIN_LOG_LEVEL`. `install()` (run by `import vivit_jax`) therefore

  * sets `TF_CPP_MIN_LOG_LEVEL=1` (TensorFlow's C++ INFO lines off; its
    warnings and errors stay) unless it is set already, and
  * sends file descriptor 2 to /dev/null while `tensorflow`'s own module
    body runs (its first import, by whichever module); a Python exception
    from that import still propagates with its traceback.

Set `TF_CPP_MIN_LOG_LEVEL=0` to see everything TensorFlow prints again.
Installing imports nothing of TensorFlow.
"""

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys

LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_MODULES = ("tensorflow",)


@contextlib.contextmanager
def stderr_silenced():
  """File descriptor 2 (C and C++ writes, Python's too) to /dev/null inside."""
  try:
    sys.stderr.flush()
  except (AttributeError, ValueError):
    pass
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    try:
      sys.stderr.flush()
    except (AttributeError, ValueError):
      pass
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
  """Runs another loader's `exec_module` with stderr silenced."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    module.__loader__ = self._loader
    if module.__spec__ is not None:
      module.__spec__.loader = self._loader
    with stderr_silenced():
      self._loader.exec_module(module)

  def __getattr__(self, name):
    return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
  """Finds `QUIET_MODULES` as the other finders do, with a `_QuietLoader`."""

  def find_spec(self, fullname, path, target=None):
    if fullname not in QUIET_MODULES:
      return None
    for finder in sys.meta_path:
      if finder is self or not hasattr(finder, "find_spec"):
        continue
      spec = finder.find_spec(fullname, path, target)
      if spec is not None:
        if spec.loader is not None and not isinstance(spec.loader, _QuietLoader):
          spec.loader = _QuietLoader(spec.loader)
        return spec
    return None


def install() -> None:
  """Quiets TensorFlow's C++ start-up lines (see the module docstring); idempotent."""
  os.environ.setdefault(LEVEL_ENV, "1")
  if os.environ[LEVEL_ENV].strip() in ("", "0"):
    return
  if any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
    return
  if any(name in sys.modules for name in QUIET_MODULES):
    return
  sys.meta_path.insert(0, _QuietFinder())
