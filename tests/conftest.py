import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10_jpeg.npz"
# Benchmarks find the kit through their folder's _checkout.py, as when run as scripts.
sys.path.insert(0, str(REPO / "benchmarks"))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# The CUDA engine checks need a GPU; CI has none, so there they are not collected at all.
collect_ignore = [] if _has_cuda() else ["test_cuda.py"]
# Tests that need the shared trained zoo, the smoke store or the competition's input folder
# take seconds to minutes each: slow (``-m "not slow"`` leaves them out). The other slow tests
# are marked where they are defined.
SLOW_FIXTURES = {"mini_zoo", "smoke_store", "competition_input"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


# A test's device parameter: the CPU always, CUDA (marked ``cuda``) where a GPU is present.
DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if _has_cuda() else [])


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


@pytest.fixture(scope="session")
def cifar():
    from data import load_cifar10

    return load_cifar10(cifar_path(), download=False)


def sandbox(zoo):
    """What the zoo's runs start from, as a session builds it."""
    from evaluation.runner import Sandbox

    return Sandbox(zoo.original()[0], zoo.tensors, zoo.profile.loader_batch_size)


def contestants(**factories) -> dict:
    """Methods as main.py hands them to a session: each factory with the values it builds."""
    from main import contestant

    return {name: contestant(make) for name, make in factories.items()}


def tiny_loader(n: int, seed: int, batch: int = 16):
    """``n`` random 32x32 images with random labels; the same ones for the same seed."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, generator=g)


@pytest.fixture(scope="session")
def tiny():
    """A ResNet-18 that has memorised 64 random images (retain + forget), and its loaders:
    ``tiny_loader(48, 1)``, ``(16, 2)`` and validation ``(16, 3)``."""
    import torch
    from torch.utils.data import ConcatDataset, DataLoader

    from methods.common import sgd, train_epochs
    from training.model import make_model

    torch.manual_seed(0)
    retain, forget, val = tiny_loader(48, 1), tiny_loader(16, 2), tiny_loader(16, 3)
    net = make_model(seed=0)
    both = DataLoader(ConcatDataset([retain.dataset, forget.dataset]), batch_size=16, shuffle=True)
    train_epochs(net, both, sgd(net, 0.01, weight_decay=0.0), 8)
    return net.eval(), retain, forget, val


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory):
    """The store of the in-process ``--profile smoke`` runs on CIFAR-10, shared as a user's
    cache is: the first run trains the zoo (and the ceiling), the later ones load it."""
    return tmp_path_factory.mktemp("smoke_store")


@pytest.fixture(scope="session")
def mini_zoo(cifar, tmp_path_factory):
    """A small zoo on real CIFAR-10 that really fits its training data, on CPU.

    600 images, 6 epochs at batch 64 and lr 0.01 without augmentation (at this size the
    recipe's lr 0.1 barely learns in sixty steps): the original and the references reach
    0.99 on their training images (batch 32 at lr 0.005 reached 0.997 at 1.5x the time);
    60 forget images, 400 test images.
    """
    import torch

    from data import SplitTensors, make_splits
    from evaluation.profiles import Profile
    from evaluation.store import CheckpointStore
    from evaluation.zoo import Zoo

    profile = Profile("test", 600, 400, 6, 6, 64, 3, clock_steps=2, train_lr=0.01, augment=False)
    splits = make_splits(len(cifar.y_train), len(cifar.y_test), seed=0, train_subset=600, test_subset=400)
    store = CheckpointStore(tmp_path_factory.mktemp("store"))
    tensors = SplitTensors.build(cifar, splits, torch.device("cpu"))
    return Zoo(cifar, splits, profile, tensors, store, progress=False)
