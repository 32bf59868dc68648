"""data/loaders.py: the loaders a method gets, batch for batch a plain DataLoader's."""

import torch

from data import make_loader


def test_loader_yields_image_label_tuples():
    images, labels = torch.randn(10, 3, 32, 32), torch.arange(10)
    batches = list(make_loader(images, labels, batch_size=4, shuffle=True, seed=0))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert torch.equal(x, images[y]) and batches[0].images is x and batches[0].labels is y
    again = list(make_loader(images, labels, batch_size=4, shuffle=True, seed=0))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again))


def test_gathering_loaders_yield_the_batches_of_a_plain_dataloader():
    """Same batches, order and labels as DataLoader(TensorDataset) with the same generator,
    epoch after epoch; and loaders a method builds over ``loader.dataset`` (PyTorch's
    default collate, a Subset) still get the right samples."""
    from torch.utils.data import DataLoader, Subset, TensorDataset

    images, labels = torch.randn(103, 3, 8, 8), torch.randint(0, 10, (103,))
    ours = make_loader(images, labels, batch_size=16, shuffle=True, seed=7)
    plain = DataLoader(TensorDataset(images, labels), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(7))
    assert len(ours) == len(plain) == 7 and ours.batch_size == 16
    for _ in range(2):
        for (x, y), (px, py) in zip(ours, plain, strict=True):
            assert torch.equal(x, px) and torch.equal(y, py)
    rebuilt = DataLoader(ours.dataset, batch_size=10, shuffle=False)
    x, y = next(iter(rebuilt))
    assert torch.equal(x, images[:10]) and torch.equal(y, labels[:10])
    subset = DataLoader(Subset(ours.dataset, [5, 2, 9]), batch_size=3, collate_fn=ours.collate_fn)
    x, y = next(iter(subset))
    assert torch.equal(y, labels[[5, 2, 9]]) and torch.equal(x, images[[5, 2, 9]])
