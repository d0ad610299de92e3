"""The default search and derive recover the synthetic book's planted truth.

The book is drawn from a known risk model (``synthetic.RISK_MODEL``): four
informative features and one pure-noise feature. A short search on a small
book must rank the noise feature's gate last, and the default derive must
keep the four informative features and close the noise one.
"""

import jax
import numpy as np

from credit_nas_jax import config as config_lib
from credit_nas_jax import experiment
from credit_nas_jax import features
from credit_nas_jax import pipeline
from credit_nas_jax import search
from credit_nas_jax import synthetic
from experiments.configs import default
from experiments.configs import test as test_config

INFORMATIVE = tuple(sorted(set(features.FEATURE_COLUMNS)
                           - {synthetic.NOISE_FEATURE}))


def test_the_planted_informative_features_are_kept_and_the_noise_closed():
  assert synthetic.RISK_MODEL["own"][synthetic.NOISE_FEATURE] == 0.0
  assert all(synthetic.RISK_MODEL["own"][f] != 0.0 for f in INFORMATIVE)
  config = config_lib.replace(config_lib.typed(test_config.get_config()), {
      "data.num_borrowers": 5000, "space.hidden_dim": 32,
      "data.fanouts": (10, 5), "data.batch_size": 64, "search.steps": 300,
      "search.arch_warmup_steps": 100, "runtime.log_every": 100})
  # The rule under test is the default one.
  assert config.derive == config_lib.typed(default.get_config()).derive
  exp = experiment.prepare(config, pipeline.load_dataset(config))
  keys = experiment.run_keys(config.seed)
  state = search.init_search_state(keys["init"], exp.supernet,
                                   experiment.hyperparameters_of(config))
  state, _ = experiment.search(exp, state, keys=keys)
  gates = dict(zip(exp.supernet.group_names,
                   np.asarray(jax.nn.sigmoid(state.alphas["features"]))))
  assert min(gates, key=gates.get) == synthetic.NOISE_FEATURE, gates

  derived, _ = experiment.derive(exp, state, keys=keys)
  assert tuple(sorted(derived.kept_features)) == INFORMATIVE, (
      derived.kept_features, gates)
