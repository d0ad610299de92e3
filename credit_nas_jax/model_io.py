"""A saved credit model: derived networks, weights and everything scoring needs.

A model is one derived network or an ensemble of several (the top members
of a sweep), which share the feature encoder, the fanouts and the sampling
seed. A model directory holds three files, and up to two more:

* ``model.json``: format version, the network (``architecture``) or the
  ensemble (``members``, a list of ``{"architecture": ...}``), feature names
  and order, normalisation statistics, graph sampling settings (fanouts and
  the seed of the deterministic neighbourhood rule) and free-form metadata;
* ``weights.npz``: flat arrays named by their path in the weight tree
  (``member/<i>/`` before the path of member i of an ensemble), read with
  ``allow_pickle=False``;
* ``calibration.json`` (optional): the calibration map of the scores,
  fitted on validation rows (:mod:`credit_nas_jax.calibration`);
* ``population.json`` (optional): the training population's score and
  feature bins and shares, for stability at scoring
  (:mod:`credit_nas_jax.stability`);
* ``checksums.sha256``: the SHA-256 of every other file, in ``sha256sum``
  format (``sha256sum -c checksums.sha256`` checks them by hand), and a
  last line with the SHA-256 of the lines above, so that a changed byte
  anywhere in the directory, the checksum file included, is refused with
  the file named; a file it does not list is refused too.

Everything is written to a temporary directory that is renamed into place,
so an interrupted save never leaves a half model. Version 4 added the two
optional files (a directory without them is written as version 3, which
earlier code reads); version 3 added ensembles; version 2 directories (one
network) load as they are. Version 1 directories (no checksum of
``model.json``) are refused with the way to upgrade them:
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
from typing import Any, NamedTuple, Sequence

import chex
import jax.numpy as jnp
import numpy as np

from credit_nas_jax import calibration as calibration_lib
from credit_nas_jax import checkpoint as checkpoint_lib
from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import stability as stability_lib

FORMAT = "credit_nas_jax.model"
FORMAT_VERSION = 3
# The version of a directory that holds calibration.json or population.json.
MONITORED_FORMAT_VERSION = 4
# Versions this code reads: 2 holds one network, 3 one network or an
# ensemble, 4 also a calibration map and a training population.
READABLE_VERSIONS = (2, 3, 4)
DESCRIPTION_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
CALIBRATION_FILE = "calibration.json"
POPULATION_FILE = "population.json"
CHECKSUMS_FILE = "checksums.sha256"
_CHECKED_FILES = (DESCRIPTION_FILE, WEIGHTS_FILE)
# File name -> (SavedModel field, the check of its JSON object).
_OPTIONAL_FILES = {
    CALIBRATION_FILE: ("calibration", calibration_lib.check_map),
    POPULATION_FILE: ("population", stability_lib.check_population),
}
_SELF_LINE = "# sha256 of the lines above: "
_MEMBER_PREFIX = "member"


class ModelFormatError(ValueError):
  """A model directory that is missing, corrupt or incompatible."""


class ModelMember(NamedTuple):
  """One derived network of a model: its architecture and its weights."""

  arch: model_lib.Architecture
  weights: chex.ArrayTree


@dataclasses.dataclass(frozen=True)
class SavedModel:
  """A loaded model: one derived network, or an ensemble of several.

  Attributes:
    members: every network, as (architecture, weights); one for a single
      model. An ensemble's score is the mean of its members' (see
      ``credit_nas_jax.scoring``).
    encoder: feature order and normalisation statistics.
    fanouts: neighbourhood sampling fanouts.
    metadata: free-form facts (metrics, config, gates).
    sampling_seed: the seed of the deterministic neighbourhood rule used at
      scoring time (the run's seed).
    calibration: the calibration map of the scores
      (``calibration.fit_calibration``), or None: uncalibrated.
    population: the training population (``stability.fit_population``),
      or None: no stability report at scoring.
  """

  members: tuple[ModelMember, ...]
  encoder: graphs_lib.NodeEncoder
  fanouts: tuple[int, ...]
  metadata: dict[str, Any]
  sampling_seed: int = 0
  calibration: dict[str, Any] | None = None
  population: dict[str, Any] | None = None

  def _only_member(self) -> ModelMember:
    if len(self.members) != 1:
      raise ValueError(f"the model is an ensemble of {len(self.members)} "
                       "networks; read each from .members")
    return self.members[0]

  @property
  def arch(self) -> model_lib.Architecture:
    """A single model's architecture (ValueError for an ensemble)."""
    return self._only_member().arch

  @property
  def weights(self) -> chex.ArrayTree:
    """A single model's weights (ValueError for an ensemble)."""
    return self._only_member().weights


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
  if not isinstance(data, dict):
    raise ModelFormatError(f"expected an object of architecture fields, got "
                           f"{type(data).__name__}")
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
  """The checksum file's exact text: sha256sum lines (the required files,
  then the optional ones present), then a self-check."""
  names = [n for n in (*_CHECKED_FILES, *_OPTIONAL_FILES) if n in digests]
  body = "".join(f"{digests[name]}  {name}\n" for name in names)
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
  """Raises ValueError unless every input column is the feature it claims
  (a gate group "<feature>:<kind>" embeds the column of its feature)."""
  groups = encoder.column_groups
  for column, group in zip(arch.input_columns, arch.column_groups):
    if not 0 <= column < len(groups):
      raise ValueError(f"architecture reads column {column}; the encoder has "
                       f"{len(groups)} columns")
    if not 0 <= group < arch.num_groups:
      raise ValueError(f"architecture column group {group} out of range")
    if encoder.features[groups[column]] != model_lib.feature_of(
        arch.group_names[group]):
      raise ValueError(
          f"architecture reads column {column} as "
          f"{arch.group_names[group]!r}; the encoder's column is "
          f"{encoder.features[groups[column]]!r}")


def _member_prefix(index: int, ensemble: bool) -> str:
  """Where member ``index`` keeps its arrays in weights.npz."""
  return f"{_MEMBER_PREFIX}/{index}" if ensemble else ""


def _member_field(index: int, ensemble: bool) -> str:
  """The model.json field of member ``index``'s architecture."""
  return f"members[{index}].architecture" if ensemble else "architecture"


def _check_network(arch: model_lib.Architecture,
                   encoder: graphs_lib.NodeEncoder) -> None:
  """Raises ValueError unless ``arch`` is a derived network of ``encoder``'s
  columns."""
  if arch.searchable:
    raise ValueError("the architecture is a supernet, not a derived network")
  _check_fit(arch, encoder)


def save_model(directory: str, arch: model_lib.Architecture,
               weights: chex.ArrayTree, encoder: graphs_lib.NodeEncoder,
               fanouts: tuple[int, ...], metadata: dict[str, Any], *,
               sampling_seed: int | None = None) -> None:
  """Writes a model directory of one network atomically (replacing an
  existing one).

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
  save_ensemble(directory, [ModelMember(arch, weights)], encoder, fanouts,
                metadata, sampling_seed=sampling_seed)


def save_ensemble(directory: str,
                  members: Sequence[tuple[model_lib.Architecture,
                                          chex.ArrayTree]],
                  encoder: graphs_lib.NodeEncoder, fanouts: tuple[int, ...],
                  metadata: dict[str, Any], *,
                  sampling_seed: int | None = None) -> None:
  """Writes a model directory of one or more networks atomically (replacing
  an existing one).

  One network is written as :func:`save_model` writes it (``architecture``
  and unprefixed arrays); several as ``members`` with the arrays of member i
  under ``member/<i>/``.

  Args:
    directory: the model directory to write.
    members: (derived architecture, its weights) of every network, in the
      order they are listed.
    encoder: the feature encoder with training statistics, shared.
    fanouts: neighbourhood sampling fanouts, shared.
    metadata: free-form JSON-serialisable facts.
    sampling_seed: seed of the scoring-time neighbourhood rule, shared; by
      default the run's ``metadata["config"]["seed"]``, else 0.

  Raises:
    ValueError: no member, or a member that is not a derived network of the
      encoder's columns.
  """
  if sampling_seed is None:
    config = metadata.get("config") if isinstance(metadata, dict) else None
    seed = config.get("seed") if isinstance(config, dict) else None
    sampling_seed = seed if isinstance(seed, int) else 0
  write_model(directory, SavedModel(
      tuple(ModelMember(arch, weights) for arch, weights in members),
      encoder, tuple(fanouts), metadata, int(sampling_seed)))


def _check_model(saved: SavedModel) -> None:
  """Raises ValueError unless ``saved`` can be written as a model."""
  if not saved.members:
    raise ValueError("a model needs at least one network")
  _check_encoder(saved.encoder)
  ensemble = len(saved.members) > 1
  for index, (arch, _) in enumerate(saved.members):
    try:
      _check_network(arch, saved.encoder)
    except ValueError as error:
      raise ValueError(f"{_member_field(index, ensemble)}: {error}") from None
  for name, (field, check) in _OPTIONAL_FILES.items():
    if getattr(saved, field) is not None:
      try:
        check(getattr(saved, field))
      except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _write_files(staging: str, saved: SavedModel) -> None:
  """Every file of a model directory, into ``staging``."""
  ensemble = len(saved.members) > 1
  flat = {}
  for index, (_, weights) in enumerate(saved.members):
    flat.update(flatten_tree(weights, _member_prefix(index, ensemble)))
  weights_path = os.path.join(staging, WEIGHTS_FILE)
  np.savez(weights_path, **flat)
  written = list(_CHECKED_FILES)
  for name, (field, _) in _OPTIONAL_FILES.items():
    if getattr(saved, field) is not None:
      with open(os.path.join(staging, name), "w") as f:
        json.dump(getattr(saved, field), f, indent=1, allow_nan=False)
      written.append(name)
  networks = [dataclasses.asdict(arch) for arch, _ in saved.members]
  description = {
      "format": FORMAT,
      "format_version": (MONITORED_FORMAT_VERSION
                         if len(written) > len(_CHECKED_FILES)
                         else FORMAT_VERSION),
      **({"members": [{"architecture": n} for n in networks]}
         if ensemble else {"architecture": networks[0]}),
      "encoder": saved.encoder.to_json(),
      "feature_columns": list(saved.encoder.column_names),
      "fanouts": [int(f) for f in saved.fanouts],
      "sampling_seed": int(saved.sampling_seed),
      "weights_sha256": checkpoint_lib.file_sha256(weights_path),
      "metadata": saved.metadata,
  }
  with open(os.path.join(staging, DESCRIPTION_FILE), "w") as f:
    json.dump(description, f, indent=2, allow_nan=False)
  digests = {name: checkpoint_lib.file_sha256(os.path.join(staging, name))
             for name in written}
  with open(os.path.join(staging, CHECKSUMS_FILE), "w") as f:
    f.write(_checksum_text(digests))


def write_model(directory: str, saved: SavedModel) -> None:
  """Writes a model directory atomically (replacing an existing one).

  The networks as :func:`save_ensemble` writes them, and
  ``calibration.json`` and ``population.json`` where ``saved`` holds a
  calibration map and a training population (format version 4; without
  them, version 3).

  Args:
    directory: the model directory to write.
    saved: the model (``load_model`` returns one).

  Raises:
    ValueError: no member, a member that is not a derived network of the
      encoder's columns, or a calibration map or population that does not
      check.
  """
  _check_model(saved)
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".model-", dir=parent)
  try:
    _write_files(staging, saved)
    if os.path.isdir(directory) and not os.path.islink(directory):
      shutil.rmtree(directory)
    elif os.path.lexists(directory):
      os.remove(directory)
    os.replace(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def _verify_checksums(directory: str) -> set[str]:
  """The files the checksum file lists, each checked.

  Raises:
    ModelFormatError: naming the first file whose bytes changed.
  """
  path = os.path.join(directory, CHECKSUMS_FILE)
  try:
    with open(path, "rb") as f:
      text = f.read().decode("ascii")
  except (OSError, UnicodeDecodeError) as error:
    raise ModelFormatError(f"{path}: unreadable ({error})") from None
  digests = {}
  for line in text.split("\n"):
    if line and not line.startswith(_SELF_LINE):
      digest, _, name = line.partition("  ")
      digests[name] = digest
  if (not set(_CHECKED_FILES) <= set(digests)
      or _checksum_text(digests) != text):
    raise ModelFormatError(f"{path}: changed or corrupt (its own checksum "
                           "does not match); the model directory cannot be "
                           "trusted")
  for name in digests:
    file_path = os.path.join(directory, name)
    if not os.path.isfile(file_path):
      raise ModelFormatError(f"{file_path}: missing")
    actual = checkpoint_lib.file_sha256(file_path)
    if actual != digests[name]:
      raise ModelFormatError(
          f"{file_path}: checksum {actual} does not match {CHECKSUMS_FILE} "
          f"({digests[name]}); the file was changed or is corrupt")
  return set(digests)


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
                           "directory written by experiments/search.py or "
                           "experiments/sweep.py")
  description_path = os.path.join(directory, DESCRIPTION_FILE)
  weights_path = os.path.join(directory, WEIGHTS_FILE)
  for path in (description_path, weights_path):
    if not os.path.isfile(path):
      raise ModelFormatError(f"{path}: missing; is {directory!r} a model "
                             "directory written by experiments/search.py or "
                             "experiments/sweep.py?")
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
  listed = _verify_checksums(directory)
  extra = sorted(set(os.listdir(directory)) - listed - {CHECKSUMS_FILE})
  if extra:
    raise ModelFormatError(f"{directory}: files not covered by "
                           f"{CHECKSUMS_FILE}: {extra}")
  description = _read_description(directory)
  version = description.get("format_version")
  if version not in READABLE_VERSIONS:
    raise ModelFormatError(
        f"{description_path}: format version {version!r}; this code reads "
        f"versions {', '.join(map(str, READABLE_VERSIONS))}")
  return dataclasses.replace(_parse(directory, description),
                             **_read_optional(directory, listed, version))


def _read_optional(directory: str, listed: set[str],
                   version: int) -> dict[str, Any]:
  """The SavedModel fields of the optional files the checksums list, each
  checked (a version-4 directory's files)."""
  fields = {}
  for name, (field, check) in _OPTIONAL_FILES.items():
    if name not in listed:
      continue
    path = os.path.join(directory, name)
    if version < MONITORED_FORMAT_VERSION:
      raise ModelFormatError(
          f"{path}: needs format version {MONITORED_FORMAT_VERSION}; "
          f"{DESCRIPTION_FILE} says {version}")
    try:
      with open(path, encoding="utf-8") as f:
        fields[field] = check(json.load(f))
    except ValueError as error:  # JSON, UTF-8 and the check's errors
      raise ModelFormatError(f"{path}: bad content ({error})") from None
  return fields


def _network_entries(description: dict, description_path: str) -> list:
  """The architecture objects of model.json: ``architecture`` for one
  network, each member's for an ensemble (format version 3)."""
  if "members" not in description:
    if "architecture" not in description:
      raise ModelFormatError(f"{description_path}: missing field "
                             "'architecture' (one network) or 'members' (an "
                             "ensemble)")
    return [description["architecture"]]
  members = description["members"]
  if "architecture" in description:
    raise ModelFormatError(f"{description_path}: has both 'architecture' and "
                           "'members'; a model is one network or an ensemble")
  if description.get("format_version", 0) < 3:
    raise ModelFormatError(
        f"{description_path}: field 'members' (an ensemble) needs format "
        f"version 3, the file says {description.get('format_version')!r}")
  if not isinstance(members, list) or not members:
    raise ModelFormatError(f"{description_path}: field 'members' must be a "
                           "non-empty list of {\"architecture\": ...}")
  for index, member in enumerate(members):
    if not isinstance(member, dict) or set(member) != {"architecture"}:
      found = (sorted(member) if isinstance(member, dict)
               else type(member).__name__)
      raise ModelFormatError(
          f"{description_path}: field members[{index}] must be an object "
          f"with the one field 'architecture'; found {found}")
  return [member["architecture"] for member in members]


def _parse(directory: str, description: dict) -> SavedModel:
  """The SavedModel of a checked directory's description and weights."""
  description_path = os.path.join(directory, DESCRIPTION_FILE)
  weights_path = os.path.join(directory, WEIGHTS_FILE)
  if checkpoint_lib.file_sha256(weights_path) != description.get(
      "weights_sha256"):
    raise ModelFormatError(f"{weights_path}: checksum does not match "
                           "model.json; the weights are corrupt or foreign")
  entries = _network_entries(description, description_path)
  ensemble = "members" in description
  try:
    encoder = graphs_lib.NodeEncoder.from_json(description["encoder"])
    _check_encoder(encoder)
    fanouts = tuple(description["fanouts"])
    if not all(isinstance(f, int) and not isinstance(f, bool) and f >= 0
               for f in fanouts):
      raise ValueError(f"fanouts {list(fanouts)} must be integers >= 0")
    seed = description.get("sampling_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
      raise ValueError(f"sampling_seed {seed!r} must be an integer")
  except (KeyError, TypeError, ValueError) as error:
    raise ModelFormatError(f"{description_path}: bad field ({error})"
                           ) from None
  archs = []
  for index, entry in enumerate(entries):
    try:
      arch = _architecture_from_json(entry)
      _check_network(arch, encoder)
    except (KeyError, TypeError, ValueError) as error:
      raise ModelFormatError(
          f"{description_path}: bad field {_member_field(index, ensemble)} "
          f"({error})") from None
    archs.append(arch)
  try:
    with np.load(weights_path, allow_pickle=False) as archive:
      flat = {k: archive[k] for k in archive.files}
  except (ValueError, OSError, EOFError) as error:
    raise ModelFormatError(f"{weights_path}: unreadable ({error})") from None
  members, read = [], set()
  for index, arch in enumerate(archs):
    template, _ = model_lib.init_shapes(arch)
    prefix = _member_prefix(index, ensemble)
    try:
      members.append(ModelMember(arch, unflatten_like(flat, template,
                                                      prefix)))
    except ModelFormatError as error:
      raise ModelFormatError(f"{weights_path}: {error}") from None
    read.update(flatten_tree(template, prefix))
  unread = sorted(set(flat) - read)
  if unread:
    raise ModelFormatError(f"{weights_path}: arrays {unread} belong to no "
                           f"network of {DESCRIPTION_FILE}")
  metadata = description.get("metadata", {})
  return SavedModel(tuple(members), encoder, fanouts,
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
  save_ensemble(directory, saved.members, saved.encoder, saved.fanouts,
                saved.metadata,
                sampling_seed=description.get("sampling_seed"))
