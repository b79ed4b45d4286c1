"""The plan's vocabulary: the policies in the order they run, the reason code of every removal,
and the count record that says how many customers each policy left.

One owner for these facts. The planner implements the policies, the test runner accepts the
reason codes in `expect_removed`, the summaries print one column per policy and the suppressed
file writes the reasons; all of them read the names and the order from here, so adding or
renaming a policy is one change (the docs' policy table is checked against this list).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Reason(str, Enum):
    """Why a (customer, rule) pair was removed from the plan, as written to `--suppressed`."""

    CONSENT = "consent"
    UNKNOWN_HISTORY = "unknown_history"  # rows of the contact history were set aside (--rejects)
    QUIET_PERIOD = "quiet_period"
    CHANNEL_CAP = "channel_cap"
    RULE_CAP = "rule_cap"
    PRIORITY = "priority"
    HOUSEHOLD = "household"
    VOLUME = "volume"
    HOLDOUT = "holdout"  # kept in the plan, marked, never sent


@dataclass(frozen=True, slots=True)
class Policy:
    name: str  # the step, as the docs and `explain` call it
    kept: str  # the count record's name for the customers left after it
    reasons: tuple[Reason, ...]  # what a removal by this step is recorded as
    summary: str


POLICIES: tuple[Policy, ...] = (
    Policy("match", "matched", (), "the rule's condition holds"),
    Policy("consent", "consent", (Reason.CONSENT,), "the customer agreed to the channel"),
    Policy(
        "caps",
        "caps",
        (Reason.UNKNOWN_HISTORY, Reason.QUIET_PERIOD, Reason.CHANNEL_CAP, Reason.RULE_CAP),
        "a readable contact history, the quiet period, the channel's cap and the rule's cap",
    ),
    Policy("priority", "priority", (Reason.PRIORITY,), "one action per customer"),
    Policy("household", "household", (Reason.HOUSEHOLD,), "`once per household`"),
    Policy("volume", "volume", (Reason.VOLUME,), "`max N per run`"),
    Policy("holdout", "sent", (Reason.HOLDOUT,), "a stable share is held out, not sent"),
)
POLICY_NAMES = tuple(p.name for p in POLICIES)
SEND = "send"  # the status of a planned action that is sent (others carry their Reason)


def policy_of(reason: Reason) -> Policy:
    return next(p for p in POLICIES if reason in p.reasons)


@dataclass(frozen=True, slots=True)
class RuleCounts:
    """How many customers one rule kept after each policy, in POLICIES order, and the cost of
    those sent. Held-out actions are the difference between the last two steps."""

    rule: str
    after: tuple[int, ...]
    cost: float = 0.0

    def kept(self, policy: str) -> int:
        return self.after[POLICY_NAMES.index(policy)]

    def __getattr__(self, name: str) -> int:
        """Counts by column name, as the summary shows them (`counts.consent`, `.household`)."""
        columns = self.columns()
        if name in columns:
            return columns[name]
        raise AttributeError(name)

    @property
    def matched(self) -> int:
        return self.after[0]

    @property
    def sent(self) -> int:
        return self.after[-1]

    @property
    def holdout(self) -> int:
        return self.after[-2] - self.after[-1]

    def columns(self) -> dict[str, int]:
        """Counts by the names the summary and its JSON use: one per policy, then `holdout`."""
        kept = {p.kept: n for p, n in zip(POLICIES, self.after, strict=True)}
        return {**kept, "holdout": self.holdout}

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, **self.columns(), "cost": self.cost}


COLUMNS = (*(p.kept for p in POLICIES), "holdout")  # the summary's count columns, in order
