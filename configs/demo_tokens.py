r"""The demo classifier with more tokens per clip: for measuring token merging.

The demo's own classifier (`configs/demo_tfrecord.py`, `demo_finetune.py`)
reads 8 frames of 32 x 32 as 64 tokens, too few for token merging to show
its cost. This one reads the same generated clips (`make demo`'s
`demo_workdir/data`, 16 frames of 64 x 64) at their full size, with the demo
encoder (8 x 8 patches, 2-frame tubelets, width 96, 4 layers, CLS token),
trained from scratch like `demo_tfrecord.py` (AdamW, peak lr 1e-3):

  256  8 frames (every 2nd) of 64 x 64: 4 x 8 x 8 = 256 tokens (default)
  512  all 16 frames of 64 x 64: 8 x 8 x 8 = 512 tokens

    python -m vivit_jax.main --config=configs/demo_tokens.py:256 --workdir=/tmp/tokens

`scripts/compression_accuracy.py` trains it and measures what compression costs.
"""

import os
import sys

from vivit_jax.train.experiment import finalize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # configs/ siblings
import demo_common  # noqa: E402  pylint: disable=wrong-import-position

VARIANTS = ("256", "512")  # tokens per clip; no variant: 256
FRAMES_AND_STRIDE = {"256": (8, 2), "512": (16, 1)}


def get_config(arg=None):
  arg = arg or VARIANTS[0]
  if arg not in VARIANTS:
    raise ValueError(f"configs/demo_tokens.py has variants {list(VARIANTS)}, got {arg!r}")
  config = demo_common.supervised_demo_config()
  config.data.num_frames, config.data.stride = FRAMES_AND_STRIDE[arg]
  config.data.image_size = config.data.resize_short_side = demo_common.SOURCE_SIZE
  return finalize(config)
