"""Metrics for TensorBoard: scalars and a run's hyperparameters.

Event files are written with TensorBoard's own writer (no TensorFlow), so
``tensorboard --logdir=WORKDIR`` shows a run's curves while it runs and
compares runs side by side; the hyperparameters appear in the HPARAMS tab.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer import event_file_writer


def hparam_values(values: Mapping[str, Any]) -> dict[str, bool | int | float
                                                     | str]:
  """The values TensorBoard's HPARAMS tab takes: numbers, booleans, strings
  (a tuple becomes its text, None the empty string; a group's fields are
  named ``group.field``)."""
  out = {}
  for name, value in values.items():
    if isinstance(value, Mapping):
      out.update({f"{name}.{k}": v
                  for k, v in hparam_values(value).items()})
    elif isinstance(value, (bool, int, float, str)):
      out[name] = value
    elif value is None:
      out[name] = ""
    else:
      out[name] = ",".join(str(v) for v in value) if isinstance(
          value, (tuple, list)) else str(value)
  return out


class TensorBoardWriter:
  """Writes scalars and hyperparameters into one TensorBoard run.

  Args:
    logdir: the run's directory (created if missing).
  """

  def __init__(self, logdir: str):
    self.logdir = logdir
    self._writer = event_file_writer.EventFileWriter(logdir)

  def _add(self, step: int, summary: summary_pb2.Summary) -> None:
    """Queues one event holding ``summary`` at ``step``."""
    self._writer.add_event(event_pb2.Event(wall_time=time.time(),
                                           step=int(step), summary=summary))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """One value per tag at ``step``; flushed so a watcher sees it now."""
    self._add(step, summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        for tag, value in scalars.items()]))
    self._writer.flush()

  def write_hparams(self, values: Mapping[str, Any]) -> None:
    """The run's hyperparameters (see :func:`hparam_values`)."""
    self._add(0, hparams_summary.hparams_pb(hparam_values(values)))
    self._writer.flush()

  def close(self) -> None:
    """Flushes and closes the event file."""
    self._writer.close()
