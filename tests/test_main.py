"""main.py: its arguments, its one-line errors, and the method files it finds."""


import numpy as np
import pytest

import main


def test_list(capsys):
    assert main.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "finetune" in out and "quick" in out


def _not_an_npz(path):
    path.write_bytes(b"not an npz at all")


def _labels_beyond_the_model(path):
    np.savez(path, x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.array([0, 1, 2, 12]),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.array([0, 1]))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-m", "nope"], "unknown method 'nope'; available: "),
        (["-m", "finetune,nope"], "unknown method 'nope'; available: "),
        (["-m", "finetune,finetune"], "-m finetune,finetune names a method twice"),
        (["-m", "finetune,salun", "--set", "lr=0.1"], "--set applies to one method: pass -m NAME"),
        (["-m", "finetune", "--profile", "huge"], "unknown profile 'huge'"),
        (["-m", "finetune", "--num-models", "2"], "at least 3"),
        (["-m", "finetune", "--num-models", "-1"], "at least 3"),
        (["-m", "finetune", "--data", "/no/such/cifar.npz"], "no CIFAR-10 file"),
        (["-m", "finetune", "--data", _not_an_npz], "cannot read"),
        (["-m", "finetune", "--data", _labels_beyond_the_model], "0..9"),
        ([], "no method given"),
        (["-m", "finetune", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["-m", "finetune", "--threads", "0"], "--threads must be at least 1, got 0"),
        *((["-m", "finetune", "--device", name], f"unknown device {name!r}: use cpu, cuda or cuda:N")
          for name in ("gpu", "mps", "cuda:x", "cpu:3")),
        (["-m", "finetune", "--device", "cuda:7"], "--device cuda:7 was asked for but no CUDA device is available"),
        (["-m", "finetune", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        (["-m", "finetune", "--originals", "0"], "--originals must be at least 1, got 0"),
        (["--write-competition-input", "in", "--originals", "2"], "--originals belongs to a method's evaluation"),
        (["--score-submission", "s.zip", "-m", "finetune"], "-m belongs to a method's evaluation, not to "
                                                            "--score-submission"),
        (["--write-competition-input", "in", "--resume", "--workers", "2"],
         "--resume and --workers belong to a method's evaluation, not to --write-competition-input"),
        (["--write-competition-input", "in", "--score-submission", "s.zip"], "are two commands: pass one"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_nothing_written(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # cuda:7 on any machine: no GPU
    data = tmp_path / "data.npz"
    for write in (a for a in argv if callable(a)):  # a data file written for the case
        write(data)
    argv = [str(data) if callable(a) else a for a in argv]
    out, store = tmp_path / "out", tmp_path / "store"
    profile = [] if "--profile" in argv else ["--profile", "smoke"]
    assert main.main(argv + profile + ["--out", str(out), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists() and not store.exists()


def test_a_broken_method_file_is_named_and_the_others_still_list_and_run(tmp_path, monkeypatch, capsys):
    import methods

    (tmp_path / "zz_broken.py").write_text("import no_such_module_here\n")
    monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(tmp_path)])
    assert main.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "  finetune: " in out and "  kookmin: " in out
    assert "methods/zz_broken.py: ModuleNotFoundError: No module named 'no_such_module_here'" in out
    assert main.main(["-m", "zz_broken", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("error: methods/zz_broken.py cannot be imported: "
                       "ModuleNotFoundError: No module named 'no_such_module_here'")
    # a working method still resolves; the broken file gets one warning line
    args = main.parse_args(["-m", "finetune", "--profile", "smoke"])
    contestants, _, _ = main.resolve_run(args)
    assert list(contestants) == ["finetune"] and contestants["finetune"].make().__class__.__name__ == "Finetune"
    assert contestants["finetune"].hyperparameters == {"epochs": 5, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}
    assert "warning: methods/zz_broken.py cannot be imported" in capsys.readouterr().err
    # under -m all it is a failed row
    contestants, _, _ = main.resolve_run(main.parse_args(["-m", "all", "--profile", "smoke"]))
    assert contestants["zz_broken"].hyperparameters == {}
    with pytest.raises(ImportError, match="methods/zz_broken.py cannot be imported"):
        contestants["zz_broken"].make()
    # once the file is gone it is named no more
    (tmp_path / "zz_broken.py").unlink()
    assert methods.broken_methods() == {}


@pytest.mark.parametrize("flag", ["--out", "--store"])
def test_a_folder_that_cannot_be_written_stops_the_command_before_any_work(flag, tmp_path, capsys):
    blocked = tmp_path / "a_file"
    blocked.write_text("a file where a folder would go")
    folders = {"--out": str(tmp_path / "out"), "--store": str(tmp_path / "store")} | {flag: str(blocked / "sub")}
    argv = ["-m", "finetune", "--profile", "smoke", *(x for kv in folders.items() for x in kv)]
    assert main.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {flag} {blocked / 'sub'} cannot be used: {blocked} is not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


def test_too_little_free_space_stops_the_command_with_the_amount_needed(tmp_path, capsys, monkeypatch):
    from tests.helpers import cifar_path

    monkeypatch.setattr("evaluation.files.free_bytes", lambda folder: 10_000_000)  # 10 MB free
    argv = ["-m", "finetune", "--profile", "smoke", "--data", cifar_path(), "--out", str(tmp_path / "out"), "--store",
            str(tmp_path / "store"), "--no-progress"]
    assert main.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --store {tmp_path / 'store'} needs about 179.") and \
        "for 4 models still to train" in err[0] and "10.0 MB is free" in err[0]
    assert not (tmp_path / "store").exists() and not (tmp_path / "out").exists()
