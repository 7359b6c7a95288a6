r"""Quantizes a model checkpoint to int8 (post-training, qwix).

    python -m vivit_jax.compress --checkpoint=DIR --output=DIR \
        --method=int8_weight|int8_dynamic [--calibration=absmax|absmax,0.9|rms,4] \
        [--check-clips=4]

Reads a float ViViT model checkpoint (a trained run's `WORKDIR/model`, or
a converted Hugging Face / Scenic checkpoint), writes the quantized model
checkpoint to `--output` (config.json gains a `"quantization"` block) and
prints one JSON line: parameter bytes before / after and the largest
absolute logit difference between the float and the quantized model on
`--check-clips` random clips of the checkpoint's input shape.
`--calibration` sets how each weight's int8 scale is chosen (qwix weight
calibration; int8_dynamic scales the activations per token at run time).
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from vivit_jax import checkpoints
from vivit_jax.common import errors
from vivit_jax.common.params import param_bytes
from vivit_jax.models import build_model, quantized


def compress_checkpoint(checkpoint: str, output: str, method: str, calibration: str = "absmax",
                        check_clips: int = 4, force: bool = False,
                        progress: bool = True) -> Dict[str, Any]:
  """Quantizes `checkpoint` into `output`; returns the report (see module docstring)."""
  where = os.path.join(checkpoint, checkpoints.CONFIG_FILE)
  config = checkpoints.load_model_config(checkpoint)
  if quantized.is_quantized(config):
    raise ValueError(f"{checkpoint} is already quantized ({config['quantization']['method']}); "
                     "pass the float checkpoint it came from")
  model_config = dict(config["model"])
  if model_config.get("name", "vivit") != "vivit":
    raise ValueError(f"{where}: model.name={model_config.get('name')!r}; only 'vivit' "
                     "classifiers / feature extractors are quantized")
  if os.path.exists(os.path.join(output, checkpoints.CONFIG_FILE)) and not force:
    raise FileExistsError(f"{output} already holds a checkpoint; pass --force to overwrite")
  block = quantized.method_config(method, calibration)
  video_shape = checkpoints.video_shape_of(config, where)
  model = build_model(model_config)
  dummy = jnp.zeros((1, *video_shape), jnp.float32)
  expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), dummy))["params"]
  _, params = checkpoints.load_model_checkpoint(checkpoint, expected_params=expected)
  qmodel, qparams = quantized.quantize_model_params(model, params, video_shape, method,
                                                    calibration)
  checkpoints.save_quantized(output, qparams, config, block, force=force)

  float_fn = jax.jit(lambda p, x: model.apply({"params": p}, x))
  quant_fn = jax.jit(lambda p, x: qmodel.apply({"params": p}, x))
  rng = np.random.default_rng(0)
  max_diff = 0.0
  for _ in tqdm(range(check_clips), desc="float vs int8 logits", disable=not progress):
    clip = rng.standard_normal((1, *video_shape), np.float32)
    diff = np.abs(np.asarray(float_fn(params, clip)) - np.asarray(quant_fn(qparams, clip)))
    max_diff = max(max_diff, float(diff.max()))
  return {"checkpoint": checkpoint, "output": output, "quantization": block,
          "param_bytes_before": param_bytes(params),
          "param_bytes_after": param_bytes(qparams),
          "check_clips": check_clips, "max_abs_logit_diff": max_diff if check_clips else None}


@errors.command
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m vivit_jax.compress", description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True, help="float model checkpoint directory")
  parser.add_argument("--output", required=True, help="where the quantized checkpoint goes")
  parser.add_argument("--method", required=True, choices=sorted(quantized.METHODS))
  parser.add_argument("--calibration", default="absmax",
                      help="weight scale: absmax, absmax,<clip> or rms,<multiple>")
  parser.add_argument("--check-clips", type=int, default=4,
                      help="random clips to compare float and int8 logits on (0: skip)")
  parser.add_argument("--force", action="store_true", help="overwrite --output")
  args = parser.parse_args(argv)
  try:
    report = compress_checkpoint(args.checkpoint, args.output, args.method, args.calibration,
                                 args.check_clips, args.force)
  except (FileNotFoundError, FileExistsError, ValueError,
          checkpoints.ParamMismatchError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(json.dumps(report))
  return 0


if __name__ == "__main__":
  sys.exit(main())
