r"""Next-frame forecast with a pretrained masked autoencoder, as a PNG strip.

    python -m vivit_jax.train.evaluation.forecast --checkpoint=WORKDIR VIDEO [--output=strip.png]

WORKDIR is a pretraining run (`config.json` + `checkpoints/`, e.g. the demo's
pretraining with `--config.model.mask_type=future`). The centre clip of
VIDEO (any file PyAV reads) is sampled and resized as the run's eval data;
its last `model.future_frames * tubelet_size` frames are hidden and
forecast from the others. The PNG has three rows (nearest-upscaled): the
truth, the visible frames (hidden ones grey), and the visible frames
followed by the forecast. The console shows PSNR / SSIM of the forecast next
to the copy-last-frame and per-patch-mean baselines
(`vivit_jax.models.forecast_metrics`).
"""

import os
import sys
from typing import Dict

from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from vivit_jax.checkpoints.input_spec import resolve_input_spec
from vivit_jax.common import errors
from vivit_jax.data.eval_views import view_indices
from vivit_jax.serving import inference, video_io
from vivit_jax.models import embedding, forecast_metrics, masking, videomae

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Pretraining workdir (config.json, checkpoints/).")
flags.DEFINE_string("output", "", "PNG path; default VIDEO's name + _forecast.png.")


def load_run(workdir: str):
  """`(config, model, params)` of the newest training checkpoint in `workdir`
  (restored by `Evaluator.restore`)."""
  workdir = os.path.abspath(workdir)  # Orbax needs absolute paths
  from vivit_jax.train.evaluation.evaluator import Evaluator  # pylint: disable=import-outside-toplevel
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --checkpoint must be a pretraining workdir")
  config = ml_collections.ConfigDict(errors.read_json(
      path, "pass a pretraining workdir whose config.json is intact"))
  if config.model.get("name") != "videomae":
    raise ValueError(f"{workdir} is a {config.model.get('name')!r} run; forecasting needs a "
                     "masked autoencoder (model.name='videomae') pretraining workdir")
  if config.model.get("mask_type") != "future":
    raise ValueError(f"{workdir} was pretrained with mask_type="
                     f"{config.model.get('mask_type')!r}; forecasting needs a run with "
                     "--config.model.mask_type=future")
  evaluator = Evaluator(config)
  try:  # allow_init_from: a workdir without checkpoints is one, not "neither" kind
    restored = evaluator.restore(workdir, allow_init_from=True)
  except FileNotFoundError:
    restored = None
  if restored is None or restored.kind != "workdir":
    raise FileNotFoundError(f"{workdir} has no training checkpoint")
  return config, evaluator.model, jax.device_get(restored.state.params)


def forecast_clip(config, model, params, clip: np.ndarray) -> Dict[str, np.ndarray]:
  """One normalised clip `(T, H, W, 3)` -> truth / masked / forecast frames
  `(T, H, W, 3)` in [0, 1] and the metrics of `forecast_metrics.forecast_quality`."""
  video = jnp.asarray(clip)[None]
  grid = embedding.token_grid(video.shape[1:], model.patch_size, model.tubelet_size)
  mask = masking.make_mask(jax.random.key(0), 1, grid, "future",
                           future_frames=model.future_frames)
  out = model.apply({"params": params}, video, mask, train=False)
  from vivit_jax.train import objectives, specs  # pylint: disable=import-outside-toplevel
  mean, std = objectives.pixel_normalisation(specs.ObjectiveSpec.from_config(config))
  norm = bool(config.train.norm_pix_loss)
  forecast = videomae.reconstruct_video(video, out["predictions"], out["masked_indices"],
                                        model.patch_size, model.tubelet_size, norm, mean, std)
  truth = forecast_metrics.raw_pixels(video, mean, std)
  hidden = model.future_frames * model.tubelet_size
  masked = truth.at[:, truth.shape[1] - hidden:].set(0.5)
  metrics = forecast_metrics.forecast_quality(video, out["predictions"], out["masked_indices"],
                                              model.patch_size, model.tubelet_size, hidden,
                                              norm, mean, std)
  frames = {name: np.clip(np.asarray(x[0]), 0, 1)
            for name, x in (("truth", truth), ("masked", masked), ("forecast", forecast))}
  return dict(frames, **{k: float(v[0]) for k, v in metrics.items()})


def read_clip(config, path: str) -> np.ndarray:
  """The run's eval clip of the video at `path`, normalised `(T, H, W, 3)`."""
  from vivit_jax.train import inputs, specs  # pylint: disable=import-outside-toplevel
  spec = resolve_input_spec({"input": inputs.input_spec(specs.DataSpec.from_config(config))})
  info = video_io.probe(path)
  indices = view_indices(info.num_frames, spec.num_frames, spec.stride_for(info.num_frames))[0]
  return inference.preprocess(video_io.read_frames(path, indices), spec)


def main(argv) -> None:
  from vivit_jax.train.evaluation import plots  # pylint: disable=import-outside-toplevel
  if len(argv) != 2 or not FLAGS.checkpoint:
    raise errors.UserError(
        "one video and --checkpoint are needed", "command line",
        "python -m vivit_jax.train.evaluation.forecast --checkpoint=WORKDIR VIDEO [--output=strip.png]")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax's INFO lines would bury the table.
  try:
    config, model, params = load_run(FLAGS.checkpoint)
    result = forecast_clip(config, model, params, read_clip(config, argv[1]))
  except (FileNotFoundError, ValueError, video_io.VideoDecodeError) as e:
    print(f"error: {errors.one_line(e)}", file=sys.stderr, flush=True)
    sys.exit(2)
  output = FLAGS.output or os.path.splitext(argv[1])[0] + "_forecast.png"
  strip = plots.reconstruction_grid(result["truth"], result["masked"], result["forecast"])
  Image.fromarray(strip).save(output, format="PNG")
  print(f"wrote {output} (rows: truth / visible frames / visible + forecast)")
  print(f"{'':18s} {'PSNR [dB]':>9s} {'SSIM':>6s}")
  for name, prefix in (("forecast", ""), ("copy last frame", "copy_last_"),
                       ("per-patch mean", "patch_mean_")):
    print(f"{name:18s} {result[prefix + 'psnr']:9.2f} {result[prefix + 'ssim']:6.3f}")


def run() -> None:
  """The `vivit-forecast` console script."""
  errors.run_absl(main)


if __name__ == "__main__":
  run()
