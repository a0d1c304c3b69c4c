"""The admin face: CLI, report queries, read-only web view."""
