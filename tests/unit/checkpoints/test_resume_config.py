"""Which config changes a resume prints, and which it refuses without the flag."""

import json

import pytest

from vivit_jax.checkpoints import faults, resume_config
from vivit_jax.train import experiment


def _config(**overrides):
  config = experiment.experiment_config("finetune", {"name": "vivit", "num_classes": 4})
  return experiment.apply_overrides(config, overrides)


def _workdir(tmp_path, config):
  with open(tmp_path / "config.json", "w") as f:
    json.dump(json.loads(json.dumps(config.to_dict(), default=list)), f)
  return str(tmp_path)


def test_unchanged_config_prints_nothing(tmp_path):
  lines = []
  assert resume_config.check(_workdir(tmp_path, _config()), _config(), console=lines.append) == []
  assert lines == []


def test_harmless_changes_are_printed_and_accepted(tmp_path):
  lines = []
  workdir = _workdir(tmp_path, _config())
  changes = resume_config.check(workdir, _config(**{"log.every_steps": 7, "mesh.shape": (1, -1, 1)}),
                                console=lines.append)
  assert [k for k, _, _ in changes] == ["log.every_steps", "mesh.shape"]
  assert lines == [f"resuming with 2 changed config key(s) (vs {workdir}/config.json): "
                   "log.every_steps 50 -> 7, mesh.shape [-1, 1, 1] -> [1, -1, 1]"]


@pytest.mark.parametrize("key,value", [
    ("train.batch_size", 128), ("optimizer.learning_rate", 3e-4), ("optimizer.name", "sgd"),
    ("model.num_layers", 2), ("data.train_files", "/other/*.tfrecord"), ("seed", 1),
    ("train.num_steps", 5000),
])
def test_meaningful_change_is_refused_naming_the_key_unless_flagged(tmp_path, key, value):
  workdir = _workdir(tmp_path, _config())
  with pytest.raises(faults.ResumeConfigError, match=rf"resuming with changed {key} \(") as info:
    resume_config.check(workdir, _config(**{key: value}), console=lambda _: None)
  assert str(info.value).endswith(": pass --config.checkpoint.resume_with_changes=True to "
                                  "continue with the new values, or use a new --workdir")
  flagged = _config(**{key: value, "checkpoint.resume_with_changes": True})
  changed = resume_config.check(workdir, flagged, console=lambda _: None)
  assert {k for k, _, _ in changed} == {key, "checkpoint.resume_with_changes"}


def test_key_missing_from_an_older_config_json_counts_as_absent(tmp_path):
  old = _config().to_dict()
  del old["train"]["label_smoothing"]
  with open(tmp_path / "config.json", "w") as f:
    json.dump(json.loads(json.dumps(old, default=list)), f)
  with pytest.raises(faults.ResumeConfigError, match=r"train.label_smoothing \(<absent> -> 0.0\)"):
    resume_config.check(str(tmp_path), _config(), console=lambda _: None)
