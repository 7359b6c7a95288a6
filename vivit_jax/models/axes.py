"""Logical axis names of parameters and activations; `train/partitioning.py`
maps each onto mesh axes (`sharding.rules`).

Parameters: EMBED (model width D), MLP (MLP hidden units), HEADS (attention
heads), KV (per-head width), CLASSES (classifier outputs), DECODER_EMBED
(the masked autoencoder's decoder width). Activations of shape `(B, L, D)`
are constrained to ACTIVATION = (ACTIVATION_BATCH, ACTIVATION_LENGTH,
ACTIVATION_EMBED). These strings are what a user writes in `sharding.rules`.
"""

EMBED = "embed"
MLP = "mlp"
HEADS = "heads"
KV = "kv"
CLASSES = "classes"
DECODER_EMBED = "decoder_embed"

ACTIVATION_BATCH = "activation_batch"
ACTIVATION_LENGTH = "activation_length"
ACTIVATION_EMBED = "activation_embed"
ACTIVATION = (ACTIVATION_BATCH, ACTIVATION_LENGTH, ACTIVATION_EMBED)
