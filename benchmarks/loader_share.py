"""The method loaders' share of an unlearning run.

On one device and real CIFAR-10 training images, as the evaluation hands them to a
method (``data.method_loaders``: normalised tensors, batch 64, shuffled),
times one epoch of the retain loader alone (every batch fetched and, as a method
does, moved to the device) and one epoch of finetune over it, and prints the loader's
share of the run.

    python benchmarks/loader_share.py [--device cpu|cuda] [--images 2000] [--repeats 3]
"""

import argparse
import time

import torch

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from data import load_cifar10, make_loader, to_tensors
from methods.finetune import Finetune
from training.devices import pick_device
from training.model import make_model

BATCH = 64  # the profiles' loader batch size


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_seconds(loader, device) -> float:
    start = time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    _sync(device)
    return time.perf_counter() - start


def finetune_seconds(loader, device) -> float:
    net = make_model(seed=0).to(device)
    start = time.perf_counter()
    Finetune(epochs=1, lr=0.01).run(net, loader, loader, loader)
    _sync(device)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", help="cpu | cuda (default: cuda when present)")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3, help="the best of this many timed epochs")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    data = load_cifar10()
    images, labels = to_tensors(data.x_train[: args.images], data.y_train[: args.images], device)
    loader = make_loader(images, labels, BATCH, shuffle=True, seed=0)
    loader_seconds(loader, device), finetune_seconds(loader, device)  # warm-up
    fetch = min(loader_seconds(loader, device) for _ in range(args.repeats))
    run = min(finetune_seconds(loader, device) for _ in range(args.repeats))
    print(f"device={device} threads={torch.get_num_threads()} images={args.images} batch={BATCH} "
          f"batches={len(loader)}")
    print(f"loader epoch: {fetch * 1e3:.1f} ms ({fetch / len(loader) * 1e6:.0f} us per batch)")
    print(f"finetune epoch: {run:.2f} s; the loader's share: {fetch / run:.1%}")


if __name__ == "__main__":
    main()
