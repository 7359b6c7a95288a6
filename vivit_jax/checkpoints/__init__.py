"""Checkpoints: model checkpoints, training checkpoints, starting weights.

  model.py      a model checkpoint dir (`config.json` + Orbax `params/`):
                `save_model_checkpoint`, `load_model` (build the model,
                restore into its parameter shapes: what every reader uses),
                (`ParamMismatchError` and the parameter-tree helpers are
                `vivit_jax.common.params`'s, named here too).
  train.py      a training workdir's `checkpoints/<step>/{state, data}`:
                `TrainCheckpointer` (Orbax `CheckpointManager`), `StopRequest`.
  init_from.py  the starting weights of a fresh run (`config.init_from`).
  damage.py     what is wrong with which file of an unreadable checkpoint.
  faults.py     one-line checkpoint errors (`CheckpointError`: damaged,
                mismatched, save failed, changed config on resume).
  layout.py     train-state section layouts and their differences.
  noise.py      filters for Orbax / TensorStore / asyncio aftermath.
  resume_config.py  a resumed run's config vs the workdir's config.json.

This package imports jax, flax and orbax (never TensorFlow) and, of the
package, `common` and `models` only. The names
below are the model-checkpoint API (`from vivit_jax import checkpoints`).
"""

from vivit_jax.checkpoints.model import (CONFIG_FILE, PARAMS_DIR,
                                         load_model, load_model_checkpoint,
                                         load_model_config, read_labels,
                                         save_model_checkpoint,
                                         stored_tree, video_shape_of)
# Parameter-tree helpers live in the ground floor; named here too (the API).
from vivit_jax.common.params import (ParamMismatchError, abstract_like, check_params_match,
                                     describe_mismatch, flatten_params, json_default,
                                     unflatten_params)

__all__ = ["CONFIG_FILE", "PARAMS_DIR", "ParamMismatchError", "abstract_like",
           "check_params_match", "describe_mismatch", "flatten_params", "json_default",
           "load_model", "load_model_checkpoint", "load_model_config",
           "read_labels", "save_model_checkpoint", "stored_tree", "unflatten_params",
           "video_shape_of"]
