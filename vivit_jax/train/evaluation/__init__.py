"""Evaluation: one evaluator, its metric passes, and the commands built on it.

  evaluator.py     `Evaluator(config).restore(path)` / `.run(state)`: the one
                   checkpoint resolution and eval pass (training's periodic
                   eval, mode=eval, vivit-evaluate).
  registry.py      evaluations by name (`register_evaluation`): the seam for
                   a new one; "classification" and "pretrain" are built in.
  passes.py        the metric passes: views averaged per video, top-k,
                   confusion (classification); reconstruction (pretraining).
  evaluate.py      `vivit-evaluate`: report.json, the summary table, PNGs.
  forecast.py      `vivit-forecast`: next-frame forecast strip of a
                   pretraining workdir.
  confusion.py     confusion-matrix pictures.  plots.py  reconstruction grids.
  curves.py        loss curves from a run's TensorBoard event files, as a PNG.
  linear_probe.py  a linear probe: softmax regression on fixed features.

Importing this package imports nothing else (the commands stay fast to
start); `Evaluator`, `EvalResult` and `register_evaluation` load on first use.
"""

from vivit_jax.common.lazy import lazy_getattr

_LAZY = {
    "Evaluator": ("vivit_jax.train.evaluation.evaluator", "Evaluator"),
    "EvalResult": ("vivit_jax.train.evaluation.evaluator", "EvalResult"),
    "Restored": ("vivit_jax.train.evaluation.evaluator", "Restored"),
    "register_evaluation": ("vivit_jax.train.evaluation.registry", "register_evaluation"),
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
