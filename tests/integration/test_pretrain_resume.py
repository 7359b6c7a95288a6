"""Masked pretraining resumes bit for bit after a SIGKILL (real `vivit_jax.main` runs).

Apart from tests/integration/test_train_resume.py so the two slow files run
on both pytest-xdist workers (`--dist loadfile`).
"""

import jax
import numpy as np
import pytest

from support import train_runs as fx


@pytest.mark.slow
def test_pretraining_sigkill_then_restart_matches_straight_run(tiny_dataset, tmp_path):
  """Masked pretraining resumes bit for bit too: masks, decoder and the data
  position come back with the checkpoint."""
  overrides = fx.tiny_overrides(tiny_dataset, pretrain=True, **{
      "train.num_steps": 4, "checkpoint.every_steps": 2, "eval.every_steps": 0})
  runs = fx.straight_killed_resumed("demo_pretrain.py", str(tmp_path), overrides, kill_step=2)
  assert runs.killed_steps == [2]

  state = fx.assert_same_checkpoint(runs.straight_dir, runs.killed_dir, 4)
  assert any("decoder" in jax.tree_util.keystr(p)
             for p, _ in jax.tree_util.tree_leaves_with_path(state["params"]))
  # The resumed steps trained: step 4's params are not step 2's.
  early = fx.read_checkpoint_state(runs.straight_dir, 2)
  assert any(np.any(a != b) for a, b in zip(jax.tree_util.tree_leaves(early["params"]),
                                            jax.tree_util.tree_leaves(state["params"])))
