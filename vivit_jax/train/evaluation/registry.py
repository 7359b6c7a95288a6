"""Evaluations by name: what one pass over the eval split computes.

A new evaluation is a function that registers itself (as big_vision's
evaluators are picked by name):

    from vivit_jax.train.evaluation import EvalResult, register_evaluation

    @register_evaluation("my_eval")
    def my_eval(evaluator, eval_step, state, batches, shuffle_frames):
      # batches: this process's dicts {"video": (B, T, H, W, C), "label": (B,), ...};
      # eval_step(state, batch) -> the step's outputs (`train.steps.make_eval_step`).
      return EvalResult(metrics={"eval/my_metric": 0.5}, images=[])

`Evaluator(config, evaluation="my_eval")` runs it; without `evaluation` the
evaluator runs the one named by the model's objective (`"classification"`,
`"pretrain"`: `evaluator.py` registers both), so a model whose
`ModelInterface` names a new objective gets its evaluation by registering
one under that name. The evaluator compiles the step, builds the eval
input, shows progress, closes the input and fills `EvalResult.data_stats`.
Imports nothing.
"""

from typing import Callable, Dict, List

_EVALUATIONS: Dict[str, Callable] = {}


def register_evaluation(name: str) -> Callable[[Callable], Callable]:
  """Decorator: registers `fn(evaluator, eval_step, state, batches, shuffle_frames)
  -> EvalResult` under `name` (a second registration of a name replaces it)."""
  def register(fn: Callable) -> Callable:
    _EVALUATIONS[name] = fn
    return fn
  return register


def get_evaluation(name: str) -> Callable:
  """The evaluation registered as `name`; ValueError listing the names otherwise."""
  if name not in _EVALUATIONS:
    raise ValueError(f"unknown evaluation {name!r}; registered: {registered()}")
  return _EVALUATIONS[name]


def registered() -> List[str]:
  """The registered evaluation names, sorted."""
  return sorted(_EVALUATIONS)
