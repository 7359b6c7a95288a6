"""Pretraining's pictures: the loss curve from event files, the upscaled grid."""

import numpy as np
from tensorboardX import SummaryWriter

from vivit_jax.train.evaluation import curves
from vivit_jax.train.evaluation import plots


def test_loss_curve_reads_the_logged_scalars_and_draws_them(tmp_path):
  writer = SummaryWriter(str(tmp_path / "tensorboard"))
  for step, value in [(10, 1.0), (20, 0.7), (30, 0.4)]:
    writer.add_scalar("train/loss", value, global_step=step)
  writer.add_scalar("eval/loss", 0.5, global_step=30)
  writer.close()
  steps, values = curves.read_scalars(str(tmp_path), "train/loss")
  np.testing.assert_array_equal(steps, [10, 20, 30])
  np.testing.assert_allclose(values, [1.0, 0.7, 0.4], rtol=1e-6)
  out = tmp_path / "curve.png"
  assert curves.save_loss_curve(str(tmp_path), str(out)) == ["train/loss", "eval/loss"]
  image = curves.curve_image([("train/loss", (steps, values))])
  coloured = (np.abs(image.astype(int) - curves.COLOURS[0]).sum(-1) < 30)
  assert out.stat().st_size > 0 and coloured.sum() > 50


def test_reconstruction_grid_upscales_small_frames_by_nearest_neighbour():
  clip = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3))
  grid = plots.reconstruction_grid(clip, clip, clip, gap=2, min_frame_size=32)
  assert grid.shape == (3 * 32 + 4, 2 * 32 + 2, 3)
  block = grid[:4, :4]  # one source pixel -> a 4 x 4 block
  assert (block == block[0, 0]).all()
  large = plots.reconstruction_grid(clip, clip, clip, gap=2, min_frame_size=8)
  assert large.shape == (3 * 8 + 4, 2 * 8 + 2, 3)
