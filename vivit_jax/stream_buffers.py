"""Moved to `vivit_jax.serving.stream_buffers`; this alias stays for one release."""

import sys

from vivit_jax.serving import stream_buffers as _moved

sys.modules[__name__] = _moved
