"""User mistakes found after start-up (in the data as it streams, in a workdir's
or a checkpoint's files) end like the start-up ones: one line
`error: <what> (<where>): <fix>` on stderr, exit status 2, no traceback. Each
test feeds a real bad input to the real command."""

import os
import subprocess
import sys

import pytest

from support import datasets
from support import train_runs as fx
from support import videos

RUN = {"train.num_steps": 12, "eval.every_steps": 100, "checkpoint.every_steps": 1,
       "checkpoint.async_save": False, "data.shuffle_buffer": 0, "data.probe_videos": 2}


def _error_line(result, starts: str) -> str:
  """The run's only `error:` line, last on stderr; asserts exit 2 and no traceback."""
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], \
      result.stderr[-3000:]
  assert errors[0].startswith(f"error: {starts}"), errors[0]
  return errors[0]


@pytest.fixture(scope="module")
def bad_label_data(tiny_dataset, tmp_path_factory):
  """Real DMVR TFRecords: 40 clips labelled i % 4, but clip 30 labelled 9."""
  clips = [(datasets.index_video(fx.FRAMES, fx.SIZE, fx.SIZE), i % 4) for i in range(40)]
  clips[30] = (clips[30][0], 9)
  pattern = datasets.write_dmvr_tfrecords(
      str(tmp_path_factory.mktemp("bad_label") / "train"), clips, num_shards=2)
  return dict(tiny_dataset, train_files=pattern)


@pytest.mark.slow  # compiles and trains until the clip: ~30 s on 2 cores
def test_label_outside_num_classes_met_while_training_is_one_line(bad_label_data, tmp_path):
  overrides = fx.tiny_overrides(bad_label_data, **RUN)
  result = fx.run_main("demo_finetune.py", str(tmp_path / "run"), overrides,
                       env=fx.fast_compile_env())
  line = _error_line(result, "label 9 is outside [0, data.num_classes=4) (")
  assert "train-00000-of-00002 record 15): relabel that video" in line
  assert "--config.data.num_classes" in line


@pytest.mark.slow  # a 2-step run, then the refused resume: ~40 s on 2 cores
def test_damaged_config_json_of_a_workdir_is_one_line_on_resume(tiny_dataset, tmp_path):
  workdir = str(tmp_path / "run")
  overrides = fx.tiny_overrides(tiny_dataset, **dict(RUN, **{"train.num_steps": 2}))
  first = fx.run_main("demo_finetune.py", workdir, overrides, env=fx.fast_compile_env())
  assert first.returncode == 0, first.stderr[-3000:]
  assert fx.checkpoint_steps(workdir)
  config_json = os.path.join(workdir, "config.json")
  with open(config_json) as f:
    text = f.read()
  with open(config_json, "w") as f:
    f.write(text[:len(text) // 2])
  overrides["train.num_steps"] = 4
  resumed = fx.run_main("demo_finetune.py", workdir, overrides, env=fx.fast_compile_env())
  line = _error_line(resumed, "not a valid JSON file (")
  assert f"({config_json}): restore it" in line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  root = tmp_path_factory.mktemp("model")
  return {"ckpt": videos.make_checkpoint(str(root / "ckpt")),
          "video": videos.write_video(str(root / "a.mp4")), "root": root}


def _predict(checkpoint_dir, *args):
  return subprocess.run([sys.executable, "-m", "vivit_jax.serving.predict",
                         f"--checkpoint={checkpoint_dir}", *args],
                        capture_output=True, text=True, cwd=fx.REPO, timeout=180)


def test_labels_file_with_another_count_is_one_line(checkpoint, tmp_path):
  labels = tmp_path / "labels.txt"
  labels.write_text("only\ntwo\n")
  line = _error_line(_predict(checkpoint["ckpt"], "--labels", str(labels), checkpoint["video"]),
                     "2 labels, but the model has 5 classes")
  assert f"({labels}): list 5 class names, one per line" in line


def test_damaged_config_json_of_a_model_checkpoint_is_one_line(checkpoint, tmp_path):
  damaged = tmp_path / "ckpt"
  subprocess.run(["cp", "-r", checkpoint["ckpt"], str(damaged)], check=True)
  config_json = damaged / "config.json"
  config_json.write_text(config_json.read_text()[:40])
  line = _error_line(_predict(str(damaged), checkpoint["video"]), "not a valid JSON file (")
  assert f"({config_json}): restore config.json" in line


def test_damaged_options_json_of_a_tfrecord_conversion_is_one_line(tmp_path):
  videos.write_video(str(tmp_path / "v0.mp4"), num_frames=8)
  list_path = datasets.write_video_list(str(tmp_path / "list.txt"), [("v0.mp4", 0)])
  command = [sys.executable, "-m", "vivit_jax.data.make_tfrecords", "--list", list_path,
             "--video_root", str(tmp_path), "--output_dir", str(tmp_path / "out"),
             "--num_shards", "1", "--short_side", "32", "--workers", "0", "--no_progress"]
  first = subprocess.run(command, capture_output=True, text=True, timeout=180)
  assert first.returncode == 0, first.stderr
  options = tmp_path / "out" / "train.options.json"
  options.write_text(options.read_text()[:10])
  line = _error_line(subprocess.run(command, capture_output=True, text=True, timeout=180),
                     "not a valid JSON file (")
  assert f"({options}): delete it and pass --overwrite" in line


def test_damaged_signature_json_of_an_export_names_the_file(tmp_path):
  from vivit_jax.export import load_exported  # pylint: disable=import-outside-toplevel
  from vivit_jax.common.errors import UserError  # pylint: disable=import-outside-toplevel
  (tmp_path / "signature.json").write_text('{"program": ')
  with pytest.raises(UserError, match=r"not a valid JSON file .*signature\.json\): export"):
    load_exported(str(tmp_path))
