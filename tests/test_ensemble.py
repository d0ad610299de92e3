"""Ensembles of a sweep's best retrained members: choice, format, scoring."""

import dataclasses
import json
import os
import subprocess
import sys

import chex
import numpy as np
import pandas as pd
import pytest

from credit_nas_jax import config as config_lib
from credit_nas_jax import graphs
from credit_nas_jax import model
from credit_nas_jax import model_io
from credit_nas_jax import pipeline
from credit_nas_jax import scoring
from credit_nas_jax import sweep
from credit_nas_jax import synthetic
from experiments.configs import sweep_test
from test_model_io import _edit_description  # pylint: disable=g-bad-import-order
from test_model_io import _rewrite_weights  # pylint: disable=g-bad-import-order
from test_scoring import make_model  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_K, ENSEMBLE_SIZE = 3, 2


def _config():
  """The tiny test sweep (4 members), its top 3 retrained, an ensemble of
  2 chosen among them."""
  config = sweep_test.get_config()
  config.sweep.max_chunk = 4
  config.sweep.top_k = TOP_K
  config.sweep.ensemble_size = ENSEMBLE_SIZE
  return config


def _run(workdir):
  """The sweep's leaderboard, summary and loaded ensemble."""
  board = sweep.run_sweep(_config(), str(workdir))
  summary = json.load(open(workdir / "auc_spread.json"))["ensemble"]
  return board, summary, model_io.load_model(str(workdir / "ensemble_model"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("sweep")
  return (workdir, *_run(workdir))


@pytest.fixture(scope="module")
def swept_with_test_labels_flipped(tmp_path_factory):
  """The same sweep on a dataset whose test labels are all flipped."""
  load_dataset = pipeline.load_dataset

  def flipped(config):
    dataset = load_dataset(config)
    labels = dataset.labels.copy()
    test = dataset.splits["test"]
    labels[test] = 1 - labels[test]
    return dataclasses.replace(dataset, labels=labels)

  workdir = tmp_path_factory.mktemp("flipped")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(pipeline, "load_dataset", flipped)
    return _run(workdir)


@pytest.fixture(scope="module")
def book():
  return synthetic.generate_lending_book(5, 150)


def _score(saved, book, num_reasons=3):
  return scoring.score_applicants(
      saved, book.borrowers, book.loans, book.installments, book.edges,
      as_of=book.as_of,
      settings=scoring.ScoringSettings(num_reasons=num_reasons)).scores


def _alone(saved, tmp_path):
  """Every member of ``saved`` saved and loaded as a model of its own."""
  models = []
  for i, (arch, weights) in enumerate(saved.members):
    directory = str(tmp_path / f"member{i}")
    model_io.save_model(directory, arch, weights, saved.encoder,
                        saved.fanouts, {}, sampling_seed=saved.sampling_seed)
    models.append(model_io.load_model(directory))
  return models


def test_the_ensemble_is_the_best_retrained_members(swept):
  workdir, board, summary, saved = swept
  assert len(saved.members) == ENSEMBLE_SIZE
  retrained = board.dropna(subset=["retrained_val_auc"])
  assert len(retrained) == TOP_K
  best = retrained.sort_values("retrained_val_auc", ascending=False,
                               kind="stable")["member"].head(ENSEMBLE_SIZE)
  assert [m["member"] for m in summary["members"]] == best.tolist()
  assert set(board.loc[board["in_ensemble"], "member"]) == set(best)
  saved_board = pd.read_csv(workdir / "leaderboard.csv")
  assert saved_board["in_ensemble"].sum() == ENSEMBLE_SIZE
  assert saved.sampling_seed == summary["members"][0]["seed"]
  for (arch, _), entry in zip(saved.members, summary["members"]):
    row = board.set_index("member").loc[entry["member"]]
    assert ",".join(arch.group_names) == row["kept_features"]
    assert ",".join(n for (n,) in arch.layer_op_names) == row["chosen_ops"]
    assert not arch.searchable
  # The compact network cut from the retrained masked supernet scores the
  # best member's validation borrowers as the retrain did (the same
  # neighbourhoods: the ensemble's sampling seed is that member's).
  first = summary["members"][0]
  assert first["val_auc"] == pytest.approx(first["retrained_val_auc"],
                                           abs=1e-4)
  assert 0.5 < summary["val_auc"] <= 1
  assert saved.metadata["validation_auc"] == summary["val_auc"]
  with pytest.raises(ValueError, match="ensemble of 2 networks"):
    _ = saved.arch


def test_choose_ensemble_ranks_by_validation_and_skips_diverged():
  aucs = np.array([0.7, np.nan, 0.9, 0.7, 0.8])
  assert sweep.choose_ensemble(aucs, 3) == [2, 4, 0]
  assert sweep.choose_ensemble(aucs, 5) == [2, 4, 0, 3]
  assert sweep.choose_ensemble(np.array([np.nan]), 1) == []


@pytest.mark.parametrize("size", [-2, 4, 1.5, True])
def test_an_ensemble_size_outside_the_retrained_is_refused(size):
  with pytest.raises(ValueError,
                     match=r"sweep.ensemble_size=.*(sweep.top_k=3|whole)"):
    config_lib.from_dict({"sweep": {"top_k": 3, "ensemble_size": size},
                          "derive": {"rule": "threshold"}})
  assert sweep.ensemble_size_of(config_lib.from_dict(
      {"sweep": {"top_k": 3, "ensemble_size": -1},
       "derive": {"rule": "threshold"}})) == 3


def test_the_choice_never_reads_test_labels(swept,
                                            swept_with_test_labels_flipped):
  _, board, summary, saved = swept
  flipped_board, flipped_summary, flipped_saved = (
      swept_with_test_labels_flipped)
  pd.testing.assert_frame_equal(board, flipped_board)
  assert flipped_summary == summary
  for (arch, weights), (flipped_arch, flipped_weights) in zip(
      saved.members, flipped_saved.members):
    assert arch == flipped_arch
    chex.assert_trees_all_equal(weights, flipped_weights)


def test_ensemble_scores_are_the_mean_of_its_members(swept, book, tmp_path):
  saved = swept[3]
  ensemble = _score(saved, book)
  alone = [_score(member, book) for member in _alone(saved, tmp_path)]
  np.testing.assert_allclose(
      ensemble["score"], np.mean([a["score"] for a in alone], axis=0),
      rtol=0, atol=1e-12)
  np.testing.assert_allclose(
      ensemble["points"],
      scoring.Scorecard().points(ensemble["score"]).round(1))
  assert (ensemble["decision"] == scoring.decide(
      ensemble["score"].to_numpy(), scoring.DEFAULT_BANDS)).all()
  # Reasons: the union of the members' features, each contribution the
  # members' mean (0 from a member without the feature).
  names = [c for c in ensemble.columns if c.startswith("contribution/")]
  assert set(names) == {c for a in alone for c in a.columns
                        if c.startswith("contribution/")}
  for name in names:
    expected = np.mean([a[name] if name in a else np.zeros(len(a))
                        for a in alone], axis=0)
    np.testing.assert_allclose(ensemble[name], expected, rtol=0, atol=1e-12)


def test_score_py_scores_an_ensemble_like_any_model(swept, book, tmp_path):
  saved_dir = str(swept[0] / "ensemble_model")
  paths = {}
  for name in ("borrowers", "loans", "installments", "edges"):
    paths[name] = str(tmp_path / f"{name}.csv")
    getattr(book, name).to_csv(paths[name], index=False)
  output = str(tmp_path / "scores.csv")
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "score.py"),
       f"--model_dir={saved_dir}", f"--as_of={book.as_of}",
       f"--output={output}", *[f"--{k}={v}" for k, v in paths.items()]],
      capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  written = pd.read_csv(output, keep_default_na=False)
  expected = _score(swept[3], book)
  assert list(written.columns) == list(expected.columns)
  assert written["borrower_id"].tolist() == expected["borrower_id"].tolist()
  np.testing.assert_allclose(written["score"], expected["score"], rtol=1e-12)
  assert written["reasons"].tolist() == expected["reasons"].tolist()


@pytest.fixture()
def ensemble_dir(swept, tmp_path):
  """A copy of the sweep's ensemble directory, safe to damage."""
  saved = swept[3]
  directory = str(tmp_path / "ensemble")
  model_io.save_ensemble(directory, saved.members, saved.encoder,
                         saved.fanouts, saved.metadata,
                         sampling_seed=saved.sampling_seed)
  return directory


def test_the_ensemble_directory_round_trips(swept, ensemble_dir):
  saved = swept[3]
  loaded = model_io.load_model(ensemble_dir)
  assert [a for a, _ in loaded.members] == [a for a, _ in saved.members]
  chex.assert_trees_all_equal([w for _, w in loaded.members],
                              [w for _, w in saved.members])
  description = json.load(open(os.path.join(ensemble_dir, "model.json")))
  assert description["format_version"] == model_io.FORMAT_VERSION == 3
  assert "architecture" not in description
  assert len(description["members"]) == ENSEMBLE_SIZE
  with np.load(os.path.join(ensemble_dir, "weights.npz")) as archive:
    assert {k.split("/")[1] for k in archive.files} == {"0", "1"}
    assert all(k.startswith("member/") for k in archive.files)


def test_a_corrupted_member_weight_is_refused_naming_the_file(ensemble_dir):
  path = os.path.join(ensemble_dir, "weights.npz")
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0x01
  open(path, "wb").write(bytes(data))
  with pytest.raises(model_io.ModelFormatError, match="weights.npz"):
    model_io.load_model(ensemble_dir)


def test_a_non_finite_member_weight_is_named(ensemble_dir):
  path = os.path.join(ensemble_dir, "weights.npz")
  with np.load(path) as archive:
    flat = {k: archive[k] for k in archive.files}
  flat["member/1/head/b2"] = np.array([np.nan], np.float32)
  _rewrite_weights(ensemble_dir, flat)
  with pytest.raises(model_io.ModelFormatError,
                     match=r"weights.npz: weight 'member/1/head/b2' holds "
                     "non-finite"):
    model_io.load_model(ensemble_dir)


def _drop_member(description):
  description["members"].pop()


@pytest.mark.parametrize("edit,message", [
    pytest.param(lambda d: d["members"].__setitem__(1, "x"),
                 r"model.json: field members\[1\] must be an object",
                 id="member_not_an_object"),
    pytest.param(lambda d: d["members"][1].__setitem__("note", 1),
                 r"members\[1\] .*found \['architecture', 'note'\]",
                 id="member_with_an_unknown_field"),
    pytest.param(lambda d: d["members"][1]["architecture"].pop("hidden_dim"),
                 r"model.json: bad field members\[1\].architecture "
                 r".*missing \['hidden_dim'\]",
                 id="member_architecture_missing_a_field"),
    pytest.param(lambda d: d["members"][0]["architecture"].__setitem__(
        "searchable", True), r"members\[0\].architecture .*supernet",
                 id="member_is_a_supernet"),
    pytest.param(lambda d: d.__setitem__("members", []),
                 "'members' must be a non-empty", id="no_member"),
    pytest.param(lambda d: d.__setitem__("architecture", {}),
                 "both 'architecture' and 'members'", id="both_layouts"),
    pytest.param(lambda d: d.pop("members"), "missing field 'architecture'",
                 id="neither_layout"),
    pytest.param(lambda d: d.__setitem__("format_version", 2),
                 "'members' .* needs format version 3",
                 id="ensemble_in_version_2"),
    pytest.param(_drop_member, r"weights.npz: arrays \['member/1/",
                 id="weights_of_an_unlisted_member"),
])
def test_malformed_members_are_named(ensemble_dir, edit, message):
  _edit_description(ensemble_dir, edit)
  with pytest.raises(model_io.ModelFormatError, match=message):
    model_io.load_model(ensemble_dir)


def test_a_version_2_single_model_still_loads(tmp_path):
  directory = str(tmp_path / "model")
  saved = make_model(directory, seed=4)
  description = json.load(open(os.path.join(directory, "model.json")))
  assert "architecture" in description and "members" not in description
  with np.load(os.path.join(directory, "weights.npz")) as archive:
    assert "gcn/0/w1" in archive.files  # unprefixed, as version 2 wrote
  _edit_description(directory, lambda d: d.__setitem__("format_version", 2))
  loaded = model_io.load_model(directory)
  assert len(loaded.members) == 1
  assert loaded.arch == saved.arch and loaded.sampling_seed == 4
  chex.assert_trees_all_equal(loaded.weights, saved.weights)


def test_reasons_are_per_feature_over_distinct_columns():
  """Gate groups "<feature>:<kind>" are their feature's reason, and a
  column read by several embeddings or members counts once."""
  encoder = graphs.NodeEncoder(("a", "b", "c"), (0.0,) * 3, (1.0,) * 3,
                               (False,) * 3, (True, False, False))
  # Encoded columns: a -> 0, 1 (its missing flag); b -> 2; c -> 3.
  def network(column_groups, input_columns, group_names):
    return model.Architecture(
        column_groups=column_groups, input_columns=input_columns,
        group_names=group_names, layer_ops=((4,),),
        layer_op_names=(("small",),), hidden_dim=4, searchable=False)

  first = network((0, 0, 1, 2), (0, 1, 0, 2), ("a", "a:periodic", "b"))
  second = network((0, 1), (3, 2), ("c", "b:periodic"))
  saved = model_io.SavedModel(
      (model_io.ModelMember(first, None), model_io.ModelMember(second, None)),
      encoder, (2,), {})
  contributions = np.array([[1.0, 2.0, 4.0, 8.0], [-1.0, 0.5, 0.0, 3.0]])
  outputs = scoring.ModelOutputs(np.array([0.5, 0.5]), contributions,
                                 np.array([0.25, -0.5]))
  assert scoring.reason_names(saved) == ("a", "b", "c",
                                         scoring.NEIGHBOURHOOD_REASON)
  np.testing.assert_array_equal(
      scoring.feature_contributions(saved, outputs),
      [[3.0, 4.0, 8.0, 0.25], [-0.5, 0.0, 3.0, -0.5]])
