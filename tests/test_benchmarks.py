"""The benchmarks still run against the code they measure: their smallest sizes, end to end.

The numbers of these runs mean nothing (tiny data on a shared machine); what is checked is that every
configuration ran, that its weights equal numpy's, and that every measurement was taken (an import that
the code under measurement no longer offers once turned the planning column into dashes unnoticed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_issue_benchmark_measures_every_column_of_the_wide_workload(tmp_path):
    out = tmp_path / "bench.json"
    run("run.py", "--quick", "--workloads", "W2", "--out", str(out))
    results = json.loads(out.read_text())["results"]
    duckdb_runs = [r for r in results if r["config"].get("engine") == "duckdb"]
    assert {r["config"]["strategy"] for r in duckdb_runs} >= {"recursive", "stepwise", "long", "auto"}
    for r in duckdb_runs:
        assert "error" not in r, r.get("error")
        assert r["weights_rel_diff_vs_numpy"] < 1e-9
        if r["config"]["strategy"] != "auto":
            assert "error" not in r["planning"], r["planning"]
            assert r["planning"]["planning_seconds"] > 0 and r["planning"]["sql_chars"] > 0


def test_the_vector_dot_benchmark_checks_its_sums_against_numpy(tmp_path):
    out = tmp_path / "vd.json"
    printed = run(
        "vector_dot.py", "--rows", "3000", "--shapes", "2x2,16x4", "--repeats", "1", "--out", str(out)
    )
    rows = json.loads(out.read_text())["results"]
    assert [(r["fan_in"], r["fan_out"], r["declared"]) for r in rows] == [(2, 2, False), (16, 4, True)]
    assert "lists" in printed and "scalar" in printed


def test_the_floor_benchmark_checks_every_gradient_form_against_numpy(tmp_path):
    out = tmp_path / "floor.json"
    printed = run("floor.py", "--workloads", "W2,W3", "--rows", "3000", "--repeats", "1", "--out", str(out))
    results = json.loads(out.read_text())["results"]
    assert [r["workload"] for r in results] == ["W2", "W3"]
    for r in results:
        assert set(r["forms"]) == {"scalar", "blocks", "unnest"}
        for form in r["forms"].values():
            assert len(form["layers"]) == len(r["hidden"]) + 1
            for layer in form["layers"]:
                assert layer["rel_diff_vs_numpy"] < 1e-12
                assert 0 < layer["execution_seconds"] <= layer["seconds"]
        assert r["floor_x_numpy_update"] == min(f["x_numpy_update"] for f in r["forms"].values())
    assert "numpy's whole update" in printed
