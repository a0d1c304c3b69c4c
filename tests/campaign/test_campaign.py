"""The campaign's short run, in the suite: nothing lost, nobody stalled, nothing damaged."""

try:
    from tests.campaign.run import QUICK, run
except ImportError:
    from campaign.run import QUICK, run


def test_quick_campaign_loses_nothing(tmp_path):
    figures = run(QUICK, seed=7, workdir=tmp_path)
    assert figures.kills >= 1 and figures.faults >= 10 and figures.flood_inputs > 0
    assert figures.answers_checked >= figures.chats * 5
    assert figures.problems == [], figures.report() + "\n" + "\n".join(figures.problems)
