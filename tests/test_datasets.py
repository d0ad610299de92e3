"""Real-data loaders on small files made here, and the split protocol."""

import hashlib
import os

import numpy as np
import pandas as pd
import pytest

from credit_nas_jax import data
from credit_nas_jax import datasets


def _spec_for(tmp_path, frame, edges=None):
  table_path = tmp_path / "table.csv"
  frame.to_csv(table_path, index=False)
  digest = hashlib.sha256(table_path.read_bytes()).hexdigest()
  edge_spec = None
  if edges is not None:
    edge_path = tmp_path / "edges.txt"
    edge_path.write_text("\n".join(f"{u:.1f} {v:.1f}" for u, v in edges))
    edge_spec = datasets.FileSpec(
        "edges.txt", hashlib.sha256(edge_path.read_bytes()).hexdigest(),
        "made by the test")
  return {"small": datasets.TableSpec(
      datasets.FileSpec("table.csv", digest, "made by the test"),
      label="Class", bad_value="bad", categorical=("kind",), drop=("ID",),
      edges=edge_spec)}


def _frame(rows=60, seed=0):
  rng = np.random.default_rng(seed)
  return pd.DataFrame({
      "ID": np.arange(rows),
      "amount": rng.normal(100, 20, rows),
      "kind": rng.choice(["a", "b", "c"], rows),
      "Class": np.where(rng.random(rows) < 0.3, "bad", "good"),
  })


def test_groups_one_hot_and_labels(tmp_path):
  frame = _frame()
  dataset = datasets.load_table_dataset(
      "small", data_dir=str(tmp_path), specs=_spec_for(tmp_path, frame))
  encoder = dataset.encoder
  assert encoder.features == ("amount", "kind")
  assert encoder.column_names == ("amount", "kind=a", "kind=b", "kind=c")
  assert encoder.column_groups == (0, 1, 1, 1)
  one_hot = dataset.node_features[:, 1:]
  assert (one_hot.sum(1) == 1).all()
  np.testing.assert_array_equal(dataset.labels,
                                (frame["Class"] == "good").to_numpy())
  unseen = encoder.encode(pd.DataFrame({"amount": [1.0], "kind": ["z"]}))
  assert (unseen[0, 1:] == 0).all()


def test_knn_graph_and_isolated_variant(tmp_path):
  frame = _frame()
  specs = _spec_for(tmp_path, frame)
  dataset = datasets.load_table_dataset("small", data_dir=str(tmp_path),
                                        specs=specs, knn_k=4)
  assert (dataset.graph.degree >= 4).all()  # symmetrised k-NN
  isolated = datasets.load_table_dataset("small", data_dir=str(tmp_path),
                                         specs=specs, knn_k=0)
  assert isolated.graph.indices.size == 0


def test_relation_file_is_read(tmp_path):
  frame = _frame()
  specs = _spec_for(tmp_path, frame, edges=[(0, 1), (1, 2), (5, 0)])
  dataset = datasets.load_table_dataset("small", data_dir=str(tmp_path),
                                        specs=specs)
  assert dataset.graph.indices.size == 6
  assert set(dataset.graph.indices[dataset.graph.indptr[0]:
                                   dataset.graph.indptr[1]]) == {1, 5}


def test_missing_file_names_file_sum_and_origin(tmp_path):
  specs = _spec_for(tmp_path, _frame())
  os.remove(tmp_path / "table.csv")
  with pytest.raises(datasets.DataFileError) as error:
    datasets.load_table_dataset("small", data_dir=str(tmp_path), specs=specs)
  message = str(error.value)
  assert "table.csv: missing" in message
  assert specs["small"].table.sha256 in message
  assert "made by the test" in message


def test_altered_file_is_refused(tmp_path):
  specs = _spec_for(tmp_path, _frame())
  with open(tmp_path / "table.csv", "a") as f:
    f.write("61,1.0,a,good\n")
  with pytest.raises(datasets.DataFileError, match="but expected"):
    datasets.load_table_dataset("small", data_dir=str(tmp_path), specs=specs)


def test_bad_edge_file_names_the_line(tmp_path):
  specs = _spec_for(tmp_path, _frame(), edges=[(0, 1), (1, 99)])
  with pytest.raises(ValueError, match="edges.txt line 2: row outside"):
    datasets.load_table_dataset("small", data_dir=str(tmp_path), specs=specs)


def test_data_dir_order(tmp_path, monkeypatch):
  monkeypatch.setenv(datasets.ENVIRONMENT_VARIABLE, str(tmp_path))
  assert datasets.resolve_data_dir("/explicit") == "/explicit"
  assert datasets.resolve_data_dir("") == str(tmp_path)
  monkeypatch.delenv(datasets.ENVIRONMENT_VARIABLE)
  assert datasets.resolve_data_dir("").endswith(os.path.join("shared",
                                                             "data"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_splits_are_stratified_disjoint_and_seeded(seed):
  labels = (np.random.default_rng(seed).random(500) < 0.25).astype(float)
  splits = data.stratified_splits(labels, (0.6, 0.2, 0.2), seed)
  rows = np.concatenate(list(splits.values()))
  assert np.array_equal(np.sort(rows), np.arange(500))  # disjoint, complete
  assert [splits[k].size for k in ("train", "validation", "test")] == [
      300, 100, 100]
  for part in splits.values():
    assert abs(labels[part].mean() - labels.mean()) < 0.02
  again = data.stratified_splits(labels, (0.6, 0.2, 0.2), seed)
  assert all(np.array_equal(splits[k], again[k]) for k in splits)
  other = data.stratified_splits(labels, (0.6, 0.2, 0.2), seed + 10)
  assert not np.array_equal(splits["test"], other["test"])


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(datasets.resolve_data_dir(),
                                    "nifty_german.csv")),
    reason="the shared data directory is not beside this checkout")
def test_the_real_german_set_loads():
  dataset = datasets.load_table_dataset("german")
  assert dataset.node_features.shape[0] == 1000
  assert len(dataset.encoder.features) == 29
  assert dataset.graph.indices.size // 2 == 21742
  assert int((dataset.labels == 0).sum()) == 300


def test_spec_sums_match_the_shared_manifest():
  manifest = os.path.join(datasets.resolve_data_dir(), "SHA256SUMS")
  if not os.path.isfile(manifest):
    pytest.skip("the shared data directory is not beside this checkout")
  sums = dict(reversed(line.split()) for line in open(manifest)
              if line.strip())
  for spec in datasets.SPECS.values():
    for file_spec in filter(None, (spec.table, spec.edges)):
      assert sums[file_spec.name] == file_spec.sha256
