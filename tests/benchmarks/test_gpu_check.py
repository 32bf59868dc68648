"""benchmarks/gpu_check.py: its extrapolation, its test selection and its arguments."""

import pytest

from benchmarks import gpu_check

ENGINE = {
    "zoo_group_size": 16,
    "seconds_per_reference": {"16 models, graph": 5.0, "32 models, graph": 4.0, "16 models, compiled": 3.0},
    "seconds_per_reference_by_group": {"16": 5.0, "32": 4.0},
    "inference_model_images_per_s": {"one model at a time": 100_000.0},
    "metric": {"models": 512, "examples": 5000, "seconds": 2.0, "intervals_seconds": 1.0},
}


E2E = {
    "sizes": {"retain": 15_000, "forget": 1_667, "val": 1_667, "test": 1_667},
    "phases_seconds": {"startup": 10.0, "original": 6.0, "references": 12.0, "retrain_clock": 8.0, "runs": 40.0,
                       "scoring": 2.0, "whole": 78.0},
    "seconds_per_run": 10.0, "precision": "bf16", "original_seconds": 5.5,
    "original_accuracy": {"train": 0.99, "test": 0.80},
}


WORKERS = {"by_workers": {"1": {"runs_per_hour": 100.0}, "4": {"runs_per_hour": 200.0}}, "best_workers": 4,
           "speedup_best": 2.0, "mps": {"runs_per_hour": 300.0}}


def _parts(**figures):
    return {name: {"status": "ok", "figures": f} for name, f in figures.items()}


def test_extrapolation_from_every_part():
    fp16 = {"original_accuracy": {"test": 0.79}, "original_seconds": 5.0}
    derived, lines = gpu_check.extrapolate(_parts(engine=ENGINE, end_to_end=E2E, workers=WORKERS, fp16=fp16))
    run_s = 10.0 * 45_000 / 15_000  # 30 s a dev run
    dev_warm = 10.0 + 32 * run_s / 2.0 + 3.0 * (32 * 5000) / (512 * 5000)
    assert derived["dev_warm_seconds"] == pytest.approx(dev_warm)
    original_s = 6.0 * 50_000 / 16_667
    assert derived["dev_cold_seconds"] == pytest.approx(dev_warm + original_s + 32 * 5.0 + 8.0)
    terms = {"references": 512 * 5.0, "their inference": 512 * 55_000 / 100_000, "runs": 512 * run_s / 2.0,
             "metric and intervals": 3.0, "original, clock, startup": original_s + 8.0 + 10.0}
    assert derived["full_terms_seconds"] == pytest.approx(terms)
    assert derived["full_seconds"] == pytest.approx(sum(terms.values()))
    room = 3600 - (sum(terms.values()) - terms["runs"])
    assert derived["full_needs"] == {"term": "runs", "factor": pytest.approx(terms["runs"] / room)}
    assert derived["reference_seconds"] == {"zoo_group": 5.0, "best": 3.0, "best_variant": "16 models, compiled",
                                            "goal": 3.0}
    assert derived["suggested_cuda_defaults"] == {"workers": 4, "zoo_group_size": 32, "compile": True}
    assert derived["fp16_vs_default"] == {"original_test": [0.79, 0.80], "original_seconds": [5.0, 5.5]}
    assert derived["mps_gain"] == pytest.approx(1.5)
    text = "\n".join(lines)
    assert "10.00 s x 45,000 / 15,000 = 30.0 s" in text and f"**{dev_warm:.0f} s** (goal 300 s)" in text
    assert "runs (" in text and "faster" in text


def test_extrapolation_names_what_is_missing():
    derived, lines = gpu_check.extrapolate(_parts(engine={}, end_to_end={}))
    assert derived == {}
    assert any("References: not available" in line for line in lines)
    assert any("the end_to_end part did not finish" in line for line in lines)
    # without the engine's figures the warm figure still comes, from the end-to-end run alone
    derived, _ = gpu_check.extrapolate(_parts(end_to_end=E2E))
    assert derived["dev_warm_seconds"] == pytest.approx(10.0 + 32 * 30.0 + 2.0)
    assert "dev_cold_seconds" not in derived and derived["suggested_cuda_defaults"]["workers"] == 1


def test_junit_counts_and_failed_ids(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text("""<?xml version="1.0"?><testsuites><testsuite>
        <testcase classname="tests.test_a" name="test_ok"/>
        <testcase classname="tests.test_a" name="test_bad"><failure message="x"/></testcase>
        <testcase classname="tests.test_b" name="test_skip"><skipped/></testcase>
        <testcase classname="tests.test_c" name=""><error message="collection failure"/></testcase>
        </testsuite></testsuites>""")
    counts, failures = gpu_check.read_junit(path)
    assert counts == {"tests": 4, "passed": 1, "failed": 1, "errors": 1, "skipped": 1}
    assert failures == ["tests.test_a::test_bad", "tests.test_c::"]
    assert gpu_check.read_junit(tmp_path / "none.xml") == ({}, [])


def test_test_files_that_need_a_missing_package_are_left_out(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    assert gpu_check.left_out_test_files() == {}  # this machine has every package the tests import
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nbformat" else real(name, *a))
    left_out = gpu_check.left_out_test_files()
    assert {path.name: need for path, need in left_out.items()} == {"test_notebooks_run.py": "nbformat",
                                                                     "test_submission.py": "nbformat"}


@pytest.mark.parametrize("argv, message", [
    (["--dry-run", "--only", "engine,nope"], "error: --only: unknown part nope; the parts are environment, "),
    (["--dry-run", "--size", "e2e_models=many"], "error: --size e2e_models='many': expected an integer"),
    (["--dry-run", "--size", "epochs=3"], "error: --size: no size 'epochs'; the sizes are tests, engine_models, "),
    (["--dry-run", "--data", "/no/such/file.npz"], "error: --data /no/such/file.npz does not exist: pass --data"),
    (["--dry-run", "--limit", "engine=soon"], "error: --limit engine=soon: expected PART=SECONDS with a part of "),
])
def test_bad_arguments_stop_with_one_line(argv, message, capsys, tmp_path):
    assert gpu_check.main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_its_constants_are_the_kits():
    from evaluation.profiles import PROFILES
    from evaluation.zoo import CUDA_GROUP_SIZE

    assert gpu_check.Sizes().engine_models[0] == CUDA_GROUP_SIZE, "the first group measured is the zoo's"
    dev, full = PROFILES["dev"], PROFILES["full"]
    assert (dev.retrain_epochs, dev.num_models, full.num_models) == (gpu_check.EPOCHS, gpu_check.DEV_MODELS,
                                                                     gpu_check.FULL_MODELS)
    assert dev.train_subset is None and dev.test_subset is None  # all 50,000 and 10,000 images


def test_the_parts_budgets_add_up_to_five_minutes_on_a_gpu():
    parts = gpu_check.parts(dry=False)
    assert [p.name for p in parts] == ["environment", "cuda_tests", "engine", "end_to_end", "workers", "fp16"]
    assert sum(p.limit_s for p in parts) == 300
