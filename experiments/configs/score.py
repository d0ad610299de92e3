"""Scoring settings: decision bands, points scale, reasons.

  python experiments/score.py --config=experiments/configs/score.py \
      --model_dir=runs/default/model --borrowers=b.csv --loans=l.csv \
      --installments=i.csv --edges=e.csv --as_of=2026-01-01 \
      --output=scores.csv --config.num_reasons=4 \
      --config.bands="(('plan_a', 0.95), ('plan_b', 0.85))"
  python experiments/score.py ... --config.sensitive_column=age \
      --config.sensitive_bins="(25, 35, 50)" --config.default_column=default
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The default scoring policy."""
  config = ml_collections.ConfigDict()

  # Decisions: (plan, minimum score of good credit); below every band the
  # loan is refused.
  config.bands = (("plan_a", 0.9), ("plan_b", 0.8), ("plan_c", 0.7))

  # Points: base_points at base_odds good:bad odds, points_to_double more
  # for each doubling of the odds.
  config.base_points = 600.0
  config.base_odds = 50.0
  config.points_to_double = 20.0

  # Reasons per applicant (most negative contributions first); 0 explains
  # refused applicants only, with one reason each.
  config.num_reasons = 3
  # "own_record": contributions of the applicant's own features to its score
  # alone, plus related_borrowers (score minus score alone); cheap.
  # "in_graph": gradient x input of the full graph's score; 2x model cost.
  config.attribution = "own_record"

  # Applicants who lost records: False leaves them unscored (listed in the
  # rejects), True scores them from their valid records.
  config.score_partial = False

  # Graphs per model call: speed and memory only, never a result.
  config.batch_size = 1024

  # Fairness report (fairness.json beside the output): a column of the
  # borrowers table to group by ("": none), inner bin edges for a numeric
  # one (an age: (25, 35, 50); (): by value), and a 0/1 column of the
  # borrowers table, 1 = defaulted, for AUC and error rates ("": none).
  config.sensitive_column = ""
  config.sensitive_bins = ()
  config.default_column = ""
  return config
