"""Was the machine idle while a benchmark timed? Load average and the others' CPU.

    from machine_load import watch
    with watch() as load:
      ...                                  # the timed work
    load.report()    # {"cpus", "load_1m_before", "load_1m_after", "others_cores",
                     #  "steal_cores", "seconds", "idle", "label"}

`others_cores` is the CPU time the rest of the machine used while the block
ran, in cores on average: busy time from /proc/stat (user, nice, system,
irq, softirq) minus this process's own user + system time (children
included). `steal_cores` is the time the hypervisor gave to other guests.
A run counts as idle when the 1-minute load average before it was below
the core count and the other processes used under `OTHERS_LIMIT` cores;
otherwise its label is "loaded" and its figures meet no target (the
project's rule: a figure from a loaded machine is labelled so). Without
/proc/stat (not Linux) only the load average decides.
"""

import contextlib
import os
import time
from typing import Any, Dict, Iterator, Optional, Sequence

OTHERS_LIMIT = 0.25  # cores used by other processes on average during the run
_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system irq softirq (of "cpu " in /proc/stat)
_STEAL_FIELD = 7


def _proc_stat() -> Optional[tuple]:
  """`(busy_s, steal_s)` of the whole machine since boot, or None."""
  try:
    with open("/proc/stat") as f:
      fields = f.readline().split()[1:]
  except OSError:
    return None
  ticks = [int(v) for v in fields]
  hz = os.sysconf("SC_CLK_TCK")
  return (sum(ticks[i] for i in _BUSY_FIELDS) / hz,
          (ticks[_STEAL_FIELD] if len(ticks) > _STEAL_FIELD else 0) / hz)


def _process_cpu_s(pid: int) -> float:
  """User + system seconds of a live process (0 once it is gone)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
  except OSError:
    return 0.0
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _own_cpu_s(pids: Sequence[int] = ()) -> float:
  t = os.times()
  return (t.user + t.system + t.children_user + t.children_system
          + sum(_process_cpu_s(pid) for pid in pids))


class LoadWatch:
  """Measures around a block; `report()` after it ends (see module docstring).

  The load average "before" is read when the watch is made; `start(pids)`
  restarts the CPU accounting (e.g. once worker processes are ready)."""

  def __init__(self, pids: Sequence[int] = ()):
    self.cpus = os.cpu_count() or 1
    self.load_before = os.getloadavg()[0]
    self.start(pids)

  def start(self, pids: Sequence[int] = ()) -> None:
    self._pids = tuple(pids)
    self._start = (time.monotonic(), _proc_stat(), _own_cpu_s(self._pids))
    self._end = None
    self.load_after = None

  def stop(self) -> None:
    self._end = (time.monotonic(), _proc_stat(), _own_cpu_s(self._pids))
    self.load_after = os.getloadavg()[0]

  def report(self) -> Dict[str, Any]:
    if self._end is None:
      self.stop()
    (t0, stat0, own0), (t1, stat1, own1) = self._start, self._end
    seconds = max(t1 - t0, 1e-9)
    others = steal = None
    if stat0 is not None and stat1 is not None:
      others = max((stat1[0] - stat0[0]) - (own1 - own0), 0.0) / seconds
      steal = (stat1[1] - stat0[1]) / seconds
    idle = self.load_before < self.cpus and (others is None or others < OTHERS_LIMIT)
    return {"cpus": self.cpus, "load_1m_before": round(self.load_before, 2),
            "load_1m_after": round(self.load_after, 2),
            "others_cores": None if others is None else round(others, 3),
            "steal_cores": None if steal is None else round(steal, 3),
            "seconds": round(seconds, 1), "idle": idle, "label": "idle" if idle else "loaded"}


@contextlib.contextmanager
def watch() -> Iterator[LoadWatch]:
  load = LoadWatch()
  try:
    yield load
  finally:
    load.stop()


def describe(report: Dict[str, Any]) -> str:
  """One line for the console, e.g. `machine: idle (load 0.4 -> 1.9 on 2 cpus, ...)`."""
  others = report["others_cores"]
  text = (f"machine: {report['label']} (1-minute load {report['load_1m_before']} before, "
          f"{report['load_1m_after']} after, on {report['cpus']} cpus")
  if others is not None:
    text += f"; other processes used {others:.2f} cores, steal {report['steal_cores']:.2f}"
  text += f", over {report['seconds']:.0f} s)"
  if not report["idle"]:
    text += " -- LOADED: these figures meet no target and are not to be quoted"
  return text
