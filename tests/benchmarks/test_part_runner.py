"""benchmarks/part_runner.py: parts in their own processes under their own limits, files rewritten
after each."""

import json
import os

import pytest

from benchmarks.part_runner import Part, format_value, run_parts
from tests.helpers import REPO

STUBS = REPO / "tests" / "fixtures" / "stub_parts.py"


def _part(name, function, limit_s=20.0, cleanup=None):
    return Part(name, f"{STUBS}:{function}", limit_s, cleanup=f"{STUBS}:{cleanup}" if cleanup else None)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:  # a zombie has ended; only its parent's wait is left
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    out = tmp_path_factory.mktemp("check")
    marker = out / "cleanup.txt"
    parts = [_part("records", "records"), _part("raises", "raises"),
             _part("hangs", "hangs", limit_s=2.0, cleanup="marks_cleanup"), _part("dies", "dies"),
             _part("reads_the_report", "reads_the_report")]

    def derive(so_far):
        return {"parts_so_far": len(so_far)}, [f"derived from {len(so_far)} parts"]

    report = run_parts(parts, {"out": str(out), "marker": str(marker)}, out, "check", derive=derive, title="stubs")
    return out, report, marker


def test_each_part_ends_as_it_ended_and_the_next_still_runs(ran):
    _, report, _ = ran
    parts = report["parts"]
    assert list(parts) == ["records", "raises", "hangs", "dies", "reads_the_report"]
    assert parts["records"]["status"] == "ok" and parts["records"]["figures"] == {"a": 1, "b": [2, 3]}
    assert parts["raises"]["status"] == "failed" and parts["raises"]["error"] == "ValueError: bad input"
    assert parts["raises"]["figures"] == {"before": 0.5}, "what a part recorded before it failed is kept"
    assert parts["dies"]["status"] == "failed" and "SIGKILL" in parts["dies"]["error"]
    assert parts["reads_the_report"]["status"] == "ok"


def test_a_part_past_its_limit_is_killed_with_its_children_and_keeps_its_figures(ran):
    _, report, marker = ran
    hung = report["parts"]["hangs"]
    assert hung["status"] == "timeout" and "limit of 2 s" in hung["error"]
    assert 2.0 <= hung["seconds"] < 10.0
    assert not _alive(hung["figures"]["grandchild"]), "the part's own children end with it"
    assert marker.read_text() == "cleaned up", "a part's cleanup runs whatever its end"


def test_files_are_rewritten_after_every_part(ran):
    out, report, _ = ran
    seen = report["parts"]["reads_the_report"]["figures"]
    assert seen["seen"] == {"records": "ok", "raises": "failed", "hangs": "timeout", "dies": "failed"}
    assert seen["derived_before"] == {"parts_so_far": 4}
    written = json.loads((out / "check.json").read_text())
    assert written["parts"] == report["parts"] and written["derived"] == {"parts_so_far": 5}
    md = (out / "check.md").read_text()
    assert md.startswith("# stubs\n") and "| hangs | timeout |" in md and "| b | 2, 3 |" in md
    assert "Error: `ValueError: bad input`" in md and md.rstrip().endswith("derived from 5 parts")
    log = (out / "check.log").read_text()
    headers = [line.split(" (")[0].strip("= ") for line in log.splitlines() if line.startswith("===== ")
               and "started" in line and "cleanup" not in line]
    assert headers == list(report["parts"])
    assert "ValueError: bad input" in log, "a failing part's traceback is in the log"


def test_values_format_for_a_table():
    assert [format_value(v) for v in (266829.4, 4.91234, 0.0123456, 3, True, None, [1, 2.5], "a|b")] == [
        "266,829", "4.912", "0.01235", "3", "True", "None", "1, 2.5", "a\\|b"]
