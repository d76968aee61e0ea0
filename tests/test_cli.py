"""The command line: JSON contract, outputs of each command, exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rshift.cli import main, parse_layers
from tests.conftest import CORPUS, SAMPLE_TEXT

CONTRACT_METRICS = {
    "logprob_current",
    "logprob_next",
    "rank_current",
    "rank_next",
    "cosine_current",
    "cosine_next",
}


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def model_folder(tiny_folders) -> str:
    return str(tiny_folders["llama_tied"])


def run_analyze(model_folder, text_file, tmp_path, *extra) -> tuple[int, dict | None]:
    out = tmp_path / "out.json"
    code = main(
        [
            "analyze",
            "--model",
            model_folder,
            "--text-file",
            str(text_file),
            "--json",
            str(out),
            *extra,
        ]
    )
    return code, json.loads(out.read_text()) if out.exists() else None


def test_analyze_writes_contract(model_folder, text_file, tmp_path):
    code, data = run_analyze(model_folder, text_file, tmp_path)
    assert code == 0
    assert data["model"]["num_layers"] == 5
    assert set(data["model"]) >= {"name", "num_layers", "hidden_size", "vocab_size", "tied"}
    assert set(data["metrics"]) == CONTRACT_METRICS
    positions = len(data["token_ids"])
    assert len(data["tokens"]) == positions
    for name, grid in data["metrics"].items():
        assert len(grid) == 6, name
        assert all(len(row) == positions for row in grid), name
    assert all(row[-1] is None for row in data["metrics"]["logprob_next"])
    assert all(isinstance(v, int) for v in data["metrics"]["rank_current"][0])
    assert len(data["shift_layer"]["per_position"]) == positions
    assert data["shift_layer"]["per_position"][-1] is None
    assert data["perplexity"] > 1
    assert data["attenuation"] is None


def test_analyze_with_attenuation(model_folder, text_file, tmp_path):
    code, data = run_analyze(
        model_folder,
        text_file,
        tmp_path,
        "--attenuate-layer",
        "3",
        "--alpha",
        "0.5",
        "--scope",
        "from",
    )
    assert code == 0
    assert data["attenuation"] == {"layer": 3, "alpha": 0.5, "scope": "from", "mode": "block"}
    _, plain = run_analyze(model_folder, text_file, tmp_path)
    assert data["metrics"]["logprob_next"][2] == plain["metrics"]["logprob_next"][2]
    assert data["metrics"]["logprob_next"][3] != plain["metrics"]["logprob_next"][3]


def test_analyze_truncates_with_warning(model_folder, text_file, tmp_path):
    code, data = run_analyze(model_folder, text_file, tmp_path, "--max-tokens", "4")
    assert code == 0
    assert len(data["token_ids"]) == 4
    assert "dropped" in data["warnings"][0]


def test_analyze_single_token(model_folder, tmp_path):
    single = tmp_path / "one.txt"
    single.write_text("The")
    code, data = run_analyze(model_folder, single, tmp_path)
    assert code == 0
    assert len(data["token_ids"]) == 1
    assert data["perplexity"] is None
    assert "undefined" in data["perplexity_note"]
    assert data["metrics"]["logprob_next"][0] == [None]


@pytest.mark.parametrize(
    ("content", "extra", "phrase"),
    [
        ("   \n\t ", (), "empty"),
        (SAMPLE_TEXT, ("--attenuate-layer", "9", "--alpha", "0.5"), "1..5"),
        (SAMPLE_TEXT, ("--attenuate-layer", "2", "--alpha", "3"), "alpha"),
        (SAMPLE_TEXT, ("--attenuate-layer", "2"), "together"),
        (SAMPLE_TEXT, ("--max-tokens", "0"), "max-tokens"),
    ],
    ids=["blank text", "layer range", "alpha range", "alpha missing", "token cap"],
)
def test_analyze_bad_input_exit_2(model_folder, tmp_path, capsys, content, extra, phrase):
    path = tmp_path / "input.txt"
    path.write_text(content)
    code, data = run_analyze(model_folder, path, tmp_path, *extra)
    assert code == 2
    assert data is None
    assert phrase in capsys.readouterr().err


def test_analyze_missing_model_exit_1(text_file, tmp_path, capsys):
    code, _ = run_analyze(str(tmp_path / "no-such-model"), text_file, tmp_path)
    assert code == 1
    assert "not found" in capsys.readouterr().err


def test_module_entry_point_exit_code(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rshift",
            "analyze",
            "--text-file",
            str(blank),
            "--json",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "empty" in result.stderr


def test_batch_writes_outputs(model_folder, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(CORPUS), encoding="utf-8")
    out = tmp_path / "batch"
    code = main(
        [
            "batch",
            "--model",
            model_folder,
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            "--attenuate-layer",
            "2",
            "--alpha",
            "0.5",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["prompts"]) == len(CORPUS)
    assert summary["aggregate"]["prompts"] == len(CORPUS)
    assert all(row["perplexity_attenuated"] > 0 for row in summary["prompts"])
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == len(CORPUS)
    aggregate = list(csv.DictReader((out / "aggregate.csv").open()))
    assert float(aggregate[0]["depth"]) == 0.0
    assert float(aggregate[-1]["depth"]) == 1.0


def test_batch_bad_file_exit_2(model_folder, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n{not json\n')
    code = main(
        ["batch", "--model", model_folder, "--prompts", str(prompts), "--out", str(tmp_path / "b")]
    )
    assert code == 2
    assert "line 2" in capsys.readouterr().err


def test_sweep_writes_landscape(model_folder, text_file, tmp_path):
    out_csv, out_json = tmp_path / "l.csv", tmp_path / "l.json"
    code = main(
        [
            "sweep",
            "--model",
            model_folder,
            "--text-file",
            str(text_file),
            "--layers",
            "2-4",
            "--alphas",
            "0,1",
            "--csv",
            str(out_csv),
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["layer"], r["alpha"]) for r in rows][:2] == [("2", "0.0"), ("2", "1.0")]
    assert len(rows) == 6
    data = json.loads(out_json.read_text())
    at_one = [p["perplexity"] for p in data["points"] if p["alpha"] == 1.0]
    assert at_one == pytest.approx([data["baseline_perplexity"]] * 3)


def test_sweep_rejects_bad_alphas(model_folder, text_file, tmp_path):
    code = main(
        [
            "sweep",
            "--model",
            model_folder,
            "--text-file",
            str(text_file),
            "--alphas",
            "0,5",
            "--csv",
            str(tmp_path / "x.csv"),
        ]
    )
    assert code == 2


def test_parse_layers_forms():
    assert parse_layers("all", 3) == [1, 2, 3]
    assert parse_layers("2-3", 3) == [2, 3]
    assert parse_layers("1,3", 3) == [1, 3]
    with pytest.raises(ValueError, match=r"1\.\.3"):
        parse_layers("0-2", 3)


def test_train_gates_prints_perplexity(model_folder, tmp_path, capsys):
    text = tmp_path / "train.txt"
    text.write_text(" ".join(CORPUS * 4))
    out = tmp_path / "gates.safetensors"
    code = main(
        [
            "train-gates",
            "--model",
            model_folder,
            "--text-file",
            str(text),
            "--steps",
            "3",
            "--window",
            "32",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "validation perplexity before" in printed
    assert "validation perplexity after" in printed
    assert out.stat().st_size > 0


def test_models_lists_catalogue(capsys):
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert "smollm2-135m" in printed
    assert "gemma3-270m" in printed
