"""Training, distillation and evaluation (torch). The CLI lives in :mod:`edgelstm.train.commands`.

Public entry points: :func:`edgelstm.train.trainer.train`, :func:`edgelstm.train.trainer.distill`,
:func:`edgelstm.train.evaluate.evaluate_checkpoint` and :func:`edgelstm.train.pipeline.train_stage`.
"""
