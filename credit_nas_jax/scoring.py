"""From raw applicant records to lending decisions (patent section 4).

Scoring runs as named steps a team can reuse or test alone:

1. :func:`extract_applicants`: features of every applicant from its own
   records (``features.extract_features_with_rejects``) and the checked
   relations (``features.check_edges``); every bad record is listed.
2. :func:`encode_applicants`: model input columns, with the model's
   training statistics.
3. :func:`sample_neighbourhoods`: the graph each applicant is scored on.
4. :func:`make_batches`: padded ``jraph.GraphsTuple`` batches.
5. :func:`score_batches`: scores, and gradient x input where reasons are
   asked for.
6. :func:`explain`: points, decisions and reasons.

:func:`score_applicants` composes them; :func:`score_files` adds reading,
checked output paths and atomic writes for ``experiments/score.py``.

* Determinism: an applicant's score, points, decision and reasons depend
  only on the model and that applicant's records and neighbourhood, never on
  batch size, batch mates, row order or a seed. Neighbours are chosen by a
  keyed hash: at every hop, a node's ``fanout`` neighbours with the smallest
  SipHash-derived keys of (model's sampling seed, path from the applicant,
  neighbour id) are taken, in key order (a uniform-looking sample without
  replacement, like the training sampler, that is the same in every run).
  Each graph is computed by row-wise kernels that do not mix graphs, and
  every batch is padded to a fixed number of graphs.
* Points: points = offset + factor * ln(odds), odds = score / (1 - score)
  (good:bad), factor = points_to_double / ln 2, offset = base_points -
  factor * ln(base_odds). Default: 600 points at 50:1, 20 points to double.
* Decision: the first band (highest minimum score first) whose minimum the
  score reaches names the loan plan; below every band the loan is refused.
* Reasons: a score splits into the applicant's score alone (its own node as
  a one-node graph) and ``related_borrowers``, the score minus the score
  alone: what its neighbourhood added or took away. The score alone is
  explained per kept feature by gradient x input on the applicant's node,
  sum_c d score_alone / d x_c * (x_c - baseline_c) over the feature's
  encoded columns, baseline = an average borrower of the training data
  (every standardised column 0, not missing). (``attribution="in_graph"``
  takes the gradient of the full graph's score instead, at twice the model
  cost.) The most negative contributions are the reasons, most negative
  first. A refused applicant always has at least one reason: when nothing
  pulled its score below the average borrower's, the reason is
  ``score_below_lowest_band``. Reasons are per feature: the gate groups of
  a feature's embeddings ("<feature>:<kind>", ``model.feature_of``) are one
  reason, and each of its encoded columns counts once however many
  embeddings read it.
* Calibration: where the model holds a calibration map
  (``model_io.SavedModel.calibration``, fitted on validation rows by the
  main job), the score, points and decision read the calibrated
  probability of good credit (1 minus the calibrated default
  probability); contributions stay in the network's own score units. A
  model without one scores its network's probabilities, and
  :func:`score_files` logs a line saying so.
* Monitoring: where the model holds its training population, the result
  carries the population stability of the batch's score (before
  calibration) and features (:mod:`credit_nas_jax.stability`); with
  ``sensitive_column`` set, a per-group fairness report
  (:mod:`credit_nas_jax.fairness`). :func:`score_files` writes them as
  ``stability.json`` and ``fairness.json`` beside its output. Neither
  changes a score, a decision or the exit status.
* Ensembles: a model of several networks (``model_io.SavedModel.members``)
  scores the mean of its members' probabilities, on the same neighbourhood.
  Probabilities, not logits: the mean probability is a probability of good
  credit that points and bands read as any model's, it is the score the
  ensemble was chosen on (a sweep ranks it by the validation AUC of that
  mean), and a member that is very sure cannot outweigh the others without
  bound, as it can in a mean of logits. Its contributions are the mean of
  the members' (a member without a feature adds 0 to it), which is gradient
  x input of the mean score itself, since a gradient is linear; the same
  holds for the neighbourhood's share.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
import time
from typing import Any, Iterator, Mapping, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import jraph
import ml_collections
import numpy as np
import pandas as pd

from credit_nas_jax import calibration as calibration_lib
from credit_nas_jax import fairness as fairness_lib
from credit_nas_jax import features as features_lib
from credit_nas_jax import files
from credit_nas_jax import graphs as graphs_lib
from credit_nas_jax import model as model_lib
from credit_nas_jax import model_io
from credit_nas_jax import stability as stability_lib

REFUSE = "refuse"
OUTPUT_COLUMNS = ("borrower_id", "score", "points", "decision", "reasons")
NEIGHBOURHOOD_REASON = "related_borrowers"
LOW_SCORE_REASON = "score_below_lowest_band"
DEFAULT_BANDS = (("plan_a", 0.9), ("plan_b", 0.8), ("plan_c", 0.7))
ATTRIBUTIONS = ("own_record", "in_graph")
TABLE_SUFFIXES = (".csv", ".parquet")
STABILITY_FILE = "stability.json"
FAIRNESS_FILE = "fairness.json"
# A graph's result must not depend on its batch. XLA:CPU's products take
# another kernel path for very small operands (seen below 64 rows) and for
# the last rows of one whose row count is not a multiple of the vector
# width (16 floats here), and those paths round differently in the last
# bit. So every call is padded to at least these many graphs and nodes, and
# both counts to a multiple of ROW_MULTIPLE: then every real row takes the
# main path, whatever its position (tests/test_scoring_determinism.py).
MIN_GRAPHS_PER_CALL = 128
MIN_NODES_PER_CALL = 1024
ROW_MULTIPLE = 64
# SipHash key of the neighbourhood rule (16 bytes); changing it changes every
# neighbourhood, so it is part of the scoring contract.
_HASH_KEY = "credit_nas_jax.s"


class ScoringError(ValueError):
  """A scoring setting or an input or output path that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Scorecard:
  """A points scale: ``base_points`` at ``base_odds`` good:bad odds, and
  ``points_to_double`` more points for each doubling of the odds."""

  base_points: float = 600.0
  base_odds: float = 50.0
  points_to_double: float = 20.0

  def __post_init__(self):
    values = (self.base_points, self.base_odds, self.points_to_double)
    if not all(isinstance(v, (int, float)) and math.isfinite(v)
               for v in values):
      raise ValueError(f"scorecard values {values} must be finite numbers")
    if self.base_odds <= 0 or self.points_to_double <= 0:
      raise ValueError("base_odds and points_to_double must be positive")

  def points(self, scores: np.ndarray) -> np.ndarray:
    """Points of good-credit probabilities."""
    factor = self.points_to_double / math.log(2)
    offset = self.base_points - factor * math.log(self.base_odds)
    clipped = np.clip(np.asarray(scores, float), 1e-9, 1 - 1e-9)
    return offset + factor * np.log(clipped / (1 - clipped))


def check_bands(bands: Sequence[Sequence[Any]]
                ) -> tuple[tuple[str, float], ...]:
  """Validated bands (name, minimum score), highest minimum first.

  Raises:
    ValueError: a band is not (name, minimum in [0, 1]), a name repeats or
      is ``refuse``, or there is none.
  """
  checked = []
  for band in bands:
    if isinstance(band, str) or len(band) != 2:
      raise ValueError(f"bad band {band!r}; expected (name, minimum score)")
    name, minimum = band
    if (not isinstance(name, str) or not name or isinstance(minimum, bool)
        or not isinstance(minimum, (int, float))
        or not 0 <= minimum <= 1):
      raise ValueError(f"bad band {tuple(band)!r}; expected a name and a "
                       "minimum score in [0, 1], e.g. ('plan_a', 0.9)")
    if name == REFUSE:
      raise ValueError(f"{REFUSE!r} is the decision below every band")
    if any(c in name for c in ",;:\n"):
      raise ValueError(f"band name {name!r} may not hold , ; : or a newline")
    checked.append((name, float(minimum)))
  if not checked:
    raise ValueError("no bands given")
  if len({n for n, _ in checked}) != len(checked):
    raise ValueError(f"band names repeat in {bands!r}")
  return tuple(sorted(checked, key=lambda b: -b[1]))


def parse_bands(text: str) -> tuple[tuple[str, float], ...]:
  """``"plan_a:0.9,plan_b:0.8"`` -> bands, highest minimum first."""
  bands = []
  for part in filter(None, (p.strip() for p in text.split(","))):
    name, sep, minimum = part.partition(":")
    try:
      value = float(minimum)
    except ValueError:
      value = math.nan
    if not sep or not name or not 0 <= value <= 1:
      raise ValueError(f"bad band {part!r}; expected NAME:MIN_SCORE with "
                       "MIN_SCORE in [0, 1], e.g. plan_a:0.9,plan_b:0.8")
    bands.append((name, value))
  if len({n for n, _ in bands}) != len(bands):
    raise ValueError(f"band names repeat in {text!r}")
  return check_bands(bands)


def decide(scores: np.ndarray, bands: Sequence[tuple[str, float]]
           ) -> np.ndarray:
  """The plan of the first band whose minimum each score reaches, or refuse."""
  decisions = np.full(np.shape(scores), REFUSE, dtype=object)
  undecided = np.ones(np.shape(scores), dtype=bool)
  for name, minimum in bands:
    hit = undecided & (np.asarray(scores) >= minimum)
    decisions[hit] = name
    undecided &= ~hit
  return decisions


@dataclasses.dataclass(frozen=True)
class ScoringSettings:
  """Everything about scoring that is policy, not data (validated).

  Attributes:
    bands: (plan, minimum score) pairs; below every band the loan is refused.
    scorecard: the points scale.
    num_reasons: reasons per applicant; 0 explains refused applicants only
      (each gets one reason) and skips the ``contribution/`` columns.
    batch_size: graphs per model call (speed and memory only: it never
      changes a result).
    score_partial: score applicants who lost records from what is left.
    attribution: how a feature's contribution is taken. ``"own_record"``
      (default): gradient x input of the score of the applicant's own node
      alone, so a score splits as score alone (own records, explained per
      feature) plus ``related_borrowers`` (score minus score alone); about
      1.1 forward passes. ``"in_graph"``: gradient x input of the score in
      the full graph (own features also act through the neighbours'
      aggregation); about 2.3 forward passes.
    sensitive_column: a column of the borrowers table to report fairness
      by ("": no fairness report).
    sensitive_bins: inner edges that group a numeric sensitive column (an
      age: (25, 35, 50)); () groups by value.
    default_column: a 0/1 column of the borrowers table, 1 where the loan
      defaulted, for the fairness report's AUC and error rates ("": none).
  """

  bands: tuple[tuple[str, float], ...] = DEFAULT_BANDS
  scorecard: Scorecard = Scorecard()
  num_reasons: int = 3
  batch_size: int = 1024
  score_partial: bool = False
  attribution: str = "own_record"
  sensitive_column: str = ""
  sensitive_bins: tuple[float, ...] = ()
  default_column: str = ""

  def __post_init__(self):
    object.__setattr__(self, "bands", check_bands(self.bands))
    for name in ("num_reasons", "batch_size"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be an integer")
    if self.num_reasons < 0:
      raise ValueError(f"num_reasons={self.num_reasons} must be >= 0 (0: "
                       "reasons for refused applicants only)")
    if self.batch_size < 1:
      raise ValueError(f"batch_size={self.batch_size} must be >= 1")
    if not isinstance(self.score_partial, bool):
      raise ValueError(f"score_partial={self.score_partial!r} must be a bool")
    if self.attribution not in ATTRIBUTIONS:
      raise ValueError(f"unknown attribution {self.attribution!r}; expected "
                       f"one of {list(ATTRIBUTIONS)}")
    self._check_fairness_fields()

  def _check_fairness_fields(self):
    """Raises ValueError unless the fairness report's fields are usable."""
    for name in ("sensitive_column", "default_column"):
      if not isinstance(getattr(self, name), str):
        raise ValueError(f"{name}={getattr(self, name)!r} must be a column "
                         "name (a string; empty for none)")
    bins = self.sensitive_bins
    if not isinstance(bins, (tuple, list)) or not all(
        isinstance(b, (int, float)) and not isinstance(b, bool)
        and math.isfinite(b) for b in bins) or any(
            b <= a for a, b in zip(bins, bins[1:])):
      raise ValueError(f"sensitive_bins={bins!r} must be increasing finite "
                       "numbers, e.g. (25, 35, 50)")
    if bins and not self.sensitive_column:
      raise ValueError("sensitive_bins need a sensitive_column")
    object.__setattr__(self, "sensitive_bins", tuple(float(b) for b in bins))

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "ScoringSettings":
    """Settings from a config like ``experiments/configs/score.py``.

    Raises:
      ValueError: a field is missing, unknown or out of range.
    """
    expected = {"bands", "base_points", "base_odds", "points_to_double",
                "num_reasons", "attribution", "batch_size", "score_partial",
                "sensitive_column", "sensitive_bins", "default_column"}
    given = set(config.keys())
    if given != expected:
      raise ValueError(f"config fields {sorted(given)} differ from "
                       f"{sorted(expected)} (missing "
                       f"{sorted(expected - given)}, unknown "
                       f"{sorted(given - expected)})")
    return cls(
        bands=tuple(tuple(b) for b in config.bands),
        scorecard=Scorecard(config.base_points, config.base_odds,
                            config.points_to_double),
        num_reasons=config.num_reasons, batch_size=config.batch_size,
        score_partial=config.score_partial, attribution=config.attribution,
        sensitive_column=config.sensitive_column,
        sensitive_bins=tuple(config.sensitive_bins),
        default_column=config.default_column)


# Step 1: extract.


@dataclasses.dataclass(frozen=True)
class Applicants:
  """The applicants that can be scored, their relations and what was refused.

  Attributes:
    features: one row per scorable applicant, indexed by ``borrower_id``, in
      the borrowers table's order.
    src: borrower ids of the usable relations' first endpoints.
    dst: their second endpoints.
    rejects: every rejected record (``features.REJECT_COLUMNS``), edges
      included.
    unscored: applicants (ids of the borrowers table) that will not be
      scored.
    summary: counts.
  """

  features: pd.DataFrame
  src: np.ndarray
  dst: np.ndarray
  rejects: pd.DataFrame
  unscored: pd.Index
  summary: dict[str, Any]


def extract_applicants(borrowers: pd.DataFrame, loans: pd.DataFrame,
                       installments: pd.DataFrame,
                       edges: pd.DataFrame | None, *, as_of,
                       score_partial: bool = False) -> Applicants:
  """Step 1: features of every applicant and its checked relations.

  Args:
    borrowers: applicants' borrowers table.
    loans: their loans.
    installments: their installments.
    edges: optional relations (``src``, ``dst`` borrower ids).
    as_of: the snapshot date of the records (``YYYY-MM-DD`` or a date).
    score_partial: score applicants who lost records from what is left.

  Returns:
    An :class:`Applicants`.
  """
  extracted = features_lib.extract_features_with_rejects(
      borrowers, loans, installments, as_of=as_of,
      keep_partial=score_partial)
  known = pd.Index(borrowers["borrower_id"].dropna().unique())
  unscored = known.difference(extracted.features.index, sort=False)
  rejects = [extracted.rejects]
  src = dst = np.zeros(0, dtype=object)
  dropped: dict[str, int] = {}
  if edges is not None:
    checked = features_lib.check_edges(edges, known, unscored)
    src, dst, dropped = checked.src, checked.dst, checked.dropped
    rejects.append(checked.rejects)
  rejects = pd.concat([r for r in rejects if len(r)] or [rejects[0]],
                      ignore_index=True)
  summary = {
      "applicants": int(known.size),
      "scored_partially": int(extracted.affected_borrowers.size
                              if score_partial else 0),
      "rejected_records": int(len(rejects)),
      "edges": 0 if edges is None else int(len(edges)),
      "edges_used": int(len(src)),
      "edges_dropped": dropped,
  }
  return Applicants(extracted.features, src, dst, rejects, unscored, summary)


# Step 2: encode.


def encode_applicants(saved: model_io.SavedModel,
                      table: pd.DataFrame) -> np.ndarray:
  """Step 2: the model's input columns of every applicant (float32).

  Args:
    saved: the model (its encoder holds the training statistics).
    table: features indexed by ``borrower_id``.

  Returns:
    [applicants, columns] float32.
  """
  return saved.encoder.encode(table)


# Step 3: graph.


def _mix(x: np.ndarray) -> np.ndarray:
  """SplitMix64's finaliser: a bijection of uint64 that scrambles every bit."""
  x = np.asarray(x, dtype=np.uint64)
  with np.errstate(over="ignore"):
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def id_hashes(ids: Sequence[Any]) -> np.ndarray:
  """A 64-bit SipHash of every id's text (stable across runs and machines)."""
  text = np.asarray([str(i) for i in ids], dtype=object)
  if not text.size:
    return np.zeros(0, dtype=np.uint64)
  return pd.util.hash_array(text, hash_key=_HASH_KEY, categorize=False)


def _order_within_owners(owner: np.ndarray, keys: np.ndarray) -> np.ndarray:
  """The permutation sorting by (owner, key).

  One sort of a single uint64: the owner in the high bits, the key's top
  bits below it; only if two keys of an owner share those bits (about
  2^-40 per pair) does it fall back to the exact two-key sort.
  """
  owner_bits = max(1, int(owner[-1]).bit_length())
  combined = (owner.astype(np.uint64) << np.uint64(64 - owner_bits)) | (
      keys >> np.uint64(owner_bits))
  order = np.argsort(combined)
  ordered = combined[order]
  if np.any(ordered[1:] == ordered[:-1]):
    return np.lexsort((keys, owner))
  return order


def _choose(graph: graphs_lib.BorrowerGraph, rows: np.ndarray,
            path_keys: np.ndarray, fanout: int, hashes: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
  """The ``fanout`` neighbours of every row with the smallest keys.

  A candidate's key is mix(its parent's path key + mix(its id hash)); it is
  also the path key of the chosen node for the next hop. Rows of -1 get no
  neighbours.

  Returns:
    ([R, fanout] chosen rows, -1 where fewer; their [R, fanout] keys).
  """
  rows = np.asarray(rows, dtype=np.int64)
  valid = rows >= 0
  safe = np.where(valid, rows, 0)
  starts = graph.indptr[safe]
  lengths = np.where(valid, graph.indptr[safe + 1] - starts, 0)
  chosen = np.full((rows.shape[0], fanout), -1, dtype=np.int64)
  keys = np.zeros((rows.shape[0], fanout), dtype=np.uint64)
  total = int(lengths.sum())
  if total == 0 or fanout == 0:
    return chosen, keys
  owner = np.repeat(np.arange(rows.shape[0]), lengths)
  first = np.repeat(np.cumsum(lengths) - lengths, lengths)
  candidates = graph.indices[np.repeat(starts, lengths) + np.arange(total)
                             - first]
  with np.errstate(over="ignore"):
    candidate_keys = _mix(path_keys[owner] + _mix(hashes[candidates]))
  order = _order_within_owners(owner, candidate_keys)
  candidates, candidate_keys = candidates[order], candidate_keys[order]
  rank = np.arange(total) - first
  take = rank < fanout
  chosen[owner[take], rank[take]] = candidates[take]
  keys[owner[take], rank[take]] = candidate_keys[take]
  return chosen, keys


def sample_neighbourhoods(graph: graphs_lib.BorrowerGraph,
                          hashes: np.ndarray, fanouts: Sequence[int],
                          seed: int) -> np.ndarray:
  """Step 3: the nodes of every applicant's graph, by the keyed-hash rule.

  Slot layout per applicant (as ``graphs.sample_unpadded``): the applicant,
  then ``fanouts[0]`` neighbours, then ``fanouts[1]`` neighbours of each of
  those, and so on; every node's children are in key order.

  Args:
    graph: relations among the applicants (rows of ``hashes``).
    hashes: [applicants] :func:`id_hashes` of the applicants' ids.
    fanouts: neighbours taken per hop.
    seed: the model's sampling seed.

  Returns:
    [applicants, graphs.graph_slots(fanouts)] applicant rows, -1 for an
    empty slot.
  """
  count = graph.num_nodes
  seed_key = _mix(np.uint64(seed % (1 << 64)) ^ np.uint64(0x9E3779B97F4A7C15))
  with np.errstate(over="ignore"):
    keys = _mix(seed_key + _mix(hashes))[:, None]
  levels = [np.arange(count, dtype=np.int64)[:, None]]
  for fanout in fanouts:
    chosen, keys = _choose(graph, levels[-1].reshape(-1), keys.reshape(-1),
                           fanout, hashes)
    levels.append(chosen.reshape(count, levels[-1].shape[1] * fanout))
  return np.concatenate(levels, axis=1)


def _neighbourhoods_of(saved: model_io.SavedModel,
                       applicants: Applicants) -> np.ndarray:
  """Step 3 over step 1's applicants and their relations."""
  ids = applicants.features.index.to_numpy()
  position = pd.Index(ids)
  graph = graphs_lib.BorrowerGraph.from_edges(
      len(ids), position.get_indexer(applicants.src),
      position.get_indexer(applicants.dst))
  return sample_neighbourhoods(graph, id_hashes(ids), saved.fanouts,
                               saved.sampling_seed)


# Step 4: batch.


def _round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


def make_batches(neighbourhoods: np.ndarray, node_features: np.ndarray,
                 fanouts: Sequence[int], batch_size: int,
                 rows: np.ndarray | None = None
                 ) -> Iterator[tuple[np.ndarray, jraph.GraphsTuple]]:
  """Step 4: padded batches of ``batch_size`` graphs, one per applicant.

  Every batch has the same budget (``batch_size`` graphs and the nodes of
  the fullest batch, plus padding, at least ``MIN_GRAPHS_PER_CALL`` graphs
  and ``MIN_NODES_PER_CALL`` nodes, rounded up to ``ROW_MULTIPLE``), so the
  model compiles once and no graph's result depends on it.

  Args:
    neighbourhoods: :func:`sample_neighbourhoods`' slot rows.
    node_features: [applicants, columns] encoded features.
    fanouts: the fanouts the slots were sampled with.
    batch_size: graphs per batch.
    rows: the applicants to batch (default: all, in order).

  Yields:
    (applicant rows of the batch, padded GraphsTuple).
  """
  rows = np.arange(neighbourhoods.shape[0]) if rows is None else rows
  if not rows.size:
    return
  nodes = (neighbourhoods[rows] >= 0).sum(1)
  starts = range(0, rows.size, batch_size)
  most_nodes = max(int(nodes[s:s + batch_size].sum()) for s in starts)
  n_node = _round_up(max(most_nodes + 1, MIN_NODES_PER_CALL), ROW_MULTIPLE)
  n_graph = _round_up(max(batch_size, MIN_GRAPHS_PER_CALL) + 1, ROW_MULTIPLE)
  budget = graphs_lib.BatchBudget(n_node=n_node, n_edge=2 * n_node,
                                  n_graph=n_graph)
  no_labels = np.zeros(node_features.shape[0], np.float32)
  for start in starts:
    batch_rows = rows[start:start + batch_size]
    unpadded = graphs_lib.assemble_slots(neighbourhoods[batch_rows], fanouts,
                                         node_features, no_labels)
    yield batch_rows, graphs_lib.pad_batch(unpadded, budget)


# Step 5: score.


def _alone(graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
  """Every graph's own node alone: one node, no edges."""
  first = jnp.cumsum(graphs.n_node) - graphs.n_node
  first = jnp.clip(first, 0, graphs.nodes.shape[0] - 1)
  count = graphs.n_node.shape[0]
  return graphs._replace(
      nodes=graphs.nodes[first], senders=jnp.zeros(0, jnp.int32),
      receivers=jnp.zeros(0, jnp.int32), n_node=jnp.ones(count, jnp.int32),
      n_edge=jnp.zeros(count, jnp.int32))


@functools.partial(jax.jit, static_argnames=("arch",))
def _scores_only(weights, graphs, arch):
  """Scores of every graph (no attribution: about 2.3x cheaper)."""
  return jax.nn.sigmoid(model_lib.apply(weights, {}, graphs, arch))


@functools.partial(jax.jit, static_argnames=("arch", "attribution"))
def _scores_and_attributions(weights, graphs, baseline, arch,
                             attribution="own_record"):
  """Scores, gradient x input on every graph's own columns, scores alone.

  ``"own_record"``: the gradient of the score of the applicant's node alone
  (a one-node graph), about a tenth of a forward pass more. ``"in_graph"``:
  the gradient of the score in the full graph, a full backward pass more.
  """
  alone_graphs = _alone(graphs)
  if attribution == "own_record":
    scores = jax.nn.sigmoid(model_lib.apply(weights, {}, graphs, arch))
    target, nodes, first = alone_graphs, alone_graphs.nodes, None
  elif attribution == "in_graph":
    target, nodes = graphs, graphs.nodes
    first = jnp.clip(jnp.cumsum(graphs.n_node) - graphs.n_node, 0,
                     graphs.nodes.shape[0] - 1)
  else:
    raise ValueError(f"unknown attribution {attribution!r}; expected one of "
                     f"{list(ATTRIBUTIONS)}")

  def total_score(values):
    logits = model_lib.apply(weights, {}, target._replace(nodes=values), arch)
    target_scores = jax.nn.sigmoid(logits)
    return jnp.sum(target_scores), target_scores

  gradient, target_scores = jax.grad(total_score, has_aux=True)(nodes)
  if attribution == "own_record":
    return scores, gradient * (nodes - baseline), target_scores
  alone = jax.nn.sigmoid(model_lib.apply(weights, {}, alone_graphs, arch))
  return target_scores, gradient[first] * (nodes[first] - baseline), alone


@dataclasses.dataclass(frozen=True)
class ModelOutputs:
  """What the model said about each applicant.

  Attributes:
    scores: [applicants] probability of good credit.
    contributions: [applicants, columns] gradient x input on the own node,
      or None without attributions.
    neighbourhood: [applicants] score minus score alone, or None.
  """

  scores: np.ndarray
  contributions: np.ndarray | None
  neighbourhood: np.ndarray | None


def _dispatch(member: model_io.ModelMember, graphs: jraph.GraphsTuple,
              baseline: jax.Array | None, attribution: str) -> tuple:
  """One network's device outputs on a batch, not yet read back: (scores,)
  or, with a ``baseline``, (scores, gradient x input, scores alone)."""
  if baseline is None:
    return (_scores_only(member.weights, graphs, member.arch),)
  return _scores_and_attributions(member.weights, graphs, baseline,
                                  member.arch, attribution)


def _member_mean(outputs: Sequence[tuple], part: int,
                 count: int) -> np.ndarray:
  """The members' mean of one output's first ``count`` rows (float64)."""
  return np.mean([np.asarray(o[part])[:count] for o in outputs], axis=0,
                 dtype=np.float64)


def score_batches(saved: model_io.SavedModel,
                  batches: Iterator[tuple[np.ndarray, jraph.GraphsTuple]],
                  num_applicants: int, *, attributions: bool,
                  attribution: str = "own_record") -> ModelOutputs:
  """Step 5: runs the model (every member of an ensemble) over the batches.

  Every batch is dispatched before any result is read back, so building
  the next batch overlaps the model's work on the last. An ensemble's
  outputs are the mean of its members' (see the module docstring).

  Args:
    saved: the model.
    batches: :func:`make_batches`' output.
    num_applicants: rows of the outputs.
    attributions: also compute gradient x input and scores alone.
    attribution: how the gradient is taken, one of ``ATTRIBUTIONS`` (see
      :class:`ScoringSettings`).

  Returns:
    A :class:`ModelOutputs`; rows not in any batch stay NaN.
  """
  pending = []
  baseline = None
  for rows, graphs in batches:
    if attributions and baseline is None:
      baseline = jnp.zeros(graphs.nodes.shape[1], jnp.float32)
    pending.append((rows, graphs.n_node[:rows.size],
                    [_dispatch(member, graphs, baseline, attribution)
                     for member in saved.members]))
  scores = np.full(num_applicants, np.nan)
  contributions = neighbourhood = None
  if attributions:
    contributions = np.zeros((num_applicants,
                              len(saved.encoder.column_names)))
    neighbourhood = np.zeros(num_applicants)
  for rows, n_node, outputs in pending:
    count = rows.size
    scores[rows] = _member_mean(outputs, 0, count)
    if attributions:
      contributions[rows] = _member_mean(outputs, 1, count)
      alone = _member_mean(outputs, 2, count)
      # One node: the neighbourhood is empty, its effect exactly 0.
      neighbourhood[rows] = np.where(n_node > 1, scores[rows] - alone, 0.0)
  return ModelOutputs(scores, contributions, neighbourhood)


def calibrate(saved: model_io.SavedModel,
              outputs: ModelOutputs) -> ModelOutputs:
  """Step 5b: the scores through the model's calibration map (as they are
  without one); contributions stay in the network's score units."""
  if saved.calibration is None:
    return outputs
  return dataclasses.replace(outputs, scores=calibration_lib.apply_map(
      saved.calibration, outputs.scores))


def _run_model(saved: model_io.SavedModel, neighbourhoods: np.ndarray,
               node_features: np.ndarray, settings: ScoringSettings
               ) -> tuple[np.ndarray, ModelOutputs, ModelOutputs | None,
                          np.ndarray | None]:
  """Steps 4 to 5b: the network's scores, the calibrated outputs, and
  without reasons for everyone the refused applicants' attributions and
  rows."""
  count = node_features.shape[0]
  with_reasons = settings.num_reasons > 0
  network = score_batches(
      saved, make_batches(neighbourhoods, node_features, saved.fanouts,
                          settings.batch_size), count,
      attributions=with_reasons, attribution=settings.attribution)
  outputs = calibrate(saved, network)
  refused_outputs = refused_rows = None
  if not with_reasons:
    refused_rows = np.flatnonzero(decide(outputs.scores, settings.bands)
                                  == REFUSE)
    if refused_rows.size:
      refused_outputs = score_batches(
          saved, make_batches(neighbourhoods, node_features, saved.fanouts,
                              settings.batch_size, refused_rows), count,
          attributions=True, attribution=settings.attribution)
  return network.scores, outputs, refused_outputs, refused_rows


# Step 6: explain.


def _reason_strings(contributions: np.ndarray, names: Sequence[str],
                    count: int) -> np.ndarray:
  """"a;b;c": the ``count`` most negative contributions of each row, most
  negative first, built column by column (no loop over applicants)."""
  order = np.argsort(contributions, axis=1, kind="stable")[:, :count]
  values = np.take_along_axis(contributions, order, axis=1)
  labels = np.asarray(names, dtype=object)[order]
  reasons = np.full(contributions.shape[0], "", dtype=object)
  for k in range(order.shape[1]):
    lowers = values[:, k] < 0
    separator = np.where(reasons == "", "", ";")
    reasons = np.where(lowers, reasons + separator + labels[:, k], reasons)
  return reasons


def feature_columns(saved: model_io.SavedModel) -> dict[str, list[int]]:
  """Every feature the model reads (in the order of its members' gate
  groups, first appearance first) and its distinct encoded columns,
  ascending."""
  columns: dict[str, set[int]] = {}
  for arch, _ in saved.members:
    for group, name in enumerate(arch.group_names):
      columns.setdefault(model_lib.feature_of(name), set()).update(
          int(c) for c, g in zip(arch.input_columns, arch.column_groups)
          if g == group)
  return {feature: sorted(c) for feature, c in columns.items()}


def reason_names(saved: model_io.SavedModel) -> tuple[str, ...]:
  """The reason codes of a model: the features its members read, then the
  neighbourhood."""
  return tuple(feature_columns(saved)) + (NEIGHBOURHOOD_REASON,)


def feature_contributions(saved: model_io.SavedModel,
                          outputs: ModelOutputs) -> np.ndarray:
  """[applicants, reasons] contributions in :func:`reason_names` order: a
  feature's is the sum over its distinct encoded columns."""
  per_feature = [outputs.contributions[:, columns].sum(1)
                 for columns in feature_columns(saved).values()]
  return np.stack(per_feature + [outputs.neighbourhood], axis=1)


def explain(saved: model_io.SavedModel, ids: np.ndarray,
            outputs: ModelOutputs, settings: ScoringSettings,
            refused_outputs: ModelOutputs | None = None,
            refused_rows: np.ndarray | None = None) -> pd.DataFrame:
  """Step 6: points, decisions and reasons.

  Args:
    saved: the model.
    ids: [applicants] borrower ids.
    outputs: :func:`score_batches`' output over every applicant.
    settings: bands, points scale and reasons.
    refused_outputs: attributions of the refused applicants alone, when
      ``outputs`` has none (``num_reasons`` 0).
    refused_rows: their rows.

  Returns:
    ``OUTPUT_COLUMNS``, then ``contribution/<reason>`` columns when
    ``num_reasons`` > 0.
  """
  scores = outputs.scores
  decisions = decide(scores, settings.bands)
  refused = decisions == REFUSE
  names = reason_names(saved)
  reasons = np.full(scores.shape[0], "", dtype=object)
  per_feature = None
  if outputs.contributions is not None:
    per_feature = feature_contributions(saved, outputs)
    reasons = _reason_strings(per_feature, names, settings.num_reasons)
  if refused_outputs is not None and refused_rows is not None:
    reasons[refused_rows] = _reason_strings(
        feature_contributions(saved, refused_outputs)[refused_rows], names,
        max(settings.num_reasons, 1))
  # An adverse-action notice needs a reason even when no single factor was
  # worse than the average borrower's.
  reasons[refused & (reasons == "")] = LOW_SCORE_REASON
  output = pd.DataFrame({
      "borrower_id": ids,
      "score": scores,
      "points": settings.scorecard.points(scores).round(1),
      "decision": decisions,
      "reasons": reasons,
  })
  if settings.num_reasons > 0 and per_feature is not None:
    for k, name in enumerate(names):
      output[f"contribution/{name}"] = per_feature[:, k]
  return output


# Step 7: monitor.


def population_stability(saved: model_io.SavedModel, table: pd.DataFrame,
                         network_scores: np.ndarray) -> dict | None:
  """Step 7: the PSI of the scored applicants against the model's training
  population (``stability.stability_report``), or None without one.

  Args:
    saved: the model.
    table: the scored applicants' features (step 1's).
    network_scores: their scores before calibration.
  """
  if saved.population is None:
    return None
  columns = {name: table[name].to_numpy() for name in
             saved.population["features"] if name in table.columns}
  return stability_lib.stability_report(saved.population, network_scores,
                                        columns)


def _outcomes(table: pd.DataFrame, column: str) -> tuple[np.ndarray | None,
                                                         str | None]:
  """Good-credit labels (1 - default) of a 0/1 default column, or None and
  the reason there are none."""
  if not column:
    return None, None
  if column not in table.columns:
    return None, (f"fairness: default column {column!r} is not in the "
                  "borrowers table: no outcomes used")
  defaults = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
  if not np.isin(defaults, (0.0, 1.0)).all():
    return None, (f"fairness: default column {column!r} holds values other "
                  "than 0 and 1: no outcomes used")
  return 1.0 - defaults, None


def fairness_report(borrowers: pd.DataFrame, scores: pd.DataFrame,
                    settings: ScoringSettings) -> dict | None:
  """Step 8: approvals, AUC and error rates per group of
  ``settings.sensitive_column`` (``fairness.sensitive_report``), or None
  where none is set.

  Args:
    borrowers: the applicants' borrowers table (the sensitive and default
      columns are read from it).
    scores: :func:`explain`'s rows of the scored applicants.
    settings: the sensitive column, its bins and the default column.
  """
  column = settings.sensitive_column
  if not column:
    return None
  ids = scores["borrower_id"].to_numpy()
  table = borrowers[borrowers["borrower_id"].isin(ids)].drop_duplicates(
      "borrower_id").set_index("borrower_id").reindex(ids)
  labels, note = _outcomes(table, settings.default_column)
  report = fairness_lib.sensitive_report(
      column, table[column].to_numpy() if column in table.columns else None,
      scores["decision"].to_numpy() != REFUSE, labels=labels,
      scores=scores["score"].to_numpy(), bins=settings.sensitive_bins)
  report["default_column"] = settings.default_column or None
  if note:
    report["messages"].insert(0, note)
  return report


# The composition.


@dataclasses.dataclass(frozen=True)
class ScoringResult:
  """Scores of the applicants, every rejected record, and a summary.

  Attributes:
    scores: ``OUTPUT_COLUMNS`` plus one ``contribution/<reason>`` column per
      reason code when reasons were asked for.
    rejects: every rejected record (table, row, field, value, reason,
      borrower_id), and one row per applicant left unscored.
    summary: counts and seconds per stage.
    stability: :func:`population_stability` of the scored applicants, or
      None (the model keeps no training population).
    fairness: :func:`fairness_report`, or None (no sensitive column).
  """

  scores: pd.DataFrame
  rejects: pd.DataFrame
  summary: dict
  stability: dict | None = None
  fairness: dict | None = None


def _unscored_rows(ids: Sequence[Any], reason: str) -> pd.DataFrame:
  return pd.DataFrame({
      "table": "applicants", "row": -1, "field": "borrower_id",
      "value": [str(b) for b in ids], "reason": reason,
      "borrower_id": list(ids)}, columns=list(features_lib.REJECT_COLUMNS))


def score_applicants(saved: model_io.SavedModel, borrowers: pd.DataFrame,
                     loans: pd.DataFrame, installments: pd.DataFrame,
                     edges: pd.DataFrame | None = None, *, as_of,
                     settings: ScoringSettings = ScoringSettings()
                     ) -> ScoringResult:
  """Scores a batch of applicants from their raw records.

  Every applicant of the borrowers table is either in the scores or listed
  in the rejects, and an applicant's row of the scores is the same whatever
  the other applicants, their order or the batch size.

  Args:
    saved: a loaded model.
    borrowers: applicants' borrowers table.
    loans: their loans.
    installments: their installments.
    edges: optional relations (``src``, ``dst`` borrower ids).
    as_of: the snapshot date of the records (``YYYY-MM-DD`` or a date).
    settings: bands, points scale, reasons, batch size.

  Returns:
    A :class:`ScoringResult`.
  """
  timings = {}
  start = time.perf_counter()
  applicants = extract_applicants(borrowers, loans, installments, edges,
                                  as_of=as_of,
                                  score_partial=settings.score_partial)
  timings["extract_seconds"] = time.perf_counter() - start

  start = time.perf_counter()
  ids = applicants.features.index.to_numpy()
  node_features = encode_applicants(saved, applicants.features)
  neighbourhoods = _neighbourhoods_of(saved, applicants)
  timings["graph_seconds"] = time.perf_counter() - start

  start = time.perf_counter()
  network_scores, outputs, refused_outputs, refused_rows = _run_model(
      saved, neighbourhoods, node_features, settings)
  timings["model_seconds"] = time.perf_counter() - start

  start = time.perf_counter()
  finite = np.isfinite(outputs.scores)
  output = explain(saved, ids, outputs, settings, refused_outputs,
                   refused_rows)
  output = output[finite].reset_index(drop=True)
  timings["explain_seconds"] = time.perf_counter() - start

  start = time.perf_counter()
  stability = population_stability(
      saved, applicants.features.iloc[np.flatnonzero(finite)],
      network_scores[finite])
  fairness = fairness_report(borrowers, output, settings)
  timings["monitor_seconds"] = time.perf_counter() - start

  parts = [applicants.rejects,
           _unscored_rows(applicants.unscored,
                          "not scored: has rejected records"),
           _unscored_rows(ids[~finite], "not scored: the model gave a "
                          "non-finite score")]
  parts = [p for p in parts if len(p)]
  rejects = (pd.concat(parts, ignore_index=True) if parts else
             pd.DataFrame(columns=list(features_lib.REJECT_COLUMNS)))
  summary = {
      **applicants.summary,
      "scored": int(len(output)),
      "rejected_applicants": int(applicants.unscored.size
                                 + (~finite).sum()),
      "decisions": {str(k): int(v) for k, v in
                    output["decision"].value_counts().items()},
      "calibration": (saved.calibration["method"] if saved.calibration
                      else None),
      **timings,
  }
  return ScoringResult(output, rejects, summary, stability, fairness)


# Files: checked paths and atomic writes.


def _same_file(a: str, b: str) -> bool:
  if os.path.realpath(a) == os.path.realpath(b):
    return True
  try:
    return os.path.samefile(a, b)
  except OSError:
    return False


def check_paths(inputs: Mapping[str, str | None],
                outputs: Mapping[str, str]) -> None:
  """Checks every path before any work.

  Inputs must be readable files; outputs must end in ``.csv`` or
  ``.parquet``, differ from every input and from each other, lie outside
  the model directory, and be writable (their directory exists and takes a
  new file; an existing output is a writable file).

  Args:
    inputs: name -> path (None: not given).
    outputs: name -> path.

  Raises:
    ScoringError: naming the flag and the path.
  """
  given = {k: v for k, v in inputs.items() if v}
  for name, path in given.items():
    if not os.path.exists(path):
      raise ScoringError(f"--{name}={path}: not found")
    if os.path.isdir(path) and name != "model_dir":
      raise ScoringError(f"--{name}={path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
      raise ScoringError(f"--{name}={path}: not readable")
  protected = dict(given)
  if "model_dir" in given and os.path.isdir(given["model_dir"]):
    for entry in os.listdir(given["model_dir"]):
      protected[f"model_dir ({entry})"] = os.path.join(given["model_dir"],
                                                       entry)
  seen: dict[str, str] = {}
  for name, path in outputs.items():
    if not path:
      raise ScoringError(f"--{name} is empty")
    if not path.endswith(TABLE_SUFFIXES):
      raise ScoringError(f"--{name}={path}: expected a .csv or .parquet "
                         "file name")
    for other_name, other in list(protected.items()) + list(seen.items()):
      if _same_file(path, other):
        raise ScoringError(f"--{name}={path} is the same file as "
                           f"--{other_name}={other}; refusing to overwrite "
                           "it")
    directory = os.path.dirname(os.path.abspath(path))
    model_dir = given.get("model_dir")
    if model_dir and os.path.isdir(directory) and _same_file(directory,
                                                             model_dir):
      raise ScoringError(f"--{name}={path} is inside --model_dir={model_dir}"
                         "; a model directory holds the model alone")
    if not os.path.isdir(directory):
      raise ScoringError(f"--{name}={path}: directory {directory} does not "
                         "exist")
    if os.path.isdir(path):
      raise ScoringError(f"--{name}={path}: is a directory")
    if os.path.exists(path) and (not os.path.isfile(path)
                                 or not os.access(path, os.W_OK)):
      raise ScoringError(f"--{name}={path}: exists and is not a writable "
                         "file")
    try:
      handle, probe = tempfile.mkstemp(prefix=".score-probe-", dir=directory)
      os.close(handle)
      os.remove(probe)
    except OSError as error:
      raise ScoringError(f"--{name}={path}: cannot write in {directory} "
                         f"({error.strerror})") from None
    seen[name] = path


def write_tables(tables: Sequence[tuple[pd.DataFrame, str, bool]]) -> None:
  """Writes every (frame, path, index) to a temporary file beside its path,
  then renames them all into place; on any failure none is replaced.

  Raises:
    ScoringError: naming the path that could not be written.
  """
  staged = []
  try:
    for frame, path, index in tables:
      directory = os.path.dirname(os.path.abspath(path))
      handle, temporary = tempfile.mkstemp(
          prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
      os.close(handle)
      staged.append((temporary, path))
      try:
        if path.endswith(".parquet"):
          frame.to_parquet(temporary, index=index)
        else:
          frame.to_csv(temporary, index=index)
      except (OSError, ValueError) as error:
        raise ScoringError(f"{path}: could not be written ({error})"
                           ) from None
    for temporary, path in staged:
      os.replace(temporary, path)
    staged = []
  except OSError as error:
    raise ScoringError(f"could not write the outputs ({error})") from None
  finally:
    for temporary, _ in staged:
      if os.path.exists(temporary):
        os.remove(temporary)


def _log_stability(report: dict | None) -> None:
  """One line where there is no number, one per variable over 0.25."""
  if report is None:
    logging.info("stability: the model keeps no training population "
                 "(population.json): no PSI")
    return
  if report["score"]["psi"] is None:
    logging.info("stability: %s: no PSI", report["score"]["note"])
    return
  variables = {"score": report["score"], **{
      f"feature {name!r}": entry for name, entry in report["features"].items()
  }}
  for name, entry in variables.items():
    if entry["psi"] is not None and entry["psi"] > stability_lib.MAJOR_SHIFT:
      logging.warning("stability: %s has PSI %.3f against the training "
                      "population, over %.2f (a major shift)", name,
                      entry["psi"], stability_lib.MAJOR_SHIFT)


def write_reports(result: ScoringResult, output: str) -> dict[str, str]:
  """Writes ``stability.json`` (always) and ``fairness.json`` (with a
  sensitive column) beside ``output``, and logs their warnings.

  Returns:
    Report name -> path written.
  """
  directory = os.path.dirname(os.path.abspath(output))
  stability = result.stability or {
      "rows": result.summary["scored"], "score": None, "features": {},
      "note": "the model keeps no training population (population.json)"}
  paths = {"stability": os.path.join(directory, STABILITY_FILE)}
  files.write_json(paths["stability"], stability)
  _log_stability(result.stability)
  if result.fairness is not None:
    paths["fairness"] = os.path.join(directory, FAIRNESS_FILE)
    files.write_json(paths["fairness"], result.fairness)
    for message in result.fairness["messages"]:
      logging.warning("%s", message)
  return paths


def _read_tables(paths: Mapping[str, str | None]) -> dict[str, Any]:
  """The record tables (``edges`` None where not given)."""
  return {name: (features_lib.read_records(path, name) if path else None)
          for name, path in paths.items()}


@dataclasses.dataclass(frozen=True)
class RecordFiles:
  """The record tables of a scoring run (``.csv`` or ``.parquet``): the
  borrowers, their loans and installments, and optional relations."""

  borrowers: str
  loans: str
  installments: str
  edges: str | None = None


def score_files(*, model_dir: str | None, records: RecordFiles, as_of: str,
                output: str, rejects: str, settings: ScoringSettings,
                features_only: bool = False) -> dict[str, Any]:
  """Scores record files into a scores file and a rejects file.

  Paths are checked and the model loaded before any table is read; both
  outputs are written to temporary files and renamed into place only when
  both are written; then the reports beside them (:func:`write_reports`).

  Args:
    model_dir: a model directory (unused with ``features_only``).
    records: the record tables.
    as_of: snapshot date, ``YYYY-MM-DD``.
    output: scores (or features) file.
    rejects: rejected records file.
    settings: scoring settings.
    features_only: write the extracted features instead of scores.

  Returns:
    The summary: counts, seconds per stage, the calibration method and the
    reports written.

  Raises:
    ScoringError, ValueError, model_io.ModelFormatError: one-line errors
      naming the file, flag or setting.
  """
  features_lib.parse_as_of(as_of)
  if not features_only and not model_dir:
    raise ScoringError("--model_dir is required unless --features_only")
  inputs = dataclasses.asdict(records)
  check_paths({**inputs, "model_dir": None if features_only else model_dir},
              {"output": output, "rejects": rejects})
  saved = None if features_only else model_io.load_model(model_dir)
  if saved is not None:
    logging.info("%s", calibration_lib.describe(saved.calibration))
  start = time.perf_counter()
  tables = _read_tables(inputs)
  read_seconds = time.perf_counter() - start
  if features_only:
    result = features_lib.extract_features_with_rejects(
        tables["borrowers"], tables["loans"], tables["installments"],
        as_of=as_of, keep_partial=settings.score_partial)
    start = time.perf_counter()
    write_tables([(result.features, output, True),
                  (result.rejects, rejects, False)])
    known = tables["borrowers"]["borrower_id"].dropna().nunique()
    return {"features": int(len(result.features)),
            "applicants": int(known),
            "rejected_applicants": int(known - len(result.features)),
            "rejected_records": int(len(result.rejects)),
            "read_seconds": read_seconds,
            "write_seconds": time.perf_counter() - start}
  result = score_applicants(saved, tables["borrowers"], tables["loans"],
                            tables["installments"], tables["edges"],
                            as_of=as_of, settings=settings)
  start = time.perf_counter()
  write_tables([(result.scores, output, False),
                (result.rejects, rejects, False)])
  reports = write_reports(result, output)
  return {"read_seconds": read_seconds, **result.summary,
          "reports": reports, "write_seconds": time.perf_counter() - start}
