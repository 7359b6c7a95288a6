"""Moved to `vivit_jax.checkpoints.init_from`; this alias stays for one release."""

from vivit_jax.checkpoints.init_from import (initial_params, initialise_state,  # noqa: F401
                                             newest_state_dir, place_like,
                                             read_pretrained_params)
