"""`subsidy-bot dialog diagram`: the dialog machine as a Mermaid diagram."""

from __future__ import annotations

from dialogs.machine import mermaid


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("diagram", help="print the machine as a Mermaid diagram")


def main(args) -> int:
    print(mermaid())
    return 0
