"""Datasets, torch-free (numpy + OpenCV): :func:`load_dataset` is the one entry.

Torch Dataset/DataLoader wrappers live in :mod:`edgelstm.train.torchdata`.
"""
from edgelstm.data.dataset import SPLITS, Dataset, Kind, Sampling, Split, load_dataset

__all__ = ["SPLITS", "Dataset", "Kind", "Sampling", "Split", "load_dataset"]
