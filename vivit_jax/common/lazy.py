"""A package's names imported on first use (a PEP 562 module `__getattr__`),
so importing the package stays cheap (no jax for `--help`, no TensorFlow
for `vivit_jax.data`'s config helpers)."""

import importlib
import sys
from typing import Any, Callable, Mapping, Tuple


def lazy_getattr(package: str, names: Mapping[str, Tuple[str, str]]) -> Callable[[str], Any]:
  """The module `__getattr__` of `package`: `names[name] = (module, attribute)`
  is imported on first use and cached in the package."""

  def __getattr__(name: str) -> Any:
    if name not in names:
      raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module_name, attribute = names[name]
    value = getattr(importlib.import_module(module_name), attribute)
    setattr(sys.modules[package], name, value)
    return value

  return __getattr__
