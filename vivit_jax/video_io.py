"""Moved to `vivit_jax.serving.video_io`; this alias stays for one release."""

import sys

from vivit_jax.serving import video_io as _moved

sys.modules[__name__] = _moved
