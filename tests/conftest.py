import atexit
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

from tests.helpers import REPO, has_cuda, mini_profile, tiny_loader

# Benchmarks find the kit through their folder's _checkout.py, as when run as scripts.
sys.path.insert(0, str(REPO / "benchmarks"))

E2E = pathlib.Path(__file__).parent / "e2e"
# Tests that need the shared trained zoo, the smoke store or the competition's input folder
# take seconds to minutes each: slow (``-m "not slow"`` leaves them out), as is everything in
# e2e/. The other slow tests are marked where they are defined.
SLOW_FIXTURES = {"trained_mini_zoo", "smoke_store", "competition_input"}

# Decoded data sets go to one folder of this session's, shared by every process a test
# starts (evaluation/data_cache.py), not to the user's cache.
if not os.environ.get("UNLEARN_CACHE"):
    os.environ["UNLEARN_CACHE"] = tempfile.mkdtemp(prefix="unlearn-cache-")
    atexit.register(shutil.rmtree, os.environ["UNLEARN_CACHE"], True)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames) or E2E in pathlib.Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)
    # CUDA cases need a GPU: without one they are not collected at all (benchmarks/gpu_check.py
    # runs them on a GPU machine with -m cuda).
    if not has_cuda():
        kept = [item for item in items if item.get_closest_marker("cuda") is None]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def cifar():
    from evaluation.data_cache import load_dataset_cached
    from tests.helpers import cifar_path

    return load_dataset_cached("cifar10", cifar_path())[0]  # decodes it for the processes tests start


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
def trained_mini_zoo(cifar, tmp_path_factory):
    """A small zoo on real CIFAR-10 that really fits its training data, on CPU, trained once:
    the original, references 0..5 (the ceiling's too) with their scores, and the retrain clock.

    600 images, 6 epochs at batch 64 and lr 0.01 without augmentation (at this size the
    recipe's lr 0.1 barely learns in sixty steps): the original and the references reach
    0.99 on their training images (batch 32 at lr 0.005 reached 0.997 at 1.5x the time);
    60 forget images, 400 test images.
    """
    import torch

    from data import SplitTensors, make_splits
    from evaluation.session import gather_references, score_retraining
    from evaluation.store import CheckpointStore
    from evaluation.zoo import Zoo

    profile = mini_profile()
    splits = make_splits(len(cifar.y_train), len(cifar.y_test), seed=0, train_subset=600, test_subset=400)
    store = CheckpointStore(tmp_path_factory.mktemp("store"))
    tensors = SplitTensors.build(cifar, splits, torch.device("cpu"))
    zoo = Zoo(cifar, splits, profile, tensors, store, progress=False)
    score_retraining(zoo, gather_references(zoo), gate=0.2, train=True)
    return zoo


def _listing(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def mini_zoo(trained_mini_zoo):
    """The trained mini zoo, shared by every test that only reads it: a test that changed its
    store fails here (such a test takes ``mini_zoo_copy``)."""
    before = _listing(trained_mini_zoo.store.root)
    yield trained_mini_zoo
    assert _listing(trained_mini_zoo.store.root) == before, "a test changed the shared store: use mini_zoo_copy"


@pytest.fixture
def mini_zoo_copy(trained_mini_zoo, tmp_path):
    """The mini zoo on a copy of its store, for a test that changes it. The copy's files are
    hard links: the store replaces a file by renaming a new one over it, never in place, so
    a change reaches the copy only. The zoo starts with nothing in memory."""
    import dataclasses

    from evaluation.store import CheckpointStore

    root = tmp_path / "store"
    shutil.copytree(trained_mini_zoo.store.root, root, copy_function=os.link)
    return dataclasses.replace(trained_mini_zoo, store=CheckpointStore(root))
