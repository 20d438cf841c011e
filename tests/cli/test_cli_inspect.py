"""`hardware`, `workloads`, `explain` and `schema`, and `extends:` seen through them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clikit import (
    BOUNDS,
    assert_ok,
    chip_data,
    error_lines,
    invoke,
    json_stdout,
    model_data,
    one_error,
    stderr,
    stdout,
    write,
)

from accelsim.config.loader import catalog

SHIPPED_CHIP = "mtia-like-gen2"
SHIPPED_MODEL = "dlrm-mlp-heavy"


def explain_json(chip: object, model: object, batch: int) -> dict:
    return json_stdout(
        invoke("explain", "--chip", chip, "--model", model, "--batch", batch, "--json", "-")
    )


# ------------------------------------------------------------------ extends


def test_extends_a_tmp_base_with_one_override(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", chip_data())
    write(tmp_path / "model.yaml", model_data())
    child = write(
        tmp_path / "child.yaml",
        "# the test chip with a bigger power budget\n"
        "extends: base.yaml\n"
        "power:\n"
        "  tdp_w: 77 W\n"
        "description: base plus power\n",
    )
    shown = json_stdout(invoke("hardware", "show", child, "--json"))
    base = json_stdout(invoke("hardware", "show", tmp_path / "base.yaml", "--json"))
    assert shown["power"]["tdp_w"] == 77.0
    assert base["power"]["tdp_w"] == 50.0
    # Everything else is inherited, siblings of the override included.
    assert shown["power"]["idle_w"] == base["power"]["idle_w"] == 10.0
    assert shown["compute"] == base["compute"]
    assert shown["memory"] == base["memory"]
    assert shown["description"] == "base plus power"
    assert shown["name"] == "child"  # a child without a name takes its file's, not the parent's

    result = invoke("explain", "--chip", child, "--model", tmp_path / "model.yaml", "--batch", 8)
    assert_ok(result)
    text = stdout(result)
    assert "on child," in text
    assert "TDP 77 W" in text
    doc = explain_json(child, tmp_path / "model.yaml", 8)
    assert doc["chip"] == "child"
    assert doc["totals"]["tdp_w"] == 77.0


def test_extends_a_shipped_chip(tmp_path: Path) -> None:
    child = write(
        tmp_path / "faster.yaml",
        f"extends: {SHIPPED_CHIP}\n"
        "name: faster\n"
        "memory:\n"
        "  dram:\n"
        "    bandwidth_bytes_per_s: 400 GB/s\n",
    )
    shown = json_stdout(invoke("hardware", "show", child, "--json"))
    parent = json_stdout(invoke("hardware", "show", SHIPPED_CHIP, "--json"))
    assert shown["name"] == "faster"
    assert shown["memory"]["dram"]["bandwidth_bytes_per_s"] == 400e9
    assert parent["memory"]["dram"]["bandwidth_bytes_per_s"] != 400e9
    assert shown["memory"]["dram"]["capacity_bytes"] == parent["memory"]["dram"]["capacity_bytes"]
    assert shown["memory"]["sram"] == parent["memory"]["sram"]
    assert shown["compute"] == parent["compute"]
    fast = explain_json(child, SHIPPED_MODEL, 64)
    slow = explain_json(SHIPPED_CHIP, SHIPPED_MODEL, 64)
    assert fast["ridge_point_flops_per_byte"]["dram"] < slow["ridge_point_flops_per_byte"]["dram"]


def test_error_in_a_child_names_the_child_file(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", chip_data())
    child = write(tmp_path / "child.yaml", "extends: base.yaml\npower:\n  tdp_w: 77 X\n")
    line = one_error(invoke("hardware", "show", child))
    assert line.startswith(f"error: {child}:3: power.tdp_w: "), line


# ----------------------------------------------------------------- hardware


def test_hardware_list_shows_every_shipped_profile() -> None:
    names = list(catalog("chip"))
    assert {SHIPPED_CHIP, "gpu-like-gen1"} <= set(names)
    result = invoke("hardware", "list")
    assert_ok(result)
    text = stdout(result)
    assert "hypothetical" in text.lower()
    rows = [line for line in text.splitlines() if line.startswith("│")]
    first_cells = [row.split("│")[1].strip() for row in rows]
    # One row per profile, in name order, in each table (what it is; its figures).
    assert [cell for cell in first_cells if cell] == names + names


def test_every_shipped_profile_says_hypothetical() -> None:
    for name in catalog("chip"):
        assert json_stdout(invoke("hardware", "show", name, "--json"))["hypothetical"] is True


def test_hardware_show_table() -> None:
    result = invoke("hardware", "show", SHIPPED_CHIP)
    assert_ok(result)
    text = stdout(result)
    assert f"{SHIPPED_CHIP} (hypothetical)" in text
    for field in ("compute.clock_hz", "memory.dram.bandwidth_bytes_per_s", "power.tdp_w"):
        assert field in text
    assert "ridge point bf16 (FLOP/B)" in text
    assert "B/s" in text and " W " in text  # values are shown with units


def test_hardware_show_json() -> None:
    doc = json_stdout(invoke("hardware", "show", SHIPPED_CHIP, "--json"))
    assert doc["name"] == SHIPPED_CHIP
    assert {"compute", "memory", "power", "host_link"} <= set(doc)
    assert doc["compute"]["matrix_flops_per_s"]["bf16"] > 1e12
    assert doc["memory"]["dram"]["bandwidth_bytes_per_s"] > 1e9
    assert 0 < doc["power"]["idle_w"] < doc["power"]["tdp_w"]


def test_hardware_show_unknown_name_lists_known_names() -> None:
    line = one_error(invoke("hardware", "show", "nope"))
    assert line.startswith("error: nope: no chip named 'nope'")
    for name in catalog("chip"):
        assert name in line


def test_hardware_show_a_model_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "model.yaml", model_data())
    lines = error_lines(invoke("hardware", "show", path))
    assert any(line.startswith(f"error: {path}:") and "unknown field" in line for line in lines)


# ---------------------------------------------------------------- workloads


def test_workloads_list_shows_models_and_scenarios() -> None:
    models, scenarios = list(catalog("model")), list(catalog("scenario"))
    assert SHIPPED_MODEL in models and "ranking-mtia-vs-gpu" in scenarios
    result = invoke("workloads", "list")
    assert_ok(result)
    text = stdout(result)
    assert "models" in text and "scenarios" in text
    first_cells = [row.split("│")[1].strip() for row in text.splitlines() if row.startswith("│")]
    assert [cell for cell in first_cells if cell] == models + scenarios
    assert text.index("models") < text.index("scenarios")


# ------------------------------------------------------------------ explain


def test_explain_table_mentions_ridge_point_and_every_op() -> None:
    doc = explain_json(SHIPPED_CHIP, SHIPPED_MODEL, 64)
    result = invoke("explain", "--chip", SHIPPED_CHIP, "--model", SHIPPED_MODEL, "--batch", 64)
    assert_ok(result)
    text = stdout(result)
    assert "ridge point" in text
    assert f"{SHIPPED_MODEL} on {SHIPPED_CHIP}, batch of 64 items" in text
    op_cells = [row.split("│")[1].strip() for row in text.splitlines() if row.startswith("│")]
    assert op_cells == [op["name"] for op in doc["ops"]]


@pytest.mark.parametrize("batch", [1, 64, 1024])
def test_explain_json_ops_and_totals(batch: int) -> None:
    doc = explain_json(SHIPPED_CHIP, SHIPPED_MODEL, batch)
    assert doc["batch_items"] == batch
    assert doc["ops"]
    for op in doc["ops"]:
        assert {"name", "time_s", "flops", "bytes", "arithmetic_intensity", "bound"} <= set(op)
        assert op["bound"] in BOUNDS
        assert op["time_s"] > 0 and op["flops"] >= 0 and op["bytes"] >= 0
        if op["arithmetic_intensity"] is not None and op["bytes"] > 0:
            assert op["arithmetic_intensity"] == pytest.approx(op["flops"] / op["bytes"])
    names = [op["name"] for op in doc["ops"]]
    assert len(names) == len(set(names))
    assert any(n.startswith("bottom_mlp") for n in names)
    assert any(n.startswith("top_mlp") for n in names)
    assert any(n.startswith("embedding") for n in names)
    assert doc["totals"]["time_s"] == pytest.approx(sum(op["time_s"] for op in doc["ops"]))
    assert doc["totals"]["items_per_s"] == pytest.approx(batch / doc["totals"]["time_s"])
    assert set(doc["ridge_point_flops_per_byte"]) <= {"sram", "dram", "host"}


def test_explain_tmp_files_and_json_file(tmp_path: Path) -> None:
    chip = write(tmp_path / "chip.yaml", chip_data())
    model = write(tmp_path / "model.yaml", model_data())
    out = tmp_path / "explain.json"
    result = invoke("explain", "--chip", chip, "--model", model, "--batch", 32, "--json", out)
    assert_ok(result)
    assert "ridge point" in stdout(result)  # the table is still printed
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert (doc["chip"], doc["model"], doc["batch_items"]) == ("test-chip", "tiny-ranker", 32)
    # Test chip: bf16 peak 100 TFLOP/s at 50% efficiency; SRAM 1 TB/s; DRAM 100 GB/s at 80%.
    assert doc["ridge_point_flops_per_byte"]["sram"] == pytest.approx(50.0)
    assert doc["ridge_point_flops_per_byte"]["dram"] == pytest.approx(625.0)
    assert doc["totals"]["time_s"] == pytest.approx(sum(op["time_s"] for op in doc["ops"]))


def test_bigger_batch_amortises_weights_and_overheads() -> None:
    def items_per_s(chip: str, batch: int) -> float:
        return explain_json(chip, SHIPPED_MODEL, batch)["totals"]["items_per_s"]

    rates = [items_per_s(SHIPPED_CHIP, b) for b in (1, 16, 256)]
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] > 10 * rates[0]
    assert items_per_s("gpu-like-gen1", 1) < items_per_s("gpu-like-gen1", 256)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--chip", "nope", "--model", SHIPPED_MODEL), "no chip named 'nope'"),
        (("--chip", SHIPPED_CHIP, "--model", "nope"), "no model named 'nope'"),
    ],
)
def test_explain_unknown_reference(args: tuple[str, ...], words: str) -> None:
    assert words in one_error(invoke("explain", *args))


def test_explain_batch_must_be_positive() -> None:
    result = invoke("explain", "--chip", SHIPPED_CHIP, "--model", SHIPPED_MODEL, "--batch", 0)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# ------------------------------------------------------------------- schema


def test_schema_prints_the_scenario_schema() -> None:
    doc = json_stdout(invoke("schema"))
    body = doc["definitions"]["Scenario"]
    assert {"workloads", "pools", "simulation", "extends"} <= set(body["properties"])
    assert {"workloads", "pools"} <= set(body["required"])
    assert "name" not in body["required"]  # a file without one takes its file name
    assert doc["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert doc["else"] == {"$ref": "#/definitions/Scenario"}
    # A file that extends another may leave any field out, at any depth.
    assert doc["then"] == {"$ref": "#/definitions/PartialScenario"}
    assert all("required" not in d for n, d in doc["definitions"].items() if n[:7] == "Partial")


@pytest.mark.parametrize(
    ("kind", "definition", "fields"),
    [
        ("chip", "Chip", {"compute", "memory", "power"}),
        ("model", "RankingModel", {"embedding_tables", "top_mlp"}),
        ("model", "LLMModel", {"layers", "kv_heads", "moe"}),
        ("study", "Study", {"base", "axes", "seeds", "metrics"}),
    ],
)
def test_schema_kind_to_file(tmp_path: Path, kind: str, definition: str, fields: set[str]) -> None:
    out = tmp_path / "sub" / f"{kind}.schema.json"
    result = invoke("schema", kind, "-o", out)
    assert_ok(result)
    assert result.stdout == ""
    assert f"wrote {out}" in stderr(result)
    doc = json.loads(out.read_text(encoding="utf-8"))
    # A model file is either kind: the schema is a union of both definitions.
    body = doc["definitions"][definition]
    assert fields <= set(body["properties"])
    assert body["additionalProperties"] is False  # typos are errors, and editors can say so


def test_schema_unknown_kind() -> None:
    line = one_error(invoke("schema", "scenaro"))
    assert line == (
        "error: unknown schema kind 'scenaro'; did you mean 'scenario'? "
        "(known: chip, model, scenario, study, plan)"
    )
