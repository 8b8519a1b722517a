"""digitgenerator.torch: a real DataLoader with two worker processes, and the CTC collate function."""

import subprocess
import sys

import numpy as np
import pytest

from digitgenerator import Digitgenerator
from digitgenerator.dataset import DatasetSpec, make_items

torch = pytest.importorskip("torch")
from digitgenerator.torch import BLANK, SequenceDataset, ctc_collate  # noqa: E402

SPEC = DatasetSpec(count=203, length=(1, 6), seed=2)  # not a multiple of the chunk, the batch or the workers


def read_all(dataset, workers, batch_size=16):
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=dataset.collate)
    out = []
    for images, targets, lengths in loader:
        digits = iter(targets.tolist())
        for image, n in zip(images, lengths.tolist()):
            out.append(("".join(str(next(digits)) for _ in range(n)), image))
    return out


def test_two_workers_read_every_image_once_as_the_export_makes_it():
    got = read_all(SequenceDataset(SPEC), workers=2)
    assert len(got) == SPEC.count
    want = {}
    for image, text, _, _ in make_items(Digitgenerator(), SPEC, range(SPEC.count)):
        want.setdefault(text, []).append(image)
    matched = 0
    for text, image in got:  # each image is one of the job's, its target its digits; none read twice
        candidates = want[text]
        hit = next(k for k, c in enumerate(candidates)
                   if np.array_equal(image[0, :, : c.shape[1]].numpy(), c) and not image[0, :, c.shape[1]:].any())
        candidates.pop(hit)
        matched += 1
    assert matched == SPEC.count and not any(want.values())


def test_the_order_is_the_same_on_every_run():
    one, two = read_all(SequenceDataset(SPEC), workers=2), read_all(SequenceDataset(SPEC), workers=2)
    assert [t for t, _ in one] == [t for t, _ in two]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(one, two))
    alone = read_all(SequenceDataset(SPEC), workers=0)
    assert sorted(t for t, _ in alone) == sorted(t for t, _ in one)


def test_ranks_split_the_job_without_overlap():
    parts = [[t for t, _ in read_all(SequenceDataset(SPEC, rank=r, world_size=3), workers=0)] for r in range(3)]
    assert [len(p) for p in parts] == [len(SequenceDataset(SPEC, rank=r, world_size=3)) for r in range(3)] == [67, 68, 68]
    assert sum(parts, []) == [t for t, _ in read_all(SequenceDataset(SPEC), workers=0)]


def test_dark_on_light_images_are_the_exports_pixels_inverted():
    spec = DatasetSpec(count=5, length=(2, 4), realistic=True, seed=4)
    assert spec.dark_on_light  # realistic pages are written black on white
    made = [image for image, _, _, _ in make_items(Digitgenerator(), spec, range(spec.count))]
    got = [image for image, _ in SequenceDataset(spec)]
    assert len(got) == len(made)
    for image, ink in zip(got, made):
        assert image.shape == (1, *ink.shape) and np.array_equal(image[0].numpy(), 1.0 - ink)


def test_one_rank_of_one_reads_everything():
    assert len(SequenceDataset(SPEC, rank=0, world_size=1)) == SPEC.count


def test_collate_pads_with_the_background_and_trains_a_ctc_loss():
    realistic = SequenceDataset(DatasetSpec(count=6, length=(2, 4), realistic=True))
    images, targets, lengths = next(iter(torch.utils.data.DataLoader(realistic, batch_size=6, collate_fn=realistic.collate)))
    assert images.shape[:3] == (6, 1, 40) and images.dtype == torch.float32
    widths = [item[0].shape[-1] for item in realistic]
    for k, w in enumerate(widths):  # paper is white: padding is 1, not a black bar
        assert torch.all(images[k, :, :, w:] == 1.0)
    assert int(lengths.sum()) == len(targets) and targets.max() < BLANK
    logits = torch.zeros(images.shape[-1] // 4, 6, BLANK + 1, requires_grad=True)
    loss = torch.nn.CTCLoss(blank=BLANK)(logits.log_softmax(2), targets, torch.full((6,), logits.shape[0]), lengths)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad is not None


def test_ctc_collate_by_hand():
    a, b = torch.ones(1, 2, 3), torch.ones(1, 2, 5)
    images, targets, lengths = ctc_collate([(a, torch.tensor([4, 2])), (b, torch.tensor([7]))], background=0.5)
    assert images.shape == (2, 1, 2, 5) and torch.all(images[0, :, :, 3:] == 0.5) and torch.all(images[1] == 1)
    assert targets.tolist() == [4, 2, 7] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError):
        ctc_collate([])


@pytest.mark.parametrize("kwargs, message", [({"rank": 3, "world_size": 3}, "need 0 <= rank < world_size"),
                                             ({"rank": 0}, "give both rank and world_size"),
                                             ({"world_size": 2}, "give both rank and world_size"),
                                             ({"rank": -1, "world_size": 2}, "need 0 <= rank < world_size")])
def test_bad_ranks_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SequenceDataset(SPEC, **kwargs)


def test_the_digits_and_cache_come_from_the_folders_given(mnist_folder, tmp_path):
    cache = tmp_path / "cache"
    spec = DatasetSpec(count=4, length=(2, 3), seed=5)
    got = [(image[0].numpy(), "".join(map(str, target.tolist())))
           for image, target in SequenceDataset(spec, mnist_folder=mnist_folder, preprocessed_folder=cache)]
    assert [p.suffix for p in cache.iterdir()] == [".npy"]  # the cache went where it was asked to
    tiny = Digitgenerator(mnist_folder, cache)
    assert len(tiny.labels) == 30  # the 30 blobs of the folder, not the embedded sample
    want = [(image, text) for image, text, _, _ in make_items(tiny, spec, range(spec.count))]
    assert len(got) == len(want) and all(np.array_equal(a, b) and s == t for (a, s), (b, t) in zip(got, want))


def test_importing_digitgenerator_does_not_import_torch_or_dask():
    code = "import sys, digitgenerator, digitgenerator.dataset; print(sorted({'torch', 'dask', 'tensorflow'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
