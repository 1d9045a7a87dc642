"""Reward (energy) model learned from pairwise human judgments of restored faces.

- :mod:`reward_model.export`: read / write the preference export (JSONL, schema-versioned).
- :mod:`reward_model.losses`: the judgment model (Bradley–Terry + Davidson ties + absolute "both bad"
  term) and per-annotator reliability.
- :mod:`reward_model.model`: ``RewardConfig``, ``RewardModel(lq, x) -> Tensor[B]`` (an ensemble of small
  conv encoders), its artifacts (``restorer.artifacts``: the one mechanism of the platform's models).
- :mod:`reward_model.ensemble`: ``RewardEnsemble.preference(lq, a, b) -> (P(a ≻ b), spread)``.
- :mod:`reward_model.selection`: which pairs to send to annotators next, with the reason for each.
- :mod:`reward_model.oracle`: simulated annotators that know the HQ original.
- :mod:`reward_model.simulated`: ``simulated_judgments``: an oracle's answers on candidate pairs as export rows.
- :mod:`reward_model.train`: ``train(config, *, judgments, images, out_dir)`` and
  ``python -m reward_model.train --judgments export.jsonl --images DIR --out DIR``.

Pure ML: never imports django, celery or annotation_web.
"""
