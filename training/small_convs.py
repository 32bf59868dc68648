"""Convolutions whose input is no larger than their kernel, run as one matrix product.

On 32x32 images torchvision's ResNet-18 reaches layer3 at 2x2 and layer4 at 1x1. A
3x3 convolution with padding 1 over a 1x1 input only ever multiplies the centre tap
(the other eight see padding), and over a 2x2 input each output position uses 4 of
its 9 taps; the CPU's convolution kernels do not gain from that (a 512-channel
layer at 1x1: 16 to 22 ms forward and backward, 4.6 ms as a matrix product).
Written as a linear map from the flattened input to the flattened output, the same
layer is one matrix product that skips every padded tap: 9x fewer multiplications
at 1x1, 2.25x at 2x2, 26 M instead of 37 M multiply-adds per image for the whole
network. The function and its gradients are the convolution's (only the order of
float additions differs), and the weight keeps its shape and name, so the state
dict is torchvision's.

Measured on the 2-core CPU (fp32, batch 128, whole training steps): 1.4x to 1.9x
the speed of the plain module (benchmarks/RESULTS.md). On CUDA it is not measured
yet, so the engine uses it on CPU only by default.
"""

from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=None)
def tap_selection(kernel: tuple, stride: tuple, padding: tuple, size: tuple) -> tuple[torch.Tensor, tuple]:
    """``(S, out_size)``: ``S[tap, (out_pos, in_pos)]`` is 1 where the tap links the two positions.

    ``weight.view(O * C, taps) @ S`` is then the convolution's dense matrix (as
    ``[O, C, out_positions, in_positions]``), zero where a kernel position falls on
    padding; a matrix product (not a gather) so that its backward is one too.
    """
    (kh, kw), (sh, sw), (ph, pw), (h, w) = kernel, stride, padding, size
    out_h, out_w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    selection = torch.zeros(kh * kw, out_h * out_w * h * w)
    for i, j, u, v in itertools.product(range(out_h), range(out_w), range(h), range(w)):
        a, b = u - i * sh + ph, v - j * sw + pw  # the tap that input (u, v) meets at output (i, j)
        if 0 <= a < kh and 0 <= b < kw:
            selection[a * kw + b, ((i * out_w + j) * h + u) * w + v] = 1.0
    return selection, (out_h, out_w)


class SmallInputConv2d(torch.nn.Conv2d):
    """A ``Conv2d`` planned for one input size, computed for that size as a matrix product.

    Other input sizes take the ordinary convolution. The tap selection is a
    non-persistent buffer: it follows the module across devices, stays out of the
    state dict, and exists before a CUDA graph is captured.
    """

    @classmethod
    def replacing(cls, conv: torch.nn.Conv2d, input_size: tuple) -> "SmallInputConv2d":
        """The same layer for ``input_size``: new ``Parameter`` tensors with the same values."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  bias=conv.bias is not None, device="meta")
        # A contiguous weight views as [O * C, taps] without a copy (channels-last would not).
        new.weight = torch.nn.Parameter(conv.weight.detach().contiguous(), requires_grad=conv.weight.requires_grad)
        if conv.bias is not None:
            new.bias = torch.nn.Parameter(conv.bias.detach().clone(), requires_grad=conv.bias.requires_grad)
        new.input_size = tuple(input_size)
        selection, new.output_size = tap_selection(conv.kernel_size, conv.stride, conv.padding, new.input_size)
        new.register_buffer("selection", selection.to(conv.weight.device, conv.weight.dtype, copy=True),
                            persistent=False)
        new.train(conv.training)
        return new

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            return super()._conv_forward(x, weight, bias)
        out_channels, in_channels = weight.shape[:2]
        positions = self.output_size[0] * self.output_size[1]
        dense = weight.reshape(out_channels * in_channels, -1) @ self.selection  # [O*C, Po*Pi]
        dense = dense.view(out_channels, in_channels, positions, -1).transpose(1, 2)
        dense = dense.reshape(out_channels * positions, -1)  # [(O, Po), (C, Pi)]
        out = F.linear(x.reshape(x.shape[0], -1), dense)
        out = out.view(x.shape[0], out_channels, *self.output_size)
        return out if bias is None else out + bias.view(-1, 1, 1)


def _qualifies(conv: torch.nn.Module, size: tuple) -> bool:
    """A plain convolution for which the dense matrix costs no more than the kernel."""
    return (type(conv) is torch.nn.Conv2d and conv.groups == 1 and conv.dilation == (1, 1)
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and size[0] * size[1] <= conv.kernel_size[0] * conv.kernel_size[1])


def convs_as_matmuls(model: torch.nn.Module, image_shape: tuple) -> list[str]:
    """Replace, in place, every convolution that sees an input no larger than its kernel
    when ``model`` takes images of ``image_shape`` ``(C, H, W)``; returns their names.

    Input sizes come from one forward pass of a zero image in eval mode, so no
    BatchNorm statistic moves. Call before building the optimizer: replaced layers
    hold new (contiguous) ``Parameter`` tensors with the same values.
    """
    sizes = {}

    def record(module, args):  # returns None: a pre-hook's return value would replace the inputs
        sizes.setdefault(module, tuple(args[0].shape[-2:]))

    hooks = [module.register_forward_pre_hook(record) for module in model.modules()
             if isinstance(module, torch.nn.Conv2d)]
    was_training = model.training
    first = next(model.parameters())
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *image_shape, device=first.device, dtype=first.dtype))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    replaced = []
    for name, module in list(model.named_modules()):
        if module in sizes and _qualifies(module, sizes[module]):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, SmallInputConv2d.replacing(module, sizes[module]))
            replaced.append(name)
    return replaced
