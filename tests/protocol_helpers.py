"""What the protocol's tests share: the smallest config that makes every
choice, and a dataset whose test labels are flipped."""

import dataclasses

import ml_collections

from experiments.configs import evaluate_test


def tiny_protocol_config() -> ml_collections.ConfigDict:
  """Smaller than the tiny config: the tests need every choice made, not a
  good model."""
  config = evaluate_test.get_config()
  config.data.num_borrowers = 400
  config.search.steps = 10
  config.search.arch_warmup_steps = 3
  config.retrain.steps = 10
  config.retrain.eval_every = 5
  # The fixed networks choose among two weight decays of one width: a choice
  # made as a grid of widths makes, at one compiled program per network
  # (a width is a new program, a weight decay a value).
  config.baselines.fixed_width_ratios = (1.0,)
  config.baselines.fixed_weight_decays = (1e-4, 1.0)
  # A fixed count: a compute-matched one depends on the clock, and the
  # flipped-label run must make the same choices.
  config.baselines.random_architectures = 2
  return config


def flip_test_labels(dataset):
  """The same borrowers, features, graph and split; every test label
  flipped."""
  labels = dataset.labels.copy()
  test = dataset.splits["test"]
  labels[test] = 1 - labels[test]
  return dataclasses.replace(dataset, labels=labels)
