"""Moved to `vivit_jax.serving.predict` (`vivit-predict`); an alias for one release."""

import sys

from vivit_jax.serving import predict as _moved

if __name__ == "__main__":
  print("note: `python -m vivit_jax.predict` is deprecated; use `vivit-predict` "
        "(or `python -m vivit_jax.serving.predict`)", file=sys.stderr)
  sys.exit(_moved.main())
sys.modules[__name__] = _moved
