"""PyTorch: a job's images as an `IterableDataset`, made on the fly, and a CTC-ready collate function.

Needs the `torch` extra; importing `digitgenerator` never imports torch.

    from torch.utils.data import DataLoader
    from digitgenerator.dataset import DatasetSpec
    from digitgenerator.torch import BLANK, SequenceDataset

    data = SequenceDataset(DatasetSpec(count=100_000, length=(3, 8), realistic=True))
    loader = DataLoader(data, batch_size=64, num_workers=4, collate_fn=data.collate)
    for images, targets, target_lengths in loader:   # (B, 1, H, W), (sum of lengths,), (B,)
        ...                                          # torch.nn.CTCLoss(blank=BLANK)

Image i is the one `digitgenerator-dataset` writes for the same spec (a pure
function of the seed and i), so the dataset is the same however many workers
or ranks read it, and the same every epoch.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .data import DEFAULT_MNIST_FOLDER, DEFAULT_PREPROCESSED_FOLDER, NUM_CLASSES
from .job import shard_range
from .spec import DatasetSpec, make_items

BLANK = NUM_CLASSES  # targets are the digits 0-9; class 10 is CTC's blank
CHUNK = 64  # images made together; worker k of n takes chunks k, k + n, k + 2n, ...


class SequenceDataset(IterableDataset):
    """The images of `spec` as (image, target) pairs: float32 (1, height, W) in [0, 1], int64 (length,).

    Images are ink on black (1 = ink), or black on white where the export
    writes them so (spec.invert, or realistic without it). Each DataLoader
    worker takes every n-th chunk of CHUNK images, and each distributed rank
    (torch.distributed when initialized, or rank/world_size given) a
    contiguous part of the job, so that no image is read twice; the order is
    the same on every run with the same workers.
    """

    def __init__(
        self,
        spec: DatasetSpec,
        mnist_folder: str | os.PathLike = DEFAULT_MNIST_FOLDER,
        preprocessed_folder: str | os.PathLike = DEFAULT_PREPROCESSED_FOLDER,
        model_dir: str | os.PathLike | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if not isinstance(spec, DatasetSpec):
            raise ValueError(f"spec must be a DatasetSpec, got {type(spec).__name__}")
        super().__init__()
        self.spec = spec
        self.gen_args = (mnist_folder, preprocessed_folder, model_dir)
        self._rank = None if rank is None and world_size is None else _check_rank(rank, world_size)
        self._gen = None  # made in each worker process on first use

    def _part(self) -> range:
        """This rank's indices."""
        if self._rank is not None:
            return shard_range(self.spec.count, self._rank)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return shard_range(self.spec.count, (torch.distributed.get_rank(), torch.distributed.get_world_size()))
        return range(self.spec.count)

    def __len__(self) -> int:
        return len(self._part())

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        part = self._part()
        if self._gen is None:
            from .generator import Digitgenerator

            self._gen = Digitgenerator(self.gen_args[0], self.gen_args[1], model_dir=self.gen_args[2])
        flip = self.spec.dark_on_light
        for start in range(part.start + worker * CHUNK, part.stop, workers * CHUNK):
            for image, text, _, _ in make_items(self._gen, self.spec, range(start, min(start + CHUNK, part.stop))):
                pixels = torch.from_numpy(1.0 - image if flip else np.ascontiguousarray(image))
                yield pixels.unsqueeze(0), torch.tensor([int(c) for c in text], dtype=torch.int64)

    @property
    def collate(self):
        """`ctc_collate` padding with this dataset's background (for DataLoader's collate_fn)."""
        return functools.partial(ctc_collate, background=1.0 if self.spec.dark_on_light else 0.0)


def ctc_collate(batch, background: float = 0.0):
    """(images, targets, target_lengths) for torch.nn.CTCLoss(blank=BLANK).

    images: float32 (B, 1, H, W_max), each image padded on the right with
    `background`; targets: int64 (sum of lengths,), the digits of every image
    one after another; target_lengths: int64 (B,).
    """
    if not batch:
        raise ValueError("ctc_collate needs at least one (image, target) pair")
    height = batch[0][0].shape[-2]
    width = max(image.shape[-1] for image, _ in batch)
    images = torch.full((len(batch), 1, height, width), float(background), dtype=torch.float32)
    for k, (image, _) in enumerate(batch):
        images[k, :, :, : image.shape[-1]] = image
    targets = torch.cat([target for _, target in batch])
    lengths = torch.tensor([len(target) for _, target in batch], dtype=torch.int64)
    return images, targets, lengths


def _check_rank(rank, world_size) -> tuple[int, int]:
    if rank is None or world_size is None:
        raise ValueError("give both rank and world_size, or neither (then torch.distributed decides)")
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise ValueError(f"rank {rank!r} of world_size {world_size!r}: need 0 <= rank < world_size")
    return rank, world_size
