"""`vivit-compress`: a model checkpoint made smaller and faster for deployment.

    python -m vivit_jax.compress --checkpoint=DIR --output=DIR --method=int8_weight

Post-training int8 quantization with qwix (weight-only or dynamic range):
the quantized model is `vivit_jax.models.quantized`, its checkpoint is
written and read by `vivit_jax.checkpoints` (`save_quantized`,
`load_model`), so predict, stream, evaluate and export load it like any other.
This package holds only the command (`__main__.py`).
"""
