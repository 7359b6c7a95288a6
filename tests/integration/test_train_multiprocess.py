"""Two local processes (jax.distributed over CPU, gloo collectives) train on a
mesh spanning both, each feeding its half of a deterministic synthetic batch,
and match the loss curve of the same run in one process.

Each run is this file executed as a script:
  python test_train_multiprocess.py OUT [PORT PROCESS_ID]
with PORT/PROCESS_ID for a member of the two-process job, none for the
single-process reference.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from support import REPO, TESTS_DIR

CLIP = (8, 32, 32, 3)
BATCH = 8
NUM_STEPS = 3
DEVICES_PER_PROCESS = 2
FAST = {"xla_backend_optimization_level": 0}


def _config():
  import ml_collections
  from vivit_jax.train.defaults import default_train_config
  config = default_train_config()
  config.optimizer.learning_rate = 3e-3
  config.train.num_steps = 10
  config.train.batch_size = BATCH
  config.train.label_smoothing = 0.1
  config.mesh.shape = (-1, 2, 1)
  config.model = ml_collections.ConfigDict(dict(
      name="vivit", hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, patch_size=16,
      tubelet_size=4, num_classes=4))
  return config


def _global_batch(step):
  rng = np.random.RandomState(100 + step)
  return {"video": rng.randn(BATCH, *CLIP).astype(np.float32),
          "label": rng.randint(0, 4, BATCH).astype(np.int32)}


def worker(out_path, port=None, process_id=None):
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  from vivit_jax.models import build_model
  from vivit_jax.train.distributed import maybe_initialize_distributed
  from vivit_jax.train.mesh import create_mesh
  from vivit_jax.train.steps import init_train_state, make_global_batch, make_train_step

  config = _config()
  if port is not None:
    config.distributed.coordinator_address = f"localhost:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = process_id
  assert maybe_initialize_distributed(config) == (port is not None)
  mesh = create_mesh(config.mesh)
  model = build_model(config.model)
  state, shardings = init_train_state(config, model, mesh, 0, CLIP, compiler_options=FAST)
  step = make_train_step(config, model, mesh, shardings, compiler_options=FAST)
  local = BATCH // jax.process_count()
  rows = slice(jax.process_index() * local, (jax.process_index() + 1) * local)
  losses = []
  for i in range(NUM_STEPS):
    batch = {k: v[rows] for k, v in _global_batch(i).items()}
    state, metrics = step(state, make_global_batch(batch, mesh))
    losses.append(float(metrics["loss"]))
  result = {"losses": losses, "process_count": jax.process_count(),
            "device_count": jax.device_count(), "mesh": dict(mesh.shape)}
  with open(out_path, "w") as f:
    json.dump(result, f)
  if port is not None:
    jax.distributed.shutdown()


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
  root = REPO
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={DEVICES_PER_PROCESS}"
                        ).strip(),
             PYTHONPATH=os.pathsep.join(filter(None, [root, TESTS_DIR, os.environ.get("PYTHONPATH")])))
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(name, None)
  port = _free_port()
  script = os.path.abspath(__file__)
  outs = [tmp_path / f"process_{i}.json" for i in range(2)] + [tmp_path / "single.json"]
  args = [[str(outs[0]), str(port), "0"], [str(outs[1]), str(port), "1"], [str(outs[2])]]
  procs = [subprocess.Popen([sys.executable, script] + a, env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for a in args]
  logs = []
  try:
    for proc in procs:
      logs.append(proc.communicate(timeout=420)[0])
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  for proc, log in zip(procs, logs):
    assert proc.returncode == 0, log[-5000:]
  results = [json.loads(out.read_text()) for out in outs]
  for result in results[:2]:
    assert result["process_count"] == 2
    assert result["device_count"] == 2 * DEVICES_PER_PROCESS
    assert result["mesh"] == {"data": 2, "fsdp": 2, "tensor": 1}
  assert results[2]["process_count"] == 1
  single = np.array(results[2]["losses"])
  assert np.all(np.isfinite(single)) and single[-1] != single[0]
  np.testing.assert_allclose(results[0]["losses"], results[1]["losses"], rtol=0, atol=0)
  np.testing.assert_allclose(results[0]["losses"], single, rtol=1e-4)


if __name__ == "__main__":
  worker(sys.argv[1], *(int(a) for a in sys.argv[2:]))
