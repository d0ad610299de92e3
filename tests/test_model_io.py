"""The saved-model format: round trip and every way it can be wrong."""

import json
import os

import chex
import jax
import numpy as np
import pytest

from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import model_io


@pytest.fixture()
def saved(tmp_path):
  arch = model.Architecture(
      column_groups=(0, 0, 1), input_columns=(0, 1, 3),
      group_names=("bestpay_grade", "alipay_overdue"),
      layer_ops=((8,), (4,)), layer_op_names=(("medium",), ("small",)),
      hidden_dim=4, searchable=False)
  weights, _ = model.init(jax.random.key(0), arch)
  encoder = graphs.NodeEncoder(("bestpay_grade", "alipay_overdue"), (5.0, 0.1),
                               (1.5, 0.2), (False, True), (True, False))
  directory = str(tmp_path / "model")
  model_io.save_model(directory, arch, weights, encoder, (10, 5),
                      {"note": "test"})
  return directory, arch, weights, encoder


def test_round_trip(saved):
  directory, arch, weights, encoder = saved
  loaded = model_io.load_model(directory)
  assert loaded.arch == arch
  assert loaded.encoder == encoder
  assert loaded.fanouts == (10, 5)
  assert loaded.metadata == {"note": "test"}
  chex.assert_trees_all_equal(loaded.weights, weights)


def test_missing_file(saved):
  directory = saved[0]
  os.remove(os.path.join(directory, "weights.npz"))
  with pytest.raises(model_io.ModelFormatError, match="weights.npz: missing"):
    model_io.load_model(directory)


def test_corrupt_weights(saved):
  directory = saved[0]
  with open(os.path.join(directory, "weights.npz"), "r+b") as f:
    f.seek(40)
    f.write(b"\x00garbage\x00")
  with pytest.raises(model_io.ModelFormatError, match="checksum"):
    model_io.load_model(directory)


def test_corrupt_description(saved):
  directory = saved[0]
  with open(os.path.join(directory, "model.json"), "w") as f:
    f.write("{not json")
  with pytest.raises(model_io.ModelFormatError, match="not valid JSON"):
    model_io.load_model(directory)


@pytest.mark.parametrize("field,value,message", [
    ("format", "something.else", "not a credit_nas_jax.model file"),
    ("format_version", 99, "format version 99"),
])
def test_foreign_or_newer_model(saved, field, value, message):
  directory = saved[0]
  path = os.path.join(directory, "model.json")
  description = json.load(open(path))
  description[field] = value
  json.dump(description, open(path, "w"))
  with pytest.raises(model_io.ModelFormatError, match=message):
    model_io.load_model(directory)


def test_weights_that_do_not_fit_the_architecture(saved):
  directory, _, weights, _ = saved
  flat = model_io.flatten_tree(weights)
  flat["gcn/0/w1"] = np.zeros((3, 3), np.float32)
  path = os.path.join(directory, "weights.npz")
  np.savez(path, **flat)
  description_path = os.path.join(directory, "model.json")
  description = json.load(open(description_path))
  import hashlib  # pylint: disable=g-import-not-at-top
  description["weights_sha256"] = hashlib.sha256(
      open(path, "rb").read()).hexdigest()
  json.dump(description, open(description_path, "w"))
  with pytest.raises(model_io.ModelFormatError,
                     match=r"'gcn/0/w1' has shape \(3, 3\)"):
    model_io.load_model(directory)


def test_saving_replaces_atomically(saved, tmp_path):
  directory, arch, weights, encoder = saved
  model_io.save_model(directory, arch, weights, encoder, (3,), {})
  assert model_io.load_model(directory).fanouts == (3,)
  leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".model-")]
  assert not leftovers
