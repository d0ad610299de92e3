"""Progress of long stages: rates, time left, and a line when nothing moves.

Stages that count their steps (search and retrain blocks, sweep chunks) log
their rate and the time left with :func:`rate_and_time_left`. Stages that do
not (loading a dataset, building a large graph, compiling a program) run
under a :class:`Heartbeat`, which logs the stage's name and elapsed time
whenever no progress line came for ``interval_seconds``: a run's log never
stays silent longer than that while it works.
"""

from __future__ import annotations

import threading
import time

from absl import logging


def duration_text(seconds: float) -> str:
  """``seconds`` as ``1h02m``, ``3m05s`` or ``12s``."""
  seconds = max(0, int(round(seconds)))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"


def rate_and_time_left(done: int, total: int, seconds: float,
                       unit: str = "steps") -> str:
  """``12.5 steps/s, 1m20s left`` for ``done`` of ``total`` in ``seconds``.

  Args:
    done: units finished since the clock started.
    total: units left when the clock started (``done`` included).
    seconds: seconds since the clock started.
    unit: what is counted.

  Returns:
    The rate and the time left at that rate.
  """
  rate = done / max(seconds, 1e-9)
  left = (total - done) / rate if rate > 0 else float("inf")
  left_text = duration_text(left) if left != float("inf") else "unknown"
  return f"{rate:.1f} {unit}/s, {left_text} left"


class Heartbeat:
  """Logs ``<stage>: still working (<elapsed>)`` after every
  ``interval_seconds`` without a :meth:`beat`.

  Use as a context manager around a run; :meth:`stage` names what runs now,
  :meth:`beat` says a progress line was just logged.
  """

  def __init__(self, interval_seconds: float = 20.0):
    self.interval_seconds = interval_seconds
    self._lock = threading.Lock()
    self._stage = "starting"
    self._stage_start = self._last = time.monotonic()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._watch, daemon=True,
                                    name="heartbeat")

  def __enter__(self) -> "Heartbeat":
    """Starts watching."""
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    """Stops watching."""
    self._stop.set()
    self._thread.join()

  def stage(self, name: str) -> None:
    """Starts stage ``name`` (logged) and resets the silence clock."""
    with self._lock:
      self._stage = name
      self._stage_start = self._last = time.monotonic()
    logging.info("%s", name)

  def beat(self) -> None:
    """Records that the stage just logged its own progress."""
    with self._lock:
      self._last = time.monotonic()

  def _watch(self) -> None:
    """The watcher thread: logs after every silent interval."""
    while not self._stop.wait(min(1.0, self.interval_seconds)):
      with self._lock:
        now = time.monotonic()
        if now - self._last < self.interval_seconds:
          continue
        self._last = now
        stage, elapsed = self._stage, now - self._stage_start
      logging.info("%s: still working (%s)", stage, duration_text(elapsed))
