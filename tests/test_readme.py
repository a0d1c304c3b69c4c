"""The README tells the truth: its test command is what CI runs; its diagram is current."""

import re
from pathlib import Path

from dialogs.machine import mermaid

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^(python3 -m venv .*)$", README, flags=re.M)
    assert len(commands) >= 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_ci_installs_the_debian_packages_the_readme_names():
    """The same apt-get package list in README's test instructions and in .ci/run."""

    def packages(text: str) -> list[str]:
        [line] = re.findall(r"apt-get install (.*)$", text, flags=re.M)
        return sorted(w for w in line.split() if not w.startswith(("-", ">")))

    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert packages(README) == packages(ci)
    assert "poppler-utils" in packages(ci)


def test_committed_diagram_is_current():
    block = README.split("<!-- diagram:start -->")[1].split("<!-- diagram:end -->")[0]
    assert block.strip() == f"```mermaid\n{mermaid().strip()}\n```"
