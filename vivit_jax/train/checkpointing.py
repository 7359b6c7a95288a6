"""Moved to `vivit_jax.checkpoints.train`; this alias stays for one release."""

from vivit_jax.checkpoints.train import (CHECKPOINTS_DIR, CORRUPT_DIR, DATA_ITEM,  # noqa: F401
                                         STATE_ITEM, StopRequest, TrainCheckpointer,
                                         checkpoint_manager_options)
