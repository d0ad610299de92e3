"""Atomic, checked checkpoints of search and retrain state.

A checkpoint is a directory ``<kind>_<step:08d>`` holding ``arrays.npz`` (the
leaves of a pytree, read with ``allow_pickle=False``) and ``meta.json`` (the
tree's structure, every leaf's shape and dtype, the arrays' SHA-256, and
free-form JSON facts). It is written into a hidden staging directory,
flushed to disk, and renamed into place: a write that is interrupted at any
moment leaves either the old set of checkpoints or the new one, never a
checkpoint that loads wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Any

import chex
import jax
import numpy as np

FORMAT = "credit_nas_jax.checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^(?P<kind>[a-z_]+)_(?P<step>\d{8})$")


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be written, or one that is corrupt or foreign."""


def _fsync_directory(path: str) -> None:
  descriptor = os.open(path, os.O_RDONLY)
  try:
    os.fsync(descriptor)
  finally:
    os.close(descriptor)


def file_sha256(path: str) -> str:
  """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def leaf_paths(tree: chex.ArrayTree) -> list[str]:
  """The path of every leaf: a structure description stable across runs."""
  return [jax.tree_util.keystr(path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


class CheckpointManager:
  """Saves and restores checkpoints of one run under ``directory``.

  Args:
    directory: where the checkpoints live.
    keep: how many of the newest checkpoints of each kind to keep.
  """

  def __init__(self, directory: str, keep: int = 2):
    if keep < 1:
      raise ValueError(f"keep={keep}; must be at least 1")
    self.directory = directory
    self.keep = keep

  def steps(self, kind: str) -> list[int]:
    """Steps of the complete checkpoints of ``kind``, oldest first."""
    if not os.path.isdir(self.directory):
      return []
    found = []
    for name in os.listdir(self.directory):
      match = _NAME.match(name)
      if match and match["kind"] == kind:
        found.append(int(match["step"]))
    return sorted(found)

  def path(self, kind: str, step: int) -> str:
    return os.path.join(self.directory, f"{kind}_{step:08d}")

  def save(self, kind: str, step: int, tree: chex.ArrayTree,
           facts: dict[str, Any]) -> str:
    """Writes a checkpoint atomically and prunes old ones of the same kind.

    Raises:
      CheckpointError: when the disk is full or read-only, naming the path.
    """
    target = self.path(kind, step)
    staging = None
    try:
      os.makedirs(self.directory, exist_ok=True)
      staging = tempfile.mkdtemp(prefix=f".{kind}-", dir=self.directory)
      arrays = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
      arrays_path = os.path.join(staging, "arrays.npz")
      with open(arrays_path, "wb") as f:
        np.savez(f, *arrays)
        f.flush()
        os.fsync(f.fileno())
      meta = {
          "format": FORMAT,
          "format_version": FORMAT_VERSION,
          "kind": kind,
          "step": step,
          "leaf_paths": leaf_paths(tree),
          "shapes": [list(a.shape) for a in arrays],
          "dtypes": [str(a.dtype) for a in arrays],
          "arrays_sha256": file_sha256(arrays_path),
          "facts": facts,
      }
      with open(os.path.join(staging, "meta.json"), "w") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
      _fsync_directory(staging)
      if os.path.exists(target):
        shutil.rmtree(target)
      os.replace(staging, target)
      staging = None
      _fsync_directory(self.directory)
    except OSError as error:
      raise CheckpointError(
          f"cannot write checkpoint {target}: {error.strerror or error} "
          "(is the disk full or read-only?)") from error
    finally:
      if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for old in self.steps(kind)[:-self.keep]:
      shutil.rmtree(self.path(kind, old), ignore_errors=True)
    return target

  def restore(self, kind: str, step: int,
              template: chex.ArrayTree) -> tuple[chex.ArrayTree, dict]:
    """Loads a checkpoint into the structure of ``template``.

    Returns:
      (tree, facts).

    Raises:
      CheckpointError: naming the checkpoint and what is wrong with it.
    """
    path = self.path(kind, step)
    meta_path = os.path.join(path, "meta.json")
    arrays_path = os.path.join(path, "arrays.npz")
    try:
      with open(meta_path) as f:
        meta = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
      raise CheckpointError(f"checkpoint {path}: unreadable meta.json "
                            f"({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
      raise CheckpointError(f"checkpoint {path}: not a {FORMAT} checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
      raise CheckpointError(
          f"checkpoint {path}: format version {meta.get('format_version')!r};"
          f" this code reads version {FORMAT_VERSION}")
    leaves, treedef = jax.tree.flatten(template)
    if meta.get("leaf_paths") != leaf_paths(template) or meta.get(
        "kind") != kind:
      raise CheckpointError(
          f"checkpoint {path}: its state has another structure than this "
          "run's (a checkpoint of a different config or version?)")
    if not os.path.isfile(arrays_path) or file_sha256(
        arrays_path) != meta.get("arrays_sha256"):
      raise CheckpointError(f"checkpoint {path}: arrays.npz is missing or "
                            "does not match its checksum (corrupt)")
    with np.load(arrays_path, allow_pickle=False) as archive:
      arrays = [archive[f"arr_{i}"] for i in range(len(leaves))]
    for i, (array, leaf) in enumerate(zip(arrays, leaves)):
      if array.shape != np.shape(leaf) or array.dtype != np.asarray(
          leaf).dtype:
        raise CheckpointError(
            f"checkpoint {path}: leaf {i} is {array.dtype}{list(array.shape)}"
            f", this run needs {np.asarray(leaf).dtype}"
            f"{list(np.shape(leaf))}")
    return jax.tree.unflatten(treedef, arrays), meta["facts"]

  def restore_latest(self, kind: str, template: chex.ArrayTree
                     ) -> tuple[int, chex.ArrayTree, dict] | None:
    """(step, tree, facts) of the newest checkpoint of ``kind``, or None."""
    steps = self.steps(kind)
    if not steps:
      return None
    tree, facts = self.restore(kind, steps[-1], template)
    return steps[-1], tree, facts
