"""The supernet and the derived network, as pure functions over GraphsTuples.

The network (patent section 2 and 3):

1. Feature gate: every feature group i is embedded by its own linear layer
   into ``hidden_dim`` (D); the mixed feature is sum_i gate(a_i) * embed_i.
   Because the groups partition the input columns, the whole gate is one
   matrix product: x @ (W * gate[group][:, None]) + gate @ B; and since it
   is linear, the first GCN layer folds it into its own first product
   (``first_gcn_mixop``).
2. Two GCN mixop layers: symmetric-normalised aggregation with self loops,
   then candidate ops, each a two-layer MLP D -> ratio*D -> D; the layer
   output is ReLU(sum_j gate(b_j) * op_j). The candidates share the
   aggregation; the gates mix the ops' [nodes, D] outputs, so the alpha
   gradient needs no weight-sized product.
   Beyond the patent's ops (kind "gcn"), a layer may offer ops that keep
   the borrower's own state apart: "sage" (mean of the neighbours times one
   weight plus the node's own state times a root weight) and "self" (the
   node's own state alone: no neighbours), so a search can decide how much
   the graph is worth. The extended space also gates the pooled readout
   (below), so a search can drop the neighbourhood from the readout too.
3. A readout after each GCN layer: the borrower's own node state (node 0)
   concatenated with the mean and the max over the graph's real nodes (the
   pooled part, times its gate where the readout is searched, or left out
   of a derived network that dropped it); the two readouts are summed, and
   an MLP 3D (or D) -> D -> 1 gives the logit of good credit (the score is
   its sigmoid).

The same functions run the derived network: it is an ``Architecture`` with a
subset of the feature groups and one op per layer, and fixed gates of 1.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from credit_nas_jax import ops

GATE_FUNCTIONS = ("sigmoid", "softmax")
OP_NAMES = ("big", "medium", "small")
# Candidate op kinds (``ops.GCN_OPS``): "gcn" the normalised aggregation
# with self loops (the patent's op), "sage" the neighbours' mean plus a root
# weight on the node's own state, "self" the node's own state.
OP_KINDS = ops.GCN_OP_KINDS
gcn_aggregate = ops.gcn_aggregate
mean_aggregate = ops.mean_aggregate
# "separate": each op's products apart, its output gated (fewest FLOPs for
# the alpha gradient; fastest on a CPU). "fused": one up-projection over
# every op's hidden units where the ops share their aggregation, the gates
# scaling the hidden units, and one down-projection: fewer, larger products,
# which suit a GPU.
OP_LAYOUTS = ("separate", "fused")
# A gate group of a feature's embedding other than the linear one is named
# "<feature>:<embedding kind>"; the linear embedding's group is the feature's
# own name.
EMBEDDING_SEPARATOR = ":"


def feature_of(group_name: str) -> str:
  """The feature a gate group embeds ("age:periodic" -> "age")."""
  return group_name.partition(EMBEDDING_SEPARATOR)[0]


@dataclasses.dataclass(frozen=True)
class Architecture:
  """Static structure of a network (hashable, so it can be a jit static arg).

  Attributes:
    column_groups: gate group of every input entry: an input column the
      network reads, embedded by one kind.
    input_columns: which column of the batch's node array every entry reads
      (a column appears once per embedding kind it has).
    group_names: name of every feature group.
    layer_ops: per GCN layer, the hidden width of every candidate op.
    layer_op_names: per GCN layer, the name of every candidate op.
    hidden_dim: D.
    layer_op_kinds: per GCN layer, the kind of every candidate op (see
      ``OP_KINDS``); empty means every op is "gcn".
    pooled_readout: the readout has the pooled mean and max of the graph
      beside the borrower's own state.
    readout_searchable: a supernet whose pooled readout has a gate.
    op_layout: how a layer's candidate ops run (see ``OP_LAYOUTS``); the
      same function either way.
    column_embeddings: every entry's embedding kind (``ops.EMBEDDINGS``);
      empty means every entry is "linear" (the patent's).
    column_settings: every entry's static embedding settings (a piecewise
      encoding's bin edges); empty means none.
    gate_function: "sigmoid" (patent) or "softmax" (DARTS) for the alphas.
    searchable: True for the supernet (gates from alphas), False for a
      derived network (every gate is 1).
  """

  column_groups: tuple[int, ...]
  input_columns: tuple[int, ...]
  group_names: tuple[str, ...]
  layer_ops: tuple[tuple[int, ...], ...]
  layer_op_names: tuple[tuple[str, ...], ...]
  hidden_dim: int
  gate_function: str = "sigmoid"
  searchable: bool = True
  layer_op_kinds: tuple[tuple[str, ...], ...] = ()
  pooled_readout: bool = True
  readout_searchable: bool = False
  op_layout: str = "separate"
  column_embeddings: tuple[str, ...] = ()
  column_settings: tuple[tuple[float, ...], ...] = ()

  def __post_init__(self):
    entries = len(self.input_columns)
    if not self.column_embeddings:
      object.__setattr__(self, "column_embeddings", ("linear",) * entries)
    if not self.column_settings:
      object.__setattr__(self, "column_settings", ((),) * entries)
    if not (len(self.column_embeddings) == len(self.column_settings)
            == entries):
      raise ValueError("column_embeddings, column_settings and "
                       "input_columns differ in length")
    ops.check_embedding_kinds(self.column_embeddings)
    if not self.layer_op_kinds:
      object.__setattr__(self, "layer_op_kinds", tuple(
          ("gcn",) * len(widths) for widths in self.layer_ops))
    if [len(k) for k in self.layer_op_kinds] != [len(w)
                                                 for w in self.layer_ops]:
      raise ValueError("layer_op_kinds and layer_ops differ in shape")
    unknown = {k for kinds in self.layer_op_kinds for k in kinds} - set(
        ops.GCN_OPS)
    if unknown:
      raise ValueError(f"unknown op kinds {sorted(unknown)}; expected some "
                       f"of {list(OP_KINDS)}")
    if self.op_layout not in OP_LAYOUTS:
      raise ValueError(f"unknown op layout {self.op_layout!r}; expected one "
                       f"of {list(OP_LAYOUTS)}")
    if self.gate_function not in GATE_FUNCTIONS:
      raise ValueError(f"unknown gate function {self.gate_function!r}; "
                       f"expected one of {list(GATE_FUNCTIONS)}")
    if len(self.column_groups) != len(self.input_columns):
      raise ValueError("column_groups and input_columns differ in length")

  @property
  def num_groups(self) -> int:
    return len(self.group_names)

  @property
  def linear_only(self) -> bool:
    """Every entry is the patent's linear embedding of its column."""
    return all(k == "linear" for k in self.column_embeddings)

  @property
  def entry_widths(self) -> tuple[int, ...]:
    """The encoded width of every input entry."""
    return tuple(ops.EMBEDDINGS[k].width(s) for k, s in zip(
        self.column_embeddings, self.column_settings))

  @property
  def encoded_groups(self) -> tuple[int, ...]:
    """The gate group of every encoded column."""
    return tuple(g for g, w in zip(self.column_groups, self.entry_widths)
                 for _ in range(w))


def op_names(op_ratios: Sequence[float],
             op_kinds: Sequence[str]) -> tuple[str, ...]:
  """Names of candidate ops: big/medium/small for the patent's three GCN
  ops, else the kind (with the ratio where a kind has several ops)."""
  gcn = [r for r, k in zip(op_ratios, op_kinds) if k == "gcn"]
  names, gcn_seen = [], 0
  for ratio, kind in zip(op_ratios, op_kinds):
    if kind == "gcn" and len(gcn) == 3:
      names.append(OP_NAMES[gcn_seen])
    elif list(op_kinds).count(kind) == 1:
      names.append(kind)
    else:
      names.append(f"{kind}_{ratio:g}")
    gcn_seen += kind == "gcn"
  if len(set(names)) != len(names):
    raise ValueError(f"candidate ops {list(zip(op_kinds, op_ratios))} are "
                     "not distinct")
  return tuple(names)


def supernet_architecture(column_groups: Sequence[int],
                          group_names: Sequence[str], *, hidden_dim: int,
                          op_ratios: Sequence[float], num_layers: int = 2,
                          gate_function: str = "sigmoid",
                          op_kinds: Sequence[str] | None = None,
                          readout_searchable: bool = False,
                          op_layout: str = "separate",
                          embeddings: Sequence[tuple[int, str, str,
                                                     ops.Settings]] = ()
                          ) -> Architecture:
  """The search space: every feature group and every candidate op.

  ``op_kinds`` gives every op's kind (default: all "gcn", the patent's);
  ``readout_searchable`` adds a gate on the pooled readout. Every column is
  embedded linearly in its feature's group; ``embeddings`` adds entries
  (column, group name, kind, settings) with a gate group each, after the
  feature groups (see :func:`embedding_entries`).
  """
  op_kinds = tuple(op_kinds or ("gcn",) * len(op_ratios))
  if len(op_kinds) != len(op_ratios):
    raise ValueError(f"{len(op_kinds)} op kinds for {len(op_ratios)} ratios")
  widths = tuple(max(1, int(round(r * hidden_dim))) for r in op_ratios)
  names = op_names(op_ratios, op_kinds)
  group_names = tuple(group_names) + tuple(e[1] for e in embeddings)
  if len(set(group_names)) != len(group_names):
    raise ValueError(f"gate groups {group_names} are not distinct")
  first_extra = len(group_names) - len(embeddings)
  return Architecture(
      column_groups=tuple(int(g) for g in column_groups) + tuple(
          range(first_extra, len(group_names))),
      input_columns=tuple(range(len(column_groups))) + tuple(
          int(e[0]) for e in embeddings),
      group_names=group_names,
      column_embeddings=("linear",) * len(column_groups) + tuple(
          e[2] for e in embeddings),
      column_settings=((),) * len(column_groups) + tuple(
          tuple(float(v) for v in e[3]) for e in embeddings),
      layer_ops=(widths,) * num_layers,
      layer_op_names=(names,) * num_layers,
      hidden_dim=hidden_dim,
      gate_function=gate_function,
      searchable=True,
      layer_op_kinds=(op_kinds,) * num_layers,
      readout_searchable=readout_searchable,
      op_layout=op_layout)


def embedding_entries(encoder_groups: Sequence[int],
                      categorical: Sequence[bool],
                      group_names: Sequence[str],
                      training_columns: np.ndarray,
                      training_labels: np.ndarray, kinds: Sequence[str],
                      options: ops.EmbeddingOptions
                      ) -> list[tuple[int, str, str, ops.Settings]]:
  """The non-linear embedding entries of a supernet, fitted on training rows.

  Every numeric feature's value column (its group's first column) gets each
  of ``kinds`` that is not "linear" and that adds something for it (see
  ``ops.EmbeddingKind.fit``); one-hot categorical features keep the linear
  embedding alone. Entries come kind after kind, so runs of one kind encode
  together.

  Args:
    encoder_groups: the feature of every encoded column.
    categorical: per feature, whether it is one-hot.
    group_names: the features' names.
    training_columns: [training rows, columns] encoded training features.
    training_labels: [training rows] their labels (a kind may fit on them).
    kinds: embedding kinds of the space ("linear" is always in it).
    options: the kinds' settings.
  """
  ops.check_embedding_kinds(kinds)
  first_column = {}
  for column, group in enumerate(encoder_groups):
    first_column.setdefault(group, column)
  entries = []
  for kind in kinds:
    if kind == "linear":
      continue
    for group, name in enumerate(group_names):
      if categorical[group]:
        continue
      column = first_column[group]
      settings = ops.EMBEDDINGS[kind].fit(training_columns[:, column],
                                          training_labels, options)
      if settings is not None:
        entries.append((column, f"{name}{EMBEDDING_SEPARATOR}{kind}", kind,
                        settings))
  return entries


def with_groups(arch: Architecture, groups: Sequence[int]) -> Architecture:
  """``arch`` reading only the feature groups ``groups`` (their entries, in
  order; groups renumbered); the rest of the network as it is. The derive
  cuts a supernet's inputs with it."""
  keep = sorted({int(g) for g in groups})
  if not keep:
    raise ValueError("with_groups needs at least one feature group")
  remap = {g: i for i, g in enumerate(keep)}
  entries = [e for e, g in enumerate(arch.column_groups) if g in remap]
  return dataclasses.replace(
      arch,
      column_groups=tuple(remap[arch.column_groups[e]] for e in entries),
      input_columns=tuple(arch.input_columns[e] for e in entries),
      column_embeddings=tuple(arch.column_embeddings[e] for e in entries),
      column_settings=tuple(arch.column_settings[e] for e in entries),
      group_names=tuple(arch.group_names[g] for g in keep))


def _dense_init(key, fan_in, shape):
  return jax.random.normal(key, shape) * jnp.sqrt(1.0 / fan_in)


def _embedding_init(key: jax.Array, arch: Architecture) -> jax.Array:
  """[encoded columns, D]: each entry's linear layer, scaled by its width."""
  fan_in = np.repeat(np.asarray(arch.entry_widths, np.float32),
                     arch.entry_widths)
  return (jax.random.normal(key, (fan_in.size, arch.hidden_dim))
          * jnp.sqrt(1.0 / fan_in)[:, None])


def init(key: jax.Array, arch: Architecture) -> tuple[chex.ArrayTree,
                                                      chex.ArrayTree]:
  """Initialises (weights, alphas).

  Alphas are 1e-5 * normal, so every sigmoid gate starts near 0.5; a derived
  architecture has no alphas (an empty dict).
  """
  d = arch.hidden_dim
  keys = iter(jax.random.split(key, 4 + 2 * len(arch.layer_ops)))
  readout_width = (3 if arch.pooled_readout else 1) * d
  embed_key = next(keys)
  weights = {
      "feature_embed": {
          "w": _embedding_init(embed_key, arch),
          "b": jnp.zeros((arch.num_groups, d)),
      },
      "gcn": [],
      "head": {
          "w1": _dense_init(next(keys), readout_width, (readout_width, d)),
          "b1": jnp.zeros((d,)),
          "w2": _dense_init(next(keys), d, (d, 1)),
          "b2": jnp.zeros((1,)),
      },
  }
  for widths, kinds in zip(arch.layer_ops, arch.layer_op_kinds):
    total = sum(widths)
    first_key = next(keys)
    layer = {
        "w1": _dense_init(first_key, d, (d, total)),
        "b1": jnp.zeros((total,)),
        "w2": _dense_init(next(keys), total / len(widths), (total, d)),
        "b2": jnp.zeros((len(widths), d)),
    }
    root = sum(w for w, k in zip(widths, kinds) if ops.GCN_OPS[k].root)
    if root:  # the root weight of the ops over the node's own state
      layer["w1_root"] = _dense_init(jax.random.fold_in(first_key, 1), d,
                                     (d, root))
    weights["gcn"].append(layer)
  if not arch.linear_only:
    weights["feature_embed"]["encoders"] = ops.init_embedding_params(
        jax.random.fold_in(embed_key, 1), arch.column_embeddings,
        arch.column_settings)
  if not arch.searchable:
    return weights, {}
  alpha_key = next(keys)
  feature_key, op_key = jax.random.split(alpha_key)
  alphas = {
      "features": 1e-5 * jax.random.normal(feature_key, (arch.num_groups,)),
      "ops": 1e-5 * jax.random.normal(
          op_key, (len(arch.layer_ops), len(arch.layer_ops[0]))),
  }
  if arch.readout_searchable:
    alphas["readout"] = 1e-5 * jax.random.normal(
        jax.random.fold_in(alpha_key, 1), (1,))
  return weights, alphas


def init_shapes(arch: Architecture) -> tuple[chex.ArrayTree, chex.ArrayTree]:
  """Shapes and dtypes of (weights, alphas), computed without allocating."""
  return jax.eval_shape(lambda key: init(key, arch), jax.random.key(0))


def gate_values(alphas: chex.ArrayTree,
                gate_function: str) -> dict[str, jax.Array]:
  """Reparameterised architecture weights: sigmoid (patent) or softmax."""
  if gate_function == "sigmoid":
    return jax.tree.map(jax.nn.sigmoid, alphas)
  if gate_function == "softmax":
    # The readout gate is one on-off choice: a sigmoid in either case.
    gates = {k: jax.tree.map(lambda a: jax.nn.softmax(a, axis=-1), v)
             for k, v in alphas.items() if k != "readout"}
    if "readout" in alphas:
      gates["readout"] = jax.nn.sigmoid(alphas["readout"])
    return gates
  raise ValueError(f"unknown gate function {gate_function!r}; "
                   f"expected one of {list(GATE_FUNCTIONS)}")


def feature_gate(params: chex.ArrayTree, gates: jax.Array, nodes: jax.Array,
                 column_groups: Sequence[int]) -> jax.Array:
  """Mixed feature sum_i gates[i] * (x_i @ W_i + b_i), as one product."""
  column_gate = gates[np.asarray(column_groups)]
  return nodes @ (params["w"] * column_gate[:, None]) + gates @ params["b"]


def _pre_activations(params: chex.ArrayTree, z: jax.Array,
                     graphs: jraph.GraphsTuple, op_widths: Sequence[int],
                     op_kinds: Sequence[str],
                     projection: jax.Array | None = None) -> list[jax.Array]:
  """First-product pre-activations of every candidate op, one per op.

  The layer input is ``h = z @ projection`` (or ``z``); every aggregation is
  linear, so each op's product runs as ``source(z) @ (projection @ W)``.
  The ops share their aggregations; each op's product reads its own column
  block of W1 (a weight slice, so no activation is copied).
  """
  def weight(w, start, end):
    w = w[:, start:end]
    return w if projection is None else projection @ w

  sources = {s: ops.AGGREGATIONS[s].apply(z, graphs)
             for s in dict.fromkeys(ops.GCN_OPS[k].source for k in op_kinds)}
  pre, start, root = [], 0, 0
  for width, kind in zip(op_widths, op_kinds):
    end = start + width
    op = (sources[ops.GCN_OPS[kind].source]
          @ weight(params["w1"], start, end) + params["b1"][start:end])
    if ops.GCN_OPS[kind].root:
      op = op + z @ weight(params["w1_root"], root, root + width)
      root += width
    pre.append(op)
    start = end
  return pre


def _fused_pre_activations(params: chex.ArrayTree, z: jax.Array,
                           graphs: jraph.GraphsTuple,
                           op_widths: Sequence[int], op_kinds: Sequence[str],
                           projection: jax.Array | None = None) -> jax.Array:
  """Every op's first-product pre-activations side by side, [N, sum widths].

  Ops that all read the same aggregation (the patent's GCN ops) run as one
  product over the whole W1; otherwise each op's product as in
  :func:`_pre_activations`, concatenated.
  """
  kind = ops.GCN_OPS[op_kinds[0]]
  if len(set(op_kinds)) == 1 and not kind.root:
    source = ops.AGGREGATIONS[kind.source].apply(z, graphs)
    weight = params["w1"] if projection is None else projection @ params["w1"]
    return source @ weight + params["b1"]
  return jnp.concatenate(_pre_activations(params, z, graphs, op_widths,
                                          op_kinds, projection), axis=1)


def _mix_fused(params: chex.ArrayTree, gates: jax.Array, pre: jax.Array,
               op_widths: Sequence[int]) -> jax.Array:
  """ReLU((ReLU(pre) * gates per hidden unit) @ W2 + gates @ b2): the
  function of :func:`_mix_ops` as one down-projection."""
  unit_gates = jnp.repeat(gates, np.asarray(op_widths),
                          total_repeat_length=sum(op_widths))
  return jax.nn.relu((jax.nn.relu(pre) * unit_gates) @ params["w2"]
                     + gates @ params["b2"])


def _layer(params, gates, z, graphs, layer, projection=None):
  """One mixop layer: ``layer`` is its (op widths, op kinds, op layout)."""
  op_widths, op_kinds, layout = layer
  if layout == "fused" and len(op_widths) > 1:
    return _mix_fused(params, gates, _fused_pre_activations(
        params, z, graphs, op_widths, op_kinds, projection), op_widths)
  return _mix_ops(params, gates, _pre_activations(
      params, z, graphs, op_widths, op_kinds, projection), op_widths)


def _mix_ops(params: chex.ArrayTree, gates: jax.Array,
             pre: Sequence[jax.Array], op_widths: Sequence[int]) -> jax.Array:
  """ReLU(sum_j gates[j] * (ReLU(pre_j) @ W2_j + b2_j)).

  Each op's output is its own [nodes, D] product and the gates mix those:
  the gates' gradient is then a cheap inner product with each output,
  where gating W2's rows needs a full [hidden, D] product for it (the alpha
  step's FLOPs fall by a fifth). The barrier keeps XLA from folding the
  scalar gates back into the products' weights, which would bring that
  product back.
  """
  starts = np.cumsum((0,) + tuple(op_widths))
  outputs = jax.lax.optimization_barrier(
      [jax.nn.relu(p) @ params["w2"][a:b]
       for p, a, b in zip(pre, starts[:-1], starts[1:])])
  mixed = gates @ params["b2"]
  for gate, output in zip(gates, outputs):
    mixed = mixed + gate * output
  return jax.nn.relu(mixed)


def gcn_mixop(params: chex.ArrayTree, gates: jax.Array, h: jax.Array,
              graphs: jraph.GraphsTuple, op_widths: Sequence[int],
              op_kinds: Sequence[str] | None = None,
              op_layout: str = "separate") -> jax.Array:
  """ReLU(sum_j gates[j] * op_j(h)) sharing aggregations; a "gcn" op is
  MLP_j(aggregate(h))."""
  op_kinds = op_kinds or ("gcn",) * len(op_widths)
  return _layer(params, gates, h, graphs, (op_widths, op_kinds, op_layout))


def first_gcn_mixop(embed_params: chex.ArrayTree, feature_gates: jax.Array,
                    params: chex.ArrayTree, op_gates: jax.Array,
                    nodes: jax.Array, graphs: jraph.GraphsTuple,
                    arch: Architecture) -> jax.Array:
  """gcn_mixop(feature_gate(nodes)) of ``arch``'s first layer, computed on
  the raw columns.

  The feature gate is linear, and so is the aggregation, so
  aggregate(x Wg + 1 b) W1 = aggregate([x, 1]) ([Wg; b] W1): the first
  layer's widest product runs over the few input columns instead of over
  D, and the aggregation over C + 1 columns instead of D.
  """
  column_gate = feature_gates[np.asarray(arch.encoded_groups)]
  gated_w = embed_params["w"] * column_gate[:, None]  # [C, D]
  mixed_bias = feature_gates @ embed_params["b"]  # [D]
  ones = jnp.ones((nodes.shape[0], 1), nodes.dtype)
  return _layer(params, op_gates, jnp.concatenate([nodes, ones], axis=1),
                graphs, (arch.layer_ops[0], arch.layer_op_kinds[0],
                         arch.op_layout),
                projection=jnp.concatenate([gated_w, mixed_bias[None, :]]))


def graph_readout(h: jax.Array, graphs: jraph.GraphsTuple,
                  pooled: bool = True,
                  pooled_gate: jax.Array | None = None) -> jax.Array:
  """[own node-0 state, mean, max] per graph; zeros for empty graphs.

  Without ``pooled`` only the own state; ``pooled_gate`` scales the mean
  and max.
  """
  num_nodes = h.shape[0]
  num_graphs = graphs.n_node.shape[0]
  first_node = jnp.cumsum(graphs.n_node) - graphs.n_node
  has_nodes = (graphs.n_node > 0)[:, None]
  own = jnp.where(has_nodes, h[jnp.clip(first_node, 0, num_nodes - 1)], 0.0)
  if not pooled:
    return own
  graph_index = jnp.repeat(jnp.arange(num_graphs), graphs.n_node,
                           total_repeat_length=num_nodes)
  count = jnp.maximum(graphs.n_node, 1).astype(h.dtype)[:, None]
  mean = jax.ops.segment_sum(h, graph_index, num_graphs) / count
  maximum = jnp.where(
      has_nodes, jax.ops.segment_max(h, graph_index, num_graphs), 0.0)
  if pooled_gate is not None:
    mean, maximum = mean * pooled_gate, maximum * pooled_gate
  return jnp.concatenate([own, mean, maximum], axis=-1)


def network_gates(alphas: chex.ArrayTree,
                  arch: Architecture) -> dict[str, jax.Array]:
  """The gates a forward pass uses: from alphas, or ones when derived."""
  if arch.searchable:
    return gate_values(alphas, arch.gate_function)
  return {"features": jnp.ones((arch.num_groups,)),
          "ops": [jnp.ones((len(w),)) for w in arch.layer_ops]}


def _pooled_gate(gates: dict[str, jax.Array], arch: Architecture):
  if "readout" in gates:
    return gates["readout"][0]
  return None


def encode_nodes(embed_params: chex.ArrayTree, nodes: jax.Array,
                 arch: Architecture) -> jax.Array:
  """[N, encoded columns]: every input entry's encoding of its column."""
  if arch.linear_only:
    if tuple(arch.input_columns) == tuple(range(nodes.shape[1])):
      return nodes
    return nodes[:, np.asarray(arch.input_columns)]
  return ops.encode_columns(embed_params["encoders"],
                            nodes[:, np.asarray(arch.input_columns)],
                            arch.column_embeddings, arch.column_settings)


def folds_first_layer(arch: Architecture) -> bool:
  """Whether the feature gate folds into the first layer's products
  (:func:`first_gcn_mixop`): where the encoded columns, plus the bias, are
  no wider than D, which the folded products then run over instead."""
  return len(arch.encoded_groups) + 1 <= arch.hidden_dim


def apply(weights: chex.ArrayTree, alphas: chex.ArrayTree,
          graphs: jraph.GraphsTuple, arch: Architecture,
          gates: dict[str, jax.Array] | None = None) -> jax.Array:
  """Logits of good credit, one per graph in the batch.

  Args:
    weights: network weights from :func:`init`.
    alphas: architecture weights (``{}`` for a derived network).
    graphs: a padded batch; ``nodes`` is [N, columns].
    arch: the static architecture.
    gates: fixed gate values that replace the alphas' (a derived network
      as a masked supernet: 0/1 feature gates, one-hot op gates); the
      structure of :func:`network_gates` of a searchable ``arch``.

  Returns:
    [n_graph] logits; padding graphs get finite values to be masked.
  """
  if gates is None:
    gates = network_gates(alphas, arch)
  nodes = encode_nodes(weights["feature_embed"], graphs.nodes, arch)
  readout = 0.0
  for layer, (params, widths, kinds) in enumerate(zip(
      weights["gcn"], arch.layer_ops, arch.layer_op_kinds)):
    if layer == 0 and folds_first_layer(arch):
      h = first_gcn_mixop(weights["feature_embed"], gates["features"],
                          params, gates["ops"][0], nodes, graphs, arch)
    elif layer == 0:
      mixed = feature_gate(weights["feature_embed"], gates["features"], nodes,
                           arch.encoded_groups)
      h = gcn_mixop(params, gates["ops"][0], mixed, graphs, widths, kinds,
                    arch.op_layout)
    else:
      h = gcn_mixop(params, gates["ops"][layer], h, graphs, widths, kinds,
                    arch.op_layout)
    readout = readout + graph_readout(h, graphs, arch.pooled_readout,
                                      _pooled_gate(gates, arch))
  head = weights["head"]
  hidden = jax.nn.relu(readout @ head["w1"] + head["b1"])
  return (hidden @ head["w2"] + head["b2"])[:, 0]


def masked_bce_sum(logits: jax.Array, graphs: jraph.GraphsTuple
                   ) -> tuple[jax.Array, jax.Array]:
  """(sum of binary cross-entropies, count) over the real graphs."""
  mask = jraph.get_graph_padding_mask(graphs).astype(logits.dtype)
  labels = graphs.globals["label"]
  losses = (jnp.maximum(logits, 0) - logits * labels
            + jnp.log1p(jnp.exp(-jnp.abs(logits))))
  return jnp.sum(losses * mask), jnp.sum(mask)


def masked_bce(logits: jax.Array, graphs: jraph.GraphsTuple) -> jax.Array:
  """Mean binary cross-entropy over the real graphs of a padded batch."""
  total, count = masked_bce_sum(logits, graphs)
  return total / jnp.maximum(count, 1.0)
