"""Making a model checkpoint smaller and faster for deployment.

    python -m vivit_jax.compress --checkpoint=DIR --output=DIR --method=int8_weight

`quantize`: post-training int8 quantization with qwix (weight-only or
dynamic range); the result is a model checkpoint that predict, stream,
evaluate and export load like any other (see `quantize.load_quantized`).
"""

from vivit_jax.compress.quantize import (METHODS, QuantizedModel, is_quantized, load_quantized,
                                         quantize_model_params, save_quantized)

__all__ = ["METHODS", "QuantizedModel", "is_quantized", "load_quantized",
           "quantize_model_params", "save_quantized"]
