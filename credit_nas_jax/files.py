"""Files written whole or not at all.

Every output a run writes goes through :func:`atomic_path`: the writer fills
a temporary file beside the target, which is renamed onto it only once the
write has finished, so a killed run never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """A temporary path beside ``path`` (the same extension, for writers that
  read it); renamed onto ``path`` when the block ends, removed if it
  raises."""
  root, extension = os.path.splitext(path)
  temporary = f"{root}.tmp{extension}"
  try:
    yield temporary
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def write_json(path: str, value: Any, indent: int = 2) -> None:
  """Writes ``value`` as JSON to ``path`` atomically."""
  with atomic_path(path) as temporary, open(temporary, "w") as f:
    json.dump(value, f, indent=indent)
