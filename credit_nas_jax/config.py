"""The run's config: nested, typed, checked once at the edge.

A launcher's absl flags and ``experiments/configs/*.py`` give a nested
``ml_collections.ConfigDict`` (``--config.search.arch_lr=1e-2``);
:func:`typed` turns it, once, into a frozen :class:`Config` of groups that
each part of the package reads alone:

* ``data``: the book or table, its graph and the graph batches;
* ``space``: the search space (supernet width, candidate ops, embeddings);
* ``search``: the bilevel search;
* ``derive``: how the network is read off the gates;
* ``retrain``: the derived network's retrain and its members;
* ``runtime``: devices, logging, checkpoints, profiles (no result depends
  on them);
* ``sweep`` and ``baselines``: the sweep's grid and the evaluation's
  baseline grids, where a launcher uses them.

Every field is checked there, before any data is read: a mistake is one
``ValueError`` line naming the field and what it accepts. A config is
hashable, so the programs whose compile depends on it take it as a static
argument; a variant is :func:`replace`, never a copied dict. The fields
of an earlier flat config (``--config.arch_lr``) are refused with their
new names.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Iterable, Mapping, Sequence

import ml_collections


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """The borrowers, their graph and the graph batches.

  Attributes:
    dataset: "synthetic" (raw records, extracted), "synthetic_graph" (the
      same model drawn at the feature level, for graphs of millions of
      borrowers), "german", "credit" (with relation files), "taiwan",
      "lending" (k-nearest-neighbour graphs) or "table" (``table_path``).
    data_dir: where the public sets are (empty: the CREDIT_NAS_DATA_DIR
      variable, then shared/data beside the checkout).
    knn_k: neighbours of a similarity graph; 0: no edges.
    use_edges: False: a k-NN graph even where relations exist.
    knn_graph: "inductive" (every borrower's neighbours are training
      borrowers) or "transductive" (all rows link to all).
    num_borrowers: borrowers of a synthetic book.
    mean_links: links per borrower (synthetic_graph).
    data_seed: the synthetic book's seed.
    split_seed: the stratified split's seed.
    table_path: ``dataset="table"``: a .csv or .parquet file.
    label_column: its label column.
    bad_value: the label value meaning default (a number where the column
      is numeric, else text).
    id_column: optional unique ids.
    edges_path: optional edges (".txt": "u v" rows; .csv/.parquet: src,
      dst ids, or rows without an id column).
    categorical_columns: columns one-hot encoded (besides non-numeric ones).
    batch_size: graphs per step (per device).
    fanouts: neighbours sampled per hop.
    sampler: where neighbourhoods are sampled: "device" (inside the compiled
      step), "host" (numpy, for graphs too large for the device) or "auto"
      (the device where the graph fits in half of its free memory).
    sensitive_column: the column the evaluation's fairness report groups
      the test rows by (a report only: no model reads it through this
      field); empty: the public set's own (german Gender, taiwan SEX,
      credit Age: 1 under 25), none elsewhere; "none": no report.
    sensitive_bins: increasing inner edges that group a numeric
      ``sensitive_column`` (taiwan's AGE: (25, 35, 50)); empty: by value.
  """

  dataset: str = "synthetic"
  data_dir: str = ""
  knn_k: int = 10
  use_edges: bool = True
  knn_graph: str = "inductive"
  num_borrowers: int = 20_000
  mean_links: float = 26.5
  data_seed: int = 0
  split_seed: int = 0
  table_path: str = ""
  label_column: str = ""
  bad_value: str = "1"
  id_column: str = ""
  edges_path: str = ""
  categorical_columns: tuple[str, ...] = ()
  batch_size: int = 128
  fanouts: tuple[int, ...] = (10, 5)
  sampler: str = "auto"
  sensitive_column: str = ""
  sensitive_bins: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
  """The search space.

  Attributes:
    name: "patent" (three GCN ops of ``op_ratios``) or "extended" (also a
      SAGE-style op and a no-neighbour op of ``extra_op_ratio``, and a gate
      on the pooled readout).
    hidden_dim: D.
    op_ratios: expansion ratios of the GCN ops (big, medium, small).
    extra_op_ratio: the extended space's extra ops' ratio.
    num_gcn_layers: GCN layers.
    op_layout: "separate" products (a CPU's fastest), "fused" (one up- and
      one down-projection; a GPU's) or "auto".
    gate_function: "sigmoid" (the patent's) or "softmax" (DARTS).
    feature_embeddings: the embedding kinds the feature gate chooses among,
      a gate per (feature, kind): "linear" (the patent's, always in),
      "piecewise" (``embedding_bins`` quantile bins of the training rows),
      "periodic" (``embedding_frequencies`` trainable frequencies,
      initialised with standard deviation ``embedding_sigma``).
    embedding_bins: bins of the piecewise embedding.
    embedding_frequencies: frequencies of the periodic embedding.
    embedding_sigma: their initial standard deviation.
  """

  name: str = "patent"
  hidden_dim: int = 100
  op_ratios: tuple[float, ...] = (4.0, 2.0, 1.0)
  extra_op_ratio: float = 2.0
  num_gcn_layers: int = 2
  op_layout: str = "auto"
  gate_function: str = "sigmoid"
  feature_embeddings: tuple[str, ...] = ("linear",)
  embedding_bins: int = 8
  embedding_frequencies: int = 8
  embedding_sigma: float = 0.5


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """The bilevel search (the floats are the ones a sweep may vary).

  Attributes:
    steps: search steps.
    second_order: the exact second-order alpha gradient, through the weight
      optimizer's own steps (AdamW with its moments and decay).
    unroll_steps: second order: the real weight steps unrolled (K; the
      step's memory grows about K-fold).
    arch_warmup_steps: steps before the alphas move.
    weight_lr: the weights' AdamW learning rate.
    weight_decay: their decoupled decay (it shrinks the weights by
      weight_lr * weight_decay a step, which moves scale from the embeddings
      into the gates).
    arch_lr: the alphas' Adam learning rate.
    arch_weight_decay: their decay.
    zero_one_weight: the weight of the penalty that pushes gates to 0 or 1.
  """

  steps: int = 400
  second_order: bool = False
  unroll_steps: int = 1
  arch_warmup_steps: int = 100
  weight_lr: float = 3e-3
  weight_decay: float = 1.0
  arch_lr: float = 3e-2
  arch_weight_decay: float = 0.0
  zero_one_weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class DeriveConfig:
  """How the network is read off the gates (both rules are ours; the
  patent names none).

  The default is the validation rule: on the synthetic book the gates of
  the default search stay within about 0.15 of sigmoid(0) = 0.5 and rank
  the planted noise feature last, so the 0.5 threshold drops informative
  features (two of four on data seed 0) where ranking the gates and
  scoring the candidates on validation keeps all four and drops the noise
  (docs/results.md).

  Attributes:
    rule: "threshold" (the features whose gate >= ``gate_threshold``;
      softmax gates: >= 2 * gate_threshold / number of features) or
      "validation" (ops, number of features and readout chosen by the
      supernet's validation AUC with the other gates closed).
    gate_threshold: the threshold rule's gate.
    min_feature_gain: validation rule: a kept feature whose closing costs
      less validation AUC than this is dropped (0: never).
    confidence: validation rule: z > 0 closes features only on evidence
      (DeLong's paired standard errors); 0: the plain best.
  """

  rule: str = "validation"
  gate_threshold: float = 0.5
  min_feature_gain: float = 0.001
  confidence: float = 0.0


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
  """The derived network's retrain.

  Attributes:
    steps: at most this many steps (early stopping on validation AUC).
    lr: the learning rate.
    weight_decay: the decoupled weight decay.
    weight_decays: the evaluation's decays chosen among on validation (one
      retrain each; the other members use the chosen one); empty: the one
      ``weight_decay``.
    eval_every: steps between validation evaluations.
    eval_each_epoch: evaluate at least once an epoch of the training rows.
    patience: evaluations without a new best before the retrain stops.
    ensemble_size: retrains of the derived network from other initial
      weights (and batch order); the model is the mean of their
      probabilities (the evaluation's searched rows; the search and sweep
      launchers retrain one network).
  """

  steps: int = 1000
  lr: float = 3e-3
  weight_decay: float = 1e-4
  weight_decays: tuple[float, ...] = ()
  eval_every: int = 100
  eval_each_epoch: bool = False
  patience: int = 3
  ensemble_size: int = 1


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
  """How a run is carried out; no result depends on it.

  Attributes:
    num_devices: 1: one device; N > 1 (or 0: every local device) shards
      each step's batch over a data axis.
    log_every: search steps between logged records.
    checkpoint_every: search steps between checkpoints (the retrain's state
      is saved at every evaluation).
    keep_checkpoints: checkpoints kept.
    profile_steps: search steps (a, b), from 1, whose blocks a
      jax.profiler trace records into WORKDIR/profile; (): none.
    cost_probes: time the bare search step and both networks' inference
      into search_cost.json (three more compiles).
  """

  num_devices: int = 1
  log_every: int = 25
  checkpoint_every: int = 100
  keep_checkpoints: int = 2
  profile_steps: tuple[int, ...] = ()
  cost_probes: bool = True


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """A sweep's grid: seeds x the values of every swept float (empty: the
  base config's one value).

  Attributes:
    seeds: the grid's seeds (empty: the config's seed).
    weight_lr, weight_decay, arch_lr, arch_weight_decay, zero_one_weight:
      values of the search's floats.
    gate_threshold: values of the derive's threshold.
    max_chunk: most members one chunk may hold.
    vmap_width: members vmapped at once (0: all of a chunk).
    top_k: best members on validation derived and retrained.
    ensemble_size: of those, the ones of best retrained validation AUC
      averaged into the saved ensemble; -1: all ``top_k``; 0: none.
  """

  seeds: tuple[int, ...] = ()
  weight_lr: tuple[float, ...] = ()
  weight_decay: tuple[float, ...] = ()
  arch_lr: tuple[float, ...] = ()
  arch_weight_decay: tuple[float, ...] = ()
  zero_one_weight: tuple[float, ...] = ()
  gate_threshold: tuple[float, ...] = ()
  max_chunk: int = 64
  vmap_width: int = 0
  top_k: int = 2
  ensemble_size: int = -1


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
  """The evaluation's baseline grids.

  Attributes:
    lightgbm_num_leaves, lightgbm_learning_rates,
    lightgbm_min_child_samples: LightGBM's grid.
    fixed_width_ratios: the fixed networks' widths (times D).
    fixed_weight_decays: their decoupled weight decays.
    random_architectures: networks the random-architecture control draws
      and retrains; 0: as many as the seconds of our search, derive and
      retrain buy (at least 2, at most ``RANDOM_ARCHITECTURES_CAP``).
  """

  lightgbm_num_leaves: tuple[int, ...] = (7, 31)
  lightgbm_learning_rates: tuple[float, ...] = (0.03, 0.1)
  lightgbm_min_child_samples: tuple[int, ...] = (20, 100)
  fixed_width_ratios: tuple[float, ...] = (1.0, 4.0)
  fixed_weight_decays: tuple[float, ...] = (1e-4, 1.0, 10.0)
  random_architectures: int = 0


@dataclasses.dataclass(frozen=True)
class Config:
  """A run: its seed and every group (see the module docstring)."""

  seed: int = 0
  data: DataConfig = DataConfig()
  space: SpaceConfig = SpaceConfig()
  search: SearchConfig = SearchConfig()
  derive: DeriveConfig = DeriveConfig()
  retrain: RetrainConfig = RetrainConfig()
  runtime: RuntimeConfig = RuntimeConfig()
  sweep: SweepConfig | None = None
  baselines: BaselinesConfig | None = None

  def to_dict(self) -> dict[str, Any]:
    """Plain nested dict (JSON: ``config.json``), groups left out where
    unset."""
    return {f.name: (dataclasses.asdict(getattr(self, f.name))
                     if dataclasses.is_dataclass(getattr(self, f.name))
                     else getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None}


GROUPS: dict[str, type] = {
    "data": DataConfig, "space": SpaceConfig, "search": SearchConfig,
    "derive": DeriveConfig, "retrain": RetrainConfig,
    "runtime": RuntimeConfig, "sweep": SweepConfig,
    "baselines": BaselinesConfig}
OPTIONAL_GROUPS = ("sweep", "baselines")

# Fields a run's results depend on, by group: what a resumed run, a cached
# evaluation seed or a baseline's row must match.
RESULT_GROUPS = ("data", "space", "search", "derive", "retrain")

# The earlier flat config's fields and their nested names.
RENAMED: dict[str, str] = {
    **{name: f"data.{name}" for name in (
        "dataset", "data_dir", "knn_k", "use_edges", "knn_graph",
        "num_borrowers", "mean_links", "data_seed", "split_seed",
        "table_path", "label_column", "bad_value", "id_column", "edges_path",
        "categorical_columns", "batch_size", "fanouts", "sampler",
        "sensitive_column", "sensitive_bins")},
    "search_space": "space.name",
    **{name: f"space.{name}" for name in (
        "hidden_dim", "op_ratios", "extra_op_ratio", "num_gcn_layers",
        "op_layout", "gate_function", "feature_embeddings", "embedding_bins",
        "embedding_frequencies", "embedding_sigma")},
    "search_steps": "search.steps",
    **{name: f"search.{name}" for name in (
        "second_order", "arch_warmup_steps", "weight_lr", "weight_decay",
        "arch_lr", "arch_weight_decay", "zero_one_weight")},
    "derive": "derive.rule", "gate_threshold": "derive.gate_threshold",
    "derive_min_feature_gain": "derive.min_feature_gain",
    "derive_confidence": "derive.confidence",
    "retrain_steps": "retrain.steps", "retrain_lr": "retrain.lr",
    "retrain_weight_decay": "retrain.weight_decay",
    "retrain_weight_decays": "retrain.weight_decays",
    "eval_every": "retrain.eval_every",
    "eval_each_epoch": "retrain.eval_each_epoch",
    "patience": "retrain.patience",
    "retrain_ensemble_size": "retrain.ensemble_size",
    **{name: f"runtime.{name}" for name in (
        "num_devices", "log_every", "checkpoint_every", "keep_checkpoints",
        "profile_steps", "cost_probes")},
    **{f"sweep_{name}": f"sweep.{name}" for name in (
        "seeds", "weight_lr", "weight_decay", "arch_lr", "arch_weight_decay",
        "zero_one_weight", "gate_threshold", "max_chunk", "vmap_width",
        "top_k", "ensemble_size")},
    **{name: f"baselines.{name}" for name in (
        "lightgbm_num_leaves", "lightgbm_learning_rates",
        "lightgbm_min_child_samples", "fixed_width_ratios",
        "fixed_weight_decays")},
}
# Levers measured without gain and removed (docs/negative_results.md).
REMOVED = ("wide_path", "retrain_member_variants", "retrain_dropout",
           "retrain_average_span")

CHOICES: dict[str, tuple[str, ...]] = {
    "data.knn_graph": ("inductive", "transductive"),
    "data.sampler": ("auto", "device", "host"),
    "space.name": ("patent", "extended"),
    "space.op_layout": ("auto", "separate", "fused"),
    "space.gate_function": ("sigmoid", "softmax"),
    "derive.rule": ("threshold", "validation"),
}
AT_LEAST_ONE = ("data.batch_size", "data.num_borrowers", "space.hidden_dim",
                "space.num_gcn_layers", "space.embedding_frequencies",
                "search.steps", "search.unroll_steps", "retrain.steps",
                "retrain.eval_every",
                "retrain.patience", "retrain.ensemble_size",
                "runtime.log_every", "runtime.checkpoint_every",
                "runtime.keep_checkpoints", "sweep.max_chunk", "sweep.top_k")
POSITIVE = ("search.weight_lr", "search.arch_lr", "retrain.lr",
            "space.embedding_sigma", "space.extra_op_ratio")
NON_NEGATIVE = ("data.knn_k", "data.mean_links", "search.weight_decay",
                "search.arch_weight_decay", "search.zero_one_weight",
                "derive.min_feature_gain", "derive.confidence",
                "retrain.weight_decay", "runtime.num_devices",
                "search.arch_warmup_steps", "sweep.vmap_width",
                "baselines.random_architectures")


def _tuple_items(value: Any) -> tuple[Any, ...]:
  """A flag's tuple: a sequence, or a comma-separated string
  (``--config.space.feature_embeddings=linear,periodic``)."""
  if isinstance(value, str):
    value = (value,)
  if not isinstance(value, (list, tuple)):
    value = (value,)
  items = []
  for item in value:
    if isinstance(item, str):
      items.extend(part.strip() for part in item.split(",") if part.strip())
    else:
      items.append(item)
  return tuple(items)


def _whole(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _convert(name: str, kind: Any, value: Any) -> Any:
  """``value`` as the field's type, or ValueError naming the field."""
  def refuse(what):
    return ValueError(f"config.{name}={value!r}: must be {what}")

  if kind is bool:
    if not isinstance(value, bool):
      raise refuse("True or False")
    return value
  if kind is int:
    if not _whole(value):
      raise refuse("a whole number")
    return value
  if kind is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise refuse("a number")
    return float(value)
  if kind is str:
    if not isinstance(value, str):
      raise refuse("a string")
    return value
  item = typing.get_args(kind)[0]
  items = _tuple_items(value)
  try:
    return tuple(_convert(name, item, v) for v in items)
  except ValueError:
    words = {int: "whole numbers", float: "numbers", str: "strings"}
    raise refuse(f"a sequence of {words[item]}") from None


def _group(name: str, cls: type, values: Mapping[str, Any]) -> Any:
  kinds = typing.get_type_hints(cls)
  unknown = sorted(set(values) - set(kinds))
  if unknown:
    raise ValueError(f"config.{name}.{unknown[0]}: no such field; "
                     f"{name} has {sorted(kinds)}")
  return cls(**{field: _convert(f"{name}.{field}", kinds[field], value)
                for field, value in values.items()})


def from_dict(values: Mapping[str, Any]) -> Config:
  """A checked :class:`Config` from a nested mapping (a config file's
  ``ConfigDict`` or ``config.json``'s dict).

  Raises:
    ValueError: one line naming the first wrong field and what it accepts
      (an earlier flat field: its new name).
  """
  values = dict(values)
  for old, value in values.items():
    if old in GROUPS and (value is None or isinstance(
        value, (Mapping, ml_collections.ConfigDict))):
      continue  # a group ("derive" was also a flat field: the rule)
    if old in RENAMED:
      raise ValueError(f"config.{old} is now config.{RENAMED[old]}")
    if old in REMOVED:
      raise ValueError(f"config.{old} was removed (measured without gain: "
                       "docs/negative_results.md)")
    if old != "seed" and old not in GROUPS:
      raise ValueError(f"config.{old}: no such field; a config has seed and "
                       f"the groups {sorted(GROUPS)}")
  groups = {}
  for name, cls in GROUPS.items():
    given = values.get(name)
    if given is None:
      groups[name] = None if name in OPTIONAL_GROUPS else cls()
      continue
    if not isinstance(given, Mapping):
      given = dict(given)
    groups[name] = _group(name, cls, given)
  config = Config(seed=_convert("seed", int, values.get("seed", 0)),
                  **groups)
  validate(config)
  return config


def typed(config: Config | ml_collections.ConfigDict | Mapping[str, Any]
          ) -> Config:
  """``config`` as a checked :class:`Config` (converted once, where a run
  enters the package)."""
  if isinstance(config, Config):
    return config
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  return from_dict(config)


def to_config_dict(config: Config) -> ml_collections.ConfigDict:
  """The nested ``ConfigDict`` of a config (a config file's value, which
  flags override)."""
  return ml_collections.ConfigDict(config.to_dict())


def replace(config: Config, changes: Mapping[str, Any]) -> Config:
  """``config`` with dotted fields changed (``{"seed": 3, "space.name":
  "extended"}``), checked again."""
  groups: dict[str, dict[str, Any]] = {}
  top: dict[str, Any] = {}
  for path, value in changes.items():
    group, _, field = path.partition(".")
    if field:
      groups.setdefault(group, {})[field] = value
    else:
      top[path] = value
  for group, fields in groups.items():
    current = getattr(config, group)
    if current is None:
      current = GROUPS[group]()
    top[group] = dataclasses.replace(current, **fields)
  changed = dataclasses.replace(config, **top)
  return from_dict(changed.to_dict())


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """A nested dict's leaves by dotted name (``{"search.arch_lr": 0.03}``)."""
  out = {}
  for name, value in values.items():
    if isinstance(value, Mapping):
      out.update(flatten(value, f"{prefix}{name}."))
    else:
      out[f"{prefix}{name}"] = value
  return out


def get(config: Config, path: str) -> Any:
  """The value of a dotted field (``"search.arch_lr"``)."""
  value: Any = config
  for part in path.split("."):
    value = getattr(value, part)
  return value


def _check(config: Config, paths: Iterable[str], ok, what: str,
           verb: str = "be") -> None:
  for path in paths:
    group = path.partition(".")[0]
    if group in OPTIONAL_GROUPS and getattr(config, group) is None:
      continue
    value = get(config, path)
    if not ok(value):
      raise ValueError(f"config.{path}={value!r}: must {verb} {what}")


def _check_sensitive(data: DataConfig) -> None:
  """Refuses fairness-report settings that cannot group any table."""
  bins = data.sensitive_bins
  if any(b != b or abs(b) == float("inf") for b in bins) or any(
      b <= a for a, b in zip(bins, bins[1:])):
    raise ValueError(f"config.data.sensitive_bins={bins!r}: must be "
                     "increasing finite numbers, e.g. (25, 35, 50)")
  if bins and data.sensitive_column in ("", "none"):
    raise ValueError(f"config.data.sensitive_bins={bins!r}: bins a column; "
                     "name it with config.data.sensitive_column")
  if data.sensitive_column != data.sensitive_column.strip() or any(
      c in data.sensitive_column for c in "\n\r"):
    raise ValueError(f"config.data.sensitive_column="
                     f"{data.sensitive_column!r}: must be a column name "
                     "without surrounding spaces or line breaks")


def validate(config: Config) -> None:
  """Refuses settings no run can use, naming the field, before any work.

  Raises:
    ValueError: one line naming the field, its value and what it must be.
  """
  _check(config, AT_LEAST_ONE, lambda v: v >= 1, "a whole number >= 1")
  _check(config, POSITIVE, lambda v: v > 0, "> 0")
  _check(config, NON_NEGATIVE, lambda v: v >= 0, ">= 0")
  for path, choices in CHOICES.items():
    _check(config, [path], lambda v, c=choices: v in c,
           f"one of {list(choices)}")
  _check(config, ["data.fanouts"], lambda v: v and min(v) >= 0,
         "whole numbers >= 0, one per hop")
  _check_sensitive(config.data)
  _check(config, ["space.op_ratios"], lambda v: v and min(v) > 0,
         "positive expansion ratios")
  _check(config, ["space.embedding_bins"], lambda v: v >= 2, ">= 2 bins")
  _check(config, ["retrain.weight_decays"], lambda v: all(d >= 0 for d in v),
         "weight decays >= 0 (empty: retrain.weight_decay alone)")
  from credit_nas_jax import ops  # pylint: disable=g-import-not-at-top
  _check(config, ["space.feature_embeddings"],
         lambda v: "linear" in v and not set(v) - set(ops.EMBEDDINGS),
         f"'linear' and only kinds of {list(ops.EMBEDDING_KINDS)}",
         verb="hold")
  _check(config, ["runtime.profile_steps"],
         lambda v: not v or (len(v) == 2 and 1 <= v[0] <= v[1]),
         "() or (first, last) search steps, counted from 1")
  if config.search.unroll_steps > 1 and not config.search.second_order:
    raise ValueError(
        f"config.search.unroll_steps={config.search.unroll_steps}: unrolls "
        "the second-order gradient; set config.search.second_order=True")
  if not config.search.arch_warmup_steps <= config.search.steps:
    raise ValueError(
        f"config.search.arch_warmup_steps={config.search.arch_warmup_steps}"
        f": must be in 0..search.steps ({config.search.steps}); with every "
        "step a warm-up step the gates would never move")
  if config.sweep is not None:
    _check(config, ["sweep.ensemble_size"],
           lambda v: -1 <= v <= config.sweep.top_k,
           f"a whole number from -1 (every retrained member) to "
           f"sweep.top_k={config.sweep.top_k}: the ensemble is chosen among "
           "the retrained members")
    if config.derive.rule != "threshold":
      raise ValueError(
          f"config.derive.rule={config.derive.rule!r}: a sweep derives its "
          "members by the threshold rule (fixed gates, so every member "
          "keeps one shape); set config.derive.rule='threshold'")


def check_flags(argv: Sequence[str]) -> None:
  """Refuses a ``--config.`` flag that names no field (an earlier flat one
  with its new name), before ml_collections reads the overrides (at flag
  definition, with a traceback that names no new name).

  Raises:
    SystemExit: one line naming the flag, status 1.
  """
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config."):].partition("=")[0]
    if path in RENAMED:
      raise SystemExit(f"error: --config.{path} is now "
                       f"--config.{RENAMED[path]}")
    if path in REMOVED:
      raise SystemExit(f"error: --config.{path} was removed (measured "
                       "without gain: docs/negative_results.md)")
    group, _, field = path.partition(".")
    if path == "seed":
      continue
    if group not in GROUPS:
      raise SystemExit(f"error: --config.{path}: no such field; a config has "
                       f"seed and the groups {sorted(GROUPS)}")
    fields = [f.name for f in dataclasses.fields(GROUPS[group])]
    if field not in fields:
      raise SystemExit(f"error: --config.{path}: no such field; {group} has "
                       f"{fields}")


def flags_parser(config_flag: Any) -> Callable[[list[str]], list[str]]:
  """An ``app.run`` flags parser for a launcher with a ``--config`` file
  flag: parses the flags, loads the config file and checks the config, so
  that a mistake (a flag, a value of any group's field) is one line and exit
  status 1 before any data is read. A field that does not exist is refused
  earlier, by :func:`check_flags` before the flag's definition.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  def parse(argv: list[str]) -> list[str]:
    try:
      rest = flags.FLAGS(argv)
      typed(config_flag.value)
    except flags.Error as error:
      raise SystemExit(f"error: {str(error).strip().splitlines()[0]}"
                       ) from None
    except ValueError as error:
      raise SystemExit(f"error: {error}") from None
    except (AttributeError, KeyError, TypeError, OSError) as error:
      raise SystemExit(f"error: --config: {error} (an unknown field or a "
                       "bad value; the fields: credit_nas_jax/config.py)"
                       ) from None
    return rest

  return parse
