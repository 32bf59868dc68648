"""What the tests share besides fixtures: where the data is, the devices to run on, small
data sets, and the seams through which a test drives a session as main.py does."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10_jpeg.npz"


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# A test's device parameter: the CPU, and CUDA (marked ``cuda``: run where a GPU is present,
# left out of the collection elsewhere by conftest).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def cifar_path() -> str:
    """The real CIFAR-10 the end-to-end tests use, found where ``main.py`` finds it without
    ``--data``: ``$UNLEARN_DATA``, then the default location (``data/cifar10.npz`` or a
    torchvision root ``data/cifar10``); this checkout's shared copy only when neither has it.
    Tests never download."""
    from data.cifar10 import resolve_source

    source = pathlib.Path(resolve_source(None))
    if os.environ.get("UNLEARN_DATA") or _holds_cifar(source):
        if not _holds_cifar(source):
            pytest.fail(f"UNLEARN_DATA={source} holds no CIFAR-10 (an .npz or a torchvision root)")
        return str(source)
    if SHARED_CIFAR.is_file():
        return str(SHARED_CIFAR)
    pytest.fail(f"CIFAR-10 not found at {source}: put it there or set UNLEARN_DATA (see README, Data)")


def _holds_cifar(path: pathlib.Path) -> bool:
    return path.is_file() if path.suffix == ".npz" else (path / "cifar-10-batches-py").is_dir()


def mini_profile():
    """The mini zoo's profile: 600 images, 6 epochs at batch 64 and lr 0.01 without augmentation."""
    from evaluation.profiles import Profile

    return Profile("test", 600, 400, 6, 6, 64, 3, clock_steps=2, train_lr=0.01, augment=False)


def structured_data(n=96, device="cpu"):
    """``n`` images whose means depend on their labels, so that training is not chaotic noise."""
    import torch

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.5 + y.view(-1, 1, 1, 1) / 5.0
    return x.to(device), y.to(device)


def tiny_loader(n: int, seed: int, batch: int = 16):
    """``n`` random 32x32 images with random labels; the same ones for the same seed."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, generator=g)


def sandbox(zoo):
    """What the zoo's runs start from, as a session builds it."""
    from evaluation.runner import Sandbox

    return Sandbox(tuple(zoo.all_originals()), zoo.tensors, zoo.profile.loader_batch_size)


def contestants(**factories) -> dict:
    """Methods as main.py hands them to a session: each factory with the values it builds."""
    from main import contestant

    return {name: contestant(make) for name, make in factories.items()}


def parameters_of(net) -> dict:
    """A copy of every parameter of ``net``, by name: what a method's changes are measured against."""
    return {n: p.detach().clone() for n, p in net.named_parameters()}
