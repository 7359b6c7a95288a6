"""Model checkpoints: a folder with the parameters (Orbax) and the config beside them.

Layout of a model checkpoint directory (what converters write and what the
evaluator, predictor and fine-tuning initialiser read; `save_quantized` /
`load_quantized`: the int8 ones of `vivit_jax.models.quantized`):

    CKPT_DIR/
      config.json   {"model": {...model config...}, optional "labels": [...], "source": ...}
      params/       an Orbax PyTree checkpoint of the float parameters

Training checkpoints (`checkpoints/train.py`) hold the whole train state and
are managed by an Orbax `CheckpointManager`; this module is the common
ground: saving/loading params with their config, `load_model` (the one
"build the model, take its parameter shapes, restore into them" sequence
every reader uses); comparing parameter trees is `vivit_jax.common.params`.

    model, params, meta = load_model("ckpt_dir", dtype="bfloat16")  # float or int8  # float or int8
    logits = model.apply({"params": params}, video)     # (B, T, H, W, C)
"""

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from vivit_jax.checkpoints import input_spec
from vivit_jax.checkpoints.workdir import CHECKPOINTS_DIR, CONFIG_FILE, MODEL_DIR, PARAMS_DIR
from vivit_jax.common.params import abstract_like, check_params_match, json_default
from vivit_jax.common.errors import UserError, read_json



def save_model_checkpoint(directory: str, params, config: Mapping[str, Any],
                          force: bool = False) -> str:
  """Writes `params` (float arrays) and `config` (JSON-able) under `directory`."""
  directory = os.path.abspath(directory)
  os.makedirs(directory, exist_ok=True)
  params = jax.tree_util.tree_map(np.asarray, nn.unbox(params))
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, PARAMS_DIR), params, force=force)
  checkpointer.wait_until_finished()
  if jax.process_index() == 0:
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
      json.dump(dict(config), f, indent=2, sort_keys=True, default=json_default)
  return directory


def stored_tree(metadata) -> Any:
  """The plain tree of Orbax checkpoint metadata (Orbax wraps it in objects)."""
  metadata = getattr(metadata, "item_metadata", metadata)
  return getattr(metadata, "tree", metadata)


def load_model_config(directory: str) -> Dict[str, Any]:
  """The `config.json` of a model checkpoint (FileNotFoundError naming the dir).

  A training workdir (`checkpoints/` and a training `config.json`, no
  `params/`) is refused with a line naming `WORKDIR/model`, its model
  checkpoint.
  """
  if (os.path.isdir(os.path.join(directory, CHECKPOINTS_DIR))
      and not os.path.isdir(os.path.join(directory, PARAMS_DIR))):
    model_dir = os.path.join(directory.rstrip(os.sep) or directory, MODEL_DIR)
    found = ("" if os.path.exists(os.path.join(model_dir, CONFIG_FILE))
             else " (not written yet: the run writes it when it finishes)")
    raise FileNotFoundError(f"{directory} is a training workdir, not a model checkpoint: "
                            f"pass {model_dir}{found}")
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{directory} is not a model checkpoint: no {CONFIG_FILE}")
  return read_json(path, f"restore {CONFIG_FILE} from where the checkpoint came from, or "
                   "write the model checkpoint again")


def load_model_checkpoint(directory: str, expected_params=None) -> Tuple[Dict[str, Any], Any]:
  """Reads `(config, params)` from a model checkpoint directory.

  With `expected_params` (a tree of arrays or `jax.ShapeDtypeStruct`s, e.g.
  from `jax.eval_shape(model.init, ...)`), the stored tree must have exactly
  the same names and shapes, else `ParamMismatchError` lists the differences;
  arrays are then restored with the expected shardings if they carry any.
  """
  config = load_model_config(directory)
  path = os.path.join(os.path.abspath(directory), PARAMS_DIR)
  checkpointer = ocp.StandardCheckpointer()
  stored = stored_tree(checkpointer.metadata(path))
  if expected_params is not None:
    expected_params = nn.unbox(expected_params)
    check_params_match(expected_params, stored, f"checkpoint {directory}")
    return config, checkpointer.restore(path, abstract_like(expected_params))
  return config, checkpointer.restore(path)


def load_model(directory: str, video_shape: Optional[Sequence[int]] = None,
               target: Any = None, **overrides) -> Tuple[nn.Module, Any, Dict[str, Any]]:
  """`(model, params, meta)` from a model checkpoint directory.

  Builds the model of `config.json` (with `overrides` of model config keys,
  e.g. `dtype="bfloat16"`, `attention_impl="cudnn"`; None values ignored),
  takes the parameter shapes it creates for clips of `video_shape`
  `(T, H, W, C)` (default: `input_spec.video_shape_of(meta)`) and restores the stored
  parameters into them.

  Args:
    target: optional tree of arrays or `jax.ShapeDtypeStruct`s with
      shardings (e.g. a train state's `params`): restore onto those
      shardings instead of the default device.

  Returns:
    The Flax module, its parameters (unboxed arrays) and `meta`, the whole
    `config.json` ("model", optional "labels", "input", "source").

  Raises:
    FileNotFoundError (not a model checkpoint), ValueError (bad config),
    ParamMismatchError (names / shapes differ; every difference listed).
  """
  from vivit_jax.models import registry  # pylint: disable=g-import-not-at-top
  meta = load_model_config(directory)
  where = os.path.join(directory, CONFIG_FILE)
  model_config = dict(meta["model"])
  model_config.update({k: v for k, v in overrides.items() if v is not None})
  model = registry.build_model(model_config)
  shape = input_spec.video_shape_of(meta, where) if video_shape is None else tuple(video_shape)
  if meta.get("quantization"):  # an int8 checkpoint of `vivit-compress`
    qmodel, params = load_quantized(directory, model, shape, meta)
    return qmodel, params, meta
  if target is None:
    target = registry.abstract_params(model, shape)
  _, params = load_model_checkpoint(directory, expected_params=target)
  return model, params, meta


def save_quantized(directory: str, qparams, config: Mapping[str, Any],
                   quantization: Mapping[str, Any], force: bool = False) -> str:
  """Writes a quantized model checkpoint (`vivit_jax.models.quantized`): `config`
  plus the `"quantization"` block."""
  from vivit_jax.models import quantized  # pylint: disable=g-import-not-at-top (qwix)
  config = dict(config)
  config[quantized.QUANTIZATION_KEY] = dict(quantization)
  return save_model_checkpoint(directory, qparams, config, force=force)


def load_quantized(directory: str, model: nn.Module, video_shape: Sequence[int],
                   config: Optional[Mapping[str, Any]] = None
                   ) -> Tuple[Any, Dict[str, Any]]:
  """`(models.quantized.QuantizedModel, params)` from a quantized model checkpoint.

  Args:
    directory: written by `save_quantized` (`python -m vivit_jax.compress`).
    model: the float model its config.json describes (with any overrides,
      e.g. dtype), as built by `vivit_jax.models.build_model`.
    video_shape: `(T, H, W, C)` of one clip.
    config: its config.json if already read.
  Raises:
    ValueError: not a quantized checkpoint; ParamMismatchError
    when the stored names / shapes differ from what the method creates.
  """
  from vivit_jax.models import quantized  # pylint: disable=g-import-not-at-top (qwix)
  config = load_model_config(directory) if config is None else config
  if not quantized.is_quantized(config):
    raise ValueError(f"{directory} holds float parameters (no "
                     f"\"{quantized.QUANTIZATION_KEY}\" in {CONFIG_FILE}); load it as a "
                     "float checkpoint")
  qmodel, abstract = quantized.quantized_model(model, config[quantized.QUANTIZATION_KEY],
                                               video_shape)
  _, params = load_model_checkpoint(directory, expected_params=abstract)
  return qmodel, params


def read_labels(path: Optional[str], num_classes: Optional[int] = None) -> Optional[List[str]]:
  """Class names from a file, one per line (blank lines skipped); None for no path.

  With `num_classes`, a file with another count raises ValueError naming both.
  """
  if path is None:
    return None
  with open(path) as f:
    labels = [line.strip() for line in f if line.strip()]
  if num_classes is not None and len(labels) != num_classes:
    raise UserError(f"{len(labels)} labels, but the model has {num_classes} classes", path,
                    f"list {num_classes} class names, one per line, in the model's class order")
  return labels
