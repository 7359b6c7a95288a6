"""Mutation testing (cosmic-ray) of the modules whose bugs would silently corrupt results.

Each module is mutated in place, one mutant at a time, and only the fast tests
that cover it run against each mutant; a mutant is "killed" when they fail.
Prints a table (module, mutants, killed, survived, pending, score) and writes
`--out` (JSON, with every survivor's diff). The module file is restored after
each module even when the time cap stops it; do not edit the package while
this runs. Needs the `mutation` extra: `pip install -e ".[test,mutation]"`.

  python scripts/mutation.py                          # every module, every mutant (many hours on 2 cores)
  python scripts/mutation.py --modules models/masking.py train/mixing.py --sample 40

`--sample N` tests a uniform random sample of N mutants per module (seeded);
the others are marked skipped, so the score estimates the full run's.
"""

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Module (under vivit_jax/) -> the fast tests that cover it (pytest arguments).
MODULES = {
    "models/layers.py": "tests/unit/models/test_layers_contracts.py",
    "models/attention.py": "tests/unit/models/test_attention_contracts.py",
    "models/masking.py": ("tests/unit/models/test_videomae.py "
                          "tests/unit/models/test_pretraining_objectives.py "
                          "-k 'masks or split_indices or mask_defaults or running_cell "
                          "or decoder_indices or decoder_keep_ratio or dual_masking'"),
    "models/videomae.py": ("tests/unit/models/test_videomae_contracts.py "
                           "tests/unit/models/test_flops.py::test_masked_autoencoder_count_matches_xla"),
    "models/embedding.py": "tests/unit/models/test_embedding_contracts.py",
    "train/steps.py": "tests/unit/train/test_steps_contracts.py",
    "train/objectives.py": "tests/unit/train/test_objectives_contracts.py",
    "train/mixing.py": "tests/unit/train/test_train_mixing.py tests/unit/train/test_mixing_contracts.py",
    "data/sampling.py": "tests/unit/data/test_sampling_contracts.py",
    "data/transforms.py": "tests/unit/data/test_transforms_contracts.py",
}


def _toml_string(value: str) -> str:
  return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_config(directory: str, module: str, tests: str, timeout: float) -> str:
  command = (f"{shlex.quote(sys.executable)} -m pytest -x -q -p no:xdist -p no:cacheprovider "
             f"{tests}")
  path = os.path.join(directory, module.replace("/", "_") + ".toml")
  with open(path, "w") as f:
    f.write("[cosmic-ray]\n"
            f"module-path = {_toml_string(os.path.join('vivit_jax', module))}\n"
            f"timeout = {float(timeout)}\n"
            "excluded-modules = []\n"
            f"test-command = {_toml_string(command)}\n\n"
            "[cosmic-ray.distributor]\nname = \"local\"\n")
  return path


def keep_sample(session: str, sample: int, seed: int) -> None:
  """Marks all but `sample` randomly chosen mutants as skipped."""
  from cosmic_ray.work_db import WorkDB, use_db  # pylint: disable=import-outside-toplevel
  from cosmic_ray.work_item import WorkerOutcome, WorkResult  # pylint: disable=import-outside-toplevel
  with use_db(session, WorkDB.Mode.open) as db:
    # Job ids are random per init: order by the mutation itself, so a seed
    # picks the same mutants on every run.
    items = sorted(db.pending_work_items, key=lambda w: (
        w.mutations[0].operator_name, w.mutations[0].occurrence))
    ids = [item.job_id for item in items]
    if sample >= len(ids):
      return
    kept = set(random.Random(seed).sample(ids, sample))
    db.set_multiple_results([i for i in ids if i not in kept],
                            WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def summarise(session: str) -> dict:
  from cosmic_ray.work_db import WorkDB, use_db  # pylint: disable=import-outside-toplevel
  with use_db(session, WorkDB.Mode.open) as db:
    total = db.num_work_items
    killed, survivors, incompetent, skipped, timeouts = 0, [], 0, 0, 0
    for item, result in db.completed_work_items:
      outcome = str(result.test_outcome.value if result.test_outcome else "")
      if str(result.worker_outcome.value) == "skipped":
        skipped += 1
      elif outcome == "survived":
        spec = item.mutations[0]
        survivors.append({"line": spec.start_pos[0], "operator": spec.operator_name,
                          "diff": result.diff})
      elif outcome == "incompetent":
        incompetent += 1
      else:
        killed += 1
        # cosmic-ray scores a run past --timeout as killed; on a loaded machine
        # that may be a slow survivor, so the table shows how many.
        timeouts += result.output == "timeout"
  done = killed + len(survivors)
  return {"mutants": total, "sampled": total - skipped, "killed": killed, "timeouts": timeouts,
          "survived": len(survivors), "incompetent": incompetent,
          "pending": total - skipped - done - incompetent,
          "score": killed / done if done else None, "survivors": survivors}


def run_module(module: str, tests: str, work: str, cap_s: float, timeout: float,
               sample: int = 0, seed: int = 0) -> dict:
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  config = write_config(work, module, tests, timeout)
  session = config[:-len(".toml")] + ".sqlite"
  source = os.path.join(REPO, "vivit_jax", module)
  with open(source, "rb") as f:
    original = f.read()
  cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
  start = time.time()
  proc = None
  try:
    subprocess.run(cosmic + ["init", config, session], cwd=REPO, env=env, check=True)
    if sample:
      keep_sample(session, sample, seed)
    baseline = subprocess.run(cosmic + ["baseline", config], cwd=REPO, env=env,
                              capture_output=True, text=True)
    if baseline.returncode != 0:
      raise SystemExit(f"{module}: the unmutated tests fail; fix them first:\n"
                       f"{baseline.stdout[-2000:]}{baseline.stderr[-2000:]}")
    proc = subprocess.Popen(cosmic + ["exec", config, session], cwd=REPO, env=env,
                            start_new_session=True)
    proc.wait(timeout=max(cap_s - (time.time() - start), 1))
  except subprocess.TimeoutExpired:
    pass  # the time cap: mutants not reached stay pending
  finally:
    if proc is not None and proc.poll() is None:
      os.killpg(proc.pid, signal.SIGTERM)
      proc.wait()
    with open(source, "wb") as f:  # a stopped exec may leave a mutant on disk
      f.write(original)
  result = summarise(session)
  result.update(module=module, tests=tests, minutes=round((time.time() - start) / 60, 1))
  return result


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--modules", nargs="*", default=sorted(MODULES),
                      help=f"modules under vivit_jax/ (default: all of {sorted(MODULES)})")
  parser.add_argument("--max-minutes", type=float, default=60.0,
                      help="time cap per module; mutants not reached are reported as pending")
  parser.add_argument("--timeout", type=float, default=300.0,
                      help="seconds one mutant's test run may take (a hang counts as killed)")
  parser.add_argument("--sample", type=int, default=0,
                      help="test this many random mutants per module (0: all)")
  parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
  parser.add_argument("--out", default=os.path.join(REPO, "mutation_results.json"))
  args = parser.parse_args()
  unknown = [m for m in args.modules if m not in MODULES]
  if unknown:
    raise SystemExit(f"--modules: unknown {unknown}; choose from {sorted(MODULES)}")
  # A SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the module is restored.
  signal.signal(signal.SIGTERM, _interrupt)
  results = []
  with tempfile.TemporaryDirectory(prefix="mutation-") as work:
    for module in args.modules:
      results.append(run_module(module, MODULES[module], work, args.max_minutes * 60,
                                args.timeout, args.sample, args.seed))
      with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
  print(f"\n{'module':24} {'mutants':>7} {'sampled':>7} {'killed':>6} {'timeout':>7} "
        f"{'survived':>8} {'pending':>7} {'score':>6} {'minutes':>7}")
  for r in results:
    score = "-" if r["score"] is None else f"{100 * r['score']:.0f}%"
    print(f"{r['module']:24} {r['mutants']:7d} {r['sampled']:7d} {r['killed']:6d} "
          f"{r['timeouts']:7d} {r['survived']:8d} {r['pending']:7d} {score:>6} {r['minutes']:7.1f}")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
