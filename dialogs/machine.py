"""The conversation's phases as one `transitions` machine, built once per process. It only
routes: which triggers each phase accepts and where they lead. The work is done in engine.py."""

from __future__ import annotations

import threading

from transitions import Machine, MachineError

STATES = ["start", "asking", "verdict", "cancelled"]
ACTIVE = ["asking", "verdict"]
# Internal triggers (dest None) answer without moving: help, why, summary, offers.
TRANSITIONS = [
    {"trigger": "begin", "source": ["start", "cancelled"], "dest": "asking"},
    {"trigger": "answer", "source": "asking", "dest": "verdict", "conditions": "decided"},
    {"trigger": "answer", "source": "asking", "dest": "asking"},
    {"trigger": "skip", "source": "asking", "dest": "verdict", "conditions": "decided"},
    {"trigger": "skip", "source": "asking", "dest": "asking"},
    {"trigger": "keep", "source": "asking", "dest": "verdict", "conditions": "decided"},
    {"trigger": "keep", "source": "asking", "dest": "asking"},
    {"trigger": "back", "source": ACTIVE, "dest": "asking"},
    {"trigger": "edit", "source": ACTIVE, "dest": "asking"},
    {"trigger": "restart", "source": STATES, "dest": "asking"},
    {"trigger": "cancel", "source": ["start", "asking"], "dest": "cancelled"},
    {"trigger": "cancel", "source": "verdict", "dest": None},  # done anyway: just goodbye
    {"trigger": "help", "source": ACTIVE, "dest": None},
    {"trigger": "why", "source": ACTIVE, "dest": None},
    {"trigger": "summary", "source": ACTIVE, "dest": None},
    {"trigger": "start", "source": ACTIVE, "dest": None},  # offer to continue or start over
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
    """The model the machine moves for one step: the phase and the one condition it reads."""

    def __init__(self, phase: str, decided: bool):
        self.state, self._decided = phase, decided

    def decided(self) -> bool:
        return self._decided


MACHINE = Machine(model=None, **MACHINE_CONFIG)
_lock = threading.Lock()  # add_model/remove_model mutate the shared machine


def route(phase: str, trigger: str, decided: bool = False) -> str | None:
    """The phase after `trigger` fires in `phase`, or None when the phase does not accept it."""
    model = _Route(phase, decided)
    with _lock:
        MACHINE.add_model(model, initial=phase)
        try:
            model.trigger(trigger)
        except (MachineError, AttributeError):
            return None
        finally:
            MACHINE.remove_model(model)
    return model.state


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
