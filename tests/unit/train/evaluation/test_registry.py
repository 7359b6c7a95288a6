"""Evaluations picked by name (`vivit_jax.train.evaluation.registry`): a new one
registers itself and runs in the evaluator's pass over the eval split."""

import pytest

from support import train_runs
from vivit_jax.train import steps
from vivit_jax.train.evaluation import EvalResult, Evaluator, register_evaluation, registry


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  dataset = train_runs.write_tiny_dataset(str(tmp_path_factory.mktemp("data")))
  return train_runs.load_config("demo_finetune.py", train_runs.tiny_overrides(
      dataset, **{"eval.num_batches": 0}))


def test_built_in_evaluations_are_registered_by_objective():
  assert {"classification", "pretrain"} <= set(registry.registered())


def test_an_unknown_evaluation_is_refused_naming_the_registered_ones(config):
  with pytest.raises(ValueError, match=r"unknown evaluation 'nope'; registered: .*classification"):
    Evaluator(config, evaluation="nope")


def test_a_registered_evaluation_runs_over_the_whole_eval_split(config):
  seen = []

  @register_evaluation("count_clips")
  def count_clips(evaluator, eval_step, state, batches, shuffle_frames):
    del eval_step, state, shuffle_frames
    for batch in batches:
      seen.append(batch["video"].shape)
    return EvalResult({"eval/clips": float(sum(s[0] for s in seen))}, [])

  evaluator = Evaluator(config, evaluation="count_clips")
  assert evaluator.objective == "classification" and evaluator.evaluation == "count_clips"
  state, _ = steps.init_train_state(config, evaluator.model, evaluator.mesh, 0,
                                    evaluator.video_shape)
  result = evaluator.run(state)
  # 16 eval videos of 4 frames at 16x16, one centre view each, batches of 8.
  assert seen and all(shape[1:] == (4, 16, 16, 3) for shape in seen)
  assert result.metrics["eval/clips"] == 16.0
  assert result.data_stats.get("num_videos") == 16
