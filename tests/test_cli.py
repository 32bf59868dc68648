import json

import pytest

import main
from evaluation.report import REPORT_VERSION
from methods import BaseMethod, all_method_handlers, get_method, register
from tests.conftest import cifar_path


def test_registry_lists_finetune():
    handlers = all_method_handlers()
    assert "finetune" in handlers and issubclass(handlers["finetune"], BaseMethod)
    assert get_method("finetune") is handlers["finetune"]


def test_registry_rejects_bad_registrations():
    with pytest.raises(TypeError):
        register("not_a_method")(object)
    with pytest.raises(ValueError, match="already registered"):

        @register("finetune")
        class Other(BaseMethod):
            pass

    with pytest.raises(KeyError, match="available: .*finetune"):
        get_method("nope")


def test_list(capsys):
    assert main.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "finetune" in out and "quick" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-m", "nope"], "unknown method 'nope'; available: "),
        (["-m", "finetune", "--profile", "huge"], "unknown profile 'huge'"),
        (["-m", "finetune", "--num-models", "2"], "at least 3"),
        (["-m", "finetune", "--num-models", "-1"], "at least 3"),
        (["-m", "finetune", "--data", "/no/such/cifar.npz"], "no CIFAR-10 file"),
        ([], "no method given"),
        (["-m", "finetune", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["-m", "finetune", "--threads", "0"], "--threads must be at least 1, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    out = tmp_path / "out"
    assert main.main(argv + ["--out", str(out), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_smoke_profile_end_to_end(tmp_path, smoke_store, capsys):
    argv = ["-m", "finetune", "--profile", "smoke", "--data", cifar_path(), "--out", str(tmp_path / "out"),
            "--store", str(smoke_store), "--no-progress", "--ceiling", "--set", "lr=0.05", "--set", "epochs=1"]
    assert main.main(argv) == 0
    report = json.loads((tmp_path / "out" / "finetune" / "report.json").read_text())
    assert report["hyperparameters"] == {"epochs": 1, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    assert report["num_models"] == 3 and len(report["epsilons"]) == report["sizes"]["forget"] == 30
    assert 0 <= report["forget_quality"] <= 1 and report["final_score"] >= 0
    assert (tmp_path / "out" / "finetune" / "report.png").stat().st_size > 10_000
    splits = json.loads((tmp_path / "out" / "finetune" / "splits.json").read_text())
    assert len(splits["forget"]) == 30 and not set(splits["forget"]) & set(splits["retain"])
    # the store holds N more references (the ceiling): the report places F against retraining's.
    assert len(list(smoke_store.glob("*.pt"))) == 1 + 3 + 3
    ceiling = report["ceiling"]
    assert ceiling["normalised_forget_quality"]["value"] == pytest.approx(
        report["forget_quality"] / ceiling["forget_quality"]["value"])
    f = report["intervals"]["forget_quality"]
    assert f["low"] <= report["forget_quality"] <= f["high"] and report["report_version"] == REPORT_VERSION
    out = capsys.readouterr().out
    assert "forget quality F" in out and "F / F_retrain" in out and f"[{f['low']:.4f}, {f['high']:.4f}]" in out


def test_a_broken_method_file_is_named_and_the_others_still_list_and_run(tmp_path, monkeypatch, capsys):
    import methods

    (tmp_path / "zz_broken.py").write_text("import no_such_module_here\n")
    monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(tmp_path)])
    monkeypatch.setattr(methods, "_BROKEN", {})
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
