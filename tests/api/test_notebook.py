"""docs/tutorial.ipynb runs from top to bottom: every code cell, in order, in one
namespace, from a scratch working folder (the notebook writes only to a temporary
folder of its own)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"


def test_the_tutorial_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(cells) >= 10
    for index, cell in enumerate(cells):
        try:
            exec(compile(cell.source, f"{NOTEBOOK.name}[{index}]", "exec"), namespace)
        except Exception as exc:  # name the cell that failed
            raise AssertionError(f"cell {index} failed: {exc!r}\n{cell.source}") from exc
    assert namespace["back"] is not None and len(namespace["runs"]) == 8  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # nothing written outside its own folder
