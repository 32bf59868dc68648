"""training/devices.py: device names, each rank's device, and the CUDA device the engine's streams
and graphs belong to."""

import contextlib

import pytest
import torch

from training import devices, engine, inference
from training.devices import pick_device, rank_device
from training.recipe import TrainRecipe


def test_a_gpu_the_machine_lacks_is_refused_with_the_ones_it_has(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"has 1 CUDA device\(s\), cuda:0 to cuda:0"):
        pick_device("cuda:7")
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device is available"):
        pick_device("cuda")
    assert pick_device(None) == pick_device("auto") == torch.device("cpu")


def test_the_engine_creates_its_cuda_objects_under_the_tensors_device(monkeypatch):
    """Streams, graphs and current_stream() follow the current CUDA device, not the tensors':
    training and inference must run under ``torch.cuda.device(images.device)``. Here (no GPU)
    the scope is recorded, and the Trainer, which makes the streams and captures the graphs,
    must be built and stepped inside it."""
    scopes, inside = [], []

    @contextlib.contextmanager
    def recording_scope(device):
        scopes.append(torch.device(device))
        inside.append(True)
        try:
            yield
        finally:
            inside.pop()

    built = engine.Trainer.__init__

    def checked_init(self, *args, **kwargs):
        assert inside, "Trainer built outside the device scope"
        built(self, *args, **kwargs)

    monkeypatch.setattr(engine, "device_scope", recording_scope)
    monkeypatch.setattr(inference, "device_scope", recording_scope)
    monkeypatch.setattr(engine.Trainer, "__init__", checked_init)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    states, _, _ = engine.train_models(x, y, TrainRecipe(epochs=1, batch_size=4, lr=0.01), [0], progress=False)
    inference.predict_logits_many(states, x)
    assert scopes == [torch.device("cpu"), torch.device("cpu")] and not inside


def test_the_real_scope_is_cuda_device_on_cuda_and_nothing_on_cpu(monkeypatch):
    entered = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: entered.append(d) or contextlib.nullcontext())
    with devices.device_scope("cpu"):
        pass
    with devices.device_scope("cuda:1"):
        pass
    assert entered == [torch.device("cuda", 1)]


def test_ranks_share_the_gpus_in_turn(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device(torch.device("cuda"), 5) == torch.device("cuda", 1)
    assert rank_device(torch.device("cpu"), 5) == torch.device("cpu")
