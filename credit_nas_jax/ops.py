"""Every kind of op the search space offers, each defined in one place.

Two families, each a registry from name to kind:

* Feature embedding kinds (``EMBEDDINGS``): how one input column becomes the
  vector that the feature gate mixes. "linear" is the patent's (x w + b);
  "piecewise" encodes x over quantile bins of the training rows (each bin's
  coordinate rises from 0 to 1 across the bin), and "periodic" as sin and cos of
  trainable frequencies times x (after "On Embeddings for Numerical
  Features in Tabular Deep Learning", Gorishniy et al., 2022); each is then
  embedded by its own linear layer. Every kind's embedding is linear in
  its encoding, so the gated sum of embeddings stays one product over the
  encoded columns (``model.feature_gate``).
* GCN op kinds (``GCN_OPS``): the aggregation a candidate op's first
  product reads (``AGGREGATIONS``) and whether it adds a product over the
  node's own state (a root weight).

A kind carries its name, how it is fitted on the training rows (embeddings),
its width, its initialisation, its apply and its FLOPs; the model, the
derive, the weight cutting and the cost model read them from here, so a new
kind is one entry below.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np

Settings = tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class EmbeddingOptions:
  """Settings of the non-linear embedding kinds.

  Attributes:
    bins: quantile bins of a piecewise encoding (fewer where a column has
      fewer distinct training values).
    frequencies: frequencies of a periodic encoding.
    sigma: standard deviation of the frequencies' initialisation (the
      columns are standardised).
  """

  bins: int = 8
  frequencies: int = 8
  sigma: float = 0.5


@dataclasses.dataclass(frozen=True)
class EmbeddingKind:
  """A feature embedding kind.

  Attributes:
    name: the kind's name (a gate group's suffix).
    fit: (training values of a column, their labels, options) -> the
      column's static settings, or None where the kind adds nothing for that
      column.
    width: settings -> the encoding's width.
    init: (key, settings) -> the encoding's trainable parameters.
    encode: (stacked parameters, [N, m] columns of m entries of this kind,
      the entries' settings) -> [N, sum of widths], entry after entry.
    flops: settings -> FLOPs of encoding one value.
  """

  name: str
  fit: Callable[[np.ndarray, np.ndarray, EmbeddingOptions], Settings | None]
  width: Callable[[Settings], int]
  init: Callable[[jax.Array, Settings], dict[str, jax.Array]]
  encode: Callable[[dict[str, jax.Array], jax.Array, Sequence[Settings]],
                   jax.Array]
  flops: Callable[[Settings], int]


def _bin_edges(edges: np.ndarray) -> Settings | None:
  edges = np.unique(edges)
  # One bin is the linear embedding again.
  return tuple(float(e) for e in edges) if edges.size >= 3 else None


def _fit_piecewise(values: np.ndarray, labels: np.ndarray,
                   options: EmbeddingOptions) -> Settings | None:
  del labels
  finite = values[np.isfinite(values)]
  if finite.size == 0:
    return None
  return _bin_edges(np.quantile(finite, np.linspace(0, 1, options.bins + 1)))


def _encode_piecewise(params, x, settings):
  """Bin t's coordinate: (x - e_t) / (e_{t+1} - e_t), clipped to [0, 1]
  except below the first bin and above the last (which extrapolate)."""
  del params
  blocks = []
  for column, edges in enumerate(settings):
    edges = np.asarray(edges, np.float32)
    lower, upper = edges[:-1], edges[1:]
    t = (x[:, column:column + 1] - lower) / (upper - lower)
    low = np.zeros(lower.size, np.float32)
    high = np.ones(lower.size, np.float32)
    low[0], high[-1] = -np.inf, np.inf
    blocks.append(jnp.clip(t, low, high))
  return jnp.concatenate(blocks, axis=1)


def _fit_periodic(values: np.ndarray, labels: np.ndarray,
                  options: EmbeddingOptions) -> Settings | None:
  del labels
  distinct = np.unique(values[np.isfinite(values)]).size
  return (float(options.frequencies), float(options.sigma)) if (
      distinct > 2) else None


def _init_periodic(key, settings):
  count, sigma = int(settings[0]), settings[1]
  return {"frequencies": sigma * jax.random.normal(key, (count,))}


def _encode_periodic(params, x, settings):
  """[cos(2 pi f x), sin(2 pi f x)] per entry, entry after entry."""
  del settings
  angles = 2 * jnp.pi * x[:, :, None] * params["frequencies"][None]  # N,m,k
  return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)],
                         axis=2).reshape(x.shape[0], -1)


EMBEDDINGS: dict[str, EmbeddingKind] = {
    kind.name: kind for kind in (
        EmbeddingKind(
            name="linear",
            fit=lambda values, labels, options: (),
            width=lambda settings: 1,
            init=lambda key, settings: {},
            encode=lambda params, x, settings: x,
            flops=lambda settings: 0),
        EmbeddingKind(
            name="piecewise",
            fit=_fit_piecewise,
            width=lambda settings: len(settings) - 1,
            init=lambda key, settings: {},
            encode=_encode_piecewise,
            flops=lambda settings: 3 * (len(settings) - 1)),
        EmbeddingKind(
            name="periodic",
            fit=_fit_periodic,
            width=lambda settings: 2 * int(settings[0]),
            init=_init_periodic,
            encode=_encode_periodic,
            # the angles, and a cosine and a sine counted as one FLOP each
            flops=lambda settings: 4 * int(settings[0])),
    )}
EMBEDDING_KINDS = tuple(EMBEDDINGS)


def check_embedding_kinds(kinds: Sequence[str]) -> None:
  """Raises ValueError for a kind that is not registered."""
  unknown = sorted(set(kinds) - set(EMBEDDINGS))
  if unknown:
    raise ValueError(f"unknown feature embedding kinds {unknown}; expected "
                     f"some of {list(EMBEDDING_KINDS)}")


def encode_columns(params: Sequence[dict[str, jax.Array]], x: jax.Array,
                   kinds: Sequence[str],
                   settings: Sequence[Settings]) -> jax.Array:
  """The encoded columns of every entry, in entry order.

  Args:
    params: every entry's trainable parameters.
    x: [N, entries] the column every entry reads.
    kinds: every entry's embedding kind.
    settings: every entry's static settings.

  Returns:
    [N, sum of widths]; consecutive entries of one kind encode together.
  """
  blocks, start = [], 0
  while start < len(kinds):
    end = start
    while end < len(kinds) and kinds[end] == kinds[start]:
      end += 1
    run = params[start:end]
    stacked = (jax.tree.map(lambda *leaves: jnp.stack(leaves), *run)
               if run and run[0] else {})
    blocks.append(EMBEDDINGS[kinds[start]].encode(
        stacked, x[:, start:end], settings[start:end]))
    start = end
  return blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=1)


@dataclasses.dataclass(frozen=True)
class Aggregation:
  """A neighbourhood aggregation a GCN op's first product reads.

  Attributes:
    name: the aggregation's name.
    apply: (h [N, F], graphs) -> [N, F].
    flops: (nodes, edges, F) -> FLOPs of one application.
  """

  name: str
  apply: Callable[[jax.Array, jraph.GraphsTuple], jax.Array]
  flops: Callable[[int, int, int], int]


def gcn_aggregate(h: jax.Array, graphs: jraph.GraphsTuple) -> jax.Array:
  """D^-1/2 (A + I) D^-1/2 h over the batch's edges."""
  num_nodes = h.shape[0]
  ones = jnp.ones(graphs.receivers.shape, h.dtype)
  degree = jax.ops.segment_sum(ones, graphs.receivers, num_nodes) + 1.0
  norm = jax.lax.rsqrt(degree)
  scaled = h * norm[:, None]
  summed = jax.ops.segment_sum(scaled[graphs.senders], graphs.receivers,
                               num_nodes)
  return (summed + scaled) * norm[:, None]


def mean_aggregate(h: jax.Array, graphs: jraph.GraphsTuple) -> jax.Array:
  """Mean of every node's neighbours (zeros for a node without any)."""
  num_nodes = h.shape[0]
  ones = jnp.ones(graphs.receivers.shape, h.dtype)
  degree = jax.ops.segment_sum(ones, graphs.receivers, num_nodes)
  summed = jax.ops.segment_sum(h[graphs.senders], graphs.receivers, num_nodes)
  return summed / jnp.maximum(degree, 1.0)[:, None]


AGGREGATIONS: dict[str, Aggregation] = {
    a.name: a for a in (
        # normalised sum over edges and self loops
        Aggregation("gcn", gcn_aggregate,
                    lambda n, e, f: 2 * (e + n) * f),
        # sum over edges, then a division per node
        Aggregation("mean", mean_aggregate,
                    lambda n, e, f: 2 * e * f + n * f),
        Aggregation("self", lambda h, graphs: h, lambda n, e, f: 0),
    )}


@dataclasses.dataclass(frozen=True)
class GcnOpKind:
  """A candidate op kind of a GCN mixop layer: a two-layer MLP
  F -> width -> D whose first product reads ``source`` (plus, with
  ``root``, a second product over the node's own state).

  Attributes:
    name: the kind's name.
    source: the aggregation its first product reads (``AGGREGATIONS``).
    root: adds a root weight over the node's own state.
  """

  name: str
  source: str
  root: bool = False

  def first_product_flops(self, nodes: int, width_in: int,
                          width: int) -> int:
    """FLOPs of the op's first product(s) over ``nodes`` nodes."""
    return 2 * nodes * width_in * width * (2 if self.root else 1)


GCN_OPS: dict[str, GcnOpKind] = {
    k.name: k for k in (
        GcnOpKind("gcn", source="gcn"),  # the patent's op
        GcnOpKind("sage", source="mean", root=True),
        GcnOpKind("self", source="self"),  # no neighbours
    )}
GCN_OP_KINDS = tuple(GCN_OPS)


def aggregation_flops(kinds: Sequence[str], nodes: int, edges: int,
                      width_in: int) -> int:
  """FLOPs of the aggregations a layer's op kinds read (each once)."""
  sources = {GCN_OPS[k].source for k in kinds}
  return sum(AGGREGATIONS[s].flops(nodes, edges, width_in) for s in sources)


def root_columns(widths: Sequence[int], kinds: Sequence[str],
                 op: int) -> slice:
  """Op ``op``'s columns in the layer's root weight (ops with a root)."""
  start = sum(w for w, k in zip(widths[:op], kinds[:op]) if GCN_OPS[k].root)
  return slice(start, start + widths[op])


def init_embedding_params(key: jax.Array, kinds: Sequence[str],
                          settings: Sequence[Settings]
                          ) -> list[chex.ArrayTree]:
  """Every entry's trainable encoding parameters (``{}`` for none)."""
  return [EMBEDDINGS[k].init(jax.random.fold_in(key, i), s)
          for i, (k, s) in enumerate(zip(kinds, settings))]
