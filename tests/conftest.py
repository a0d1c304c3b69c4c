"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="session")
def filled_db(tmp_path_factory):
    """A database filled by running real dialogs through engine and storage (the admin tests'
    scripts, over several days); tests copy it before use."""
    from test_admin_report import populate

    path = tmp_path_factory.mktemp("admin") / "template.db"
    populate(path)
    return path
