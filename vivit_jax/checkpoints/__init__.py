"""Checkpoints: model checkpoints, training checkpoints, starting weights.

  model.py      a model checkpoint dir (`config.json` + Orbax `params/`):
                `save_model_checkpoint`, `load_model` (build the model,
                restore into its parameter shapes: what every reader uses;
                int8 ones too: `save_quantized`, `load_quantized`),
                (`ParamMismatchError` and the parameter-tree helpers are
                `vivit_jax.common.params`'s, named here too).
  train.py      a training workdir's `checkpoints/<step>/{state, data}`:
                `TrainCheckpointer` (Orbax `CheckpointManager`), `StopRequest`.
  input_spec.py the config.json "input" block: `InputSpec`, `resolve_input_spec`,
                `video_shape_of`.
  workdir.py    names on disk (CONFIG_FILE, PARAMS_DIR, CHECKPOINTS_DIR,
                MODEL_DIR) and `resolve_checkpoint` (model dir or workdir?).
  init_from.py  the starting weights of a fresh run (`config.init_from`).
  damage.py     what is wrong with which file of an unreadable checkpoint.
  faults.py     one-line checkpoint errors (`CheckpointError`: damaged,
                mismatched, save failed, changed config on resume).
  layout.py     train-state section layouts and their differences.
  noise.py      filters for Orbax / TensorStore / asyncio aftermath.
  resume_config.py  a resumed run's config vs the workdir's config.json.

This package imports jax, flax and orbax (never TensorFlow) and, of the
package, `common`, `models` and `data.eval_views` only. The names below are
the model-checkpoint API (`from vivit_jax import checkpoints`).
"""

from vivit_jax.checkpoints.input_spec import video_shape_of
from vivit_jax.checkpoints.model import (load_model, load_model_checkpoint, load_model_config,
                                         load_quantized, read_labels, save_model_checkpoint,
                                         save_quantized, stored_tree)
from vivit_jax.checkpoints.workdir import CONFIG_FILE, PARAMS_DIR
# Parameter-tree helpers live in the ground floor; named here too (the API).
from vivit_jax.common.params import (ParamMismatchError, abstract_like, check_params_match,
                                     describe_mismatch, flatten_params, json_default,
                                     unflatten_params)

__all__ = ["CONFIG_FILE", "PARAMS_DIR", "ParamMismatchError", "abstract_like",
           "check_params_match", "describe_mismatch", "flatten_params", "json_default",
           "load_model", "load_model_checkpoint", "load_model_config", "load_quantized",
           "read_labels", "save_model_checkpoint", "save_quantized", "stored_tree",
           "unflatten_params", "video_shape_of"]
