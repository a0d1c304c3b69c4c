"""The speed harness (`subsidy-bot bench`, `python -m bench`): see bench/harness.py."""
