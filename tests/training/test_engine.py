"""training/engine.py: grouped training equals training alone on each device, CUDA graphs replay
the eager steps, the optimiser steps, the schedule and the precisions."""

import pytest
import torch
import torchvision

from tests.helpers import DEVICES, structured_data
from training.engine import ModelGroup, StackedSGD, train_models
from training.model import make_model
from training.recipe import TrainRecipe


def _moved(state, seed, name):
    return state[name].cpu() - make_model(seed=seed).state_dict()[name]


# What grouped training must match, per device: on CPU fp32 to float noise; on CUDA bf16
# autocast, whose rounding differs between the grouped and the plain path.
GROUP_TOLERANCES = {
    "cpu": {"first_loss": 1e-5, "losses": 1e-3, "moved": {"fc.weight": 1e-3, "fc.bias": 1e-3, "conv1.weight": 5e-2,
                                                           "layer3.0.conv1.weight": 5e-2, "layer4.1.bn2.weight": 5e-2},
            "running_mean": 1e-3},
    "cuda": {"first_loss": 2e-2, "losses": 2e-2, "moved": {"fc.weight": 5e-2}, "running_mean": None},
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fuse", [1, 3])
def test_group_training_equals_training_alone(fuse, device):
    """Same losses step by step and the same updates, up to float noise.

    BatchNorm at initialisation makes this loop chaotic at the recipe's lr (a 1e-7
    nudge of the weights can move the third loss by 0.1), so the comparison runs at
    lr 1e-4, where float noise stays below 1e-3. A small lr would also hide a wrong
    update rule in the losses, so each parameter's change from its initial value is
    compared too. fc's must agree to 1e-3 (a missing weight decay alone moves it by
    2.5e-3, momentum by O(1)); layers followed by BatchNorm get 5e-2, because BN's
    backward cancels most of their gradient and so magnifies rounding (measured:
    about 4e-3 between the grouped and the plain path).
    """
    tolerance = GROUP_TOLERANCES[device]
    x, y = structured_data(device=device)
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=1e-4)
    seeds = [3, 7, 11]
    states, _, together = train_models(x, y, recipe, seeds, progress=False, record_losses=True, fuse=fuse)
    assert together.shape == (3, 3)
    for k, seed in enumerate(seeds):
        (alone_state,), _, alone = train_models(x, y, recipe, [seed], progress=False, record_losses=True)
        # same weights, same batch, same crop
        assert abs(together[0, k] - alone[0, 0]) < tolerance["first_loss"]
        torch.testing.assert_close(together[:, k], alone[:, 0], rtol=0, atol=tolerance["losses"])
        for name, allowed in tolerance["moved"].items():
            moved_together, moved_alone = _moved(states[k], seed, name), _moved(alone_state, seed, name)
            assert (moved_together - moved_alone).norm() <= allowed * moved_alone.norm(), name
        if tolerance["running_mean"] is not None:
            mean_together, mean_alone = states[k]["bn1.running_mean"], alone_state["bn1.running_mean"]
            # measured on CPU: up to 3e-5
            assert (mean_together - mean_alone).norm() <= tolerance["running_mean"] * mean_alone.norm()
        assert torch.equal(states[k]["bn1.num_batches_tracked"], alone_state["bn1.num_batches_tracked"])
        assert all(torch.isfinite(v).all() for v in states[k].values())
        torchvision.models.resnet18(weights=None, num_classes=10).load_state_dict(
            {n: v.cpu() for n, v in states[k].items()})
    assert (together[0, 0] - together[0, 1]).abs() > 1e-3, "different seeds must give different models"


def test_models_of_a_group_differ_and_load_into_torchvision():
    x, y = structured_data(64)
    states, seconds, _ = train_models(x, y, TrainRecipe(epochs=1, batch_size=32), [0, 1], progress=False)
    assert seconds > 0
    assert not torch.equal(states[0]["conv1.weight"], states[1]["conv1.weight"])
    for state in states:
        model = torchvision.models.resnet18(weights=None, num_classes=10)
        model.load_state_dict(state)


def test_group_of_one_is_the_plain_module():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    group = ModelGroup([model])
    assert group.single is model and group.parameters() == list(model.parameters())


@pytest.mark.parametrize("graph_safe", [True, False])
def test_stacked_sgd_is_torch_sgd(graph_safe):
    """Both updates (the foreach one CUDA graphs replay, and the fused one used on CPU) equal
    torch.optim.SGD with momentum and weight decay, with the learning rate changing per step."""
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    mine = [p.clone().requires_grad_() for p in start]
    ref = [p.clone().requires_grad_() for p in start]
    ours = StackedSGD(mine, lr=0.1, momentum=0.9, weight_decay=5e-4, graph_safe=graph_safe)
    torch_sgd = torch.optim.SGD(ref, lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step, lr in enumerate([0.1, 0.05, 0.2, 0.01]):
        grads = [torch.randn(p.shape, generator=g) for p in start]
        ours.zero_grad()
        for p, grad in zip(mine, grads):
            p.grad = grad.clone()
        ours.set_lr(lr)
        ours.step()
        for p, grad in zip(ref, grads):
            p.grad = grad.clone()
        torch_sgd.param_groups[0]["lr"] = lr
        torch_sgd.step()
        for a, b in zip(mine, ref):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert not torch.equal(mine[0], start[0])


def test_loss_scaled_sgd_unscales_and_skips_a_step_with_inf_on_the_device():
    """fp16's update: gradients of a scaled loss give torch.optim.SGD's steps; a step with an
    inf gradient changes neither weights nor momentum and halves the scale, with no host
    check (so it can be captured in a CUDA graph)."""
    g = torch.Generator().manual_seed(1)
    start = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    mine, ref = [p.clone() for p in start], [p.clone().requires_grad_() for p in start]
    ours = StackedSGD(mine, lr=0.1, momentum=0.9, weight_decay=5e-4, loss_scaling=True)
    torch_sgd = torch.optim.SGD(ref, lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert ours.loss_scale.item() == 2.0**16
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=g) for p in start]
        for p, grad in zip(mine, grads):
            p.grad = grad * ours.loss_scale
        ours.step()
        for p, grad in zip(ref, grads):
            p.grad = grad.clone()
        torch_sgd.step()
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)
    weights, momentum = [p.clone() for p in mine], [b.clone() for b in ours.momentum_buffers]
    for p in mine:
        p.grad = torch.randn(p.shape, generator=g)
    mine[1].grad[3] = float("inf")
    ours.step()
    assert all(torch.equal(a, b) for a, b in zip(mine, weights))
    assert all(torch.equal(a, b) for a, b in zip(ours.momentum_buffers, momentum))
    assert ours.loss_scale.item() == 2.0**15


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_training_follows_fp32(precision, monkeypatch):
    """On CPU too the engine trains under autocast (fp16 with loss scaling): the same run to
    within low-precision noise, not bit for bit. Compared on the first step, whose update is
    the gradient itself: later losses are chaotic under BatchNorm on a batch of 16 (after one
    step at lr 0.01 the next batch's loss differed by 0.06 to 0.23 between precisions over
    three seeds, on a 2-core Intel Xeon with AVX512-BF16). (fp16 starts from a smaller scale
    here: GradScaler's 2^16 overflows and skips the first steps, which would leave this one
    undone.)"""
    import training.engine

    monkeypatch.setattr(training.engine, "INITIAL_LOSS_SCALE", 256.0)
    x, y = structured_data(16)
    recipe = TrainRecipe(epochs=1, batch_size=16, lr=0.01, augment=False)  # one step
    (low,), _, low_losses = train_models(x, y, recipe, [5], progress=False, record_losses=True, precision=precision)
    (full,), _, full_losses = train_models(x, y, recipe, [5], progress=False, record_losses=True, precision="fp32")
    assert abs(low_losses[0, 0] - full_losses[0, 0]) < 0.02  # the same weights, in low precision
    init = make_model(seed=5).state_dict()
    trained = [k for k, v in init.items() if v.is_floating_point() and "running" not in k]

    def update(state):
        return torch.cat([(state[k].float() - init[k]).flatten() for k in trained])

    # measured on that Xeon: cosine 0.92 (bf16) and 0.99 (fp16), sizes 0.97 and 1.00 of fp32's
    low_update, full_update = update(low), update(full)
    assert torch.nn.functional.cosine_similarity(low_update, full_update, dim=0) > 0.8
    assert 0.8 < low_update.norm() / full_update.norm() < 1.25
    assert not torch.equal(low["conv1.weight"], full["conv1.weight"])
    assert all(torch.isfinite(v.float()).all() for v in low.values())


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_training_equals_eager(device):
    """``compile`` trains the same model (the GPU speed option; on CPU it is slower). On CUDA
    through inductor, as users run it; on CPU through ``aot_eager``, the same graph capture and
    autograd graph without inductor's C++ build (40 s of a CPU run; it is not the GPU's path)."""
    from torch._dynamo.utils import counters

    x, y = structured_data(64, device=device)
    backend = True if device == "cuda" else "aot_eager"
    # fp32 on both devices: the comparison is of the compilation, not of bf16's rounding (on
    # CUDA its convolutions still run as TF32, hence the wider tolerance there)
    atol, rel = (1e-4, 1e-3) if device == "cpu" else (2e-3, 1e-2)
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=1e-4)
    (eager_state,), _, eager = train_models(x, y, recipe, [5], progress=False, record_losses=True, precision="fp32")
    counters.clear()
    (state,), _, compiled = train_models(x, y, recipe, [5], progress=False, record_losses=True, compile=backend,
                                         precision="fp32")
    assert counters["stats"]["unique_graphs"] >= 1, "the model was not compiled"
    torch.testing.assert_close(compiled, eager, rtol=0, atol=atol)
    init = make_model(seed=5).state_dict()
    moved = state["fc.weight"].cpu() - init["fc.weight"]
    moved_eager = eager_state["fc.weight"].cpu() - init["fc.weight"]
    assert moved_eager.norm() > 0 and (moved - moved_eager).norm() <= rel * moved_eager.norm()
    with pytest.raises(ValueError, match="group of one"):
        train_models(x, y, recipe, [5, 6], progress=False, fuse=2, compile=True)


def test_learning_rate_schedule_is_the_starter_kits(cifar, monkeypatch):
    """Step by step the engine trains at the lr the starter kit's LambdaLR gives (last batch
    short). On CPU both updates are a torch.optim.SGD step, which records its lr here."""
    from data import to_tensors
    from training import starter_kit

    images, labels = cifar.x_train[:80], cifar.y_train[:80]
    recipe = TrainRecipe(epochs=2, batch_size=32)  # 3 steps per epoch
    used = []
    real_step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    starter_kit.train(images, labels, recipe, 0, "cpu", workers=0, num_classes=10)
    kit, used[:] = used[:], []
    train_models(*to_tensors(images, labels), recipe, [0], progress=False)
    assert len(kit) == 6 and kit[0] == recipe.lr and kit[-1] < kit[1]
    assert used == pytest.approx(kit, rel=1e-12)


def test_the_crop_pads_with_the_black_of_the_images_representation():
    from data import NORMALISED, RAW
    from training.engine import Batches

    images, labels = torch.full((2, 3, 8, 8), 7.0), torch.arange(2)
    for pixels in (NORMALISED, RAW):
        padded = Batches(images, labels, True, [torch.Generator().manual_seed(0)], pixels=pixels).images
        assert padded.shape == (2, 3, 16, 16) and torch.equal(padded[:, :, 4:12, 4:12], images)
        torch.testing.assert_close(padded[0, :, 0, 0], pixels.black(), rtol=0, atol=0)
    assert RAW.black().abs().sum() == 0 and NORMALISED.black()[0].item() == pytest.approx(-0.4914 / 0.2023)


@pytest.mark.cuda
@pytest.mark.parametrize("fuse", [1, 2])
def test_graph_replays_equal_the_eager_steps(fuse):
    # 100 images in batches of 40: two full batches and one of 20 per epoch, so two
    # graphs are captured, and each is replayed across epochs.
    x, y = structured_data(100, device="cuda")
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


@pytest.mark.cuda
def test_graphed_group_learns():
    # A wrong update (sign, scale, a graph reading stale inputs) shows as a loss that does not fall.
    x, y = structured_data(256, device="cuda")
    _, _, losses = train_models(x, y, TrainRecipe(epochs=8, batch_size=64, lr=0.05), [0, 1, 2], progress=False,
                                record_losses=True)
    assert (losses[-4:].mean(0) < 0.5 * losses[:4].mean(0)).all(), losses


@pytest.mark.cuda
def test_fp16_graph_replays_equal_the_eager_steps_and_skip_overflows_on_the_device():
    """fp16 with loss scaling inside a captured graph: GradScaler's initial 2^16 overflows
    the first steps, which both runs must skip alike, on the device, and then train."""
    x, y = structured_data(100, device="cuda")
    recipe = TrainRecipe(epochs=3, batch_size=40, lr=1e-3)
    graphed_states, _, graphed = train_models(x, y, recipe, [3], progress=False, record_losses=True, graphs=True,
                                              precision="fp16")
    eager_states, _, eager = train_models(x, y, recipe, [3], progress=False, record_losses=True, graphs=False,
                                          precision="fp16")
    torch.testing.assert_close(graphed, eager, rtol=0, atol=5e-3)
    assert torch.isfinite(graphed).all()
    assert not torch.equal(graphed_states[0]["fc.weight"].cpu(), make_model(seed=3).state_dict()["fc.weight"])
