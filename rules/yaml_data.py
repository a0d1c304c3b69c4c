"""YAML data files parsed with libyaml's C loader where PyYAML has it (several times faster than
the pure-Python one: most of a command's start-up was parsing the catalogues and rulesets).

What a text parses to is also kept in a cache file, named by the text's digest, under
$XDG_CACHE_HOME/tochigi-subsidy-bot (else ~/.cache/...), so later starts read it back without
importing PyYAML at all: importing it and parsing the locale, vocabulary, questions and ruleset
were ~25 ms of the console's start. A changed text has another digest (its old file is simply
no longer read), so is a changed PyYAML (the key includes its install); a cache file that cannot
be read or written is ignored, and the text parsed as before."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import threading
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when what a cache file holds changes


def load(text: str) -> Any:
    """What yaml.safe_load gives, faster (and from the cache when the text was seen before)."""
    path = _cache_file(text)
    if path is not None:
        try:
            return pickle.loads(path.read_bytes())
        except Exception:  # not there yet, unreadable or damaged: parse, and write it anew
            pass
    data = parse(text)
    if path is not None:
        _keep(path, data)
    return data


def parse(text: str) -> Any:
    """yaml.safe_load with the C loader when there is one."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)


@cache
def _cache_dir() -> tuple[Path, str] | None:
    """The cache folder, and what the key adds to the text: this format and PyYAML's install
    (its file's size and time, without importing it). None: no home to keep a cache in."""
    spec = find_spec("yaml")
    if spec is None or spec.origin is None:
        return None
    installed = os.stat(spec.origin)
    salt = f"{FORMAT}:{spec.origin}:{installed.st_size}:{installed.st_mtime_ns}"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    return Path(base) / "tochigi-subsidy-bot", salt


def _cache_file(text: str) -> Path | None:
    found = _cache_dir()
    if found is None:
        return None
    folder, salt = found
    digest = hashlib.blake2b(f"{salt}\n{text}".encode(), digest_size=20).hexdigest()
    return folder / f"yaml-{digest}.pickle"


def _keep(path: Path, data: Any) -> None:
    """Written whole or not at all (a temporary file renamed): a process reading at the same
    time sees the old state or the new one."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(temporary, path)
    except (OSError, pickle.PicklingError):  # read-only home, disk full: parse next time too
        with contextlib.suppress(OSError):
            temporary.unlink()
