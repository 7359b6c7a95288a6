"""Helpers for the main-job tests: a tiny generated dataset and config overrides.

The tiny dataset is the demo's moving shapes at 4 frames of 16 x 16; the tiny
models have 8 tokens (patch 8, tubelet 2) and one 32-wide layer.
"""

import os
import signal
import subprocess
import sys
import types

import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from vivit_jax.train import experiment
from support import REPO

FRAMES, SIZE, CLASSES = 4, 16, 4
TINY_ENCODER = dict(hidden_size=32, num_layers=1, num_heads=4, mlp_dim=64, patch_size=8,
                    tubelet_size=2)


def write_tiny_dataset(out_dir: str) -> dict:
  from vivit_jax.data.demo.synthetic import write_demo_dataset  # pylint: disable=import-outside-toplevel
  return write_demo_dataset(out_dir, num_train=48, num_eval=16, num_frames=FRAMES, size=SIZE,
                            num_classes=CLASSES, num_train_shards=2)


def tiny_overrides(dataset: dict, pretrain: bool = False, **extra) -> dict:
  """Dotted-key overrides turning a demo config into a seconds-long run."""
  out = {
      "data.train_files": dataset["train_files"], "data.eval_files": dataset["eval_files"],
      "data.num_frames": FRAMES, "data.stride": 1, "data.image_size": SIZE,
      "data.resize_short_side": SIZE,
      "data.num_parallel_calls": 1, "data.prefetch_batches": 1,
      "train.batch_size": 8, "eval.batch_size": 8, "eval.num_batches": 1,
      "optimizer.warmup_steps": 2, "log.every_steps": 1, "init_from.kind": "",
  }
  out.update({f"model.{k}": v for k, v in TINY_ENCODER.items() if k not in ("patch_size",)})
  if pretrain:
    out.update({"model.decoder_hidden_size": 16, "model.decoder_layers": 1,
                "model.decoder_heads": 2, "model.decoder_mlp_dim": 32})
  out.update(extra)
  return out


def fast_compile_env() -> dict:
  """Environment for a `run_main` whose test checks plumbing, not numerics: XLA's
  CPU backend at optimisation level 0 (about 2x quicker first compiles, the
  same program; the runs a test compares must all use it)."""
  flags = os.environ.get("XLA_FLAGS", "")
  return {"XLA_FLAGS": f"{flags} --xla_backend_optimization_level=0".strip()}


def main_command(config_name: str, workdir: str, overrides: dict) -> list:
  args = [sys.executable, "-m", "vivit_jax.main",
          f"--config={os.path.join(REPO, 'configs', config_name)}", f"--workdir={workdir}"]
  return args + [f"--config.{k}={v}" for k, v in overrides.items()]


def run_main(config_name: str, workdir: str, overrides: dict, env=None,
             timeout: int = 300) -> subprocess.CompletedProcess:
  return subprocess.run(main_command(config_name, workdir, overrides), cwd=REPO,
                        capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, **(env or {})))


def straight_killed_resumed(config_name: str, root: str, overrides: dict, kill_step: int):
  """The SIGKILL + resume pattern: three real `vivit_jax.main` runs of `overrides`.

  ROOT/straight trains uninterrupted; ROOT/killed is SIGKILLed right after its
  step-`kill_step` checkpoint (`debug.sigkill_after_step`), then relaunched
  with the same command. All three compile alike (`fast_compile_env`; the
  session's compilation cache serves the second and third). Asserts every
  exit status, that the kill left `kill_step` as the newest checkpoint and
  that the relaunch restored it.
  Returns a namespace: `straight_dir`, `killed_dir`, `killed_steps` (the
  checkpoints the kill left), `straight` and `resumed` (`CompletedProcess`);
  compare the two workdirs with `assert_same_checkpoint`.
  """
  straight_dir, killed_dir = os.path.join(root, "straight"), os.path.join(root, "killed")
  env = fast_compile_env()
  straight = run_main(config_name, straight_dir, overrides, env=env)
  assert straight.returncode == 0, straight.stderr[-3000:]
  killed = run_main(config_name, killed_dir,
                    dict(overrides, **{"debug.sigkill_after_step": kill_step}), env=env)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  killed_steps = checkpoint_steps(killed_dir)
  assert killed_steps[-1] == kill_step, killed_steps
  resumed = run_main(config_name, killed_dir, overrides, env=env)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"restored checkpoint at step {kill_step}" in resumed.stdout
  return types.SimpleNamespace(straight_dir=straight_dir, killed_dir=killed_dir,
                               killed_steps=killed_steps, straight=straight, resumed=resumed)


def load_config(config_name: str, overrides: dict) -> ml_collections.ConfigDict:
  return experiment.load_config_file(os.path.join(REPO, "configs", config_name), overrides)


def read_checkpoint_state(workdir: str, step: int) -> dict:
  """A training checkpoint's state item as a dict of numpy arrays."""
  path = os.path.join(workdir, "checkpoints", str(step), "state")
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(path)
  tree = getattr(getattr(metadata, "item_metadata", metadata), "tree", metadata)
  import jax  # pylint: disable=import-outside-toplevel
  restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                        tree)
  return checkpointer.restore(path, args=ocp.args.PyTreeRestore(item=tree,
                                                                restore_args=restore_args))


def checkpoint_steps(workdir: str) -> list:
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def assert_same_checkpoint(workdir_a: str, workdir_b: str, step: int):
  """Asserts two runs' training checkpoints at `step` are bitwise equal; returns A's state."""
  import jax  # pylint: disable=import-outside-toplevel
  want = read_checkpoint_state(workdir_a, step)
  got = read_checkpoint_state(workdir_b, step)
  flat_want = jax.tree_util.tree_leaves_with_path(want)
  flat_got = dict(jax.tree_util.tree_leaves_with_path(got))
  assert len(flat_want) == len(flat_got)
  for path, value in flat_want:
    np.testing.assert_array_equal(flat_got[path], value, err_msg=jax.tree_util.keystr(path))
  return want
