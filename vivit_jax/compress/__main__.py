r"""Quantizes a model checkpoint to int8 (post-training, qwix) and/or turns
on token merging.

    python -m vivit_jax.compress --checkpoint=DIR --output=DIR \
        [--method=int8_weight|int8_dynamic] [--calibration=absmax|absmax,0.9|rms,4] \
        [--token-merging=R|R0,R1,...|P%] [--check-clips=4]

Reads a float ViViT model checkpoint (a trained run's `WORKDIR/model`, or
a converted Hugging Face / Scenic checkpoint), writes the quantized model
checkpoint to `--output` (config.json gains a `"quantization"` block) and
prints one JSON line: parameter bytes before / after and the largest
absolute logit difference between the float and the quantized model on
`--check-clips` random clips of the checkpoint's input shape.
`--calibration` sets how each weight's int8 scale is chosen (qwix weight
calibration; int8_dynamic scales the activations per token at run time).
`--token-merging` writes `model.token_merging` (ToMe, training-free: R
tokens merged in every block, one R per block, or `P%`: P% of the tokens
entering each block, 0 <= P <= 50; `vivit_jax.models.token_merging`) into
the output's config.json, with or without `--method`. `P%` is stored as the
explicit per-block schedule of the checkpoint's own token count (its
input's frames and size, its patch and tubelet size, a class token kept
unmerged); predict, stream, evaluate and export build the model from that
config.
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
from vivit_jax.models import build_model, quantized, vivit
from vivit_jax.models import token_merging as tome


def _merged_config(model_config: Dict[str, Any], token_merging: tome.Merging,
                   video_shape) -> Dict[str, Any]:
  """`model_config` with `token_merging` (a `P%` fraction resolved into the
  per-block schedule of `video_shape`'s tokens); UserError when the model
  refuses it."""
  model = build_model(model_config)
  tokens, protect_first = vivit.merged_sequence(model, video_shape)
  schedule = tome.resolve(token_merging, tokens, model.num_layers, protect_first)
  merged = dict(model_config, token_merging=list(schedule))
  try:
    jax.eval_shape(build_model(merged).init, jax.random.PRNGKey(0),
                   jnp.zeros((1, *video_shape)))
  except ValueError as e:
    raise errors.UserError(str(e), f"--token-merging={tome.flag_value(token_merging)}",
                           "token merging needs a spatio_temporal or factorised_encoder "
                           "model (compress any other with --method alone), given as P%, "
                           "one R for every block, or one per block") from None
  return merged


def compress_checkpoint(checkpoint: str, output: str, method: Optional[str],
                        calibration: str = "absmax", check_clips: int = 4, force: bool = False,
                        progress: bool = True,
                        token_merging: Optional[tome.Merging] = None) -> Dict[str, Any]:
  """Quantizes `checkpoint` (`method`, None: keep float) and/or writes
  `token_merging` (`token_merging.parse`'s counts, or a fraction per block
  stored as its explicit schedule) into its config, into `output`; returns
  the report."""
  if method is None and token_merging is None:
    raise errors.UserError("nothing to do", "vivit-compress",
                           "pass --method, --token-merging or both")
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
  block = None if method is None else quantized.method_config(method, calibration)
  video_shape = checkpoints.video_shape_of(config, where)
  model = build_model(model_config)
  dummy = jnp.zeros((1, *video_shape), jnp.float32)
  expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), dummy))["params"]
  _, params = checkpoints.load_model_checkpoint(checkpoint, expected_params=expected)
  if token_merging is not None:
    config = dict(config, model=_merged_config(model_config, token_merging, video_shape))
  compressed = build_model(config["model"])
  if method is None:
    qmodel, qparams = compressed, params
    checkpoints.save_model_checkpoint(output, params, config, force=force)
  else:
    qmodel, qparams = quantized.quantize_model_params(compressed, params, video_shape, method,
                                                      calibration)
    checkpoints.save_quantized(output, qparams, config, block, force=force)

  float_fn = jax.jit(lambda p, x: model.apply({"params": p}, x))
  quant_fn = jax.jit(lambda p, x: qmodel.apply({"params": p}, x))
  rng = np.random.default_rng(0)
  max_diff = 0.0
  for _ in tqdm(range(check_clips), desc="float vs compressed logits", disable=not progress):
    clip = rng.standard_normal((1, *video_shape), np.float32)
    diff = np.abs(np.asarray(float_fn(params, clip)) - np.asarray(quant_fn(qparams, clip)))
    max_diff = max(max_diff, float(diff.max()))
  return {"checkpoint": checkpoint, "output": output, "quantization": block,
          "token_merging": config["model"].get("token_merging"),
          "param_bytes_before": param_bytes(params),
          "param_bytes_after": param_bytes(qparams),
          "check_clips": check_clips, "max_abs_logit_diff": max_diff if check_clips else None}


@errors.command
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m vivit_jax.compress", description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True, help="float model checkpoint directory")
  parser.add_argument("--output", required=True, help="where the quantized checkpoint goes")
  parser.add_argument("--method", choices=sorted(quantized.METHODS),
                      help="int8 quantization (default: keep float parameters)")
  parser.add_argument("--calibration", default="absmax",
                      help="weight scale: absmax, absmax,<clip> or rms,<multiple>")
  parser.add_argument("--token-merging", metavar="R|R0,R1,...|P%",
                      help="ToMe: tokens merged in every block, one count per block "
                           "(0: off), or P%% of the tokens entering each block (0-50); "
                           "written to config.json as model.token_merging (P%%: as the "
                           "per-block counts for this checkpoint's token count)")
  parser.add_argument("--check-clips", type=int, default=4,
                      help="random clips to compare float and compressed logits on (0: skip)")
  parser.add_argument("--force", action="store_true", help="overwrite --output")
  args = parser.parse_args(argv)
  try:
    merging = None if args.token_merging is None else tome.parse(args.token_merging)
    report = compress_checkpoint(args.checkpoint, args.output, args.method, args.calibration,
                                 args.check_clips, args.force, token_merging=merging)
  except (FileNotFoundError, FileExistsError, ValueError,
          checkpoints.ParamMismatchError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(json.dumps(report))
  return 0


if __name__ == "__main__":
  sys.exit(main())
