"""BENCHMARKS.md is rewritten by bench.py, but not all of it is bench.py's: sections measured by
hand or by a partial run (placement, the chaos variants, re-measurements) must survive a full
`make bench`, `--report` and `--only` rewrite, word for word and where they were."""
import os
import shutil

import pytest

import bench

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def results_doc():
    """A results document with one small result for every benchmark bench.py runs."""
    results = [{"bench": b, "how": f"how {b} was measured", "extra": {},
                "metrics": [bench.metric(f"{b} figure", 1.5, "ms", goal="< 2")]} for b in bench.ORDER]
    return {"results": results,
            "environment": {"date": "2026-12-05 10:00 UTC", "commit": "abc", "dirty": False, "cpu": "cpu",
                            "cores": 2, "memory": "1 GiB", "kernel": "6", "rustc": "rustc", "python": "3"},
            "load": {"at_start": 1.0, "mean_1min": 1.0, "max_1min": 1.0},
            "timing": {"total_seconds": 60, "harness_build_seconds": 10, "release_build_seconds": 20},
            "sizes_text": "small"}


def titles(text):
    return [t for t, _ in bench.split_sections(text)[1]]


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A copy of the real BENCHMARKS.md and bench/NOTES.md, as bench.py's repository root."""
    os.makedirs(tmp_path / "bench")
    shutil.copy(os.path.join(ROOT, "BENCHMARKS.md"), tmp_path / "BENCHMARKS.md")
    shutil.copy(os.path.join(ROOT, "bench", "NOTES.md"), tmp_path / "bench" / "NOTES.md")
    monkeypatch.setattr(bench, "ROOT", str(tmp_path))
    return tmp_path


def unowned(text, written):
    """The sections of `text` a rewrite that wrote `written` does not own."""
    owned = {bench.base_title(t) for t in titles(written)}
    return [(t, b) for t, b in bench.split_sections(text)[1] if bench.base_title(t) not in owned]


def test_a_full_rewrite_keeps_every_section_it_does_not_write_word_for_word_and_in_their_order(checkout):
    before = (checkout / "BENCHMARKS.md").read_text()
    after = bench.write(results_doc())
    owned_only = bench.render(results_doc(), (checkout / "bench" / "NOTES.md").read_text())
    kept = unowned(before, owned_only)
    # The sections this repository's report holds that no benchmark or note writes.
    assert {"placement", "chaos: placement", "chaos: lost webhooks and replays"} <= {
        bench.base_title(t) for t, _ in kept}
    for title, block in kept:
        assert block.strip() in after, f"section {title!r} was dropped or changed"
    positions = [after.index(block.strip()) for _, block in kept]
    assert positions == sorted(positions)
    assert (checkout / "BENCHMARKS.md").read_text() == after


def test_a_rewrite_replaces_each_benchmark_section_where_it_stands_and_keeps_the_others_between():
    old = ("# Benchmarks\n\nintro\n\n## Re-measured (partial)\n\nrows\n\n## Environment\n\nold env\n\n"
           "## poll\n\nold poll\n\n## placement\n\nplacement figures\n\n## push (run alone)\n\nold push\n")
    new = ("# Benchmarks\n\nnew intro\n\n## Environment\n\nnew env\n\n## push\n\nnew push\n\n"
           "## poll\n\nnew poll\n\n## dashboard\n\nnew dashboard\n")
    out = bench.keep_unowned_sections(new, old)
    assert titles(out) == ["Re-measured (partial)", "Environment", "poll", "dashboard", "placement", "push"]
    assert "## placement\n\nplacement figures\n" in out and "## Re-measured (partial)\n\nrows\n" in out
    assert "old poll" not in out and "old push" not in out and "new intro" in out


def test_a_rewrite_of_an_empty_report_is_the_run_s_own():
    new = "# B\n\nintro\n\n## Environment\n\nenv\n\n## poll\n\np\n"
    assert bench.keep_unowned_sections(new, "") == new


def test_an_only_run_replaces_its_own_section_and_keeps_every_other_word_for_word(checkout):
    before = (checkout / "BENCHMARKS.md").read_text()
    r = {"bench": "dashboard", "how": "re-measured dashboard", "extra": {},
         "metrics": [bench.metric("orders page (8 tab counts + 50 orders)", 900, "ms")]}
    bench.splice_section(r)
    after = (checkout / "BENCHMARKS.md").read_text()
    assert "re-measured dashboard" in after
    assert titles(after) == titles(before)
    for title, block in bench.split_sections(before)[1]:
        if bench.base_title(title) != "dashboard":
            assert block.strip() in after, f"section {title!r} was dropped or changed"


def test_an_only_run_of_a_benchmark_the_report_lacks_adds_it_after_the_last_benchmark_section():
    old = "# B\n\n## poll\n\np\n\n## chaos: placement\n\nc\n"
    out = bench.splice(old, "cold_start", "## cold_start\n\nnew")
    assert titles(out) == ["poll", "cold_start", "chaos: placement"]
