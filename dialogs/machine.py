"""The conversation's phases as one `transitions` machine, built once per process. It only
routes: which triggers each phase accepts and where they lead. The work is done in engine.py."""

from __future__ import annotations

import logging
from functools import lru_cache

from transitions import Machine

STATES = ["start", "asking", "confirming", "verdict", "cancelled"]
ACTIVE = ["asking", "confirming", "verdict"]
QUESTIONING = ["asking", "confirming"]  # a question is open (confirming: its reading read back)
# Internal triggers (dest None) answer without moving: help, why, summary, offers.
# Conditions: `reading_back` (a typed reading must be confirmed before it is recorded) is
# tried before `decided` (nothing left to ask); the first transition whose conditions hold wins.
TRANSITIONS = [
    {"trigger": "begin", "source": ["start", "cancelled"], "dest": "asking"},
    *[
        t
        for trigger, source, can_read_back in (
            ("answer", QUESTIONING, True),  # typed while reading back: a new answer
            ("confirm", "confirming", True),  # "that's right": record it (another may follow)
            ("skip", QUESTIONING, False),
            ("keep", "asking", False),
            ("continue", "cancelled", False),  # resume after a cancel: the answers were kept
        )
        for t in (
            *(
                [
                    {
                        "trigger": trigger,
                        "source": source,
                        "dest": "confirming",
                        "conditions": "reading_back",
                    }
                ]
                if can_read_back
                else []
            ),
            {"trigger": trigger, "source": source, "dest": "verdict", "conditions": "decided"},
            {"trigger": trigger, "source": source, "dest": "asking"},
        )
    ],
    {"trigger": "deny", "source": "confirming", "dest": "asking"},  # "no": ask again
    {"trigger": "unclear", "source": "confirming", "dest": None},  # read back once more
    {"trigger": "back", "source": [*ACTIVE, "cancelled"], "dest": "asking"},
    {"trigger": "edit", "source": [*ACTIVE, "cancelled"], "dest": "asking"},
    {"trigger": "restart", "source": STATES, "dest": "asking"},
    {"trigger": "cancel", "source": ["start", *QUESTIONING], "dest": "cancelled"},
    {"trigger": "cancel", "source": "verdict", "dest": None},  # done anyway: just goodbye
    {"trigger": "help", "source": ACTIVE, "dest": None},
    {"trigger": "why", "source": ACTIVE, "dest": None},
    {"trigger": "summary", "source": [*ACTIVE, "cancelled"], "dest": None},
    {"trigger": "start", "source": [*ACTIVE, "cancelled"], "dest": None},  # continue or start over
    {"trigger": "continue", "source": ACTIVE, "dest": None},
    {"trigger": "chat", "source": "verdict", "dest": None},  # free text after the verdict
    {"trigger": "checklist", "source": "verdict", "dest": None},  # the adapter sends it
    {"trigger": "contact", "source": STATES, "dest": None},  # how to reach the prefecture
]
MACHINE_CONFIG = {
    "states": STATES,
    "transitions": TRANSITIONS,
    "initial": "start",
    "auto_transitions": False,
}


class _Route:
    """The model the machine moves for one step: the phase and the conditions it reads."""

    def __init__(self, phase: str, decided: bool, reading_back: bool = False):
        self.state, self._decided, self._reading_back = phase, decided, reading_back

    def decided(self) -> bool:
        return self._decided

    def reading_back(self) -> bool:
        return self._reading_back


MACHINE = Machine(model=None, **MACHINE_CONFIG)
logging.getLogger("transitions").setLevel(logging.WARNING)  # its INFO is a record per trigger


def _routes() -> dict[tuple[str, str], list[tuple[dict[str, bool], str]]]:
    """(phase, trigger) -> its transitions in the machine's order: (conditions, destination).
    Read from the machine once (`get_transitions`): a step looks its route up instead of
    adding a model to the machine and firing the trigger."""
    table: dict[tuple[str, str], list[tuple[dict[str, bool], str]]] = {}
    for trigger in MACHINE.events:
        for t in MACHINE.get_transitions(trigger=trigger):
            needs = {c.func: c.target for c in t.conditions}
            table.setdefault((t.source, trigger), []).append((needs, t.dest or t.source))
    return table


ROUTES = _routes()


@lru_cache(maxsize=1024)  # a handful of phases and triggers: every answer remembered
def route(
    phase: str, trigger: str, decided: bool = False, reading_back: bool = False
) -> str | None:
    """The phase after `trigger` fires in `phase`, or None when the phase does not accept it:
    the first transition whose conditions hold, as the machine would choose."""
    facts = {"decided": decided, "reading_back": reading_back}
    for needs, dest in ROUTES.get((phase, trigger), ()):
        if all(facts[name] == want for name, want in needs.items()):
            return dest
    return None


def mermaid() -> str:
    """The machine as a Mermaid diagram (transitions' mermaid graph engine)."""
    from transitions.extensions import GraphMachine

    graph = GraphMachine(
        model=_Route("start", False),
        graph_engine="mermaid",
        title="subsidy screening dialog",
        **MACHINE_CONFIG,
    )
    return graph.get_graph().draw(None)
