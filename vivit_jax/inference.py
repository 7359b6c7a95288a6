"""Moved to `vivit_jax.serving.inference`; this alias stays for one release."""

import sys

from vivit_jax.serving import inference as _moved

sys.modules[__name__] = _moved
