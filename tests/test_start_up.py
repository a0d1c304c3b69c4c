"""What the console and `rules check` load before their first output (issue 14: start-up), and
the parsed-YAML cache that lets later starts skip PyYAML. No timings: the bench measures them."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rules import yaml_data

ROOT = Path(__file__).resolve().parent.parent

# Loaded only by the commands (or the answers) that need them.
NOT_AT_START = [
    "sudachipy",  # the analyser: on the first typed answer
    "dialogs.understanding",
    "fpdf",  # the checklist PDF
    "matplotlib",
    "sqlite_utils",  # the admin readers
    "pydantic_settings",  # SUBSIDY_DB given in the environment
    "asyncio",  # the delivery core's sending side
    "telegram",
    "linebot",
    "aiohttp",
    "rules.co2",  # the CO2 estimator: when an estimate is made
    "kanjize",
]


def _loaded_after(args: list[str], stdin: str, env: dict[str, str]) -> set[str]:
    """The modules a `subsidy-bot` command has loaded when it ends (run in a subprocess)."""
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "from bot.cli import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.fixture
def env(tmp_path):
    return {
        **os.environ,
        "SUBSIDY_DB": str(tmp_path / "console.db"),
        "SUBSIDY_LANG": "ja",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def test_console_shows_its_first_question_without_the_heavy_modules(env):
    for _ in range(2):  # without the YAML cache, then with it
        loaded = _loaded_after(["console"], "", env)
        assert not [m for m in NOT_AT_START if m in loaded]
    assert "yaml" not in loaded  # the second start read the parsed data from the cache


def test_rules_check_loads_no_storage_and_no_dialog(env):
    answers = json.dumps({"entity_type": "company", "industry": "manufacturing"})
    loaded = _loaded_after(["rules", "check", "--date", "2024-06-01"], answers, env)
    assert not [m for m in [*NOT_AT_START, "bot.storage", "dialogs.engine"] if m in loaded]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    yaml_data._cache_dir.cache_clear()
    yield tmp_path / "tochigi-subsidy-bot"
    yaml_data._cache_dir.cache_clear()


TEXT = "a: 1\nb: [x, 2024-04-01, 1.5, null, yes]\nc: &r {k: v}\nd: *r\n"


def test_the_cache_gives_what_parsing_gives(cache_home):
    parsed = yaml_data.parse(TEXT)
    assert parsed["b"][1] == dt.date(2024, 4, 1)
    assert yaml_data.load(TEXT) == parsed  # parsed, and kept
    assert len(list(cache_home.glob("*.pickle"))) == 1
    again = yaml_data.load(TEXT)  # from the cache
    assert again == parsed
    again["a"] = 2  # each load is its own copy
    assert yaml_data.load(TEXT) == parsed
    assert yaml_data.load(TEXT + "e: 3\n") == {**parsed, "e": 3}  # another text, another file
    assert len(list(cache_home.glob("*.pickle"))) == 2


def test_a_damaged_cache_file_is_parsed_again(cache_home):
    yaml_data.load(TEXT)
    [kept] = cache_home.glob("*.pickle")
    kept.write_bytes(kept.read_bytes()[:20])
    assert yaml_data.load(TEXT) == yaml_data.parse(TEXT)
    assert yaml_data.load(TEXT) == yaml_data.parse(TEXT)  # written anew


def test_no_writable_cache_still_loads(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    yaml_data._cache_dir.cache_clear()
    try:
        assert yaml_data.load(TEXT) == yaml_data.parse(TEXT)
    finally:
        yaml_data._cache_dir.cache_clear()
