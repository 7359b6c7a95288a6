"""Flax models: ViViT (four variants) and the masked video autoencoder.

Each model module defines its Flax module and a `ModelInterface`
(`interface.py`); `registry.py` maps `model.name` to it.
"""

from vivit_jax.models.interface import ModelInterface
from vivit_jax.models.registry import (VIT_SIZES, abstract_params, build_model, dummy_inputs,
                                       interface_of, objective_of, register_model,
                                       resolve_model_kwargs)
from vivit_jax.models.videomae import MaskedVideoAutoencoder
from vivit_jax.models.vivit import ViViT

__all__ = ["ViViT", "MaskedVideoAutoencoder", "ModelInterface", "abstract_params",
           "build_model", "dummy_inputs", "interface_of", "objective_of", "register_model",
           "resolve_model_kwargs", "VIT_SIZES"]
