"""The one pure run: values out, no files, hooks between blocks."""

import json
import os

import numpy as np
import pytest

from credit_nas_jax import config as config_lib
from credit_nas_jax import pipeline
from credit_nas_jax import run as run_lib
from experiments.configs import test as test_config


@pytest.fixture(scope="module")
def config():
  return config_lib.replace(config_lib.typed(test_config.get_config()),
                            {"runtime.cost_probes": False})


@pytest.fixture(scope="module")
def dataset(config):
  return pipeline.load_dataset(config)


def test_a_run_returns_its_values_and_writes_nothing(config, dataset,
                                                     tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  seen = []
  hooks = run_lib.Hooks(
      stage=lambda what: seen.append(("stage", what)),
      search_start=lambda step: seen.append(("search_start", step)),
      search_block=lambda state, metrics, step: seen.append(("search", step)),
      derived=lambda derived, trials, val: seen.append(("derived",)),
      retrain_block=lambda state, record, step: seen.append(("retrain",
                                                             step)))
  result = run_lib.run(config, dataset, hooks)
  assert os.listdir(tmp_path) == []
  assert 0.5 < result.test["auc"] <= 1.0
  assert int(result.search_state.step) == config.search.steps
  assert result.derived.kept_features
  names = [s[0] for s in seen]
  assert names.index("search_start") < names.index("search") < names.index(
      "derived") < names.index("retrain")
  assert [s[1] for s in seen if s[0] == "search"] == list(
      range(5, config.search.steps + 1, 5))
  # The same config and keys give the same values.
  again = run_lib.run(config, dataset)
  assert again.test == result.test
  np.testing.assert_array_equal(np.asarray(again.search_state.alphas["ops"]),
                                np.asarray(result.search_state.alphas["ops"]))


def test_a_hook_that_raises_stops_the_run_and_is_named(config, dataset):
  def fail(state, metrics, step):
    if step == 10:
      raise KeyError("disk full")

  with pytest.raises(run_lib.HookError,
                     match=r"the search_block hook raised KeyError"):
    run_lib.run(config, dataset, run_lib.Hooks(search_block=fail))


def test_a_failed_hook_leaves_the_main_jobs_checkpoint_to_resume(
    config, tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  whole = pipeline.run_experiment(config, str(tmp_path / "whole"))
  original = pipeline._RunFiles.retrain_block  # pylint: disable=protected-access

  def fail(self, *args):
    raise OSError("metrics disk gone")

  monkeypatch.setattr(pipeline._RunFiles, "retrain_block", fail)  # pylint: disable=protected-access
  with pytest.raises(run_lib.HookError, match="the retrain_block hook "
                     "raised OSError: metrics disk gone"):
    pipeline.run_experiment(config, workdir)
  steps = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  assert any(s.startswith("search") for s in steps), steps
  monkeypatch.setattr(pipeline._RunFiles, "retrain_block", original)  # pylint: disable=protected-access
  resumed = pipeline.run_experiment(config, workdir)
  assert resumed == whole
  with open(os.path.join(workdir, "config.json")) as f:
    assert config_lib.from_dict(json.load(f)) == config
