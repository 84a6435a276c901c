"""The design the code cites ships in the repository; notebook outputs stay untracked."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DESIGN = REPO / "docs" / "DESIGN.md"
CITATION = re.compile(r"DESIGN\.md §(\d+)(?:-(\d+))?")


def cited_sections():
    for path in [*REPO.glob("biaskit/**/*.py"), *REPO.glob("notebooks/*"), REPO / "pyproject.toml",
                 REPO / "README.md"]:
        if path.is_file():
            for match in CITATION.finditer(path.read_text(encoding="utf-8")):
                first, last = int(match[1]), int(match[2] or match[1])
                yield from ((path.relative_to(REPO), n) for n in range(first, last + 1))


def test_every_design_citation_names_a_section_of_docs_design():
    sections = set(int(n) for n in re.findall(r"^## (\d+)\. ", DESIGN.read_text(), re.M))
    cited = list(cited_sections())
    assert cited, "no citation found: the pattern is wrong"
    assert [(path, n) for path, n in cited if n not in sections] == []
    for path in (REPO / "pyproject.toml", REPO / "notebooks" / "build_notebooks.py",
                 REPO / "notebooks" / "quickstart.ipynb"):
        text = path.read_text(encoding="utf-8")
        assert "docs/DESIGN.md §" in text and not re.search(r"(?<!docs/)DESIGN\.md §", text), path


def test_notebook_outputs_are_ignored_by_git():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["notebooks/quickstart/run/images.parquet", "notebooks/runs/system-card/run.json"]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.split() == paths


def test_readme_documents_the_exit_codes():
    from biaskit import cli

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit codes")[1].split("\n## ")[0]
    for code in (cli.EXIT_OK, cli.EXIT_FAILED_ITEMS, cli.EXIT_BAD_INPUT, cli.EXIT_SYSTEM,
                 cli.EXIT_INTERNAL, cli.EXIT_INTERRUPTED):
        assert f"| {code} |" in section, code
