"""Training speed: the starter-kit loop against the engine, one model and K at once.

In one run, on the same device and data (real CIFAR-10 images), times
  (a) the starter-kit style loop: torchvision transforms (RandomCrop(32, 4),
      RandomHorizontalFlip, ToTensor, Normalize) per image, a DataLoader with 2
      workers, fp32, one model;
  (b) the engine with one model;
  (c) the engine with K models at once;
each for a measured number of steps after warm-up, and prints images/s, seconds
per 30-epoch model on 45,000 images (extrapolated), and the speedups b/a and c/a.

    python benchmarks/train_speed.py [--device cpu|cuda] [--models K] [--steps S] [--batch-size B]
"""

import argparse
import pathlib
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from data import CIFAR10_MEAN, CIFAR10_STD, load_cifar10, to_tensors  # noqa: E402
from evaluation.engine import train_models  # noqa: E402
from evaluation.model import make_model  # noqa: E402
from evaluation.training import TrainRecipe  # noqa: E402

EPOCH_IMAGES, EPOCHS = 45_000, 30  # the retrained references of the full profile


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def starter_kit_loop(images_uint8, labels, device, batch_size, steps, warmup):
    """Images/s of the starter kit's way: PIL transforms in 2 DataLoader workers, fp32."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Dataset

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])

    class Images(Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            from PIL import Image

            return transform(Image.fromarray(images_uint8[i])), int(labels[i])

    loader = DataLoader(Images(), batch_size=batch_size, shuffle=True, num_workers=2, drop_last=True)
    model = make_model(seed=0).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    done, start = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                sync(device)
                start = time.perf_counter()
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == warmup + steps:
                break
    sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def engine(images, labels, device, batch_size, steps, warmup, n_models):
    """Images/s (summed over models) of the engine training ``n_models`` at once."""
    n = (warmup + steps) * batch_size
    x, y = images[:n], labels[:n]
    recipe = TrainRecipe(epochs=1, batch_size=batch_size)
    seeds = list(range(n_models))
    train_models(x[: warmup * batch_size], y[: warmup * batch_size], recipe, seeds, progress=False)
    _, seconds, _ = train_models(x[: steps * batch_size], y[: steps * batch_size], recipe, seeds, progress=False)
    return n_models * steps * batch_size / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", type=int, default=None, help="K for (c) (default: 16 on CUDA, 2 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 200 on CUDA, 12 on CPU)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128, help="the starter kit's batch (128)")
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or torchvision root")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    k = args.models or (16 if cuda else 2)
    steps = args.steps or (200 if cuda else 12)
    warmup = args.warmup if args.warmup is not None else (20 if cuda else 2)
    if cuda:
        torch.backends.cudnn.benchmark = True

    data = load_cifar10(args.data)
    need = (warmup + steps) * args.batch_size
    images, labels = to_tensors(data.x_train[:need], data.y_train[:need], device)

    rates = {
        "a: starter-kit loop": starter_kit_loop(data.x_train, data.y_train, device, args.batch_size, steps, warmup),
        "b: engine, 1 model": engine(images, labels, device, args.batch_size, steps, warmup, 1),
        f"c: engine, {k} models": engine(images, labels, device, args.batch_size, steps, warmup, k),
    }
    base = rates["a: starter-kit loop"]
    name = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch_size}; {steps} timed steps after {warmup} warm-up")
    print(f"{'':24s}{'images/s':>10s}{'s per 30-epoch model':>22s}{'speedup vs a':>14s}")
    for label, rate in rates.items():
        per_model = EPOCHS * EPOCH_IMAGES / rate
        print(f"{label:24s}{rate:10.0f}{per_model:22.1f}{rate / base:14.2f}")
    refs_512 = 512 * EPOCHS * EPOCH_IMAGES / rates[f"c: engine, {k} models"] / 60
    print(f"512 retrained references at (c)'s rate: {refs_512:.1f} min")
    return rates


if __name__ == "__main__":
    main()
