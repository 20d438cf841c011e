"""Shared helpers for the report tests: invoking the CLI, short runs, study folders, Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from click.testing import Result

from clirunner import assert_ok, err, invoke, out  # noqa: F401  (re-exported)

# Short runs of shipped scenarios.
SHORT = ("--set", "simulation.duration_s=1", "--set", "simulation.warmup_s=0.2")
SHORT_LLM = ("--set", "simulation.duration_s=10", "--set", "simulation.warmup_s=2")


def one_error(result: Result) -> str:
    """The single ``error:`` line of a command that failed cleanly (exit 1, no traceback)."""
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in err(result).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """A result document as flat dotted keys (the form of a sweep row's ``metrics``)."""
    if isinstance(doc, dict):
        flat: dict[str, Any] = {}
        for key, value in doc.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(doc, list):
        return {}
    return {prefix: doc}


def write_study(folder: Path, rates: list[float], *, manifest: bool = True) -> list[dict[str, Any]]:
    """A small sweep folder over the ranking load of ``ranking-one-pool`` style traffic: one
    short run of the shipped default scenario per rate, as ``runs.jsonl`` rows (and a
    ``study.json`` naming the base scenario, if ``manifest``). Returns the rows."""
    from accelsim.config.loader import catalog
    from accelsim.runner import run_scenario

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, rate in enumerate(rates):
        axes = {
            "workloads.feed_mtia.traffic.rate_per_s": rate,
            "workloads.feed_gpu.traffic.rate_per_s": rate,
        }
        overrides = [*(f"{k}={v}" for k, v in axes.items()), "simulation.duration_s=0.5"]
        overrides.append("simulation.warmup_s=0.1")
        doc = run_scenario(None, overrides)
        metrics = {
            k: v
            for k, v in flatten(doc).items()
            if k.startswith(("workloads.", "pools.", "totals.")) and not k.startswith("timeline")
        }
        rows.append(
            {
                "run_id": f"run{i:03d}",
                "status": "ok",
                "error": None,
                "wall_s": 0.1,
                "replicate": 0,
                "seed": 1,
                "axes": axes,
                "metrics": metrics,
                "warnings": doc["warnings"],
            }
        )
    rows.append({**rows[0], "run_id": "failed", "status": "failed", "error": "boom", "metrics": {}})
    name = "runs.jsonl" if manifest else "rows.jsonl"
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if manifest:
        scenario = str(catalog("scenario")["ranking-mtia-vs-gpu"])
        (folder / "study.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "study": "load-test",
                    "scenario": scenario,
                    "axes": list(rows[0]["axes"]),
                    "runs": [{"run_id": r["run_id"]} for r in rows],
                }
            ),
            encoding="utf-8",
        )
    return rows


# --------------------------------------------------------------------- Chromium


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


NO_CHROMIUM = (
    "no Chromium on this machine (Debian package `chromium`); .ci/run installs it, "
    "or: apt-get install -y chromium"
)


def _flags(profile: str) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
    ]


def dump_dom(browser: str, page: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium."""
    with tempfile.TemporaryDirectory(prefix="accelsim-chromium-") as profile:
        done = subprocess.run(
            [browser, *_flags(profile), "--dump-dom", page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(browser: str, page: Path, png: Path, height: int = 5000) -> None:
    with tempfile.TemporaryDirectory(prefix="accelsim-chromium-") as profile:
        subprocess.run(
            [
                browser,
                *_flags(profile),
                "--hide-scrollbars",
                f"--screenshot={png}",
                f"--window-size=1400,{height}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
            stdin=subprocess.DEVNULL,
        )


_FIGURE = re.compile(r"<figure\b([^>]*)>(.*?)</figure>", re.S)
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def figures(dom: str) -> list[tuple[dict[str, str], str]]:
    """Each chart figure of a dumped DOM: its attributes and its inner HTML."""
    return [(dict(_ATTR.findall(attrs)), body) for attrs, body in _FIGURE.findall(dom)]


def js_errors(dom: str) -> str:
    match = re.search(r'<pre id="js-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert match is not None, "the page has no <pre id='js-errors'>"
    return match.group(1).strip()
