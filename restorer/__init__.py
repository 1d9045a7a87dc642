"""Face restorer: degradations and instruction text, face sources, the instruction integrator + conditional
diffusion UNet, a DDIM sampler with per-step log-probs, supervised training and evaluation.

Pure ML: never imports Django, Celery or ``annotation_web``. Modules:
``images`` (PIL <-> tensors), ``degradations``, ``data``, ``classical``, ``metrics``, ``tokenizer``,
``model`` (``RestorerConfig``, ``Restorer``), ``sampling``, ``train``, ``evaluate``, ``artifacts``, ``devices``
(which torch device a process uses).
"""
