"""Data loading, as ``torch.utils.data``: datasets, samplers, collation and the DataLoader with worker
processes. ``danlu.data.datasets`` has MNIST, FashionMNIST and Digits; ``danlu.data.transforms`` the
usual image transforms.

>>> import danlu as dl
>>> from danlu.data import DataLoader, TensorDataset
>>> x, y = next(iter(DataLoader(TensorDataset(dl.ones(5, 3), dl.zeros(5)), batch_size=2)))
>>> x.shape, y.shape
(danlu.Size([2, 3]), danlu.Size([2]))
"""

from . import datasets, transforms  # noqa: F401  (danlu.data.transforms.ToTensor, ...)
from ._worker import WorkerInfo, get_worker_info
from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
                      random_split)
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset",
           "StackDataset", "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "DataLoader", "default_collate", "default_convert",
           "get_worker_info", "WorkerInfo"]
