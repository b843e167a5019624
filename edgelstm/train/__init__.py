"""Training and distillation (torch). The CLI lives in :mod:`edgelstm.train.commands`.

Public entry points: :func:`edgelstm.train.trainer.train`, :func:`edgelstm.train.trainer.distill` and
:func:`edgelstm.train.pipeline.train_stage`; a model's per-step logits for evaluation come from
:mod:`edgelstm.train.evaluate` (``edgelstm eval`` itself is :mod:`edgelstm.measure.evaluate`).
"""
