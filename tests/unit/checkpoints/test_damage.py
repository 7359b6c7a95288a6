"""`damage.describe` names the damaged file of a real Orbax training checkpoint."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from vivit_jax.checkpoints import damage
from vivit_jax.checkpoints import train as checkpointing
from vivit_jax.train.state import TrainState


def _saved_step(tmp_path) -> str:
  config = ml_collections.ConfigDict(dict(every_steps=1, keep=2, keep_best=0,
                                          best_metric="eval/top1", best_mode="max",
                                          async_save=False, save_on_sigterm=False))
  state = TrainState(step=jnp.int32(3), params={"dense": {"kernel": jnp.arange(4096.0)}},
                     opt_state=(jnp.ones(2048),), ema_params=None,
                     rng=jax.random.key_data(jax.random.key(0)))
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path), config)
  ckpt.save(3, state, {"next_index": 3}, force=True)
  ckpt.close()
  return str(tmp_path / "checkpoints" / "3")


def _data_files(step_dir):
  data_dir = os.path.join(step_dir, "state", "ocdbt.process_0", "d")
  return sorted((os.path.join(data_dir, n) for n in os.listdir(data_dir)),
                key=os.path.getsize)


def test_intact_checkpoint_shows_no_damage(tmp_path):
  assert damage.find_problems(_saved_step(tmp_path)) == []


def test_truncated_data_file_is_named_with_its_sizes(tmp_path):
  step_dir = _saved_step(tmp_path)
  bad = _data_files(step_dir)[-1]
  size = os.path.getsize(bad)
  with open(bad, "r+b") as f:
    f.truncate(10)
  rel = os.path.relpath(bad, step_dir)
  assert damage.find_problems(step_dir) == [
      f"{rel} is truncated (10 bytes; stored data reaches byte {size})"]


def test_zeroed_data_file_is_named(tmp_path):
  step_dir = _saved_step(tmp_path)
  bad = _data_files(step_dir)[-1]
  with open(bad, "r+b") as f:
    f.write(bytes(os.path.getsize(bad)))
  problems = damage.find_problems(step_dir)
  assert len(problems) == 1
  assert problems[0].startswith(f"{os.path.relpath(bad, step_dir)} is zeroed (bytes ")


@pytest.mark.parametrize("name,content,what", [
    ("_METADATA", b"", "is empty (0 bytes)"),
    ("_METADATA", b"{\"tree_metadata\": {", "is not valid JSON"),
    ("manifest.ocdbt", b"\x00" * 16, "cannot be decoded"),
])
def test_damaged_metadata_files_are_named(tmp_path, name, content, what):
  step_dir = _saved_step(tmp_path)
  with open(os.path.join(step_dir, "state", name), "wb") as f:
    f.write(content)
  problems = damage.find_problems(step_dir)
  assert any(p.startswith(f"state/{name} {what}") for p in problems), problems


def test_root_cause_is_the_innermost_error_without_tensorstore_spec():
  try:
    try:
      raise ValueError("OUT_OF_RANGE: byte range [0, 9) [tensorstore_spec='{\"driver\": 1}']")
    except ValueError as inner:
      raise RuntimeError("Encountered error while reading array index") from inner
  except RuntimeError as outer:
    assert damage.root_cause(outer) == "ValueError: OUT_OF_RANGE: byte range [0, 9)"
