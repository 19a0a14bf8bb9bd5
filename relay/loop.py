"""Who may answer a loop, and what an answer may say: one place for every channel.

Pure: no I/O, no clock. `judge` takes an `Ack`, `Done` or `Pass` and the `LoopFacts` storage read
in the answer's own transaction, and returns a `Verdict`. A channel only translates its
provider's payload into an `Ack`, `Done` or `Pass`, and the outcome back into its own words.
Storage keeps the last word on races (a second done loses to the first's conflict).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from relay.model import LoopFacts

#: done.outcome is VARCHAR(100).
OUTCOME_MAX = 100
#: the one note limit, on every channel (the link page's form, Slack's modal, an SMS DONE).
NOTE_MAX = 1000


class Outcome(StrEnum):
    """Every way an answer can end; each channel words every one of them."""

    RECORDED = "recorded"
    #: this agent's ack was kept before; nothing changed.
    ALREADY = "already"
    #: a stranger, an agent no longer active or removed, or an invitation not theirs.
    NOT_INVITED = "not_invited"
    #: the loop was closed before this answer.
    ALREADY_DONE = "already_done"
    NO_SUCH_LOOP = "no_such_loop"
    #: an ack whose response is not one the invitation offers.
    NOT_OFFERED = "not_offered"
    #: retention purged what the loop said: too late to answer.
    GONE = "gone"
    #: a done with no outcome, or one past OUTCOME_MAX.
    BAD_OUTCOME = "bad_outcome"
    #: a done whose note is past NOTE_MAX.
    NOTE_TOO_LONG = "note_too_long"
    #: a "not now" from an agent who already said they are here (409 `already_answered`).
    ALREADY_ANSWERED = "already_answered"


@dataclass(frozen=True)
class Ack:
    """An agent's "I'm here" with one of the offered responses."""

    signal_id: int
    #: None: a person the directory does not know.
    agent_id: str | None
    response: str
    via: str
    #: the invitation the answer came through; its holder must be the answering agent.
    invitation_id: int | None = None


@dataclass(frozen=True)
class Done:
    """An agent closes the loop; it counts as their ack when they had not acked."""

    signal_id: int
    #: None: a person the directory does not know.
    agent_id: str | None
    outcome: str
    note: str
    via: str
    invitation_id: int | None = None


@dataclass(frozen=True)
class Pass:
    """An agent's "not now" (CONTRACT section 10): kept and thanked; nothing else moves."""

    signal_id: int
    #: None: a person the directory does not know.
    agent_id: str | None
    via: str
    invitation_id: int | None = None


Answer = Ack | Done | Pass


@dataclass(frozen=True)
class Verdict:
    """`outcome` is RECORDED when the answer may be stored; `reason` words a refusal for the audit."""

    outcome: Outcome
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.RECORDED


def admits(agent_id: str | None, invitation_id: int | None, facts: LoopFacts | None, what: str) -> Verdict:
    """May this agent answer this loop at all (before any form is shown)? `what` words the refusal."""
    if facts is None:
        return Verdict(Outcome.NO_SUCH_LOOP)
    if agent_id is not None and not facts.active and facts.known:
        return Verdict(Outcome.NOT_INVITED, f"{what} by an agent no longer active")
    named_other = invitation_id is not None and facts.named_holder != agent_id
    if agent_id is None or not facts.active or not facts.holds or named_other:
        return Verdict(Outcome.NOT_INVITED, f"{what} by someone not invited to this loop")
    if facts.purged:
        return Verdict(Outcome.GONE)
    if facts.status == "done":
        return Verdict(Outcome.ALREADY_DONE)
    return Verdict(Outcome.RECORDED)


def kind_of(answer: Answer) -> str:
    """The answer's name in the audit and the metrics."""
    return "ack" if isinstance(answer, Ack) else "done" if isinstance(answer, Done) else "pass"


def judge(answer: Answer, facts: LoopFacts | None, offered: tuple[str, ...]) -> Verdict:
    """May this answer be stored? Storage still decides ALREADY and a racing ALREADY_DONE."""
    verdict = admits(answer.agent_id, answer.invitation_id, facts, kind_of(answer))
    if not verdict.allowed:
        return verdict
    if isinstance(answer, Pass):
        # an agent who said they are here closes the loop instead of passing on it
        return Verdict(Outcome.ALREADY_ANSWERED if facts is not None and facts.acked else Outcome.RECORDED)
    if isinstance(answer, Ack):
        return Verdict(Outcome.RECORDED if answer.response in offered else Outcome.NOT_OFFERED)
    if not answer.outcome or len(answer.outcome) > OUTCOME_MAX:
        return Verdict(Outcome.BAD_OUTCOME)
    if len(answer.note) > NOTE_MAX:
        return Verdict(Outcome.NOTE_TOO_LONG)
    return Verdict(Outcome.RECORDED)
