"""A saved credit model: derived network, weights and everything scoring needs.

A model directory holds ``model.json`` (format version, architecture, feature
names and order, normalisation statistics, graph sampling settings) and
``weights.npz`` (flat arrays named by their path in the weight tree, read
with ``allow_pickle=False``). Both are written to a temporary directory that
is renamed into place, so an interrupted save never leaves a half model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

import chex
import jax.numpy as jnp
import numpy as np

from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import model as model_lib

FORMAT = "credit_nas_jax.model"
FORMAT_VERSION = 1


class ModelFormatError(ValueError):
  """A model directory that is missing, corrupt or incompatible."""


@dataclasses.dataclass(frozen=True)
class SavedModel:
  """A loaded model.

  Attributes:
    arch: the derived network's architecture.
    weights: its weights.
    encoder: feature order and normalisation statistics.
    fanouts: neighbourhood sampling fanouts.
    metadata: free-form facts (metrics, config, gates).
  """

  arch: model_lib.Architecture
  weights: chex.ArrayTree
  encoder: graphs_lib.NodeEncoder
  fanouts: tuple[int, ...]
  metadata: dict[str, Any]


def flatten_tree(tree: chex.ArrayTree, prefix: str = "") -> dict[str, Any]:
  """{"gcn/0/w1": array, ...} from nested dicts and lists."""
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, (list, tuple)):
    items = ((str(i), v) for i, v in enumerate(tree))
  else:
    return {prefix: np.asarray(tree)}
  flat = {}
  for key, value in items:
    flat.update(flatten_tree(value, f"{prefix}/{key}" if prefix else str(key)))
  return flat


def unflatten_like(flat: dict[str, np.ndarray], template: chex.ArrayTree,
                   prefix: str = "") -> chex.ArrayTree:
  """Rebuilds ``template``'s structure from ``flat``, checking every shape."""
  if isinstance(template, dict):
    return {k: unflatten_like(flat, v, f"{prefix}/{k}" if prefix else k)
            for k, v in template.items()}
  if isinstance(template, (list, tuple)):
    return type(template)(
        unflatten_like(flat, v, f"{prefix}/{i}" if prefix else str(i))
        for i, v in enumerate(template))
  if prefix not in flat:
    raise ModelFormatError(f"weights lack array {prefix!r}")
  value = flat[prefix]
  expected = tuple(template.shape)
  if value.shape != expected:
    raise ModelFormatError(f"weight {prefix!r} has shape {value.shape}, "
                           f"architecture needs {expected}")
  return jnp.asarray(value)


def _architecture_from_json(data: dict) -> model_lib.Architecture:
  fields = {f.name for f in dataclasses.fields(model_lib.Architecture)}
  # Models saved before these fields existed: "gcn" ops, pooled readout.
  if set(data) | {"layer_op_kinds", "pooled_readout",
                  "readout_searchable"} != fields:
    raise ModelFormatError(f"architecture fields {sorted(data)} differ from "
                           f"{sorted(fields)}")
  tupled = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v)
                if isinstance(v, list) else v) for k, v in data.items()}
  return model_lib.Architecture(**tupled)


def save_model(directory: str, arch: model_lib.Architecture,
               weights: chex.ArrayTree, encoder: graphs_lib.NodeEncoder,
               fanouts: tuple[int, ...], metadata: dict[str, Any]) -> None:
  """Writes a model directory atomically (replacing an existing one)."""
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".model-", dir=parent)
  try:
    flat = flatten_tree(weights)
    weights_path = os.path.join(staging, "weights.npz")
    np.savez(weights_path, **flat)
    with open(weights_path, "rb") as f:
      digest = hashlib.sha256(f.read()).hexdigest()
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": dataclasses.asdict(arch),
        "encoder": encoder.to_json(),
        "feature_columns": list(encoder.column_names),
        "fanouts": list(fanouts),
        "weights_sha256": digest,
        "metadata": metadata,
    }
    with open(os.path.join(staging, "model.json"), "w") as f:
      json.dump(description, f, indent=2)
    if os.path.exists(directory):
      shutil.rmtree(directory)
    os.replace(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def load_model(directory: str) -> SavedModel:
  """Loads and checks a model directory.

  Raises:
    ModelFormatError: naming the file and what is wrong with it.
  """
  description_path = os.path.join(directory, "model.json")
  weights_path = os.path.join(directory, "weights.npz")
  for path in (description_path, weights_path):
    if not os.path.isfile(path):
      raise ModelFormatError(f"{path}: missing; is {directory!r} a model "
                             "directory written by experiments/search.py?")
  try:
    with open(description_path) as f:
      description = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise ModelFormatError(f"{description_path}: not valid JSON ({error})")
  if not isinstance(description, dict) or description.get("format") != FORMAT:
    raise ModelFormatError(f"{description_path}: not a {FORMAT} file")
  version = description.get("format_version")
  if version != FORMAT_VERSION:
    raise ModelFormatError(f"{description_path}: format version {version!r}; "
                           f"this code reads version {FORMAT_VERSION}")
  with open(weights_path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  if digest != description.get("weights_sha256"):
    raise ModelFormatError(f"{weights_path}: checksum {digest} does not match "
                           "model.json; the weights are corrupt or foreign")
  try:
    arch = _architecture_from_json(description["architecture"])
    encoder = graphs_lib.NodeEncoder.from_json(description["encoder"])
    fanouts = tuple(int(f) for f in description["fanouts"])
  except (KeyError, TypeError, ValueError) as error:
    raise ModelFormatError(f"{description_path}: bad field ({error})")
  try:
    with np.load(weights_path, allow_pickle=False) as archive:
      flat = {k: archive[k] for k in archive.files}
  except (ValueError, OSError) as error:
    raise ModelFormatError(f"{weights_path}: unreadable ({error})")
  template, _ = model_lib.init_shapes(arch)
  weights = unflatten_like(flat, template)
  return SavedModel(arch, weights, encoder, fanouts,
                    description.get("metadata", {}))
