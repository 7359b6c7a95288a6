"""Flax models: ViViT (four variants) and the masked video autoencoder."""

from vivit_jax.models.registry import VIT_SIZES, build_model, resolve_model_kwargs
from vivit_jax.models.videomae import MaskedVideoAutoencoder
from vivit_jax.models.vivit import ViViT

__all__ = ["ViViT", "MaskedVideoAutoencoder", "build_model", "resolve_model_kwargs",
           "VIT_SIZES"]
