"""The experiment core: device metrics, derived networks as masked
supernets, sampler choice, the scanned search and retrain."""

import dataclasses
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from credit_nas_jax import config as config_lib
from credit_nas_jax import data
from credit_nas_jax import experiment
from credit_nas_jax import metrics
from credit_nas_jax import model
from credit_nas_jax import search
from credit_nas_jax import synthetic
from credit_nas_jax import train
from experiments.configs import test as test_config


@pytest.fixture(scope="module")
def dataset():
  return data.dataset_from_book(synthetic.generate_lending_book(0, 600),
                                split_seed=0)


@pytest.mark.parametrize("size,decimals", [(2000, 1), (501, 3), (40, 0)])
def test_device_auc_and_log_loss_equal_sklearn(size, decimals):
  rng = np.random.default_rng(size)
  logits = np.round(rng.normal(size=size), decimals).astype(np.float32)
  labels = (rng.random(size) < 1 / (1 + np.exp(-logits))).astype(np.float32)
  labels[:2] = [0, 1]
  scores = 1 / (1 + np.exp(-logits.astype(np.float64)))
  auc = metrics.roc_auc_from_logits(jnp.asarray(logits), jnp.asarray(labels))
  assert float(auc) == pytest.approx(
      sk_metrics.roc_auc_score(labels, scores), abs=1e-6)
  loss = metrics.log_loss_from_logits(jnp.asarray(logits),
                                      jnp.asarray(labels))
  assert float(loss) == pytest.approx(sk_metrics.log_loss(
      labels, np.clip(scores, 1e-7, 1 - 1e-7)), abs=1e-5)


def _supernet(dataset, extended):
  kinds = ("gcn", "gcn", "gcn", "sage", "self") if extended else None
  ratios = (2, 1, 0.5, 2, 2) if extended else (2, 1, 0.5)
  return model.supernet_architecture(
      dataset.encoder.column_groups, dataset.encoder.features, hidden_dim=16,
      op_ratios=ratios, op_kinds=kinds, readout_searchable=extended)


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("extended,ops,pooled", [
    (False, (0, 1), None), (False, (2, 2), None), (True, (3, 4), False),
    (True, (4, 3), True), (True, (1, 3), False)])
def test_derived_network_equals_its_masked_supernet(dataset, extended, ops,
                                                    pooled):
  arch = _supernet(dataset, extended)
  weights, alphas = model.init(jax.random.key(0), arch)
  alphas = jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(3), a.shape), alphas)
  batch = data.BatchMaker(dataset, 16, (4, 2), 0).training_batch("train", 0)
  derived = search.derive_architecture(alphas, arch, 0.5, ops=ops,
                                       pooled_readout=pooled)
  masked = model.apply(weights, {}, batch, arch,
                       search.derived_gates(derived, arch))
  compact = model.apply(search.slice_weights(weights, arch, derived), {},
                        batch, derived.arch)
  chex.assert_trees_all_close(masked, compact, atol=1e-5)


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("space,embeddings,gate_function,layout,hidden,pick", [
    ("patent", ("linear",), "sigmoid", "separate", 16, 0),
    ("patent", ("linear",), "softmax", "fused", 16, 2),
    ("extended", ("linear", "piecewise", "periodic"), "sigmoid", "fused", 16,
     3),
    ("extended", ("linear", "piecewise", "periodic"), "softmax", "separate",
     4, 4),
    ("extended", ("linear",), "sigmoid", "separate", 4, 1)])
def test_one_op_network_computes_its_candidate_on_the_supernet(
    dataset, space, embeddings, gate_function, layout, hidden, pick):
  config = _config(search_space=space, feature_embeddings=embeddings,
                   gate_function=gate_function, op_layout=layout,
                   hidden_dim=hidden)
  arch = experiment.supernet_for(config, dataset)
  if hidden == 4:  # the feature gate outside the first layer's products
    assert not model.folds_first_layer(arch)
  weights, alphas = model.init(jax.random.key(0), arch)
  alphas = jax.tree.map(
      lambda a: np.array(jax.random.normal(jax.random.key(4), a.shape)),
      alphas)
  num_ops = alphas["ops"].shape[1]
  ops = (pick % num_ops, (pick + 2) % num_ops)
  closed = search._CLOSED  # pylint: disable=protected-access
  alphas["ops"] = np.full_like(alphas["ops"], closed)
  alphas["ops"][np.arange(len(ops)), ops] = 0.7
  alphas["features"][::3] = closed  # a candidate with features closed
  if space == "extended" and pick % 2:
    alphas["readout"] = np.full_like(alphas["readout"], closed)
  assert search.open_ops(alphas) == ops
  batch = data.BatchMaker(dataset, 16, (4, 2), 0).training_batch("train", 0)
  cut, cut_weights = search.one_op_network(alphas, weights, arch, ops)
  assert [len(widths) for widths in cut.layer_ops] == [1, 1]
  chex.assert_trees_all_close(
      model.apply(cut_weights, {}, batch, cut,
                  search.one_op_gates(alphas, arch, ops)),
      model.apply(weights, alphas, batch, arch), atol=1e-5)
  alphas["ops"][0] = 0.0  # every op of the first layer open
  assert search.open_ops(alphas) is None


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("sampler", ["device", "host"])
def test_derive_scores_what_the_supernet_scores(dataset, sampler,
                                                monkeypatch):
  """The derive's candidates scored on the one-op networks have the AUCs
  the supernet gives them (either sampler: the host one honours fixed
  gates)."""
  config = _config(sampler=sampler, search_steps=6, derive="validation",
                   search_space="extended")
  exp, state, _, _ = _search(config, dataset)
  labels = dataset.labels[dataset.splits["validation"]]
  cuts = []
  monkeypatch.setattr(search, "one_op_network",
                      lambda *args, cut=search.one_op_network: cuts.append(
                          args[3]) or cut(*args))
  derived, trials = experiment.derive(exp, state)
  assert cuts == [_derived_ops(derived, exp.supernet)]  # cut once, and used
  plain, plain_trials = search.derive_by_validation(
      state.alphas, exp.supernet, config.derive.gate_threshold,
      lambda alphas: metrics.classification_metrics(
          labels, experiment.evaluate(exp, state.weights, alphas,
                                      exp.supernet, "validation")[1])["auc"],
      min_feature_gain=float(config.derive.min_feature_gain))
  assert derived == plain
  assert len(trials) == len(plain_trials) > 9
  # The same function up to float rounding: at most a near-tied pair of
  # borrowers may swap.
  pairs = labels.sum() * (labels.size - labels.sum())
  np.testing.assert_allclose([t["validation_auc"] for t in trials],
                             [t["validation_auc"] for t in plain_trials],
                             atol=1.5 / pairs)


def _derived_ops(derived, supernet):
  """The op index of every layer of a derived network."""
  return tuple(names.index(chosen) for names, chosen in zip(
      supernet.layer_op_names, derived.chosen_ops))


@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9])
def test_threshold_gates_follow_derive_architecture(dataset, extended,
                                                    threshold):
  arch = _supernet(dataset, extended)
  _, alphas = model.init(jax.random.key(0), arch)
  alphas = jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(5), a.shape), alphas)
  derived = search.derive_architecture(alphas, arch, threshold)
  chex.assert_trees_all_equal(
      search.threshold_gates(alphas, arch, jnp.float32(threshold)),
      search.derived_gates(derived, arch))


def _config(**overrides):
  """The test config with fields changed, each named by its field alone
  (``search_steps=6``: ``search.steps``, as config_lib.RENAMED maps it)."""
  return config_lib.replace(
      config_lib.typed(test_config.get_config()),
      {config_lib.RENAMED.get(name, name): value
       for name, value in overrides.items()})


def test_sampler_choice_and_its_errors(dataset):
  config = _config()
  arch = experiment.supernet_for(config, dataset)
  plenty = 2**34
  assert experiment.choose_sampler(config, dataset, arch, (4, 2),
                                   plenty) == "device"
  config = _config(sampler="host")
  assert experiment.choose_sampler(config, dataset, arch, (4, 2),
                                   plenty) == "host"
  graph = experiment.sampling.graph_bytes(
      600, dataset.graph.indices.size, dataset.node_features.shape[1])
  step = experiment.step_bytes(arch, config.data.batch_size, (4, 2),
                               dataset.node_features.shape[1])
  tight = int((graph + step) / experiment.DEVICE_GRAPH_SHARE) - 1
  config = _config(sampler="auto")
  assert experiment.choose_sampler(config, dataset, arch, (4, 2),
                                   tight) == "host"
  config = _config(sampler="device")
  with pytest.raises(ValueError, match="config.data.sampler='host'"):
    experiment.choose_sampler(config, dataset, arch, (4, 2), tight)
  with pytest.raises(ValueError, match="lower config.data.batch_size, "
                     "config.data.fanouts or config.search.unroll_steps"):
    experiment.choose_sampler(config, dataset, arch, (4, 2), step - 1)
  with pytest.raises(ValueError, match=r"config.data.sampler='gpu': must be "
                     r"one of \['auto', 'device', 'host'\]"):
    _config(sampler="gpu")


def test_run_keys_are_named_and_distinct():
  keys = experiment.run_keys(7)
  data_of = {name: tuple(np.asarray(jax.random.key_data(k)).ravel())
             for name, k in keys.items()}
  assert len(set(data_of.values())) == len(keys)
  again = experiment.run_keys(7)
  for name in keys:
    np.testing.assert_array_equal(jax.random.key_data(keys[name]),
                                  jax.random.key_data(again[name]))


def _search(config, dataset, blocks=None):
  exp = experiment.prepare(config, dataset)
  keys = experiment.run_keys(config.seed)
  state = search.init_search_state(keys["init"], exp.supernet,
                                   experiment.hyperparameters_of(config))
  seen = []
  state, timing = experiment.search(
      exp, state, keys=keys,
      on_block=lambda s, metrics, step: seen.append((step, metrics)))
  return exp, state, timing, seen


def test_search_blocks_end_at_every_log_and_checkpoint_step(dataset):
  config = _config(search_steps=17, log_every=6, checkpoint_every=4)
  exp, state, timing, seen = _search(config, dataset)
  assert experiment.block_length(config) == 2
  assert [step for step, _ in seen] == list(range(2, 17, 2)) + [17]
  assert int(state.step) == 17
  assert all(np.isfinite(m["train_loss"]) for _, m in seen)
  assert timing["search_steps_per_second"] > 0
  # A search resumed from a block's state ends where the whole one does.
  keys = experiment.run_keys(config.seed)
  half = search.init_search_state(keys["init"], exp.supernet,
                                  experiment.hyperparameters_of(config))
  short = config_lib.replace(config, {"search.steps": 8})
  half, _ = experiment.search(experiment.prepare(short, dataset), half,
                              keys=keys)
  resumed, _ = experiment.search(exp, half, keys=keys)
  chex.assert_trees_all_equal(jax.device_get(resumed.alphas),
                              jax.device_get(state.alphas))


def test_host_sampler_runs_the_same_blocks(dataset):
  config = _config(sampler="host", search_steps=6)
  exp, state, _, seen = _search(config, dataset)
  assert exp.plan.sampler == "host" and exp.arrays is None
  assert int(state.step) == 6 and len(seen) == 2
  derived, _ = experiment.derive(exp, state)
  trained, history = experiment.retrain(
      exp, experiment.retrain_state(exp, derived, experiment.run_keys(0)),
      derived.arch)
  assert [r["step"] for r in history] == [10, 20]
  assert 0.0 <= history[-1]["val_auc"] <= 1.0
  assert float(trained.best_auc) == pytest.approx(
      max(r["val_auc"] for r in history), abs=1e-6)


def _threshold_network(config, dataset):
  """The experiment, the threshold-derived network of a fresh supernet and
  its retrain state."""
  exp = experiment.prepare(config, dataset)
  arch = experiment.supernet_for(config, dataset)
  fixed = search.derive_architecture(
      model.init(jax.random.key(0), arch)[1], arch, 0.5)
  return exp, fixed, experiment.retrain_state(exp, fixed,
                                              experiment.run_keys(0))


def test_retrain_keeps_the_best_weights_and_stops_early(dataset):
  config = _config(retrain_steps=200, eval_every=5, patience=2,
                   retrain_lr=0.3)
  exp, fixed, state = _threshold_network(config, dataset)
  state, history = experiment.retrain(exp, state, fixed.arch)
  aucs = [r["val_auc"] for r in history]
  best = int(np.argmax(aucs))
  assert bool(state.stopped)
  assert len(history) == best + 1 + config.retrain.patience  # waited, then stopped
  assert float(state.best_auc) == pytest.approx(aucs[best])
  validation, _ = experiment.evaluate(exp, state.best_weights, {}, fixed.arch,
                                      "validation")
  assert validation["auc"] == pytest.approx(aucs[best], abs=1e-5)


def test_retrain_settings_share_one_compiled_program(dataset):
  """The retrain's learning rate and weight decay are values of the state:
  a validation grid over them compiles the retrain once, and each setting
  still acts on the weights."""
  sizes, weights = [], []
  for decay in (1e-4, 2.0, 8.0):
    config = _config(retrain_steps=10, eval_every=5, patience=100,
                     retrain_lr=0.05, retrain_weight_decay=decay)
    exp, fixed, state = _threshold_network(config, dataset)
    state, _ = experiment.retrain(exp, state, fixed.arch)
    assert float(state.opt_state.hyperparams["weight_decay"]) == (
        pytest.approx(decay))
    sizes.append(experiment.retrain_block._cache_size())  # pylint: disable=protected-access
    weights.append(jax.tree.leaves(state.weights))
  assert sizes[0] == sizes[1] == sizes[2]
  norms = [sum(float(jnp.sum(w**2)) for w in leaves) for leaves in weights]
  assert norms[0] > norms[1] > norms[2]  # stronger decay, smaller weights


def test_eval_each_epoch_caps_the_validation_interval(dataset):
  config = _config(eval_every=100, patience=100)
  epoch = -(-dataset.splits["train"].size // config.data.batch_size)
  assert 1 < epoch < 100
  assert experiment.eval_interval(config, dataset) == 100
  config = _config(eval_every=100, patience=100, eval_each_epoch=True,
                   retrain_steps=2 * epoch + 1)
  assert experiment.eval_interval(config, dataset) == epoch
  assert experiment.eval_interval(config_lib.replace(
      config, {"retrain.eval_every": 1}), dataset) == 1  # never raised
  exp, fixed, state = _threshold_network(config, dataset)
  _, history = experiment.retrain(exp, state, fixed.arch)
  assert [r["step"] for r in history] == [epoch, 2 * epoch, 2 * epoch + 1]


def test_early_stopping_update_counts_patience():
  weights = {"w": jnp.zeros(2)}
  state = train.TrainState(
      step=jnp.int32(0), weights=weights,
      opt_state=(),
      nonfinite_step=jnp.int32(-1), best_weights={"w": jnp.ones(2)},
      best_auc=jnp.float32(0.7), waited=jnp.int32(0),
      stopped=jnp.bool_(False), tx=None)
  worse = train.early_stopping_update(state, jnp.float32(0.6), 2)
  assert int(worse.waited) == 1 and not bool(worse.stopped)
  np.testing.assert_array_equal(worse.best_weights["w"], jnp.ones(2))
  stop = train.early_stopping_update(worse, jnp.float32(0.7), 2)
  assert bool(stop.stopped)
  better = train.early_stopping_update(worse, jnp.float32(0.8), 2)
  assert int(better.waited) == 0
  np.testing.assert_array_equal(better.best_weights["w"], jnp.zeros(2))


@pytest.mark.highest_matmul_precision
@pytest.mark.parametrize("extended", [False, True])
def test_fused_op_layout_computes_the_separate_layout(dataset, extended):
  separate = _supernet(dataset, extended)
  fused = dataclasses.replace(separate, op_layout="fused")
  weights, alphas = model.init(jax.random.key(0), separate)
  alphas = jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(3), a.shape), alphas)
  maker = data.BatchMaker(dataset, 16, (4, 2), 0)
  batch = maker.training_batch("train", 0)
  chex.assert_trees_all_close(model.apply(weights, alphas, batch, fused),
                              model.apply(weights, alphas, batch, separate),
                              atol=1e-5)
  for argnum in (0, 1):
    grads = [jax.grad(search.batch_loss, argnums=argnum)(
        weights, alphas, batch, arch) for arch in (fused, separate)]
    chex.assert_trees_all_close(*grads, atol=1e-5)


def test_op_layout_follows_the_backend():
  assert experiment.op_layout_for("auto", "cpu") == "separate"
  assert experiment.op_layout_for("auto", "gpu") == "fused"
  assert experiment.op_layout_for("fused") == "fused"
  with pytest.raises(ValueError, match="unknown op layout 'wide'"):
    experiment.op_layout_for("wide")


@pytest.mark.parametrize("field,value,message", [
    ("hidden_dim", 0, "config.space.hidden_dim=0: must be a whole number >= 1"),
    ("search_steps", 0, "config.search.steps=0"),
    ("batch_size", -4, "config.data.batch_size=-4"),
    ("fanouts", (10, -1), "config.data.fanouts=(10, -1)"),
    ("op_ratios", (4.0, 0.0), "config.space.op_ratios=(4.0, 0.0)"),
    ("arch_lr", 0.0, "config.search.arch_lr=0.0"),
    ("arch_warmup_steps", 30, "config.search.arch_warmup_steps=30"),
    ("retrain_weight_decays", (1e-4, -1.0),
     "config.retrain.weight_decays=(0.0001, -1.0): must be weight decays"),
    ("derive_confidence", -1.0, "config.derive.confidence=-1.0: must be >= 0"),
])
def test_config_mistakes_are_refused_before_any_work(dataset, field, value,
                                                     message):
  config = test_config.get_config()  # the launcher's ConfigDict
  group, _, name = config_lib.RENAMED[field].partition(".")
  config[group][name] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    experiment.prepare(config, dataset)


def test_member_keys_differ_only_in_the_retrain():
  keys = experiment.run_keys(3)
  assert experiment.member_keys(keys, 0) is keys
  changed = {"retrain", "retrain_batches"}
  for member in (1, 2):
    other = experiment.member_keys(keys, member)
    assert other.keys() == keys.keys()
    for name in keys:
      same = bool(jnp.all(jax.random.key_data(other[name])
                          == jax.random.key_data(keys[name])))
      assert same == (name not in changed), (member, name)
  one, two = (experiment.member_keys(keys, m)["retrain"] for m in (1, 2))
  assert not bool(jnp.all(jax.random.key_data(one)
                          == jax.random.key_data(two)))


def test_one_network_launchers_refuse_the_evaluations_retrain_settings():
  config = _config()
  experiment.refuse_evaluation_settings(config, "a search run")  # size 1
  with pytest.raises(ValueError, match=r"retrain.ensemble_size=2: a sweep "
                     r"member retrains one network"):
    experiment.refuse_evaluation_settings(
        _config(retrain_ensemble_size=2), "a sweep member")
  with pytest.raises(ValueError, match=r"retrain.weight_decays=\(0.0001, "
                     r"1.0\): a search run retrains with "
                     r"config.retrain.weight_decay"):
    experiment.refuse_evaluation_settings(
        _config(retrain_weight_decays=(1e-4, 1.0)), "a search run")


def test_an_unroll_that_cannot_run_is_refused_before_compiling(dataset):
  with pytest.raises(ValueError, match=r"config.search.unroll_steps=3: "
                     r"unrolls the second-order gradient; set "
                     r"config.search.second_order=True"):
    _config(**{"search.unroll_steps": 3})
  with pytest.raises(ValueError, match=r"config.search.unroll_steps=0: must "
                     r"be a whole number >= 1"):
    _config(**{"search.unroll_steps": 0}, second_order=True)
  one = _config(second_order=True)
  deep = _config(**{"search.unroll_steps": 8}, second_order=True)
  arch = experiment.supernet_for(one, dataset)
  step = experiment.step_bytes(arch, one.data.batch_size, (4, 2),
                               dataset.node_features.shape[1])
  # Memory for one unrolled step but not for eight: the eight are refused,
  # naming the setting to lower.
  assert experiment.choose_sampler(one, dataset, arch, (4, 2),
                                   4 * step) in ("device", "host")
  with pytest.raises(ValueError, match=r"8 unrolled weight step\(s\).*"
                     r"config.search.unroll_steps"):
    experiment.choose_sampler(deep, dataset, arch, (4, 2), 4 * step)
