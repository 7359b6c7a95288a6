"""A `TrainCheckpointer` opened to read (the evaluator's) leaves the run's
directory as it found it; a writer finishes its clean-up before `close`
returns."""

import os

import jax
import jax.numpy as jnp
import ml_collections

from vivit_jax.checkpoints import train as checkpointing
from vivit_jax.train.state import TrainState

# What Orbax names the directory of a save that has not finished.
IN_FLIGHT = "4.orbax-checkpoint-tmp"


def _config():
  return ml_collections.ConfigDict(dict(every_steps=2, keep=2, keep_best=0,
                                        best_metric="eval/top1", best_mode="max",
                                        async_save=True, save_on_sigterm=False))


def _state(value: float) -> TrainState:
  return TrainState(step=jnp.int32(value), params={"dense": {"kernel": jnp.full((3, 4), value)}},
                    opt_state=(jnp.zeros(2),), ema_params=None,
                    rng=jax.random.key_data(jax.random.key(0)))


def _run_with_a_save_in_flight(tmp_path) -> str:
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), _config())
  ckpt.save(2, _state(2.0), {"next_index": 2}, force=True)
  ckpt.close()
  in_flight = tmp_path / "checkpoints" / IN_FLIGHT
  in_flight.mkdir()
  (in_flight / "partial").write_text("being written")
  return str(in_flight)


def test_a_reader_restores_without_deleting_the_save_in_flight_of_a_running_training(tmp_path):
  in_flight = _run_with_a_save_in_flight(tmp_path)
  reader = checkpointing.TrainCheckpointer(str(tmp_path), _config(), read_only=True)
  step, state, data_state = reader.restore_latest(_state(0.0))
  reader.close()
  assert step == 2 and data_state == {"next_index": 2}
  assert float(state.params["dense"]["kernel"][0, 0]) == 2.0
  assert os.path.exists(os.path.join(in_flight, "partial"))


def test_a_reader_of_a_workdir_without_checkpoints_creates_nothing(tmp_path):
  reader = checkpointing.TrainCheckpointer(str(tmp_path), _config(), read_only=True)
  assert reader.all_steps() == []
  reader.close()
  assert os.listdir(tmp_path) == []


def test_a_writer_has_removed_stale_temporary_directories_when_close_returns(tmp_path):
  in_flight = _run_with_a_save_in_flight(tmp_path)  # left over from a killed run
  writer = checkpointing.TrainCheckpointer(str(tmp_path), _config())
  writer.close()
  assert not os.path.exists(in_flight)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
