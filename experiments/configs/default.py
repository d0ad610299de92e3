"""Default search on the embedded synthetic lending book.

  python experiments/search.py --workdir=/tmp/credit_nas
  python experiments/search.py --workdir=/tmp/credit_nas --config.arch_lr=3e-2
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The default config: about 3 minutes on a 2-core CPU."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Data.
  # "synthetic": raw records, extracted; "synthetic_graph": the same model
  # drawn at the feature level, for graphs of millions of borrowers.
  # Real tables: "german", "credit" (with relation files), "taiwan",
  # "lending" (k-nearest-neighbour graphs), read from data_dir (empty: the
  # CREDIT_NAS_DATA_DIR variable, then shared/data beside the checkout).
  config.dataset = "synthetic"
  config.data_dir = ""
  config.knn_k = 10  # neighbours of the similarity graph; 0: no edges
  config.use_edges = True  # False: a k-NN graph even where relations exist
  config.num_borrowers = 20_000
  config.mean_links = 26.5  # links per borrower (synthetic_graph): 1M
  # borrowers give about 10M undirected relation edges
  config.data_seed = 0
  config.split_seed = 0
  config.fanouts = (10, 5)
  config.batch_size = 128
  # Where neighbourhoods are sampled: "device" (inside the compiled step;
  # the graph lives in device memory), "host" (numpy, for graphs too large
  # for the device) or "auto" (the device where the graph fits in half of
  # its free memory).
  config.sampler = "auto"

  # Supernet.
  config.hidden_dim = 100
  config.op_ratios = (4.0, 2.0, 1.0)  # expansion ratios of the GCN ops
  # "patent": the three GCN ops above. "extended": also a SAGE-style op
  # (neighbours' mean plus a root weight on the borrower's own state) and a
  # no-neighbour op, both of ratio extra_op_ratio, so the search can decide
  # how much the graph is worth.
  config.search_space = "patent"
  config.extra_op_ratio = 2.0
  config.num_gcn_layers = 2
  # How a layer's candidate ops run: "separate" products (a CPU's fastest),
  # "fused" (one up- and one down-projection; a GPU's), or "auto".
  config.op_layout = "auto"
  config.gate_function = "sigmoid"
  # Feature embedding kinds the feature gate chooses among, a gate per
  # (feature, kind): "linear" (the patent's, always in), "piecewise" (over
  # embedding_bins quantile bins of the training rows) and "periodic"
  # (embedding_frequencies trainable frequencies, initialised with standard
  # deviation embedding_sigma); the non-linear kinds embed numeric features.
  #   --config.feature_embeddings=linear,piecewise,periodic
  config.feature_embeddings = ("linear",)
  config.embedding_bins = 8
  config.embedding_frequencies = 8
  config.embedding_sigma = 0.5
  # A wide path: the logit adds a linear function of the borrower's own
  # gated encoded columns to the deep path's (an additive model of the
  # features beside the GCN layers; the same feature gates close both).
  config.wide_path = False

  # Bilevel search (the floats below are the ones a sweep may vary).
  config.search_steps = 400
  config.second_order = False
  # Alphas stay fixed while the weights warm up.
  config.arch_warmup_steps = 100
  config.weight_lr = 3e-3
  # Decoupled (AdamW) decay: it shrinks the weights by weight_lr *
  # weight_decay a step, which moves scale from embeddings into the gates.
  config.weight_decay = 1.0
  config.arch_lr = 3e-2
  config.arch_weight_decay = 0.0
  config.zero_one_weight = 0.0
  config.log_every = 25

  # Derive (the patent derives the network from the gates but names no rule:
  # both rules are ours). "threshold": keep the features whose gate >=
  # gate_threshold (softmax gates: >= 2 * gate_threshold / number of
  # features, the uniform share at 0.5). "validation": rank the gates and
  # choose the number
  # of features kept (and, in the extended space, the pooled readout) by the
  # supernet's validation AUC with the other gates closed.
  config.derive = "threshold"
  config.gate_threshold = 0.5
  # Derive on validation: a kept feature whose closing costs less than this
  # validation AUC is dropped (0: never).
  config.derive_min_feature_gain = 0.001
  # Derive on validation: z > 0 closes features only on evidence (the
  # number kept: the most within z standard errors of the best AUC; a
  # feature: dropped if its gain is below the minimum by z standard errors;
  # DeLong's paired errors). 0: the plain best.
  config.derive_confidence = 0.0

  # Retrain of the derived network.
  config.retrain_steps = 1000
  config.retrain_lr = 3e-3
  config.retrain_weight_decay = 1e-4
  # The evaluation's searched models: decays chosen among on validation
  # (one retrain each; the other members use the chosen one). Empty: the
  # one retrain_weight_decay.
  config.retrain_weight_decays = ()
  config.eval_every = 100
  # True: evaluate at least once an epoch of the training rows (eval_every
  # capped at ceil(train rows / batch_size)); a small table overfits within
  # eval_every steps.
  config.eval_each_epoch = False
  config.patience = 3
  # Evaluate (and keep at early stopping) an exponential moving average of
  # the retrain's weights spanning this many evaluation intervals (decay
  # 1 - 1 / (span * interval steps)); 0: the weights as trained.
  config.retrain_average_span = 0.0
  # Dropout in retrain steps: the rate at which the head's input (the
  # pooled readout) and hidden units are dropped (inverted dropout; every
  # retrained network, the evaluation's fixed ones too); 0: none.
  config.retrain_dropout = 0.0
  # Retrains of the derived network from different initial weights (and
  # batch order, with the device sampler); the model is the mean of their
  # probabilities (the evaluation's searched rows; the search and sweep
  # launchers retrain one network: 1).
  config.retrain_ensemble_size = 1
  # The networks of members 1, 2, ... in turn (member 0 is the derived
  # network): "derived", "wide_path" (a wide path added), "tree_bins" (its
  # piecewise entries on target-aware bins), "all_columns" (its ops on every
  # input entry of the space), "linear_columns" (its kept features' linear
  # entries alone); empty: every member the derived network.
  config.retrain_member_variants = ()

  # Devices: 1 runs on one device; N > 1 (or 0: all local devices) shards
  # each step's batch over a data axis, batch_size graphs per device.
  config.num_devices = 1

  # Checkpoints (search state every N steps and at the end; retrain state at
  # every evaluation).
  config.checkpoint_every = 100
  config.keep_checkpoints = 2

  # Profiling: search steps (a, b), counted from 1, whose blocks a
  # jax.profiler trace records into WORKDIR/profile (the first block's trace
  # also holds the search's compile); () traces nothing.
  #   --config.profile_steps=101,200
  config.profile_steps = ()
  # Time the bare search step and both networks' inference into
  # search_cost.json (three more compiles; tests that only compare results
  # turn it off).
  config.cost_probes = True

  # Graphs of tables without relations, and a table a team brings.
  # "inductive": every borrower's k-NN neighbours are training borrowers (a
  # held-out row is no one's neighbour); "transductive": all rows link to all.
  config.knn_graph = "inductive"
  # --config.dataset=table reads table_path (.csv or .parquet): label_column
  # with bad_value meaning default (compared as a number where the column is
  # numeric, else as text); optional id_column (unique ids) and edges_path
  # (".txt": "u v" 0-based rows; .csv/.parquet: src, dst ids, or rows without
  # an id column). Non-numeric columns and categorical_columns are one-hot;
  # constant columns are dropped and logged.
  config.table_path = ""
  config.label_column = ""
  config.bad_value = "1"
  config.id_column = ""
  config.edges_path = ""
  config.categorical_columns = ()
  return config
