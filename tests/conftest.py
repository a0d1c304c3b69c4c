"""Fixtures shared by several test modules."""

import pytest
from hypothesis import settings

# Property tests check what is computed, never how fast: on a shared, busy machine a deadline
# only produces flaky failures (speed is measured in bench/).
settings.register_profile("project", deadline=None)
settings.load_profile("project")


@pytest.fixture(scope="session")
def filled_db(tmp_path_factory):
    """A database filled by running real dialogs through engine and storage (the admin tests'
    scripts, over several days); tests copy it before use."""
    from test_admin_report import populate

    path = tmp_path_factory.mktemp("admin") / "template.db"
    populate(path)
    return path


@pytest.fixture
def store(tmp_path):
    """A Storage on a new file with the tests' clock (test_delivery, test_storage_memory)."""
    from test_storage import Clock

    from bot.storage import Storage

    with Storage(tmp_path / "bot.db", clock=Clock()) as s:
        yield s


@pytest.fixture
def channel():
    """The delivery core's fake channel: what it sent, failures on demand."""
    from test_delivery import FakeChannel

    return FakeChannel()


def pytest_terminal_summary(terminalreporter):
    """A visible warning (not a failure) when the ruleset in force has passed its stated expiry:
    tests pinned to a date inside the version never see it, the people running them should."""
    from rules.clock import today
    from rules.ruleset import in_force

    rs = in_force(today())
    if rs and rs.expiry and today() > rs.expiry.date:
        terminalreporter.write_sep("!", "rule data past its stated expiry", yellow=True)
        terminalreporter.write_line(
            f"rules/data/{rs.effective_from}.yaml ({rs.id}) says 「{rs.expiry.text}」"
            f" ({rs.expiry.clause}); today in Japan is {today()}. Check the current 募集要領 and"
            " add the new version's data file.",
            yellow=True,
        )
