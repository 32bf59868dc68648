"""Device names, the CUDA device that the engine's streams and graphs belong to, and the
process-group backend."""

import contextlib

import pytest
import torch

import main
from evaluation import distributed
from training import engine, inference
from training.model import pick_device
from training.recipe import TrainRecipe


@pytest.mark.parametrize("name", ["gpu", "mps", "cuda:x", "cpu:3"])
def test_unknown_device_is_a_one_line_usage_error(name, capsys):
    assert main.main(["-m", "finetune", "--device", name, "--profile", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: unknown device {name!r}: use cpu, cuda or cuda:N"


def test_a_gpu_the_machine_lacks_is_a_one_line_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"has 1 CUDA device\(s\), cuda:0 to cuda:0"):
        pick_device("cuda:7")
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main.main(["-m", "finetune", "--device", "cuda:7", "--profile", "smoke"]) == 2
    assert capsys.readouterr().err.strip() == "error: --device cuda:7 was asked for but no CUDA device is available"


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
    with engine.device_scope("cpu"):
        pass
    with engine.device_scope("cuda:1"):
        pass
    assert entered == [torch.device("cuda", 1)]


def test_one_rule_for_the_backend(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.backend_for(torch.device("cpu"), 2) == "gloo"  # even on a machine with GPUs
    assert distributed.backend_for(torch.device("cuda"), 2) == "nccl"  # a GPU each
    assert distributed.backend_for(torch.device("cuda"), 8) == "gloo"  # ranks share GPUs
    assert distributed.rank_device(torch.device("cuda"), 5) == torch.device("cuda", 1)
    assert distributed.rank_device(torch.device("cpu"), 5) == torch.device("cpu")
