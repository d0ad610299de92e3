"""A seeded synthetic lending book: raw records, a relation graph and labels.

The book is the project's embedded default, so every command runs without
external data. How it is made:

1. Borrowers belong to communities (an employer, a village, a guarantee
   circle). Each community has a latent risk, and a borrower's latent risk is
   the community's plus an individual part, so risky borrowers cluster.
2. Relation edges (guarantees and emergency contacts) join mostly borrowers of
   the same community, with a few links across: the graph is homophilous.
3. The BestPay score and the overdue behaviour on every platform follow the
   latent risk. The Sesame score is drawn independently of everything: the
   ``sesame_grade`` feature is pure noise by construction (``NOISE_FEATURE``),
   so a working feature search must give it the lowest gate.
4. Raw loans and installments are generated per platform, the features are
   extracted from them by :func:`credit_nas_jax.features.extract_features`,
   and the default label is drawn from a known logistic risk model over the
   extracted features of the borrower and the mean of its neighbours'
   (``RISK_MODEL``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from credit_nas_jax import features as features_lib

NOISE_FEATURE = "sesame_grade"
AS_OF = "2026-01-01"

# Known risk model: logit(P(default)) = intercept
#   + sum_f own[f] * z_f(borrower) + sum_f neighbour[f] * mean_neighbours z_f
# where z_f is the feature standardised over the book and a missing grade is 0.
RISK_MODEL = {
    "intercept": -1.75,
    "own": {"bestpay_grade": -0.9, "bestpay_overdue": 0.8,
            "sesame_grade": 0.0, "alipay_overdue": 0.7, "bank_overdue": 0.9},
    "neighbour": {"bestpay_grade": -0.5, "bestpay_overdue": 0.4,
                  "sesame_grade": 0.0, "alipay_overdue": 0.4,
                  "bank_overdue": 0.5},
    "missing_bestpay": 0.3,
}

_LOANS_PER_SOURCE = {"bestpay": 1.4, "alipay": 1.1, "bank": 0.8}
_LATE_SHIFT = {"bestpay": -2.3, "alipay": -2.5, "bank": -2.9}
_PERIOD_CHOICES = np.array([3, 6, 12])


@dataclasses.dataclass(frozen=True)
class LendingBook:
  """Raw tables, relation edges and labels of a lending book.

  Attributes:
    borrowers: raw borrowers table.
    loans: raw loans table.
    installments: raw installments table.
    edges: ``src``, ``dst``, ``relation``: undirected relations between
      borrowers, each listed once.
    labels: ``borrower_id`` -> 1 for a default (bad), 0 for good.
    as_of: the snapshot date of the records.
  """

  borrowers: pd.DataFrame
  loans: pd.DataFrame
  installments: pd.DataFrame
  edges: pd.DataFrame
  labels: pd.Series
  as_of: str


def _relation_edges(rng, community, mean_links, cross_share):
  """Homophilous undirected edges: most links stay inside a community."""
  n = community.shape[0]
  order = np.argsort(community, kind="stable")
  sorted_comm = community[order]
  start = np.searchsorted(sorted_comm, sorted_comm, side="left")
  end = np.searchsorted(sorted_comm, sorted_comm, side="right")
  links = rng.poisson(mean_links / 2, size=n)
  src_sorted_pos = np.repeat(np.arange(n), links)
  pick = start[src_sorted_pos] + (
      rng.random(src_sorted_pos.size) *
      (end - start)[src_sorted_pos]).astype(np.int64)
  src = order[src_sorted_pos]
  dst = order[pick]
  cross = rng.random(src.size) < cross_share
  dst = np.where(cross, rng.integers(0, n, src.size), dst)
  keep = src != dst
  pairs = np.stack([np.minimum(src, dst), np.maximum(src, dst)], 1)[keep]
  return np.unique(pairs, axis=0)


def _loans_and_installments(rng, borrower_ids, risk, as_of):
  """Loans per platform and their installments, lateness driven by risk."""
  loan_parts, installment_parts = [], []
  as_of_day = np.datetime64(as_of, "D")
  loan_counter = 0
  for source, mean in _LOANS_PER_SOURCE.items():
    count = rng.poisson(mean, size=risk.shape[0])
    owner = np.repeat(np.arange(risk.shape[0]), count)
    periods = rng.choice(_PERIOD_CHOICES, size=owner.size)
    start = as_of_day - rng.integers(30, 900, size=owner.size).astype(
        "timedelta64[D]")
    loan_id = np.arange(loan_counter, loan_counter + owner.size)
    loan_counter += owner.size
    loan_parts.append(pd.DataFrame({
        "loan_id": [f"L{k:08d}" for k in loan_id],
        "borrower_id": borrower_ids[owner],
        "source": source,
        "periods": periods,
    }))
    loan_of_row = np.repeat(np.arange(owner.size), periods)
    first_row = np.repeat(np.cumsum(periods) - periods, periods)
    period = np.arange(loan_of_row.size) - first_row + 1
    due = start[loan_of_row] + (30 * period).astype("timedelta64[D]")
    late_logit = _LATE_SHIFT[source] + 1.3 * risk[owner][loan_of_row]
    late = rng.random(period.size) < 1 / (1 + np.exp(-late_logit))
    delay = np.where(late, rng.integers(1, 90, period.size),
                     -rng.integers(0, 10, period.size))
    repaid = due + delay.astype("timedelta64[D]")
    # Installments not yet repaid at the snapshot have no repaid date.
    repaid_text = pd.array(
        np.where(repaid <= as_of_day, repaid.astype(str), None),
        dtype="string")
    installment_parts.append(pd.DataFrame({
        "loan_id": np.asarray(loan_parts[-1]["loan_id"])[loan_of_row],
        "period": period,
        "due_date": due.astype(str),
        "repaid_date": repaid_text,
    }))
  loans = pd.concat(loan_parts, ignore_index=True)
  installments = pd.concat(installment_parts, ignore_index=True)
  return loans, installments


def standardise_for_risk(features: pd.DataFrame) -> pd.DataFrame:
  """The risk model's inputs: features standardised over the book, NaN -> 0."""
  model = features[list(features_lib.FEATURE_COLUMNS)].astype(float)
  z = (model - model.mean()) / model.std(ddof=0).replace(0.0, 1.0)
  return z.fillna(0.0)


def risk_logits(features: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
  """The known risk model's default logit for every borrower (row order)."""
  z = standardise_for_risk(features).to_numpy()
  n = z.shape[0]
  own = np.array([RISK_MODEL["own"][c] for c in features_lib.FEATURE_COLUMNS])
  neighbour = np.array(
      [RISK_MODEL["neighbour"][c] for c in features_lib.FEATURE_COLUMNS])
  src = np.concatenate([edges[:, 0], edges[:, 1]])
  dst = np.concatenate([edges[:, 1], edges[:, 0]])
  degree = np.bincount(dst, minlength=n)
  neighbour_sum = np.zeros_like(z)
  np.add.at(neighbour_sum, dst, z[src])
  neighbour_mean = neighbour_sum / np.maximum(degree, 1)[:, None]
  missing = features["bestpay_grade"].isna().to_numpy(dtype=float)
  return (RISK_MODEL["intercept"] + z @ own + neighbour_mean @ neighbour
          + RISK_MODEL["missing_bestpay"] * missing)


@dataclasses.dataclass(frozen=True)
class BorrowerGraphBook:
  """A large synthetic book at the feature level: no raw records.

  Attributes:
    features: the model features and loan counts, as the extractor would
      give them, indexed by borrower_id.
    src, dst: undirected relation edges as row indices, each listed once.
    labels: 1 for a default, 0 for good (row order).
  """

  features: pd.DataFrame
  src: np.ndarray
  dst: np.ndarray
  labels: np.ndarray


def generate_borrower_graph(seed: int, num_borrowers: int, *,
                            mean_links: float = 26.5,
                            community_size: int = 40,
                            cross_share: float = 0.1,
                            missing_score_share: float = 0.12
                            ) -> BorrowerGraphBook:
  """The same generative model as :func:`generate_lending_book`, drawn at
  the feature level, for graphs of millions of borrowers.

  Raw installment records are not written: every loan's overdue count is
  drawn as Binomial(periods, P(late)) with the same lateness model, so the
  features follow the same distributions (without the book's installments
  that fall due after the snapshot). Labels come from ``RISK_MODEL``.
  1,000,000 borrowers with the default ``mean_links`` give about 10,000,000
  undirected relation edges.
  """
  rng = np.random.default_rng(seed)
  num_communities = max(1, num_borrowers // community_size)
  community = rng.integers(0, num_communities, num_borrowers)
  risk = (0.8 * rng.normal(size=num_communities)[community]
          + 0.6 * rng.normal(size=num_borrowers))
  bestpay = np.clip(620 - 130 * risk + 60 * rng.normal(size=num_borrowers),
                    0, 1099)
  sesame = rng.uniform(350, 950, size=num_borrowers)
  bestpay[rng.random(num_borrowers) < missing_score_share] = np.nan
  sesame[rng.random(num_borrowers) < missing_score_share] = np.nan
  columns = {
      "bestpay_grade": features_lib.score_grade(pd.Series(bestpay)).to_numpy(),
      "sesame_grade": features_lib.score_grade(pd.Series(sesame)).to_numpy()}
  for source, mean in _LOANS_PER_SOURCE.items():
    count = rng.poisson(mean, size=num_borrowers)
    owner = np.repeat(np.arange(num_borrowers), count)
    periods = rng.choice(_PERIOD_CHOICES, size=owner.size)
    late = 1 / (1 + np.exp(-(_LATE_SHIFT[source] + 1.3 * risk[owner])))
    degree = rng.binomial(periods, late) / periods
    columns[f"{source}_overdue"] = np.bincount(owner, weights=degree,
                                               minlength=num_borrowers)
    columns[f"{source}_loans"] = count
  ids = pd.Index([f"G{k:08d}" for k in range(num_borrowers)],
                 name="borrower_id")
  table = pd.DataFrame(columns, index=ids)[
      list(features_lib.FEATURE_COLUMNS + features_lib.COUNT_COLUMNS)]
  pairs = _relation_edges(rng, community, mean_links, cross_share)
  logits = risk_logits(table, pairs)
  labels = (rng.random(num_borrowers) < 1 / (1 + np.exp(-logits))).astype(
      np.int64)
  return BorrowerGraphBook(table, pairs[:, 0], pairs[:, 1], labels)


def generate_lending_book(seed: int, num_borrowers: int = 20_000, *,
                          community_size: int = 40, mean_links: float = 6.0,
                          cross_share: float = 0.1,
                          missing_score_share: float = 0.12) -> LendingBook:
  """Generates a synthetic lending book.

  Args:
    seed: the generator's seed; the same seed gives the same book.
    num_borrowers: number of borrowers.
    community_size: mean borrowers per community.
    mean_links: mean relation edges per borrower.
    cross_share: share of edges that leave the community.
    missing_score_share: share of borrowers without an account on a platform
      (for each platform independently).

  Returns:
    A :class:`LendingBook`.
  """
  if num_borrowers < 10:
    raise ValueError(f"num_borrowers={num_borrowers}; need at least 10")
  rng = np.random.default_rng(seed)
  num_communities = max(1, num_borrowers // community_size)
  community = rng.integers(0, num_communities, num_borrowers)
  community_risk = rng.normal(size=num_communities)
  risk = 0.8 * community_risk[community] + 0.6 * rng.normal(size=num_borrowers)

  borrower_ids = np.array([f"B{k:07d}" for k in range(num_borrowers)])
  bestpay = np.clip(620 - 130 * risk + 60 * rng.normal(size=num_borrowers),
                    0, 1099).round()
  sesame = rng.uniform(350, 950, size=num_borrowers).round()  # pure noise
  bestpay[rng.random(num_borrowers) < missing_score_share] = np.nan
  sesame[rng.random(num_borrowers) < missing_score_share] = np.nan
  borrowers = pd.DataFrame({"borrower_id": borrower_ids,
                            "bestpay_score": bestpay, "sesame_score": sesame})
  loans, installments = _loans_and_installments(rng, borrower_ids, risk, AS_OF)
  pairs = _relation_edges(rng, community, mean_links, cross_share)
  edges = pd.DataFrame({
      "src": borrower_ids[pairs[:, 0]],
      "dst": borrower_ids[pairs[:, 1]],
      "relation": np.where(rng.random(pairs.shape[0]) < 0.4, "guarantee",
                           "emergency_contact"),
  })
  extracted = features_lib.extract_features(borrowers, loans, installments,
                                            as_of=AS_OF)
  logits = risk_logits(extracted.loc[borrower_ids], pairs)
  default = (rng.random(num_borrowers) < 1 / (1 + np.exp(-logits))).astype(
      np.int64)
  labels = pd.Series(default, index=pd.Index(borrower_ids, name="borrower_id"),
                     name="default")
  return LendingBook(borrowers, loans, installments, edges, labels, AS_OF)
