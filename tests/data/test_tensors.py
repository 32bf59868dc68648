"""data/tensors.py: pixel representations, padding and the crop and flip."""

import numpy as np
import pytest
import torch

from data import random_crop_flip, to_tensors


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
