"""training/small_convs.py: convolutions over inputs no larger than their kernel, as matrix
products: the same layer."""

import pytest
import torch
import torchvision

from tests.helpers import structured_data
from training.engine import train_models
from training.model import make_model
from training.recipe import TrainRecipe
from training.small_convs import SmallInputConv2d, convs_as_matmuls, tap_selection


def test_tap_selection_known_answers():
    centre, out = tap_selection((3, 3), (1, 1), (1, 1), (1, 1))
    assert out == (1, 1) and centre.shape == (9, 1)
    assert centre[:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]  # only the centre tap meets the pixel
    pairs, out = tap_selection((3, 3), (1, 1), (1, 1), (2, 2))
    assert out == (2, 2) and pairs.shape == (9, 16)
    assert pairs.sum(0).tolist() == [1.0] * 16  # at 2x2 every output sees every input, through one tap each
    # output (0, 0) meets input (1, 1) through the bottom-right tap; output (1, 1) meets (0, 0) top-left
    assert pairs[8, 0 * 4 + 3] == 1 and pairs[0, 3 * 4 + 0] == 1
    strided, out = tap_selection((3, 3), (2, 2), (1, 1), (2, 2))
    assert out == (1, 1) and strided.sum().item() == 4 and strided[[4, 5, 7, 8]].sum().item() == 4


@pytest.mark.parametrize("in_ch, out_ch, kernel, stride, padding, size, bias", [
    (6, 5, 3, 1, 1, (1, 1), False),   # layer4's convolutions at 32x32
    (6, 5, 3, 1, 1, (2, 2), False),   # layer3's
    (6, 5, 3, 2, 1, (2, 2), True),    # layer4.0.conv1: stride 2 down to 1x1
    (4, 3, 7, 2, 3, (2, 2), False),   # a stem-like kernel on a tiny image
    (4, 3, (3, 1), 1, (1, 0), (1, 2), True),  # rectangular kernel and input
])
def test_layer_equals_the_convolution(in_ch, out_ch, kernel, stride, padding, size, bias):
    """Outputs and every gradient (input, weight, bias) match ``Conv2d`` (float64, so to 1e-12)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=bias).double()
    small = SmallInputConv2d.replacing(conv, size)
    assert torch.equal(small.weight, conv.weight) and small.weight is not conv.weight
    x = torch.randn(7, in_ch, *size, dtype=torch.float64, requires_grad=True)
    x_small = x.detach().clone().requires_grad_()
    expected, got = conv(x), small(x_small)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    upstream = torch.randn_like(expected)
    expected.backward(upstream)
    got.backward(upstream)
    torch.testing.assert_close(x_small.grad, x.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(small.weight.grad, conv.weight.grad, rtol=0, atol=1e-12)
    if bias:
        torch.testing.assert_close(small.bias.grad, conv.bias.grad, rtol=0, atol=1e-12)


def test_other_input_sizes_take_the_convolution():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    small = SmallInputConv2d.replacing(conv, (1, 1))
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(small(x), conv(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("size, expected", [
    (32, ["layer3.0.conv2", "layer3.1.conv1", "layer3.1.conv2",
          "layer4.0.conv1", "layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"]),
    (64, ["layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"]),  # layer3 at 4x4: the kernel is cheaper
])
def test_resnet18_keeps_its_state_dict_and_function(size, expected):
    model = make_model(10, seed=0).double()
    reference = make_model(10, seed=0).double()
    model.train()
    assert convs_as_matmuls(model, (3, size, size)) == expected
    assert all(isinstance(model.get_submodule(name), SmallInputConv2d) for name in expected)
    state, reference_state = model.state_dict(), reference.state_dict()
    assert list(state) == list(reference_state)  # the selections stay out of it
    assert all(torch.equal(state[k], reference_state[k]) for k in state), "planning moved a weight or statistic"
    torchvision.models.resnet18(weights=None, num_classes=10).double().load_state_dict(state)
    x = torch.randn(4, 3, size, size, dtype=torch.float64)
    y = torch.tensor([0, 3, 3, 9])
    for m in (model, reference):  # train mode: batch statistics, and the weights' gradients
        torch.nn.functional.cross_entropy(m(x), y).backward()
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=1e-10)
    grads = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=0, atol=1e-9, msg=name)


def test_engine_trains_the_same_model_with_or_without(monkeypatch):
    """As the engine's grouped training test: lr 1e-4, so that float noise stays small."""
    import training.engine

    replaced = []
    monkeypatch.setattr(training.engine, "convs_as_matmuls",
                        lambda model, shape: replaced.extend(convs_as_matmuls(model, shape)))
    x, y = structured_data(64)
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=1e-4)
    (plain_state,), _, plain = train_models(x, y, recipe, [4], progress=False, record_losses=True, small_convs=False)
    (state,), _, small = train_models(x, y, recipe, [4], progress=False, record_losses=True, small_convs=True)
    assert len(replaced) == 7, "small_convs=True did not reach the model"
    torch.testing.assert_close(small, plain, rtol=0, atol=1e-4)
    init = make_model(seed=4).state_dict()
    for name in ("fc.weight", "layer4.1.conv2.weight", "layer3.0.conv2.weight"):
        moved, moved_plain = state[name] - init[name], plain_state[name] - init[name]
        assert moved_plain.norm() > 0 and (moved - moved_plain).norm() <= 5e-2 * moved_plain.norm(), name
