"""Training speed: the starter-kit loop against the engine, one model and K at once.

In one run, on the same device and data (real CIFAR-10 images), times
  (a) the starter-kit style loop: torchvision transforms (RandomCrop(32, 4),
      RandomHorizontalFlip, ToTensor, Normalize) per image, a DataLoader with 2
      workers, fp32, one model;
  (b) the engine with one model (on CUDA also (b0): the same without CUDA graphs),
      with and without the small-input convolutions as matrix products;
  (c) the engine with K models at once, for each K asked for: K plain modules (on
      CUDA on parallel streams), and K models fused into one vmapped network;
each for a measured number of steps after warm-up, and prints images/s, seconds
per 30-epoch model on 45,000 images (extrapolated), and the speedups over (a).

    python benchmarks/train_speed.py [--device cpu|cuda] [--models K[,K2...]] [--steps S] [--batch-size B] [--compile]
"""

import argparse

import torch

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from data import load_cifar10, to_tensors
from training import starter_kit
from training.engine import train_models
from training.recipe import TrainRecipe

EPOCH_IMAGES, EPOCHS = 45_000, 30  # the retrained references of the full profile


def engine(images, labels, batch_size, steps, n_models, graphs=None, fuse=1, compile=False, small_convs=None):
    """Images/s (summed over models) of the engine training ``n_models`` at once.

    An epoch is as many full batches as the images hold (at most ``steps``). The rate
    is the difference between a run of 1 + r epochs and a run of 1 epoch, r epochs
    making at least ``steps`` steps: the fixed costs (model creation, CUDA graph
    capture, cuDNN autotuning) and the first epoch cancel, leaving the steady state.
    """
    per_epoch = min(steps, images.shape[0] // batch_size)
    x, y = images[: per_epoch * batch_size], labels[: per_epoch * batch_size]
    extra = -(-steps // per_epoch)
    seeds = list(range(n_models))

    def seconds(epochs):
        return train_models(x, y, TrainRecipe(epochs=epochs, batch_size=batch_size), seeds, progress=False,
                            graphs=graphs, fuse=fuse, compile=compile, small_convs=small_convs)[1]

    seconds(1)  # process-wide first-use costs (CUDA context, library loading)
    return n_models * extra * per_epoch * batch_size / (seconds(1 + extra) - seconds(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=None, help="K for (c), or several: 8,16,32 (default: 16 on CUDA, 2 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 200 on CUDA, 12 on CPU)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128, help="the starter kit's batch (128)")
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or torchvision root")
    parser.add_argument("--compile", action="store_true", help="also time (b) and (c, streams) through torch.compile")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    ks = [int(k) for k in args.models.split(",")] if args.models else [16 if cuda else 2]
    steps = args.steps or (200 if cuda else 12)
    warmup = args.warmup if args.warmup is not None else (20 if cuda else 2)
    if cuda:
        torch.backends.cudnn.benchmark = True

    data = load_cifar10(args.data)
    if len(data.y_train) < args.batch_size:
        raise SystemExit(f"error: the data has {len(data.y_train)} training images, fewer than one batch")
    images, labels = to_tensors(data.x_train, data.y_train, device)

    loader_epochs = -(-(warmup + steps) * args.batch_size // len(data.y_train))
    recipe = TrainRecipe(epochs=loader_epochs, batch_size=args.batch_size)
    _, base = starter_kit.train(data.x_train, data.y_train, recipe, 0, device, warmup + steps, warmup)
    rates = {"a: starter-kit loop": base}
    if cuda:
        rates["b0: engine, 1 model, no graphs"] = engine(images, labels, args.batch_size, steps, 1, graphs=False)
    rates["b: engine, 1 model"] = engine(images, labels, args.batch_size, steps, 1)
    # The small-input convolutions as matrix products: the engine's default on CPU only,
    # so each device also times the other choice.
    toggled = "small convs as matmuls" if cuda else "every conv a convolution"
    rates[f"b: engine, 1 model, {toggled}"] = engine(images, labels, args.batch_size, steps, 1, small_convs=cuda)
    if args.compile:
        rates["b: engine, 1 model, compiled"] = engine(images, labels, args.batch_size, steps, 1, compile=True)
    for k in ks:
        rates[f"c: engine, {k} models, streams"] = engine(images, labels, args.batch_size, steps, k)
        if cuda:
            rates[f"c: engine, {k} models, streams, {toggled}"] = engine(images, labels, args.batch_size, steps, k,
                                                                          small_convs=True)
        if args.compile:
            rates[f"c: engine, {k} models, compiled"] = engine(images, labels, args.batch_size, steps, k, compile=True)
        rates[f"c: engine, {k} models, vmap"] = engine(images, labels, args.batch_size, steps, k, fuse=k)
    name = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch_size}; at least {steps} timed steps; starter kit after {warmup} warm-up")
    width = max(len(label) for label in rates) + 2
    print(f"{'':{width}s}{'images/s':>10s}{'s per 30-epoch model':>22s}{'speedup vs a':>14s}")
    for label, rate in rates.items():
        per_model = EPOCHS * EPOCH_IMAGES / rate
        print(f"{label:{width}s}{rate:10.0f}{per_model:22.2f}{rate / base:14.2f}")
    best = max(rate for label, rate in rates.items() if label.startswith("c:"))
    print(f"512 retrained references at the best (c) rate: {512 * EPOCHS * EPOCH_IMAGES / best / 60:.1f} min")
    return rates


if __name__ == "__main__":
    main()
