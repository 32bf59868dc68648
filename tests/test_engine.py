"""The multi-model engine: grouped training equals training alone; batched inference."""

import pytest
import torch
import torchvision

from training.inference import predict_logits, predict_logits_many
from training.engine import ModelGroup, StackedSGD, train_models
from training.model import make_model
from training.recipe import TrainRecipe


def _data(n=96):
    g = torch.Generator().manual_seed(0)
    # Structured inputs (class-dependent means) so that training is not chaotic noise.
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.5 + y.view(-1, 1, 1, 1) / 5.0
    return x, y


@pytest.mark.parametrize("fuse", [1, 3])
def test_group_training_equals_training_alone(fuse):
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
    x, y = _data()
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=1e-4)
    seeds = [3, 7, 11]
    states, _, together = train_models(x, y, recipe, seeds, progress=False, record_losses=True, fuse=fuse)
    assert together.shape == (3, 3)
    for k, seed in enumerate(seeds):
        (alone_state,), _, alone = train_models(x, y, recipe, [seed], progress=False, record_losses=True)
        assert abs(together[0, k] - alone[0, 0]) < 1e-5  # same weights, same batch, same crop
        torch.testing.assert_close(together[:, k], alone[:, 0], rtol=0, atol=1e-3)
        init = make_model(seed=seed).state_dict()
        tolerances = {"fc.weight": 1e-3, "fc.bias": 1e-3, "conv1.weight": 5e-2, "layer3.0.conv1.weight": 5e-2,
                      "layer4.1.bn2.weight": 5e-2}
        for name, tolerance in tolerances.items():
            moved_together, moved_alone = states[k][name] - init[name], alone_state[name] - init[name]
            assert (moved_together - moved_alone).norm() <= tolerance * moved_alone.norm(), name
        mean_together, mean_alone = states[k]["bn1.running_mean"], alone_state["bn1.running_mean"]
        assert (mean_together - mean_alone).norm() <= 1e-3 * mean_alone.norm()  # measured: up to 3e-5
        assert torch.equal(states[k]["bn1.num_batches_tracked"], alone_state["bn1.num_batches_tracked"])
    assert (together[0, 0] - together[0, 1]).abs() > 1e-3, "different seeds must give different models"


def test_models_of_a_group_differ_and_load_into_torchvision():
    x, y = _data(64)
    states, seconds, _ = train_models(x, y, TrainRecipe(epochs=1, batch_size=32), [0, 1], progress=False)
    assert seconds > 0
    assert not torch.equal(states[0]["conv1.weight"], states[1]["conv1.weight"])
    for state in states:
        model = torchvision.models.resnet18(weights=None, num_classes=10)
        model.load_state_dict(state)


@pytest.mark.parametrize("group_size", [2, 1])  # 1 (the default): on CPU with the small convs as matmuls
def test_batched_inference_equals_one_model_at_a_time(group_size):
    x, _ = _data(40)
    models = [torchvision.models.resnet18(weights=None, num_classes=10).eval() for _ in range(3)]
    for m in models:  # non-trivial running statistics
        m.train()
        with torch.no_grad():
            m(x)
        m.eval()
    states = [m.state_dict() for m in models]
    together = predict_logits_many(states, x, batch_size=16, group_size=group_size)
    assert together.shape == (3, 40, 10)
    for k, m in enumerate(models):
        torch.testing.assert_close(together[k], predict_logits(m, x), rtol=1e-4, atol=1e-4)


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


def test_precision_is_bf16_only_where_the_gpu_has_it_natively():
    from training.precision import choose_precision

    cuda = torch.device("cuda")
    assert choose_precision(cuda, capability=(7, 5)) == "fp16"  # T4: bf16 only emulated
    assert choose_precision(cuda, capability=(8, 0)) == "bf16" and choose_precision(cuda, capability=(9, 0)) == "bf16"
    assert choose_precision(torch.device("cpu")) == "fp32"
    assert choose_precision(cuda, "fp32", capability=(9, 0)) == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        choose_precision(cuda, "fp8")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_training_follows_fp32(precision, monkeypatch):
    """On CPU too the engine trains under autocast (fp16 with loss scaling): the same run to
    within low-precision noise, not bit for bit. (fp16 starts from a smaller scale here:
    GradScaler's 2^16 overflows and skips the first steps, which a short run would notice.)"""
    import training.engine

    monkeypatch.setattr(training.engine, "INITIAL_LOSS_SCALE", 256.0)
    x, y = _data(32)
    recipe = TrainRecipe(epochs=1, batch_size=16, lr=0.01, augment=False)
    low, _, low_losses = train_models(x, y, recipe, [5], progress=False, record_losses=True, precision=precision)
    full, _, full_losses = train_models(x, y, recipe, [5], progress=False, record_losses=True, precision="fp32")
    assert abs(low_losses[0, 0] - full_losses[0, 0]) < 0.02  # the same weights, in low precision
    assert abs(low_losses[1, 0] - full_losses[1, 0]) < 0.15  # after one step, which BatchNorm makes chaotic
    assert not torch.equal(low[0]["conv1.weight"], full[0]["conv1.weight"])
    assert all(torch.isfinite(v.float()).all() for v in low[0].values())


@pytest.mark.slow
def test_compiled_training_equals_eager():
    """``compile=True`` trains the same model (the GPU speed option; on CPU it is slower)."""
    from torch._dynamo.utils import counters

    x, y = _data(64)
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=1e-4)
    (eager_state,), _, eager = train_models(x, y, recipe, [5], progress=False, record_losses=True)
    counters.clear()
    (state,), _, compiled = train_models(x, y, recipe, [5], progress=False, record_losses=True, compile=True)
    assert counters["stats"]["unique_graphs"] >= 1, "the model was not compiled"
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4)
    init = make_model(seed=5).state_dict()
    moved, moved_eager = state["fc.weight"] - init["fc.weight"], eager_state["fc.weight"] - init["fc.weight"]
    assert moved_eager.norm() > 0 and (moved - moved_eager).norm() <= 1e-3 * moved_eager.norm()
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
