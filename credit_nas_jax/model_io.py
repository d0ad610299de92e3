"""A saved credit model: derived network, weights and everything scoring needs.

A model directory holds exactly three files:

* ``model.json``: format version, architecture, feature names and order,
  normalisation statistics, graph sampling settings (fanouts and the seed of
  the deterministic neighbourhood rule) and free-form metadata;
* ``weights.npz``: flat arrays named by their path in the weight tree, read
  with ``allow_pickle=False``;
* ``checksums.sha256``: the SHA-256 of both files, in ``sha256sum`` format
  (``sha256sum -c checksums.sha256`` checks them by hand), and a last line
  with the SHA-256 of the lines above, so that a changed byte anywhere in
  the directory, the checksum file included, is refused with the file named.

Everything is written to a temporary directory that is renamed into place,
so an interrupted save never leaves a half model. Version 1 directories
(no checksum of ``model.json``) are refused with the way to upgrade them:
:func:`upgrade_model`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from typing import Any

import chex
import jax.numpy as jnp
import numpy as np

from credit_nas_jax import checkpoint as checkpoint_lib
from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import model as model_lib

FORMAT = "credit_nas_jax.model"
FORMAT_VERSION = 2
DESCRIPTION_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
CHECKSUMS_FILE = "checksums.sha256"
_CHECKED_FILES = (DESCRIPTION_FILE, WEIGHTS_FILE)
_SELF_LINE = "# sha256 of the lines above: "


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
    sampling_seed: the seed of the deterministic neighbourhood rule used at
      scoring time (the run's seed).
  """

  arch: model_lib.Architecture
  weights: chex.ArrayTree
  encoder: graphs_lib.NodeEncoder
  fanouts: tuple[int, ...]
  metadata: dict[str, Any]
  sampling_seed: int = 0


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
  if not np.issubdtype(value.dtype, np.floating):
    raise ModelFormatError(f"weight {prefix!r} has dtype {value.dtype}; "
                           "expected floating point")
  if not np.isfinite(value).all():
    raise ModelFormatError(f"weight {prefix!r} holds non-finite values")
  return jnp.asarray(value, dtype=template.dtype)


def _architecture_from_json(data: dict) -> model_lib.Architecture:
  """The architecture of model.json; a field added since the model was saved
  takes its default (the behaviour of the code that saved it)."""
  fields = dataclasses.fields(model_lib.Architecture)
  required = {f.name for f in fields
              if f.default is dataclasses.MISSING
              and f.default_factory is dataclasses.MISSING}
  known = {f.name for f in fields}
  if not required <= set(data) <= known:
    raise ModelFormatError(
        f"architecture fields {sorted(data)}: missing "
        f"{sorted(required - set(data))}, unknown {sorted(set(data) - known)}")
  tupled = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v)
                if isinstance(v, list) else v) for k, v in data.items()}
  return model_lib.Architecture(**tupled)


def _checksum_text(digests: dict[str, str]) -> str:
  """The checksum file's exact text: sha256sum lines, then a self-check."""
  body = "".join(f"{digests[name]}  {name}\n" for name in _CHECKED_FILES)
  return f"{body}{_SELF_LINE}{hashlib.sha256(body.encode()).hexdigest()}\n"


def _check_encoder(encoder: graphs_lib.NodeEncoder) -> None:
  """Raises ValueError unless the statistics are finite and consistent."""
  count = len(encoder.features)
  if not count:
    raise ValueError("encoder has no features")
  for name in ("mean", "std", "log_transform", "missing_flag"):
    if len(getattr(encoder, name)) != count:
      raise ValueError(f"encoder {name} has {len(getattr(encoder, name))} "
                       f"entries for {count} features")
  if encoder.categories and len(encoder.categories) != count:
    raise ValueError("encoder categories do not match its features")
  for name, mean, std in zip(encoder.features, encoder.mean, encoder.std):
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
      raise ValueError(f"encoder statistics of {name!r} (mean {mean}, std "
                       f"{std}) must be finite with std > 0")


def _check_fit(arch: model_lib.Architecture,
               encoder: graphs_lib.NodeEncoder) -> None:
  """Raises ValueError unless every input column is the feature it claims."""
  groups = encoder.column_groups
  for column, group in zip(arch.input_columns, arch.column_groups):
    if not 0 <= column < len(groups):
      raise ValueError(f"architecture reads column {column}; the encoder has "
                       f"{len(groups)} columns")
    if not 0 <= group < arch.num_groups:
      raise ValueError(f"architecture column group {group} out of range")
    if encoder.features[groups[column]] != arch.group_names[group]:
      raise ValueError(
          f"architecture reads column {column} as "
          f"{arch.group_names[group]!r}; the encoder's column is "
          f"{encoder.features[groups[column]]!r}")


def save_model(directory: str, arch: model_lib.Architecture,
               weights: chex.ArrayTree, encoder: graphs_lib.NodeEncoder,
               fanouts: tuple[int, ...], metadata: dict[str, Any], *,
               sampling_seed: int | None = None) -> None:
  """Writes a model directory atomically (replacing an existing one).

  Args:
    directory: the model directory to write.
    arch: the derived architecture.
    weights: its weights.
    encoder: the feature encoder with training statistics.
    fanouts: neighbourhood sampling fanouts.
    metadata: free-form JSON-serialisable facts.
    sampling_seed: seed of the scoring-time neighbourhood rule; by default
      the run's ``metadata["config"]["seed"]``, else 0.
  """
  if sampling_seed is None:
    config = metadata.get("config") if isinstance(metadata, dict) else None
    seed = config.get("seed") if isinstance(config, dict) else None
    sampling_seed = seed if isinstance(seed, int) else 0
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".model-", dir=parent)
  try:
    flat = flatten_tree(weights)
    weights_path = os.path.join(staging, WEIGHTS_FILE)
    np.savez(weights_path, **flat)
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": dataclasses.asdict(arch),
        "encoder": encoder.to_json(),
        "feature_columns": list(encoder.column_names),
        "fanouts": [int(f) for f in fanouts],
        "sampling_seed": int(sampling_seed),
        "weights_sha256": checkpoint_lib.file_sha256(weights_path),
        "metadata": metadata,
    }
    with open(os.path.join(staging, DESCRIPTION_FILE), "w") as f:
      json.dump(description, f, indent=2, allow_nan=False)
    digests = {name: checkpoint_lib.file_sha256(os.path.join(staging, name))
               for name in _CHECKED_FILES}
    with open(os.path.join(staging, CHECKSUMS_FILE), "w") as f:
      f.write(_checksum_text(digests))
    if os.path.isdir(directory) and not os.path.islink(directory):
      shutil.rmtree(directory)
    elif os.path.lexists(directory):
      os.remove(directory)
    os.replace(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def _verify_checksums(directory: str) -> None:
  """Raises ModelFormatError naming the first file whose bytes changed."""
  path = os.path.join(directory, CHECKSUMS_FILE)
  try:
    with open(path, "rb") as f:
      text = f.read().decode("ascii")
  except (OSError, UnicodeDecodeError) as error:
    raise ModelFormatError(f"{path}: unreadable ({error})") from None
  lines = text.split("\n")
  digests = {}
  for line in lines[:len(_CHECKED_FILES)]:
    digest, _, name = line.partition("  ")
    digests[name] = digest
  if set(digests) != set(_CHECKED_FILES) or _checksum_text(digests) != text:
    raise ModelFormatError(f"{path}: changed or corrupt (its own checksum "
                           "does not match); the model directory cannot be "
                           "trusted")
  for name in _CHECKED_FILES:
    file_path = os.path.join(directory, name)
    if not os.path.isfile(file_path):
      raise ModelFormatError(f"{file_path}: missing")
    actual = checkpoint_lib.file_sha256(file_path)
    if actual != digests[name]:
      raise ModelFormatError(
          f"{file_path}: checksum {actual} does not match {CHECKSUMS_FILE} "
          f"({digests[name]}); the file was changed or is corrupt")


def _read_description(directory: str) -> dict:
  path = os.path.join(directory, DESCRIPTION_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      description = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise ModelFormatError(f"{path}: not valid JSON ({error})") from None
  if not isinstance(description, dict) or description.get("format") != FORMAT:
    raise ModelFormatError(f"{path}: not a {FORMAT} file")
  return description


def load_model(directory: str) -> SavedModel:
  """Loads and checks a model directory.

  Every file's checksum is checked before it is read; then the description
  (architecture, encoder statistics, fanouts) and the weights (shapes,
  finite values).

  Raises:
    ModelFormatError: naming the file and what is wrong with it.
  """
  if not os.path.isdir(directory):
    raise ModelFormatError(f"{directory}: not a directory; expected a model "
                           "directory written by experiments/search.py")
  description_path = os.path.join(directory, DESCRIPTION_FILE)
  weights_path = os.path.join(directory, WEIGHTS_FILE)
  for path in (description_path, weights_path):
    if not os.path.isfile(path):
      raise ModelFormatError(f"{path}: missing; is {directory!r} a model "
                             "directory written by experiments/search.py?")
  checksums_path = os.path.join(directory, CHECKSUMS_FILE)
  if not os.path.isfile(checksums_path):
    version = _read_description(directory).get("format_version")
    if version == 1:
      raise ModelFormatError(
          f"{description_path}: format version 1, whose model.json carries "
          "no checksum; check it, then run python -c \"from credit_nas_jax "
          f"import model_io; model_io.upgrade_model('{directory}')\" to "
          f"add {CHECKSUMS_FILE} (version {FORMAT_VERSION})")
    raise ModelFormatError(f"{checksums_path}: missing; the model directory "
                           "cannot be checked")
  extra = sorted(set(os.listdir(directory)) - set(_CHECKED_FILES)
                 - {CHECKSUMS_FILE})
  if extra:
    raise ModelFormatError(f"{directory}: files not covered by "
                           f"{CHECKSUMS_FILE}: {extra}")
  _verify_checksums(directory)
  description = _read_description(directory)
  version = description.get("format_version")
  if version != FORMAT_VERSION:
    raise ModelFormatError(f"{description_path}: format version {version!r}; "
                           f"this code reads version {FORMAT_VERSION}")
  return _parse(directory, description)


def _parse(directory: str, description: dict) -> SavedModel:
  """The SavedModel of a checked directory's description and weights."""
  description_path = os.path.join(directory, DESCRIPTION_FILE)
  weights_path = os.path.join(directory, WEIGHTS_FILE)
  if checkpoint_lib.file_sha256(weights_path) != description.get(
      "weights_sha256"):
    raise ModelFormatError(f"{weights_path}: checksum does not match "
                           "model.json; the weights are corrupt or foreign")
  try:
    arch = _architecture_from_json(description["architecture"])
    encoder = graphs_lib.NodeEncoder.from_json(description["encoder"])
    _check_encoder(encoder)
    _check_fit(arch, encoder)
    fanouts = tuple(description["fanouts"])
    if not all(isinstance(f, int) and not isinstance(f, bool) and f >= 0
               for f in fanouts):
      raise ValueError(f"fanouts {list(fanouts)} must be integers >= 0")
    seed = description.get("sampling_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
      raise ValueError(f"sampling_seed {seed!r} must be an integer")
    if arch.searchable:
      raise ValueError("the architecture is a supernet, not a derived network")
  except (KeyError, TypeError, ValueError) as error:
    raise ModelFormatError(f"{description_path}: bad field ({error})"
                           ) from None
  try:
    with np.load(weights_path, allow_pickle=False) as archive:
      flat = {k: archive[k] for k in archive.files}
  except (ValueError, OSError, EOFError) as error:
    raise ModelFormatError(f"{weights_path}: unreadable ({error})") from None
  template, _ = model_lib.init_shapes(arch)
  try:
    weights = unflatten_like(flat, template)
  except ModelFormatError as error:
    raise ModelFormatError(f"{weights_path}: {error}") from None
  metadata = description.get("metadata", {})
  return SavedModel(arch, weights, encoder, fanouts,
                    metadata if isinstance(metadata, dict) else {}, seed)


def upgrade_model(directory: str) -> None:
  """Rewrites a version-1 model directory as the current version.

  Version 1 checked the weights only; the caller vouches for ``model.json``,
  which gains its checksum here.

  Raises:
    ModelFormatError: the directory is not a readable version-1 model.
  """
  description = _read_description(directory)
  if description.get("format_version") != 1:
    raise ModelFormatError(
        f"{os.path.join(directory, DESCRIPTION_FILE)}: format version "
        f"{description.get('format_version')!r}; only version 1 is upgraded")
  saved = _parse(directory, description)
  save_model(directory, saved.arch, saved.weights, saved.encoder,
             saved.fanouts, saved.metadata,
             sampling_seed=description.get("sampling_seed"))
