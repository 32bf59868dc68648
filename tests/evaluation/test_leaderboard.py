"""evaluation/leaderboard.py: rows ranked, failures last with the first line of their reason."""

from evaluation.leaderboard import Row, markdown_table, ranked


def test_ranking_puts_failures_last():
    rows = [Row.failed("bad", "ValueError: x\nmore"), Row("a", final_score=0.2), Row("b", final_score=0.5)]
    assert [r.method for r in ranked(rows)] == ["b", "a", "bad"]
    table = markdown_table(rows)
    assert "| bad | FAILED: ValueError: x |" in table and "more" not in table
    assert table.splitlines()[2].startswith("| b | ")


def test_failed_row_keeps_the_first_line_of_the_reason():
    assert Row.failed("m", "run 0: boom\ntrace").error == "run 0: boom"
