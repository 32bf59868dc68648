"""Inference speed: scoring many models over the same images, the ways the engine can.

On one device and real CIFAR-10 test images, times ``predict_logits_many`` (float32
logits of K models over n images, as the evaluation scores every model)
  - one model at a time: the plain module, which the evaluation uses by default
    (on CPU with the small-input convolutions as matrix products);
  - one model at a time, the other choice of small-input convolutions (on CPU every
    convolution a convolution; on CUDA the small ones as matrix products);
  - G models fused into one vmapped forward, for each G asked for;
and prints model-images/s and what scoring the full profile's 512 references over
55,000 images each would take at that rate.

    python benchmarks/inference_speed.py [--device cpu|cuda] [--models K] [--images N] [--groups 4,8]
"""

import argparse
import time

import torch

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from data import load_cifar10, to_tensors
from training.inference import predict_logits_many
from training.model import make_model

FULL_MODELS, FULL_IMAGES = 512, 55_000  # the full profile: references x (retain + forget + test)


def rate(states, images, group_size, repeats, small_convs=None):
    """Model-images/s of ``predict_logits_many``: the best of ``repeats`` timed calls after one warm-up."""
    def once():
        start = time.perf_counter()
        predict_logits_many(states, images, group_size=group_size, small_convs=small_convs)
        if images.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return len(states) * images.shape[0] / min(once() for _ in range(repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", type=int, default=None, help="K models scored (default: 16 on CUDA, 4 on CPU)")
    parser.add_argument("--images", type=int, default=None,
                        help="test images used (default: all on CUDA, 2,000 on CPU)")
    parser.add_argument("--groups", default="8", help="G for the fused forward, one or several: 4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or torchvision root")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    n_models = args.models or (16 if cuda else 4)
    if cuda:
        torch.backends.cudnn.benchmark = True

    data = load_cifar10(args.data)
    count = args.images or (len(data.y_test) if cuda else 2000)
    images, _ = to_tensors(data.x_test[:count], data.y_test[:count], device)
    states = []
    for seed in range(n_models):  # BatchNorm statistics from real images, as a trained model has
        model = make_model(seed=seed).to(device).train()
        with torch.no_grad():
            model(images[:256])
        states.append(model.state_dict())

    rows = {"one model at a time (default)": rate(states, images, 1, args.repeats)}
    if not cuda:
        rows["one at a time, every conv a convolution"] = rate(states, images, 1, args.repeats, small_convs=False)
    else:
        rows["one at a time, small convs as matmuls"] = rate(states, images, 1, args.repeats, small_convs=True)
    for g in (int(g) for g in args.groups.split(",")):
        rows[f"{g} models fused (vmap)"] = rate(states, images, g, args.repeats)

    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device: {name} ({torch.get_num_threads()} threads), torch {torch.__version__}; "
          f"{n_models} models x {images.shape[0]} images, float32")
    print(f"{'variant':<42} {'model-images/s':>15} {'512 references, min':>20}")
    for label, r in rows.items():
        print(f"{label:<42} {r:>15,.0f} {FULL_MODELS * FULL_IMAGES / r / 60:>20.1f}")


if __name__ == "__main__":
    main()
