"""The engine on CUDA: bf16 autocast, CUDA graphs, grouped models.

Collected only where CUDA is present (``conftest.collect_ignore``); CI has no GPU,
so these run on a GPU machine (``benchmarks/gpu_check.py`` runs every test marked
``cuda``: these, and the ``cuda`` device cases of the other files).
"""

import pytest
import torch
import torchvision

from training.inference import predict_logits, predict_logits_many
from tests.test_engine import _data
from training.engine import train_models
from training.model import make_model
from training.recipe import TrainRecipe

CUDA = torch.device("cuda")
pytestmark = pytest.mark.cuda


def _on_cuda(n):
    return tuple(t.to(CUDA) for t in _data(n))


def _moved(state, seed, name):
    return state[name].cpu() - make_model(seed=seed).state_dict()[name]


@pytest.mark.parametrize("fuse", [1, 2])
def test_graph_replays_equal_the_eager_steps(fuse):
    # 100 images in batches of 40: two full batches and one of 20 per epoch, so two
    # graphs are captured, and each is replayed across epochs.
    x, y = _on_cuda(100)
    recipe = TrainRecipe(epochs=2, batch_size=40, lr=1e-4)
    graphed_states, _, graphed = train_models(x, y, recipe, [3, 7], progress=False, record_losses=True, graphs=True,
                                                   fuse=fuse)
    eager_states, _, eager = train_models(x, y, recipe, [3, 7], progress=False, record_losses=True, graphs=False,
                                          fuse=fuse)
    assert graphed.shape == (6, 2)
    torch.testing.assert_close(graphed, eager, rtol=0, atol=2e-3)
    for k, seed in enumerate([3, 7]):
        for name in ("fc.weight", "layer3.0.conv1.weight"):
            a, b = _moved(graphed_states[k], seed, name), _moved(eager_states[k], seed, name)
            assert (a - b).norm() <= 5e-2 * b.norm(), name
        # the warm-up before each capture trains nothing: BN counted exactly the 6 real steps
        assert graphed_states[k]["bn1.num_batches_tracked"].item() == 6
        mean_g, mean_e = graphed_states[k]["bn1.running_mean"], eager_states[k]["bn1.running_mean"]
        assert (mean_g - mean_e).norm() <= 1e-2 * mean_e.norm()


@pytest.mark.parametrize("fuse", [1, 3])
def test_group_on_cuda_equals_models_alone(fuse):
    x, y = _on_cuda(96)
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=1e-4)
    seeds = [3, 7, 11]
    states, _, together = train_models(x, y, recipe, seeds, progress=False, record_losses=True, fuse=fuse)
    for k, seed in enumerate(seeds):
        (alone_state,), _, alone = train_models(x, y, recipe, [seed], progress=False, record_losses=True)
        torch.testing.assert_close(together[:, k], alone[:, 0], rtol=0, atol=2e-2)  # bf16
        a, b = _moved(states[k], seed, "fc.weight"), _moved(alone_state, seed, "fc.weight")
        assert (a - b).norm() <= 5e-2 * b.norm()
        model = torchvision.models.resnet18(weights=None, num_classes=10)
        model.load_state_dict({n: t.cpu() for n, t in states[k].items()})
        assert all(torch.isfinite(t).all() for t in states[k].values())
    assert (together[0, 0] - together[0, 1]).abs() > 1e-3, "different seeds must give different models"


def test_graphed_group_learns():
    # A wrong update (sign, scale, a graph reading stale inputs) shows as a loss that does not fall.
    x, y = _on_cuda(256)
    _, _, losses = train_models(x, y, TrainRecipe(epochs=8, batch_size=64, lr=0.05), [0, 1, 2], progress=False,
                                record_losses=True)
    assert (losses[-4:].mean(0) < 0.5 * losses[:4].mean(0)).all(), losses


def test_batched_inference_on_cuda_equals_one_model_at_a_time():
    x, _ = _on_cuda(40)
    models = [torchvision.models.resnet18(weights=None, num_classes=10).to(CUDA) for _ in range(3)]
    for m in models:
        with torch.no_grad():
            m.train()(x)
        m.eval()
    together = predict_logits_many([m.state_dict() for m in models], x, batch_size=16, group_size=2)
    for k, m in enumerate(models):
        torch.testing.assert_close(together[k], predict_logits(m, x), rtol=1e-2, atol=1e-2)  # TF32 convolutions


def test_fp16_graph_replays_equal_the_eager_steps_and_skip_overflows_on_the_device():
    """fp16 with loss scaling inside a captured graph: GradScaler's initial 2^16 overflows
    the first steps, which both runs must skip alike, on the device, and then train."""
    x, y = _on_cuda(100)
    recipe = TrainRecipe(epochs=3, batch_size=40, lr=1e-3)
    graphed_states, _, graphed = train_models(x, y, recipe, [3], progress=False, record_losses=True, graphs=True,
                                              precision="fp16")
    eager_states, _, eager = train_models(x, y, recipe, [3], progress=False, record_losses=True, graphs=False,
                                          precision="fp16")
    torch.testing.assert_close(graphed, eager, rtol=0, atol=5e-3)
    assert torch.isfinite(graphed).all()
    assert not torch.equal(graphed_states[0]["fc.weight"].cpu(), make_model(seed=3).state_dict()["fc.weight"])
