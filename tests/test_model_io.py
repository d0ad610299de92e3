"""The saved-model format: round trip and every way it can be wrong."""

import dataclasses
import hashlib
import json
import os

import chex
import jax
import numpy as np
import pytest

from credit_nas_jax import calibration
from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import model_io
from credit_nas_jax import stability


@pytest.fixture()
def saved(tmp_path):
  arch = model.Architecture(
      column_groups=(0, 0, 1), input_columns=(0, 1, 2),
      group_names=("bestpay_grade", "alipay_overdue"),
      layer_ops=((8,), (4,)), layer_op_names=(("medium",), ("small",)),
      hidden_dim=4, searchable=False)
  weights, _ = model.init(jax.random.key(0), arch)
  encoder = graphs.NodeEncoder(("bestpay_grade", "alipay_overdue"), (5.0, 0.1),
                               (1.5, 0.2), (False, True), (True, False))
  directory = str(tmp_path / "model")
  model_io.save_model(directory, arch, weights, encoder, (10, 5),
                      {"note": "test", "config": {"seed": 7}})
  return directory, arch, weights, encoder


def _reseal(directory):
  """Rewrites the checksums after a deliberate edit (to reach later checks)."""
  digests = {name: hashlib.sha256(open(os.path.join(directory, name),
                                       "rb").read()).hexdigest()
             for name in ("model.json", "weights.npz")}
  with open(os.path.join(directory, "checksums.sha256"), "w") as f:
    f.write(model_io._checksum_text(digests))  # pylint: disable=protected-access


def _edit_description(directory, edit):
  path = os.path.join(directory, "model.json")
  description = json.load(open(path))
  edit(description)
  json.dump(description, open(path, "w"))
  _reseal(directory)


def test_round_trip(saved):
  directory, arch, weights, encoder = saved
  loaded = model_io.load_model(directory)
  assert loaded.arch == arch
  assert loaded.encoder == encoder
  assert loaded.fanouts == (10, 5)
  assert loaded.metadata == {"note": "test", "config": {"seed": 7}}
  assert loaded.sampling_seed == 7  # the run's seed by default
  chex.assert_trees_all_equal(loaded.weights, weights)
  assert sorted(os.listdir(directory)) == ["checksums.sha256", "model.json",
                                           "weights.npz"]


def test_explicit_sampling_seed(saved, tmp_path):
  _, arch, weights, encoder = saved
  directory = str(tmp_path / "other")
  model_io.save_model(directory, arch, weights, encoder, (3,), {},
                      sampling_seed=12)
  assert model_io.load_model(directory).sampling_seed == 12


def test_missing_file(saved):
  directory = saved[0]
  os.remove(os.path.join(directory, "weights.npz"))
  with pytest.raises(model_io.ModelFormatError, match="weights.npz: missing"):
    model_io.load_model(directory)


def _flip_byte(path, where):
  """Flips one bit of the byte at ``where`` (a share of the file; -1: the
  last byte)."""
  data = bytearray(open(path, "rb").read())
  position = int(where * (len(data) - 1)) if where != -1 else len(data) - 1
  data[position] ^= 0x01
  open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("name", ["model.json", "weights.npz",
                                  "checksums.sha256"])
@pytest.mark.parametrize("where", [0, 0.5, -1])
def test_any_changed_byte_is_refused_naming_the_file(saved, name, where):
  directory = saved[0]
  _flip_byte(os.path.join(directory, name), where)
  with pytest.raises(model_io.ModelFormatError, match=name):
    model_io.load_model(directory)


def test_edited_statistics_are_refused(saved):
  """The report's case: normalisation statistics edited in model.json."""
  directory = saved[0]
  path = os.path.join(directory, "model.json")
  description = json.load(open(path))
  description["encoder"]["mean"][0] = 0.0
  json.dump(description, open(path, "w"), indent=2)
  with pytest.raises(model_io.ModelFormatError,
                     match=r"model.json: checksum .* does not match"):
    model_io.load_model(directory)


def test_a_byte_appended_to_the_checksums_is_refused(saved):
  directory = saved[0]
  with open(os.path.join(directory, "checksums.sha256"), "a") as f:
    f.write("\n")
  with pytest.raises(model_io.ModelFormatError, match="checksums.sha256"):
    model_io.load_model(directory)


def test_files_outside_the_checksums_are_refused(saved):
  directory = saved[0]
  open(os.path.join(directory, "notes.txt"), "w").write("hi")
  with pytest.raises(model_io.ModelFormatError, match="notes.txt"):
    model_io.load_model(directory)


def test_corrupt_description(saved):
  directory = saved[0]
  with open(os.path.join(directory, "model.json"), "w") as f:
    f.write("{not json")
  _reseal(directory)
  with pytest.raises(model_io.ModelFormatError, match="not valid JSON"):
    model_io.load_model(directory)


@pytest.mark.parametrize("field,value,message", [
    ("format", "something.else", "not a credit_nas_jax.model file"),
    ("format_version", 99, "format version 99"),
    ("fanouts", [10, -1], "fanouts"),
    ("sampling_seed", "x", "sampling_seed"),
])
def test_foreign_or_newer_model(saved, field, value, message):
  directory = saved[0]
  _edit_description(directory, lambda d: d.__setitem__(field, value))
  with pytest.raises(model_io.ModelFormatError, match=message):
    model_io.load_model(directory)


@pytest.mark.parametrize("field,value,message", [
    ("std", [0.0, 0.2], "std > 0"),
    ("mean", [5.0], "mean has 1 entries"),
])
def test_bad_statistics_are_refused(saved, field, value, message):
  directory = saved[0]
  _edit_description(directory,
                    lambda d: d["encoder"].__setitem__(field, value))
  with pytest.raises(model_io.ModelFormatError, match=message):
    model_io.load_model(directory)


def test_architecture_that_reads_another_feature_is_refused(saved):
  directory = saved[0]
  _edit_description(directory, lambda d: d["architecture"].__setitem__(
      "group_names", ["alipay_overdue", "bestpay_grade"]))
  with pytest.raises(model_io.ModelFormatError, match="reads column 0"):
    model_io.load_model(directory)


def _rewrite_weights(directory, flat):
  path = os.path.join(directory, "weights.npz")
  np.savez(path, **flat)
  _edit_description(directory, lambda d: d.__setitem__(
      "weights_sha256", hashlib.sha256(open(path, "rb").read()).hexdigest()))


def test_weights_that_do_not_fit_the_architecture(saved):
  directory, _, weights, _ = saved
  flat = model_io.flatten_tree(weights)
  flat["gcn/0/w1"] = np.zeros((3, 3), np.float32)
  _rewrite_weights(directory, flat)
  with pytest.raises(model_io.ModelFormatError,
                     match=r"weights.npz: weight 'gcn/0/w1' has shape \(3, 3\)"):
    model_io.load_model(directory)


def test_non_finite_weights_are_refused(saved):
  directory, _, weights, _ = saved
  flat = model_io.flatten_tree(weights)
  flat["head/b2"] = np.array([np.nan], np.float32)
  _rewrite_weights(directory, flat)
  with pytest.raises(model_io.ModelFormatError, match="non-finite"):
    model_io.load_model(directory)


def test_version_1_is_refused_and_can_be_upgraded(saved):
  directory, arch, weights, _ = saved
  os.remove(os.path.join(directory, "checksums.sha256"))
  path = os.path.join(directory, "model.json")
  description = json.load(open(path))
  description["format_version"] = 1
  del description["sampling_seed"]
  json.dump(description, open(path, "w"))
  with pytest.raises(model_io.ModelFormatError,
                     match="format version 1.*upgrade_model"):
    model_io.load_model(directory)
  model_io.upgrade_model(directory)
  loaded = model_io.load_model(directory)
  assert loaded.arch == arch and loaded.sampling_seed == 7
  chex.assert_trees_all_equal(loaded.weights, weights)


def test_saving_replaces_atomically(saved, tmp_path):
  directory, arch, weights, encoder = saved
  model_io.save_model(directory, arch, weights, encoder, (3,), {})
  assert model_io.load_model(directory).fanouts == (3,)
  leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".model-")]
  assert not leftovers


def test_not_a_directory(tmp_path):
  path = tmp_path / "file"
  path.write_text("x")
  with pytest.raises(model_io.ModelFormatError, match="not a directory"):
    model_io.load_model(str(path))


def test_architecture_fields_added_later_take_their_defaults(saved):
  directory, arch, _, _ = saved
  # Every field the fixture leaves at its default, as if saved before it
  # existed.
  defaulted = [f.name for f in dataclasses.fields(model.Architecture)
               if f.default is not dataclasses.MISSING
               and getattr(arch, f.name) == f.default]
  assert defaulted
  _edit_description(directory, lambda d: [d["architecture"].pop(name)
                                          for name in defaulted])
  assert model_io.load_model(directory).arch == arch
  _edit_description(directory, lambda d: d["architecture"].__setitem__(
      "from_the_future", 1))
  with pytest.raises(model_io.ModelFormatError,
                     match=r"unknown \['from_the_future'\]"):
    model_io.load_model(directory)


# The calibration map and the training population (format version 4).

_CALIBRATION = {"format": calibration.FORMAT, "method": "platt",
                "parameters": {"slope": 1.5, "intercept": -0.25},
                "rows": 200, "folds": 5,
                "out_of_fold_log_loss": {"identity": 0.6, "platt": 0.5,
                                         "isotonic": 0.55}}


@pytest.fixture()
def monitored(saved, tmp_path):
  """The fixture's model with a calibration map and a training population."""
  directory = str(tmp_path / "monitored")
  population = stability.fit_population(
      np.linspace(0.1, 0.9, 200),
      {"bestpay_grade": np.arange(200) % 11.0,
       "alipay_overdue": np.linspace(0, 2, 200)})
  loaded = model_io.load_model(saved[0])
  model_io.write_model(directory, dataclasses.replace(
      loaded, calibration=_CALIBRATION, population=population))
  return directory, loaded, population


def _reseal_all(directory):
  """Rewrites the checksums of every file in the directory."""
  digests = {name: hashlib.sha256(open(os.path.join(directory, name),
                                       "rb").read()).hexdigest()
             for name in os.listdir(directory) if name != "checksums.sha256"}
  with open(os.path.join(directory, "checksums.sha256"), "w") as f:
    f.write(model_io._checksum_text(digests))  # pylint: disable=protected-access


def test_calibration_and_population_round_trip(monitored):
  directory, plain, population = monitored
  assert sorted(os.listdir(directory)) == [
      "calibration.json", "checksums.sha256", "model.json",
      "population.json", "weights.npz"]
  description = json.load(open(os.path.join(directory, "model.json")))
  assert description["format_version"] == model_io.MONITORED_FORMAT_VERSION
  loaded = model_io.load_model(directory)
  assert loaded.calibration == _CALIBRATION
  assert loaded.population == population
  assert (loaded.arch, loaded.encoder) == (plain.arch, plain.encoder)
  # Without them a model is still written as version 3.
  assert plain.calibration is None and plain.population is None
  assert model_io.FORMAT_VERSION == 3


@pytest.mark.parametrize("name", ["calibration.json", "population.json"])
@pytest.mark.parametrize("where", [0, 0.5, -1])
def test_a_changed_calibration_or_population_byte_is_refused(monitored, name,
                                                             where):
  directory = monitored[0]
  _flip_byte(os.path.join(directory, name), where)
  with pytest.raises(model_io.ModelFormatError,
                     match=rf"{name}: checksum .* does not match"):
    model_io.load_model(directory)


def test_a_removed_calibration_is_refused(monitored):
  directory = monitored[0]
  os.remove(os.path.join(directory, "calibration.json"))
  with pytest.raises(model_io.ModelFormatError,
                     match="calibration.json: missing"):
    model_io.load_model(directory)


def test_a_calibration_added_without_its_checksum_is_refused(saved):
  directory = saved[0]
  with open(os.path.join(directory, "calibration.json"), "w") as f:
    json.dump(_CALIBRATION, f)
  with pytest.raises(model_io.ModelFormatError,
                     match=r"not covered by checksums.sha256: "
                     r"\['calibration.json'\]"):
    model_io.load_model(directory)


def test_resealed_bad_content_is_refused(monitored):
  directory = monitored[0]
  path = os.path.join(directory, "calibration.json")
  with open(path, "w") as f:
    json.dump({**_CALIBRATION, "parameters": {"slope": "steep"}}, f)
  _reseal_all(directory)
  with pytest.raises(model_io.ModelFormatError,
                     match="calibration.json: bad content .*platt"):
    model_io.load_model(directory)


def test_optional_files_need_version_4(monitored):
  directory = monitored[0]
  path = os.path.join(directory, "model.json")
  description = json.load(open(path))
  description["format_version"] = 3
  json.dump(description, open(path, "w"))
  _reseal_all(directory)
  with pytest.raises(model_io.ModelFormatError,
                     match="calibration.json: needs format version 4"):
    model_io.load_model(directory)


def test_a_bad_map_is_not_written(saved, tmp_path):
  loaded = model_io.load_model(saved[0])
  with pytest.raises(ValueError, match="calibration.json: unknown"):
    model_io.write_model(str(tmp_path / "bad"), dataclasses.replace(
        loaded, calibration={**_CALIBRATION, "method": "beta"}))
  assert not os.path.exists(tmp_path / "bad")
