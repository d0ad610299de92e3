"""A table a team brings: CSV and Parquet, categoricals, missing values,
constant columns, relations, k-NN graphs, and errors that name the fault."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from credit_nas_jax import datasets
from experiments.configs import default

# The book's label, its bad value and (or not) its id column.
_PLAIN = datasets.TableSchema("status", "default")
_WITH_IDS = datasets.TableSchema("status", "default", id_column="loan_id")


def _book(rows=80, seed=0):
  rng = np.random.default_rng(seed)
  amount = rng.normal(100, 20, rows)
  amount[rng.random(rows) < 0.2] = np.nan
  return pd.DataFrame({
      "loan_id": [f"L{i:03d}" for i in range(rows)],
      "amount": amount,
      "grade": rng.choice(["A", "B", "C"], rows),
      "region": rng.integers(0, 3, rows),
      "product": ["card"] * rows,  # constant
      "status": np.where(rng.random(rows) < 0.3, "default", "paid"),
  })


def _write(frame, tmp_path, kind):
  path = tmp_path / f"book.{kind}"
  if kind == "csv":
    frame.to_csv(path, index=False)
  else:
    frame.to_parquet(path, index=False)
  return str(path)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_table_is_read_encoded_and_split(tmp_path, kind):
  frame = _book()
  path = _write(frame, tmp_path, kind)
  dataset = datasets.load_user_table(
      path, dataclasses.replace(_WITH_IDS, categorical_columns=("region",)),
      knn_k=3)
  encoder = dataset.encoder
  # The id and the label are not features; the constant column is dropped.
  assert encoder.features == ("amount", "grade", "region")
  assert encoder.column_names == ("amount", "amount_missing", "grade=A",
                                  "grade=B", "grade=C", "region=0",
                                  "region=1", "region=2")
  assert encoder.column_groups == (0, 0, 1, 1, 1, 2, 2, 2)
  np.testing.assert_array_equal(dataset.labels,
                                (frame["status"] != "default").to_numpy())
  np.testing.assert_array_equal(dataset.borrower_ids, frame["loan_id"])
  # Missing values: a flag, and the fill is the training rows' mean (0 once
  # standardised) whatever the held-out rows hold.
  missing = frame["amount"].isna().to_numpy()
  np.testing.assert_array_equal(dataset.node_features[:, 1], missing)
  assert (dataset.node_features[missing, 0] == 0).all()
  train = dataset.splits["train"]
  expected_mean = np.nanmean(frame["amount"].to_numpy()[train])
  assert encoder.mean[0] == pytest.approx(expected_mean)


def test_numbers_as_labels_and_text_bad_value(tmp_path):
  frame = _book().assign(status=lambda f: (f["status"] == "default")
                         .astype(int))
  path = _write(frame, tmp_path, "csv")
  dataset = datasets.load_user_table(path, datasets.TableSchema("status", "1"),
                                     knn_k=0)
  np.testing.assert_array_equal(dataset.labels, 1 - frame["status"])
  assert dataset.graph.indices.size == 0
  # Without an id column rows are the ids; the id column is then a feature.
  assert dataset.borrower_ids[3] == "row-3"
  assert "loan_id" in dataset.encoder.features


def test_edges_by_id(tmp_path):
  frame = _book()
  path = _write(frame, tmp_path, "csv")
  edges = tmp_path / "edges.csv"
  pd.DataFrame({"src": ["L000", "L001"], "dst": ["L005", "L000"]}).to_csv(
      edges, index=False)
  dataset = datasets.load_user_table(path, _WITH_IDS,
                                     edges_path=str(edges))
  graph = dataset.graph
  assert set(graph.indices[graph.indptr[0]:graph.indptr[1]]) == {1, 5}
  assert graph.indices.size == 4


def test_unknown_edge_id_names_file_and_row(tmp_path):
  path = _write(_book(), tmp_path, "csv")
  edges = tmp_path / "edges.csv"
  pd.DataFrame({"src": ["L000", "L999"], "dst": ["L005", "L000"]}).to_csv(
      edges, index=False)
  with pytest.raises(datasets.TableError,
                     match=r"edges.csv: 1 edges name no borrower id, first "
                     r"at row 1"):
    datasets.load_user_table(path, _WITH_IDS, edges_path=str(edges))


def test_missing_label_column_is_named(tmp_path):
  path = _write(_book(), tmp_path, "csv")
  with pytest.raises(datasets.TableError,
                     match=r"book.csv: no label column 'default_flag' "
                     r"\(columns: \['loan_id'"):
    datasets.load_user_table(path, datasets.TableSchema("default_flag", "1"))


def test_single_class_label_is_refused(tmp_path):
  path = _write(_book(), tmp_path, "csv")
  with pytest.raises(datasets.TableError,
                     match=r"book.csv: label column 'status' has a single "
                     r"class with bad_value 'charged_off' \(0 of 80"):
    datasets.load_user_table(path,
                             datasets.TableSchema("status", "charged_off"))


def test_missing_label_names_the_row(tmp_path):
  frame = _book()
  frame.loc[7, "status"] = None
  path = _write(frame, tmp_path, "csv")
  with pytest.raises(datasets.TableError,
                     match=r"label column 'status' is missing in 1 rows, "
                     r"first at row 7"):
    datasets.load_user_table(path, _PLAIN)


def test_repeated_id_is_refused(tmp_path):
  frame = _book()
  frame.loc[9, "loan_id"] = "L002"
  path = _write(frame, tmp_path, "csv")
  with pytest.raises(datasets.TableError, match=r"repeats 'L002' \(first at "
                     r"row 2"):
    datasets.load_user_table(path, _WITH_IDS)


def test_only_constant_columns_is_refused(tmp_path):
  frame = _book()[["product", "status"]]
  path = _write(frame, tmp_path, "csv")
  with pytest.raises(datasets.TableError,
                     match=r"no feature column left \(constant columns "
                     r"dropped: \['product'\]\)"):
    datasets.load_user_table(path, _PLAIN)


@pytest.mark.parametrize("name,content,message", [
    ("absent.csv", None, "absent.csv: no such file"),
    ("book.xlsx", b"x", "unknown table format '.xlsx'"),
    ("broken.parquet", b"not parquet", "broken.parquet: unreadable as "
     "parquet"),
    ("empty.csv", b"", "empty.csv: unreadable as csv"),
])
def test_unreadable_file_is_named(tmp_path, name, content, message):
  path = tmp_path / name
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(datasets.TableError, match=message):
    datasets.load_user_table(str(path), _PLAIN)


def test_inductive_knn_links_every_row_to_training_rows_only(tmp_path):
  path = _write(_book(rows=120), tmp_path, "csv")
  dataset = datasets.load_user_table(path, _WITH_IDS, knn_k=4)
  graph, splits = dataset.graph, dataset.splits
  is_train = np.zeros(graph.num_nodes, bool)
  is_train[splits["train"]] = True
  assert is_train[graph.indices].all()  # no held-out row is a neighbour
  assert (graph.degree >= 4).all()
  held_out = np.concatenate([splits["validation"], splits["test"]])
  assert (graph.degree[held_out] == 4).all()
  # Training pairs run both ways, as relations do.
  pairs = {(u, v) for u in splits["train"]
           for v in graph.indices[graph.indptr[u]:graph.indptr[u + 1]]}
  assert all((v, u) in pairs for u, v in pairs)
  transductive = datasets.load_user_table(path, _WITH_IDS, knn_k=4,
                                          knn_graph_kind="transductive")
  assert not is_train[transductive.graph.indices].all()


def test_knn_edges_match_a_brute_force_reference():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(30, 3))
  reference = np.arange(0, 30, 2)
  src, dst = datasets.knn_edges(points, 3, reference)
  distances = ((points[:, None] - points[None, reference]) ** 2).sum(-1)
  distances[reference, np.arange(reference.size)] = np.inf  # not itself
  expected = reference[np.argsort(distances, axis=1)[:, :3]]
  np.testing.assert_array_equal(src, np.repeat(np.arange(30), 3))
  np.testing.assert_array_equal(np.sort(dst.reshape(30, 3), 1),
                                np.sort(expected, 1))


def test_unknown_graph_kind_is_named():
  with pytest.raises(ValueError, match="unknown knn_graph 'both'"):
    datasets.knn_graph(np.zeros((4, 1)), 1, {"train": np.arange(2)}, "both")


def test_config_loads_the_table(tmp_path):
  config = default.get_config()
  config.data.dataset = "table"
  config.data.table_path = _write(_book(), tmp_path, "parquet")
  config.data.label_column = "status"
  config.data.bad_value = "default"
  config.data.id_column = "loan_id"
  config.data.knn_k = 3
  dataset = datasets.load_from_config(config)
  assert dataset.encoder.features == ("amount", "grade", "region")
  assert dataset.graph.indices.size > 0
