"""Metrics on the console keep 5 significant digits, so a small loss or pixel
MSE (about 0.005 in the demo's pretraining) does not print as 0.0000."""

from vivit_jax.train import metric_writer


def test_small_and_large_metrics_keep_five_significant_digits():
  assert metric_writer.metric_text(0.00498764) == "0.0049876"
  assert metric_writer.metric_text(1.386294) == "1.3863"
  assert metric_writer.metric_text(23.4567) == "23.457"


def test_progress_line_shows_a_small_loss_readably(capsys):
  progress = metric_writer.Progress(10, 8)
  progress.report(5, {"loss": 0.0051234, "grad_norm": 0.0000321})
  out = capsys.readouterr().out
  assert "loss 0.0051234" in out and "grad_norm 3.21e-05" in out
  assert "0.0000" not in out
