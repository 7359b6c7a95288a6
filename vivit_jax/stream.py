"""Moved to `vivit_jax.serving.stream` (`vivit-stream`); an alias for one release."""

import sys

from vivit_jax.serving import stream as _moved

if __name__ == "__main__":
  print("note: `python -m vivit_jax.stream` is deprecated; use `vivit-stream` "
        "(or `python -m vivit_jax.serving.stream`)", file=sys.stderr)
  sys.exit(_moved.main())
sys.modules[__name__] = _moved
