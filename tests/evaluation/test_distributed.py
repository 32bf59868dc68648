"""evaluation/distributed.py: which process-group backend ranks use (real ranks: e2e/test_two_ranks.py)."""

import torch

from evaluation import distributed


def test_one_rule_for_the_backend(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.backend_for(torch.device("cpu"), 2) == "gloo"  # even on a machine with GPUs
    assert distributed.backend_for(torch.device("cuda"), 2) == "nccl"  # a GPU each
    assert distributed.backend_for(torch.device("cuda"), 8) == "gloo"  # ranks share GPUs
