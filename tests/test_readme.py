"""The README tells the truth: its test command is what CI runs; its diagram is current."""

import re
from pathlib import Path

from dialogs.machine import mermaid

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """The commands of README's first shell block (comments left out)."""
    block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_test_command():
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_test_command_installs_everything_and_runs_in_parallel():
    """A fresh Debian machine has neither venv, chromium, its driver, a Japanese font nor
    poppler's tools: the command installs them (the script skips what is there) before the
    suite, which runs under pytest-xdist."""
    command = readme_commands()[1]
    script = "tests/debian-packages.sh"
    assert command.startswith(f"sh {script} && python3 -m venv .venv")
    packages = (ROOT / script).read_text(encoding="utf-8")
    for package in (
        "python3-venv",
        "chromium",
        "chromium-driver",
        "fonts-ipafont-gothic",
        "poppler-utils",  # pdftoppm, pdftotext, pdffonts, pdfinfo: the checklist PDF tests
    ):
        assert re.search(rf"missing=\"\$missing[^\"]* {package}\b", packages), package
    assert 'sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"' in packages
    assert re.search(r"pytest -q -n (auto|\d+)", command)


def test_committed_diagram_is_current():
    block = README.split("<!-- diagram:start -->")[1].split("<!-- diagram:end -->")[0]
    assert block.strip() == f"```mermaid\n{mermaid().strip()}\n```"
