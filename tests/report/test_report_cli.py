"""`accelsim report`, `accelsim run --report`, the plotting extra and the progress bar."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from reportkit import SHORT, assert_ok, err, invoke, one_error, write_study

from accelsim.commands import report as reporting


def charts_in(page: str) -> list[str]:
    return re.findall(r'<figure class="chart" id="chart-([^"]+)"', page)


@pytest.fixture(scope="module")
def result_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "result.json"
    assert_ok(invoke("run", *SHORT, "-q", "--json", path))
    return path


def test_report_of_a_result_document_is_one_self_contained_page(
    tmp_path: Path, result_json: Path
) -> None:
    page_path = tmp_path / "report.html"
    result = invoke("report", result_json, "-o", page_path)
    assert_ok(result)
    assert result.stdout == ""
    assert re.fullmatch(
        rf"wrote {re.escape(str(page_path))} \(9 charts, [\d.]+ MiB\)\n", err(result)
    )
    page = page_path.read_text(encoding="utf-8")
    assert charts_in(page) == [
        "perfw-queries",
        "cdf-latency",
        "tail-latency",
        "roofline-mtia-dlrm-dcn-large",
        "roofline-gpu-dlrm-dcn-large",
        "timeline-utilization",
        "timeline-in-system",
        "timeline-batch-ranking",
        "timeline-power",
    ]
    # plotly.js is inside the page, and nothing is fetched from anywhere.
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in page
    ours = page.replace(get_plotlyjs(), "")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", ours)
    assert "http://" not in ours and "https://" not in ours
    assert '<pre id="js-errors" hidden></pre>' in page
    # Without the run's records, the CDF and its tail say they come from percentiles only.
    assert page.count("drawn from the percentiles in the result document") == 2
    doc = json.loads(result_json.read_text(encoding="utf-8"))
    for name in doc["workloads"]:
        assert f">{name}</td>" in page
    assert "Reading" in page and "ridge point" in page


def test_run_report_draws_the_cdf_from_every_request(tmp_path: Path) -> None:
    page_path = tmp_path / "run.html"
    result = invoke("run", *SHORT, "--report", page_path, "--json", tmp_path / "r.json")
    assert_ok(result)
    assert "feed_mtia" in result.stdout  # the summary table is still printed
    assert f"wrote {page_path} (9 charts" in err(result)
    page = page_path.read_text(encoding="utf-8")
    # The CDF and its tail, each with both workloads' counts of requests.
    assert page.count("completed requests of the measured window: feed_mtia ") == 2
    assert "drawn from the percentiles" not in page
    # The document written beside it is the plain run's document.
    plain = invoke("run", *SHORT, "-q", "--json", "-")
    assert json.loads(plain.stdout) == json.loads((tmp_path / "r.json").read_text())


def test_run_report_quiet_prints_nothing(tmp_path: Path) -> None:
    result = invoke("run", *SHORT, "-q", "--report", tmp_path / "q.html")
    assert_ok(result)
    assert result.stdout == "" and result.stderr == ""
    assert (tmp_path / "q.html").stat().st_size > 1_000_000


def test_static_formats(tmp_path: Path, result_json: Path) -> None:
    result = invoke("report", result_json, "-o", tmp_path / "pngs", "--format", "png")
    assert_ok(result)
    names = sorted(p.name for p in (tmp_path / "pngs").iterdir())
    assert names[:2] == ["01-perfw-queries.png", "02-cdf-latency.png"] and len(names) == 9
    assert "wrote 9 PNG charts" in err(result)
    result = invoke("run", *SHORT, "-q", "--report", tmp_path / "svgs", "--format", "svg")
    assert_ok(result)
    assert len(list((tmp_path / "svgs").glob("*.svg"))) == 9


def test_report_of_a_study_folder(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    write_study(folder, [3000.0, 9000.0])
    result = invoke("report", folder, "-o", tmp_path / "study.html")
    assert_ok(result)
    page = (tmp_path / "study.html").read_text(encoding="utf-8")
    ids = charts_in(page)
    assert "throughput-latency-feed_mtia" in ids and "pareto-feed_gpu" in ids
    assert sum(i.startswith("roofline-") for i in ids) == 2
    assert "accelsim study report: load-test" in page
    assert "boom" not in page  # the failed run is left out


def test_report_of_a_folder_of_other_jsonl_rows(tmp_path: Path) -> None:
    folder = tmp_path / "rows"
    write_study(folder, [3000.0, 9000.0], manifest=False)
    result = invoke("report", folder, "-o", tmp_path / "rows.html")
    assert_ok(result)
    page = (tmp_path / "rows.html").read_text(encoding="utf-8")
    assert "pareto-feed_mtia" in charts_in(page)
    assert "no study.json naming the base scenario here, so no rooflines" in page


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing.json", "no such file or folder"),
        (lambda d: _write(d / "bad.json", "{not json"), "cannot read a result document"),
        (lambda d: _write(d / "list.json", "[1, 2]"), "not an accelsim result document"),
        (lambda d: _write(d / "other.json", '{"a": 1}'), "not an accelsim result document"),
        (lambda d: _mkdir(d / "empty"), "no runs.jsonl or other *.jsonl rows here"),
        (lambda d: _write(_mkdir(d / "j") / "x.jsonl", "nope\n").parent, "x.jsonl:1: not a JSON"),
    ],
)
def test_bad_sources_are_one_line_errors(tmp_path: Path, make: Any, words: str) -> None:
    assert words in one_error(invoke("report", make(tmp_path), "-o", tmp_path / "x.html"))
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda d: _write(d / "empty.json", "{}"),
        lambda d: _write(d / "other.json", '{"a": 1}'),
        lambda d: _write(d / "keys.json", '{"workloads": {}, "pools": {}, "totals": {}}'),
        lambda d: _write(_mkdir(d / "axes") / "runs.jsonl", '{"run_id": "a", "axes": 5}\n').parent,
        lambda d: _write(_mkdir(d / "rows") / "x.jsonl", '{"axes": 5, "metrics": {}}\n').parent,
    ],
)
def test_every_error_about_a_source_names_it(tmp_path: Path, make: Any) -> None:
    source = make(tmp_path)
    line = one_error(invoke("report", source, "-o", tmp_path / "x.html"))
    assert line.startswith(f"error: {source}"), line
    assert not (tmp_path / "x.html").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_format_needs_report() -> None:
    assert "--format png goes with --report" in one_error(invoke("run", *SHORT, "--format", "png"))
    explain = ("explain", "--chip", "mtia-like-gen2", "--model", "dlrm-mlp-heavy")
    assert "--format svg goes with --report" in one_error(invoke(*explain, "--format", "svg"))


def test_explain_report_draws_its_roofline(tmp_path: Path) -> None:
    page_path = tmp_path / "explain.html"
    args = ("explain", "--chip", "gpu-like-gen2-hbm", "--model", "llm-dense-8b", "--batch", "32")
    result = invoke(*args, "--report", page_path)
    assert_ok(result)
    assert "decode" in result.stdout  # the terminal breakdown is still printed
    assert f"wrote {page_path} (1 charts" in err(result)
    page = page_path.read_text(encoding="utf-8")
    assert charts_in(page) == ["roofline-gpu-like-gen2-hbm-llm-dense-8b"]
    assert "Reading" in page and "prefill of 2048 tokens" in page
    result = invoke(*args, "--report", tmp_path / "pngs", "--format", "png")
    assert_ok(result)
    assert [p.name for p in (tmp_path / "pngs").iterdir()] == [
        "01-roofline-gpu-like-gen2-hbm-llm-dense-8b.png"
    ]


def test_explain_report_refuses_to_write_over_its_inputs(tmp_path: Path) -> None:
    chip = tmp_path / "chip.yaml"
    chip.write_text("extends: mtia-like-gen2\nname: my-chip\n", encoding="utf-8")
    before = chip.read_text(encoding="utf-8")
    line = one_error(
        invoke("explain", "--chip", chip, "--model", "dlrm-mlp-heavy", "--report", chip)
    )
    assert line == (
        f"error: --report {chip}: would write over {chip}, which this command reads; "
        "choose another path"
    )
    assert chip.read_text(encoding="utf-8") == before


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("plotly", ("report", "{json}", "-o", "{tmp}/r.html")),
        ("matplotlib", ("report", "{json}", "-o", "{tmp}/r", "--format", "png")),
        ("plotly", ("run", *SHORT, "--report", "{tmp}/r.html")),
    ],
)
def test_without_the_extra_one_line_names_it(
    tmp_path: Path, result_json: Path, monkeypatch: pytest.MonkeyPatch, module: str, args: Any
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    filled = [str(a).format(json=result_json, tmp=tmp_path) for a in args]
    line = one_error(invoke(*filled))
    assert line == (
        f"error: reports need the 'report' extra ({module} is not installed): "
        "pip install 'accelsim[report]'  (or, from a checkout: pip install -e \".[report]\")"
    )
    assert not list(tmp_path.iterdir())  # nothing was run or written first


def test_plotting_is_imported_lazily() -> None:
    import subprocess

    code = (
        "import sys, accelsim.cli\n"
        "names = ('plotly', 'matplotlib', 'accelsim.report.plots')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ progress


class FakeProgress:
    made: ClassVar[list[FakeProgress]] = []

    def __init__(self, *columns: Any, **kwargs: Any) -> None:
        self.updates: list[float] = []
        self.started = self.stopped = False
        FakeProgress.made.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def add_task(self, description: str, total: float, completed: float = 0.0) -> int:
        self.updates.append(completed)
        return 0

    def update(self, task: int, completed: float) -> None:
        self.updates.append(completed)


def test_progress_shows_only_after_a_second_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import rich.progress

    now = [100.0]
    monkeypatch.setattr(rich.progress, "Progress", FakeProgress)
    monkeypatch.setattr(reporting.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(reporting, "_stderr_is_tty", lambda: True)
    FakeProgress.made = []
    with reporting.run_progress("simulating x", True) as tick:
        assert tick is not None
        tick(0.2)
        now[0] += 0.9
        tick(0.4)
        assert FakeProgress.made == []  # under a second: no bar at all
        now[0] += 0.2
        tick(0.6)
        tick(1.0)
    (bar,) = FakeProgress.made
    assert bar.started and bar.stopped and bar.updates == [0.6, 0.6, 1.0]

    FakeProgress.made = []
    with reporting.run_progress("simulating x", False) as tick:  # --quiet
        assert tick is None
    monkeypatch.setattr(reporting, "_stderr_is_tty", lambda: False)
    with reporting.run_progress("simulating x", True) as tick:  # not a terminal
        assert tick is None
    assert FakeProgress.made == []
