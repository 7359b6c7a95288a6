"""Model names -> `ModelInterface`s, and `build_model(config.model)`.

    register_model("mine", mine.INTERFACE)    # once, where the model is defined
    model = build_model({"name": "mine", ...})
    interface_of(model).dummy_inputs(model, (T, H, W, C), rng)

A model config is a mapping (ml_collections `ConfigDict` or dict) with
  name: a registered name: "vivit" (the classifier, any variant),
        "videomae" (the masked autoencoder), or one added by
        `register_model`;
  size: optional ViT size, one of VIT_SIZES, filling hidden_size, num_layers,
        num_heads and mlp_dim (explicit keys win);
and otherwise the fields of `ViViT` / `MaskedVideoAutoencoder`. An unknown
key fails at once with its name and the valid ones.
"""

import dataclasses
from typing import Any, Dict, Mapping, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from vivit_jax.models import videomae, vivit
from vivit_jax.models.interface import ModelInterface

MODELS: Dict[str, ModelInterface] = {"vivit": vivit.INTERFACE, "videomae": videomae.INTERFACE}

VIT_SIZES = {
    "Ti": dict(hidden_size=192, num_layers=12, num_heads=3, mlp_dim=768),
    "S": dict(hidden_size=384, num_layers=12, num_heads=6, mlp_dim=1536),
    "B": dict(hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "L": dict(hidden_size=1024, num_layers=24, num_heads=16, mlp_dim=4096),
    "H": dict(hidden_size=1280, num_layers=32, num_heads=16, mlp_dim=5120),
}

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _as_dict(config: Any) -> dict:
  if hasattr(config, "to_dict"):
    return config.to_dict()
  return dict(config)


def register_model(name: str, interface: ModelInterface) -> None:
  """Makes `model.name=name` build `interface.module` (re-registering replaces)."""
  if not isinstance(interface, ModelInterface):
    raise TypeError(f"register_model({name!r}) needs a ModelInterface, got "
                    f"{type(interface).__name__}")
  MODELS[name] = interface


def interface_of(model: Union[nn.Module, str, Mapping[str, Any]]) -> ModelInterface:
  """The `ModelInterface` of a built model, a model name or a model config."""
  model = getattr(model, "float_module", model)  # a quantized model (models/quantized.py)
  if isinstance(model, nn.Module):
    for interface in MODELS.values():
      if type(model) is interface.module:  # pylint: disable=unidiomatic-typecheck
        return interface
    raise ValueError(f"{type(model).__name__} is not a registered model; register it with "
                     "vivit_jax.models.register_model")
  name = model if isinstance(model, str) else _as_dict(model).get("name", "vivit")
  if name not in MODELS:
    raise ValueError(f"model.name must be one of {sorted(MODELS)}, got {name!r}")
  return MODELS[name]


def objective_of(model: Union[nn.Module, str, Mapping[str, Any]]) -> str:
  """"classification" or "pretrain": what the model is trained for."""
  return interface_of(model).objective


def dummy_inputs(model: nn.Module, video_shape: Sequence[int], rng=None) -> tuple:
  """The batch-1 inputs `model.init` takes for clips of `video_shape` `(T, H, W, C)`."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  return interface_of(model).dummy_inputs(model, tuple(video_shape), rng)


def abstract_params(model: nn.Module, video_shape: Sequence[int]) -> Any:
  """The (boxed) parameter tree `model.init` builds, as `jax.ShapeDtypeStruct`s."""
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                           *dummy_inputs(model, video_shape)))["params"]


def model_fields(name: str) -> set:
  """Config keys the model called `name` accepts (besides `name` and `size`)."""
  return {f.name for f in dataclasses.fields(interface_of(name).module)
          if f.init and f.name not in ("parent", "name")}


def resolve_model_kwargs(config: Mapping[str, Any]) -> tuple:
  """`(model class, constructor kwargs)` for a model config; validates keys."""
  config = _as_dict(config)
  name = config.pop("name", "vivit")
  module = interface_of(name).module
  size = config.pop("size", None)
  kwargs = {}
  if size is not None:
    if size not in VIT_SIZES:
      raise ValueError(f"model.size must be one of {list(VIT_SIZES)}, got {size!r}")
    kwargs.update(VIT_SIZES[size])
    for key in VIT_SIZES[size]:  # an unset placeholder (None) means "from size"
      if key in config and config[key] is None:
        del config[key]
  unknown = sorted(set(config) - model_fields(name))
  if unknown:
    raise ValueError(f"unknown model config key(s) {unknown} for model.name={name!r}; "
                     f"valid keys: {sorted(model_fields(name) | {'name', 'size'})}")
  kwargs.update(config)
  for key in ("dtype", "param_dtype"):
    if isinstance(kwargs.get(key), str):
      if kwargs[key] not in DTYPES:
        raise ValueError(f"model.{key} must be one of {sorted(DTYPES)}, got {kwargs[key]!r}")
      kwargs[key] = DTYPES[kwargs[key]]
  for key in ("patch_size",):
    if isinstance(kwargs.get(key), list):
      kwargs[key] = tuple(kwargs[key])
  return module, kwargs


def build_model(config: Mapping[str, Any]) -> nn.Module:
  """The Flax module described by a model config (see module docstring)."""
  cls, kwargs = resolve_model_kwargs(config)
  return cls(**kwargs)
