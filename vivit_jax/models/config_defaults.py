"""Every field of a model class as a config-friendly default.

`model_config_defaults(name)` maps each constructor field of the model called
`name` (see `registry.MODELS`) to a value an `ml_collections.ConfigDict` and
`--config.model.<key>=...` flags can hold: dtypes as their names
("float32"), `None` as a typed placeholder (so a flag can set it), the rest
as is. Experiment configs start from it, so every documented model option is
settable on the command line of every config.
"""

import dataclasses
import typing
from typing import Any, Dict, Optional

import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

# Filled from `size` when the config names one: None here means "from size".
SIZE_FIELDS = ("hidden_size", "num_layers", "num_heads", "mlp_dim")


def _optional_type(annotation) -> Optional[type]:
  """`int` for `Optional[int]`; None when the annotation is no plain Optional."""
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  if typing.get_origin(annotation) is typing.Union and len(args) == 1:
    return args[0] if isinstance(args[0], type) else None
  return None


def _config_value(value: Any, annotation) -> Any:
  if value is None:
    return config_dict.placeholder(_optional_type(annotation) or object)
  if isinstance(value, (type, np.dtype)):  # jnp.float32 and friends
    return jnp.dtype(value).name
  return value


def model_config_defaults(name: str, size: Optional[str] = None) -> Dict[str, Any]:
  """`{field: default}` of model `name`; with `size`, SIZE_FIELDS are placeholders."""
  from vivit_jax.models.registry import interface_of  # registry imports the models
  cls = interface_of(name).module
  hints = typing.get_type_hints(cls)
  out = {}
  for field in dataclasses.fields(cls):
    if not field.init or field.name in ("parent", "name"):
      continue
    default = field.default
    if size is not None and field.name in SIZE_FIELDS:
      default = None
    out[field.name] = _config_value(default, hints.get(field.name))
  return out
