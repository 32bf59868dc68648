"""Accuracy: does the engine train the same model as the starter-kit loop?

Trains the same recipe with the same seeds both ways, the starter kit's (per-image
PIL transforms, DataLoader, fp32, one model at a time) and the engine's (all seeds at
once; bf16 and CUDA graphs on CUDA), and prints each model's test accuracy, the means
and their difference. Target (issue 6): within 1 point, averaged over a few seeds.

    python benchmarks/train_accuracy.py [--train 45000] [--epochs 30] [--seeds 3] [--device cpu|cuda] [--compile]
"""

import argparse
import time

import numpy as np
import torch

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from data import load_cifar10, to_tensors
from evaluation.scoring import accuracy
from training.inference import predict_logits
from training import starter_kit
from training.engine import train_models
from training.model import make_model
from training.recipe import TrainRecipe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train", type=int, default=45_000, help="training images (the first n)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256, help="the references' batch (256)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="the starter kit's DataLoader workers (speed only)")
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or torchvision root")
    parser.add_argument("--compile", action="store_true", help="the engine trains through torch.compile")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    data = load_cifar10(args.data)
    x_train, y_train = data.x_train[: args.train], data.y_train[: args.train]
    test = to_tensors(data.x_test, data.y_test, device)
    recipe = TrainRecipe(epochs=args.epochs, batch_size=args.batch_size)
    seeds = list(range(args.seeds))

    def test_accuracy(model):
        return accuracy(predict_logits(model, test[0]), test[1])

    start = time.perf_counter()
    plain = [test_accuracy(starter_kit.train(x_train, y_train, recipe, s, device, workers=args.workers)[0])
             for s in seeds]
    plain_seconds = time.perf_counter() - start
    states, engine_seconds, _ = train_models(*to_tensors(x_train, y_train, device), recipe, seeds, progress=False,
                                             compile=args.compile)
    engine = []
    for state in states:
        model = make_model().to(device)
        model.load_state_dict(state)
        engine.append(test_accuracy(model))

    print(f"{args.train} training images, {args.epochs} epochs, batch {args.batch_size}, seeds {seeds}, "
          f"device {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}")
    print(f"{'':14s}" + "".join(f"{'seed ' + str(s):>9s}" for s in seeds) + f"{'mean':>9s}{'seconds':>10s}")
    for name, accs, seconds in (("starter kit", plain, plain_seconds), ("engine", engine, engine_seconds)):
        print(f"{name:14s}" + "".join(f"{a:9.4f}" for a in accs) + f"{np.mean(accs):9.4f}{seconds:10.1f}")
    gap = 100 * (np.mean(engine) - np.mean(plain))
    noise = float("nan")
    if len(seeds) > 1:
        noise = 100 * np.sqrt(np.var(engine, ddof=1) / len(engine) + np.var(plain, ddof=1) / len(plain))
    print(f"engine - starter kit: {gap:+.2f} points, standard error {noise:.2f} (target: within 1)")
    return plain, engine


if __name__ == "__main__":
    main()
