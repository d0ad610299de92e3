"""Bilevel search: which step moves what, the exact hypergradient, derive."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from credit_nas_jax import data
from credit_nas_jax import model
from credit_nas_jax import search
from credit_nas_jax import synthetic

HYPER = dict(weight_lr=1e-2, weight_decay=1e-4, arch_lr=1e-2,
             arch_weight_decay=0.0, zero_one_weight=0.0)


@pytest.fixture(scope="module")
def small():
  book = synthetic.generate_lending_book(3, 400)
  dataset = data.dataset_from_book(book, split_seed=0)
  maker = data.BatchMaker(dataset, 16, (3, 2), seed=0)
  arch = model.supernet_architecture(
      dataset.encoder.column_groups, dataset.encoder.features, hidden_dim=8,
      op_ratios=(2, 1, 0.5))
  return maker, arch


def _changed(before, after):
  return [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before),
                                                   jax.tree.leaves(after))]


def test_alpha_step_moves_only_alphas_and_weight_step_only_weights(small):
  maker, arch = small
  state = search.init_search_state(jax.random.key(0), arch, HYPER)
  train, val = (maker.training_batch("train", 0),
                maker.training_batch("validation", 0))
  after_alpha, _ = search.arch_update(state, train, val, arch)
  assert all(_changed(state.alphas, after_alpha.alphas))
  assert not any(_changed(state.weights, after_alpha.weights))
  assert not any(_changed(state.weight_opt_state, after_alpha.weight_opt_state))
  after_weight, _ = search.weight_update(state, train, arch)
  assert any(_changed(state.weights, after_weight.weights))
  assert not any(_changed(state.alphas, after_weight.alphas))
  assert not any(_changed(state.arch_opt_state, after_weight.arch_opt_state))


def test_search_step_is_jitted_once_and_counts_steps(small):
  maker, arch = small
  state = search.init_search_state(jax.random.key(1), arch, HYPER)
  for step in range(3):
    state, metrics = search.search_step(
        state, maker.training_batch("train", step),
        maker.training_batch("validation", step), arch=arch)
  assert int(state.step) == 3
  assert int(state.nonfinite_step) == -1
  assert search.nonfinite_report(state) is None
  assert search.search_step._cache_size() >= 1
  size = search.search_step._cache_size()
  search.search_step(state, maker.training_batch("train", 9),
                     maker.training_batch("validation", 9), arch=arch)
  assert search.search_step._cache_size() == size


def _float64(state, batches):
  cast = lambda x: x.astype(jnp.float64) if jnp.issubdtype(
      x.dtype, jnp.floating) else x
  graphs = [g._replace(nodes=g.nodes.astype(np.float64), globals={
      "label": g.globals["label"].astype(np.float64),
      "borrower": g.globals["borrower"]}) for g in batches]
  return jax.tree.map(cast, state), graphs


@pytest.mark.parametrize("unroll_steps", [1, 3])
def test_second_order_matches_finite_differences_of_the_real_adamw_unroll(
    small, unroll_steps):
  """The hypergradient through the weight optimizer's own steps (AdamW with
  its moments, after some steps, so they are not the first step's sign)
  against central differences of that unroll, computed here from optax
  directly, in float64."""
  maker, arch = small
  with jax.enable_x64(True):
    state = search.init_search_state(jax.random.key(2), arch, HYPER)
    for step in range(4):  # moments that an unroll's derivative reads
      state, _ = search.weight_update(
          state, maker.training_batch("train", 10 + step), arch)
    state, (train, val) = _float64(state, (maker.training_batch("train", 0),
                                           maker.training_batch(
                                               "validation", 0)))
    alphas = jax.tree.map(lambda a: a + jnp.linspace(-0.5, 0.5, a.size)
                          .reshape(a.shape), state.alphas)
    state = state.replace(alphas=alphas)
    _, grads = search.alpha_gradient(state, train, val, arch,
                                     second_order=True,
                                     unroll_steps=unroll_steps)

    def unrolled_loss(flat_alphas):
      alphas = unravel(flat_alphas)
      weights, opt_state = state.weights, state.weight_opt_state
      for _ in range(unroll_steps):
        grads = jax.grad(search.batch_loss)(weights, alphas, train, arch)
        updates, opt_state = state.weight_tx.update(grads, opt_state,
                                                    weights)
        weights = optax.apply_updates(weights, updates)
      return search.batch_loss(weights, alphas, val, arch)

    flat, unravel = jax.flatten_util.ravel_pytree(state.alphas)
    eps = 1e-6
    # Central differences of every alpha: both shifted points of all of
    # them in one compiled, vmapped evaluation.
    shifts = eps * jnp.eye(flat.size, dtype=flat.dtype)
    losses = jax.jit(jax.vmap(unrolled_loss))(
        jnp.concatenate([flat + shifts, flat - shifts]))
    numeric = np.asarray((losses[:flat.size] - losses[flat.size:]) / (2 * eps))
    analytic = np.asarray(jax.flatten_util.ravel_pytree(grads)[0])
    assert np.all(np.isfinite(analytic))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-9)
    # The second-order term matters: the first-order gradient differs.
    _, first = search.alpha_gradient(state, train, val, arch,
                                     second_order=False)
    first = np.asarray(jax.flatten_util.ravel_pytree(first)[0])
    assert np.abs(first - analytic).max() > 1e-6


def test_zero_one_penalty_pushes_gates_apart(small):
  _, arch = small
  near_half = {"features": jnp.full((5,), 0.1), "ops": jnp.zeros((2, 3))}
  far = {"features": jnp.full((5,), 4.0), "ops": jnp.full((2, 3), -4.0)}
  assert search.zero_one_penalty(far, arch) < search.zero_one_penalty(
      near_half, arch)


def test_derive_keeps_gates_over_threshold_and_strongest_ops(small):
  _, arch = small
  alphas = {"features": jnp.array([2.0, -1.0, -3.0, 0.5, -0.1]),
            "ops": jnp.array([[0.0, 1.0, -1.0], [3.0, 0.0, 0.0]])}
  derived = search.derive_architecture(alphas, arch, threshold=0.5)
  names = arch.group_names
  assert derived.kept_features == (names[0], names[3])
  assert derived.chosen_ops == ("medium", "big")
  assert derived.arch.layer_ops == ((arch.layer_ops[0][1],),
                                    (arch.layer_ops[1][0],))
  assert not derived.arch.searchable
  kept_columns = [c for c, g in enumerate(arch.column_groups) if g in (0, 3)]
  assert derived.arch.input_columns == tuple(kept_columns)
  described = derived.to_json()
  assert [f["kept"] for f in described["features"]] == [True, False, False,
                                                        True, False]
  assert described["features"][0]["gate"] == pytest.approx(
      float(jax.nn.sigmoid(2.0)))


def test_derive_keeps_at_least_one_feature(small):
  _, arch = small
  alphas = {"features": jnp.array([-2.0, -1.0, -3.0, -0.5, -4.0]),
            "ops": jnp.zeros((2, 3))}
  derived = search.derive_architecture(alphas, arch, threshold=0.5)
  assert derived.kept_features == (arch.group_names[3],)


def test_hyperparameters_live_in_the_state(small):
  _, arch = small
  state = search.init_search_state(jax.random.key(0), arch, HYPER)
  chex.assert_trees_all_close(
      state.hyperparameters, {k: jnp.float32(v) for k, v in HYPER.items()})
  with pytest.raises(ValueError, match="missing hyperparameters"):
    search.init_search_state(jax.random.key(0), arch, {"weight_lr": 1.0})


def test_short_search_gives_the_planted_noise_feature_the_lowest_gate():
  from experiments.configs import test as test_config  # pylint: disable=g-import-not-at-top
  from credit_nas_jax import experiment  # pylint: disable=g-import-not-at-top
  from credit_nas_jax import pipeline  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  config.data.num_borrowers = 5000
  config.space.hidden_dim = 32
  config.data.fanouts = (10, 5)
  config.data.batch_size = 64
  config.search.steps = 300
  config.search.arch_warmup_steps = 100
  config.runtime.log_every = 100
  exp = experiment.prepare(config, pipeline.load_dataset(config))
  arch = exp.supernet
  state = search.init_search_state(jax.random.key(config.seed), arch,
                                   experiment.hyperparameters_of(config))
  state, _ = experiment.search(exp, state)
  gates = dict(zip(arch.group_names,
                   np.asarray(jax.nn.sigmoid(state.alphas["features"]))))
  assert min(gates, key=gates.get) == synthetic.NOISE_FEATURE, gates
  derived = search.derive_architecture(state.alphas, arch, 0.5)
  assert synthetic.NOISE_FEATURE not in derived.kept_features


def test_derive_keeps_the_kind_of_the_chosen_ops():
  arch = model.supernet_architecture(
      (0, 1, 2), ("a", "b", "c"), hidden_dim=4, op_ratios=(2, 1, 1, 1),
      op_kinds=("gcn", "gcn", "sage", "self"))
  alphas = {"features": jnp.zeros(3),
            "ops": jnp.array([[0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 2.0]])}
  derived = search.derive_architecture(alphas, arch, threshold=0.5)
  assert derived.chosen_ops == ("sage", "self")
  assert derived.arch.layer_op_kinds == (("sage",), ("self",))
  weights, _ = model.init(jax.random.key(0), derived.arch)
  assert "w1_root" in weights["gcn"][0] and "w1_root" not in weights["gcn"][1]


def test_derive_drops_a_closed_pooled_readout():
  arch = model.supernet_architecture(
      (0, 1), ("a", "b"), hidden_dim=4, op_ratios=(2, 1),
      op_kinds=("gcn", "self"), readout_searchable=True)
  alphas = {"features": jnp.zeros(2), "ops": jnp.array([[0.0, 1.0]] * 2),
            "readout": jnp.array([-1.0])}
  derived = search.derive_architecture(alphas, arch, threshold=0.5)
  assert not derived.arch.pooled_readout and not derived.arch.searchable
  assert derived.to_json()["pooled_readout"] is False
  opened = search.derive_architecture(dict(alphas, readout=jnp.array([1.0])),
                                      arch, threshold=0.5)
  assert opened.arch.pooled_readout


def test_derive_by_validation_takes_the_best_one_shot_candidate():
  arch = model.supernet_architecture(
      (0, 1, 2, 3, 4), tuple("abcde"), hidden_dim=4, op_ratios=(1, 1, 1),
      op_kinds=("gcn", "sage", "self"), readout_searchable=True)
  # Gates all below 0.5 (the threshold would keep only the best feature).
  alphas = {"features": jnp.array([-0.1, -2.0, -0.5, -0.3, -3.0]),
            "ops": jnp.array([[-1.0, -1.1, -1.2], [-1.0, -1.1, -1.2]]),
            "readout": jnp.array([-1.0])}
  seen = []

  def validation_auc(trial):
    gates = model.gate_values(trial, arch.gate_function)
    ops = np.asarray(gates["ops"]) > 0
    features = tuple(np.flatnonzero(np.asarray(gates["features"]) > 1e-6))
    pooled = float(gates["readout"][0]) > 1e-6
    seen.append((ops.copy(), features, pooled))
    # Best: layer 1 "self", layer 2 "gcn", the top three features (a, d, c),
    # no pooled readout.
    score = 0.5 + 0.1 * ops[0, 2] + 0.1 * ops[1, 0]
    score += 0.1 * (features == (0, 2, 3)) + 0.05 * (not pooled)
    return float(score)

  derived, trials = search.derive_by_validation(alphas, arch, 0.5,
                                                validation_auc)
  assert derived.chosen_ops == ("self", "gcn")
  assert derived.kept_features == ("a", "c", "d")
  assert not derived.arch.pooled_readout
  # Op trials keep every feature open; each closes all ops but one a layer.
  op_trials = [t for t in trials if "ops" in t]
  assert len(op_trials) == 9
  assert all(len(f) == 5 and o.sum() == 2 for o, f, _ in seen[:9])
  counts = sorted({t["num_features"] for t in trials if "num_features" in t})
  assert counts == [1, 2, 3, 4, 5]  # 20%..100% of 5, and the threshold's 1
  assert search.derive_architecture(alphas, arch, 0.5).kept_features == (
      "a",)


def test_softmax_gates_derive_relative_to_their_uniform_share():
  arch = model.supernet_architecture(
      (0, 1, 2, 3), ("a", "b", "c", "d"), hidden_dim=4, op_ratios=(2, 1),
      gate_function="softmax")
  # Shares 0.40, 0.30, 0.20, 0.10: above the uniform 0.25 are a and b.
  alphas = {"features": jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1])),
            "ops": jnp.zeros((2, 2))}
  derived = search.derive_architecture(alphas, arch, threshold=0.5)
  assert derived.kept_features == ("a", "b")
  fixed = search.threshold_gates(alphas, arch, jnp.float32(0.5))
  np.testing.assert_array_equal(fixed["features"], [1.0, 1.0, 0.0, 0.0])


def test_derive_by_validation_drops_a_feature_that_adds_nothing():
  arch = model.supernet_architecture(
      (0, 1, 2), ("signal", "noise", "other"), hidden_dim=4,
      op_ratios=(2, 1))
  # The noise column has the highest gate, but closing it costs nothing.
  alphas = {"features": jnp.array([1.0, 2.0, 0.5]), "ops": jnp.zeros((2, 2))}

  def validation_auc(trial):
    open_ = np.asarray(trial["features"]) > -100
    return 0.6 + 0.1 * open_[0] + 0.05 * open_[2] + 0.0001 * open_[1]

  derived, trials = search.derive_by_validation(
      alphas, arch, 0.5, validation_auc, min_feature_gain=0.001)
  assert derived.kept_features == ("signal", "other")
  gains = {t["closed_feature"]: t["gain"] for t in trials
           if "closed_feature" in t}
  assert gains["noise"] == pytest.approx(0.0001)
  assert gains["signal"] == pytest.approx(0.1)
  unchanged, _ = search.derive_by_validation(alphas, arch, 0.5,
                                             validation_auc)
  assert "noise" in unchanged.kept_features


def test_derive_by_validation_closes_features_only_on_evidence():
  """With a confidence, a gain or a loss within noise keeps the feature."""
  arch = model.supernet_architecture(
      (0, 1, 2, 3, 4), tuple("abcde"), hidden_dim=4, op_ratios=(2, 1))
  alphas = {"features": jnp.array([3.0, 2.0, 1.0, 0.0, -1.0]),
            "ops": jnp.zeros((2, 2))}
  # Closing "e" looks better (+0.01), but within the noise; "d" costs
  # nothing and its AUC difference is known to 0.0001: it goes either way.
  effect = {"a": 0.1, "b": 0.05, "c": 0.02, "d": 0.0, "e": -0.01}
  noise = {"a": 0.01, "b": 0.01, "c": 0.01, "d": 0.0001, "e": 0.02}

  def open_features(trial):
    return [n for n, alpha in zip("abcde", np.asarray(trial["features"]))
            if alpha > -100]

  def validation_auc(trial):
    return 0.5 + sum(effect[n] for n in open_features(trial))

  def difference_se(one, other):
    changed = set(open_features(one)) ^ set(open_features(other))
    return float(np.sqrt(sum(noise[n] ** 2 for n in changed)))

  plain, _ = search.derive_by_validation(
      alphas, arch, 0.5, validation_auc, fractions=(0.8, 1.0),
      min_feature_gain=0.001, difference_se=difference_se)
  assert plain.kept_features == ("a", "b", "c")  # the best four, less "d"
  sure, trials = search.derive_by_validation(
      alphas, arch, 0.5, validation_auc, fractions=(0.8, 1.0),
      min_feature_gain=0.001, difference_se=difference_se, confidence=2.0)
  # All five: the best four are within 2 x 0.02 of all five; then "e"'s
  # gain of -0.01 +- 0.02 is not surely small; "d" costs surely nothing.
  assert sure.kept_features == ("a", "b", "c", "e")
  gain_se = {t["closed_feature"]: t["gain_se"] for t in trials
             if "closed_feature" in t}
  assert gain_se["e"] == pytest.approx(0.02)
  with pytest.raises(ValueError, match="confidence"):
    search.derive_by_validation(alphas, arch, 0.5, validation_auc,
                                difference_se=difference_se, confidence=-1)
  with pytest.raises(ValueError, match="needs difference_se"):
    search.derive_by_validation(alphas, arch, 0.5, validation_auc,
                                confidence=2.0)
  # Every feature weak: the one of the largest gain stays, not the one of
  # the largest upper bound ("e": -0.01 + 2 x 0.08 against "a"'s 0.12).
  noise["e"] = 0.08
  lone, _ = search.derive_by_validation(
      alphas, arch, 0.5, validation_auc, fractions=(1.0,),
      min_feature_gain=1.0, difference_se=difference_se, confidence=2.0)
  assert lone.kept_features == ("a",)


def test_derive_by_validation_closes_a_feature_with_all_its_embeddings():
  """Two embeddings of one feature stand in for each other: either alone
  can be closed for free, both together cost the signal."""
  arch = model.supernet_architecture(
      (0, 1), ("signal", "noise"), hidden_dim=4, op_ratios=(2, 1),
      embeddings=[(0, "signal:periodic", "periodic", (2.0, 0.5))])
  assert arch.group_names == ("signal", "noise", "signal:periodic")
  alphas = {"features": jnp.array([1.0, 2.0, 1.5]), "ops": jnp.zeros((2, 2))}

  def validation_auc(trial):
    open_ = np.asarray(trial["features"]) > -100
    return (0.6 + 0.1 * (open_[0] | open_[2]) + 0.0005 * open_[0]
            + 0.0001 * open_[1])

  # Closed one group at a time, each of signal's groups would cost under
  # 0.001 and both would go.
  derived, trials = search.derive_by_validation(
      alphas, arch, 0.5, validation_auc, min_feature_gain=0.001)
  assert derived.kept_features == ("signal", "signal:periodic")
  gains = {t["closed_feature"]: t["gain"] for t in trials
           if "closed_feature" in t}
  assert gains == pytest.approx({"signal": 0.1005, "noise": 0.0001})


def test_random_architectures_are_uniform_over_what_the_derive_gives():
  supernet = model.supernet_architecture((0, 1, 1), ("a", "b"), hidden_dim=4,
                                         op_ratios=(2, 1),
                                         readout_searchable=True)
  # 3 feature sets x 2 ops x 2 ops x 2 readouts.
  assert search.architecture_count(supernet) == 24
  rng = np.random.default_rng(0)
  draws = [search.random_architecture(supernet, rng) for _ in range(2400)]
  counts = {}
  for d in draws:
    key = (d.kept_features, d.chosen_ops, d.arch.pooled_readout)
    counts[key] = counts.get(key, 0) + 1
  assert len(counts) == 24
  # 100 expected each: a binomial standard deviation is about 10.
  assert 60 < min(counts.values()) and max(counts.values()) < 140
  for d in draws[:5]:
    assert d.arch.num_groups == len(d.kept_features) >= 1
    assert all(len(layer) == 1 for layer in d.arch.layer_ops)


def test_a_space_of_one_network_has_no_random_control():
  supernet = model.supernet_architecture((0,), ("a",), hidden_dim=4,
                                         op_ratios=(1,))
  assert search.architecture_count(supernet) == 1
  with pytest.raises(ValueError, match="holds one network"):
    search.random_architecture(supernet, np.random.default_rng(0))
