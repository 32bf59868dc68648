import numpy as np
import pytest
import torch

from data import DataError, load_cifar10, make_loader, make_splits, random_crop_flip, to_tensors
from data.cifar10 import ENV_VAR


def _write_npz(path, n_train=20, n_test=10, max_label=9):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, max_label + 1, n_train),
        x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, max_label + 1, n_test),
    )
    return path


def test_splits_are_disjoint_and_cover_the_subset():
    s = make_splits(50000, 10000, seed=0)
    assert s.forget.size == 5000 and s.retain.size == 45000
    assert s.val.size == 5000 and s.test.size == 5000
    assert np.intersect1d(s.forget, s.retain).size == 0
    assert np.intersect1d(s.val, s.test).size == 0
    np.testing.assert_array_equal(np.union1d(s.forget, s.retain), np.arange(50000))


def test_splits_reproducible_from_the_seed():
    a, b, c = make_splits(1000, 200, seed=3), make_splits(1000, 200, seed=3), make_splits(1000, 200, seed=4)
    np.testing.assert_array_equal(a.forget, b.forget)
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(a.forget, c.forget)
    assert a.forget_hash() == b.forget_hash() != c.forget_hash()


def test_subset_splits():
    s = make_splits(50000, 10000, seed=1, train_subset=300, test_subset=200)
    assert s.forget.size == 30 and s.retain.size == 270 and s.val.size == 100 and s.test.size == 100


def test_npz_source_and_env_var(tmp_path, monkeypatch):
    path = _write_npz(tmp_path / "tiny.npz")
    assert load_cifar10(path).x_train.shape == (20, 32, 32, 3)
    monkeypatch.setenv(ENV_VAR, str(path))
    data = load_cifar10()
    assert data.source == str(path) and data.y_test.dtype == np.int64


def test_missing_data_gives_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="--data"):
        load_cifar10(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "no_such_dir")


def test_labels_must_match_the_model(tmp_path):
    with pytest.raises(DataError, match="0..9"):
        load_cifar10(_write_npz(tmp_path / "bad.npz", max_label=12))


def test_real_cifar_is_the_expected_one(cifar):
    assert cifar.x_train.shape == (50000, 32, 32, 3) and cifar.x_test.shape == (10000, 32, 32, 3)
    assert cifar.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


def test_to_tensors_normalises():
    x = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    images, labels = to_tensors(x, [1, 2])
    assert images.shape == (2, 3, 32, 32)
    assert images[0, 0, 0, 0].item() == pytest.approx(-0.4914 / 0.2023, rel=1e-5)
    assert labels.tolist() == [1, 2]


def test_raw_pixels_are_the_exact_0_255_values_and_pad_with_zero():
    from data import RAW, pad_black

    x = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3)).astype(np.uint8)
    images, _ = to_tensors(x, [0, 1, 2], pixels=RAW)
    assert images.dtype == torch.float32 and torch.equal(images, torch.from_numpy(x).permute(0, 3, 1, 2).float())
    padded = pad_black(images, 4, RAW)
    assert padded.shape == (3, 3, 16, 16) and torch.equal(padded[:, :, 4:12, 4:12], images)
    assert padded[:, :, :4].abs().sum() == 0 and padded[:, :, :, -4:].abs().sum() == 0


def test_the_representation_is_part_of_the_data_fingerprint(cifar):
    from dataclasses import replace

    from data import NORMALISED, RAW

    assert cifar.pixels == NORMALISED  # CIFAR-10 runs are normalised, as the starter kit's
    assert replace(cifar, pixels=RAW).fingerprint() != cifar.fingerprint()
    assert replace(cifar, pixels=NORMALISED).fingerprint() == cifar.fingerprint()


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


def test_crop_flip_matches_a_per_image_crop():
    # Each output is a 32x32 window of the padded image (possibly mirrored), so a
    # tagged image shows exactly where its window came from.
    n = 256
    pattern = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32).repeat(n, 3, 1, 1)
    images = pattern + 10000 * torch.arange(n).view(n, 1, 1, 1)
    labels = torch.arange(n)
    out = random_crop_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    black = -torch.tensor([0.4914, 0.4822, 0.4465]) / torch.tensor([0.2023, 0.1994, 0.2010])
    flips = 0
    for i in range(n):
        padded = black.view(3, 1, 1).repeat(1, 40, 40)
        padded[:, 4:36, 4:36] = images[i]
        windows = [padded[:, y : y + 32, x : x + 32] for y in range(9) for x in range(9)]
        plain = any(torch.equal(out[i], w) for w in windows)
        mirrored = any(torch.equal(out[i], w.flip(-1)) for w in windows)
        assert plain or mirrored, f"image {i} is not a crop of its own padded image"
        flips += mirrored and not plain
        # the label's image is the one in the crop: its tag 10000*i survives in the centre
        assert int(out[i, 0, 16, 16].item()) // 10000 == labels[i].item()
    assert 0.4 < flips / n < 0.6


@pytest.mark.parametrize("representation", ["NORMALISED", "RAW"])
def test_crop_flip_equals_torchvision_on_real_images(cifar, representation):
    # The engine's augmentation against the starter kit's PIL transforms (RandomCrop(32, 4)
    # pads the raw image with black, then HorizontalFlip, ToTensor, Normalize), window by
    # window: same offsets and flips give the same pixels, in either representation (the
    # black border is -mean/std normalised, 0 raw).
    import torchvision.transforms.functional as TF
    from PIL import Image

    import data
    from data import crop_flip, draw_crop_flip, pad_black

    pixels = getattr(data, representation)
    raw = cifar.x_train[:64]
    crops = draw_crop_flip(len(raw), torch.Generator().manual_seed(1))
    ours = crop_flip(pad_black(to_tensors(raw, np.zeros(len(raw)), pixels=pixels)[0], 4, pixels),
                     torch.arange(len(raw)), crops)
    for i, image in enumerate(raw):
        dy, dx, flip = crops[:, i].tolist()
        pil = TF.crop(TF.pad(Image.fromarray(image), 4), dy, dx, 32, 32)
        pil = TF.hflip(pil) if flip else pil
        theirs = TF.normalize(TF.to_tensor(pil), *pixels.torchvision_normalize())
        torch.testing.assert_close(ours[i], theirs, rtol=0, atol=1e-5 * 255 / pixels.scale)
    assert 0 < crops[2].sum() < len(raw) and len(set(crops[0].tolist())) > 5


def test_the_tests_look_for_cifar_where_main_looks_without_data(monkeypatch, tmp_path):
    from tests.conftest import cifar_path

    monkeypatch.delenv("UNLEARN_DATA", raising=False)
    default = tmp_path / "cifar10.npz"
    default.write_bytes(b"")
    monkeypatch.setattr("data.cifar10.DEFAULT_NPZ", default)
    assert cifar_path() == str(default)
    monkeypatch.setenv("UNLEARN_DATA", str(tmp_path / "elsewhere.npz"))
    with pytest.raises(pytest.fail.Exception, match="UNLEARN_DATA=.*elsewhere.npz holds no CIFAR-10"):
        cifar_path()
