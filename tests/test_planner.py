"""Plan policies, each in order and each recorded: match, consent, caps, priority, household,
volume, holdout. Plans are reproducible to the byte."""

import csv
import datetime as dt
import hashlib
import json

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentionrules.derive import DERIVED
from retentionrules.engine import run_plan
from retentionrules.interpreter import evaluate
from retentionrules.loader import Inputs
from retentionrules.planner import assignments

from .conftest import COLUMNS, customer, write_csv, write_rules
from .test_evaluators import AS_OF as AS_OFS
from .test_evaluators import CALENDAR_TOML, DATES, conditions, happened
from .test_evaluators import customers as customer_rows

AS_OF = dt.date(2026, 11, 22)
SLEEPING = dict(last_order_date="2026-04-01", total_orders=3, orders_12m=1, spend_12m=100)


def plan(tmp_path, rules: str, rows: list[dict], config: str | None = None, **kwargs):
    folder = write_rules(tmp_path / "rules", rules, config)
    customers = write_csv(tmp_path / "customers.csv", rows)
    contacts = kwargs.pop("contacts", None)
    as_of = kwargs.pop("as_of", AS_OF)
    if contacts is not None:
        path = tmp_path / "contacts.csv"
        path.write_text(
            "customer_id,channel,rule,sent_at\n" + "".join(",".join(c) + "\n" for c in contacts)
        )
        contacts = path
    out = tmp_path / "plan.jsonl"
    suppressed = tmp_path / "suppressed.csv"
    result = run_plan(
        [folder],
        Inputs(customers, contacts=contacts),
        as_of,
        out=out,
        suppressed=suppressed,
        **kwargs,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    with suppressed.open(encoding="utf-8-sig") as handle:
        removed = {(r["customer_id"], r["rule"]): r["reason"] for r in csv.DictReader(handle)}
    return result, rows, removed


def counts(result, rule: str):
    return next(c for c in result.plan.counts if c.rule == rule)


def test_highest_priority_wins_and_ties_go_to_file_order(tmp_path):
    rules = (
        "rule a\n  when stage = sleeping\n  then send a via email\n"
        "rule b\n  when stage = sleeping\n  then send b via email\n"
        "rule c\n  when stage = sleeping\n  then send c via email\n  priority 5\n"
    )
    _, rows, removed = plan(tmp_path, rules, [customer("C1", **SLEEPING)])
    assert [(r["customer_id"], r["rule"]) for r in rows] == [("C1", "c")]
    assert removed == {("C1", "a"): "priority", ("C1", "b"): "priority"}


def test_consent_is_enforced_and_a_consented_rule_takes_over(tmp_path):
    rules = (
        "rule by_sms\n  when stage = sleeping\n  then send x via sms\n  priority 9\n"
        "rule by_email\n  when stage = sleeping\n  then send y via email\n"
    )
    result, rows, removed = plan(
        tmp_path,
        rules,
        [
            customer("C1", **SLEEPING, sms_opt_in=False),
            customer("C2", **SLEEPING, sms_opt_in=None, email_opt_in=False),
        ],
    )
    assert [(r["customer_id"], r["rule"]) for r in rows] == [("C1", "by_email")]
    assert removed[("C1", "by_sms")] == "consent" and removed[("C2", "by_email")] == "consent"
    assert (counts(result, "by_sms").matched, counts(result, "by_sms").consent) == (2, 0)


def test_quiet_period_rule_cap_and_channel_cap_use_the_contact_history(tmp_path):
    config = (
        '[contacts]\nquiet_period = "3 days"\n'
        '[channels.sms]\nconsent = "sms_opt_in"\ncap = { count = 2, per = "7 days" }\n'
    )
    rules = "rule winback\n  when stage = sleeping\n  then send x via sms\n  cap 1 per 30 days\n"
    contacts = [
        ("C2", "sms", "winback", "2026-11-01"),  # rule cap: once in 30 days
        ("C3", "sms", "other", "2026-11-17"),  # channel cap: twice in 7 days
        ("C3", "sms", "other", "2026-11-18"),
        ("C5", "sms", "winback", "2026-10-01"),  # outside both windows
    ]
    rows = [customer(f"C{i}", **SLEEPING) for i in range(1, 6)]
    rows[3]["last_contacted"] = "2026-11-20"  # C4: quiet period
    _, planned, removed = plan(tmp_path, rules, rows, config, contacts=contacts)
    assert [r["customer_id"] for r in planned] == ["C1", "C5"]
    assert removed == {
        ("C2", "winback"): "rule_cap",
        ("C3", "winback"): "channel_cap",
        ("C4", "winback"): "quiet_period",
    }


def test_once_per_household_keeps_the_best_customer(tmp_path):
    rules = "rule w\n  when stage = sleeping\n  then send x via email\n  once per household\n"
    rows = [
        customer("C1", **SLEEPING, household_id="H1"),
        customer("C2", **{**SLEEPING, "spend_12m": 3000}, household_id="H1"),
        customer("C3", **SLEEPING, household_id="H2"),
        customer("C4", **SLEEPING),
        customer("C5", **SLEEPING),
    ]
    result, planned, removed = plan(tmp_path, rules, rows)
    assert [r["customer_id"] for r in planned] == ["C2", "C3", "C4", "C5"]
    assert removed == {("C1", "w"): "household"}
    assert (counts(result, "w").priority, counts(result, "w").household) == (5, 4)


def test_max_per_run_keeps_the_highest_rfm_scores(tmp_path):
    rules = "rule w\n  when stage = sleeping\n  then send x via email\n  max 2 per run\n"
    spends = [2500, 50, 1500, 350, 700]  # monetary scores 5, 1, 4, 2, 3
    rows = [customer(f"C{i}", **{**SLEEPING, "spend_12m": s}) for i, s in enumerate(spends)]
    rows.append(customer("C9", **{**SLEEPING, "spend_12m": 1200}))  # ties with C2: lower id wins
    _, planned, removed = plan(tmp_path, rules, rows)
    assert [r["customer_id"] for r in planned] == ["C0", "C2"]
    assert sorted(removed.values()) == ["volume"] * 4


def test_holdout_is_a_stable_salted_hash_share(tmp_path):
    rules = "rule w\n  when stage = sleeping\n  then send x via email\n  holdout 30%\n"
    rows = [customer(f"C{i:03d}", **SLEEPING) for i in range(400)]
    result, planned, _ = plan(tmp_path, rules, rows)
    held = {r["customer_id"] for r in planned if r["holdout"]}
    expected = {
        r["customer_id"]
        for r in rows
        if int(hashlib.md5(f"retentionrules|{r['customer_id']}|w".encode()).hexdigest()[:8], 16)
        % 10000
        < 3000
    }
    assert held == expected and 80 < len(held) < 160
    assert len(planned) == 400  # holdout rows stay in the plan, marked
    assert all(r["estimated_cost"] == 0 for r in planned if r["holdout"])
    assert counts(result, "w").holdout == len(held)


def test_same_inputs_give_a_byte_identical_plan(tmp_path):
    rules = "rule w\n  when stage = sleeping\n  then send x via sms with amount = 5\n"
    rows = [customer(f"C{i}", **SLEEPING) for i in range(50)]
    plan(tmp_path, rules, rows)
    before = (
        (tmp_path / "plan.jsonl").read_bytes(),
        (tmp_path / "plan.jsonl.meta.json").read_bytes(),
    )
    plan(tmp_path, rules, rows)
    after = (tmp_path / "plan.jsonl").read_bytes(), (tmp_path / "plan.jsonl.meta.json").read_bytes()
    assert before == after
    meta = json.loads(before[1])
    assert meta["plan_id"] == json.loads(before[0].splitlines()[0])["plan_id"]
    assert set(meta) >= {"rules_digest", "config_digest", "input_digest", "as_of"}


def test_plan_row_carries_ids_not_contact_details(tmp_path):
    rules = "rule w\n  when stage = sleeping\n  then send x via sms with amount = 5\n  priority 7\n"
    _, rows, _ = plan(tmp_path, rules, [customer("C1", **SLEEPING, city="Xian")])
    assert set(rows[0]) == {
        "plan_id",
        "customer_id",
        "rule",
        "action",
        "template",
        "channel",
        "parameters",
        "priority",
        "holdout",
        "estimated_cost",
    }
    assert rows[0]["parameters"] == {"amount": 5} and rows[0]["estimated_cost"] == 0.1


def test_csv_and_parquet_plans(tmp_path):
    folder = write_rules(tmp_path / "rules", "rule w\n  when stage = sleeping\n  then send x\n")
    customers = write_csv(tmp_path / "c.csv", [customer("C1", **SLEEPING)])
    for name in ("plan.csv", "plan.parquet"):
        run_plan([folder], Inputs(customers), AS_OF, out=tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0
    with (tmp_path / "plan.csv").open(encoding="utf-8-sig") as handle:
        assert next(csv.DictReader(handle))["rule"] == "w"


def test_rules_past_the_63rd_are_planned_and_counted(tmp_path):
    """Matches are stored as bits, 63 rules to a column: rules 63 and 129 live in later ones."""
    rules = "".join(
        f"rule r{i}\n  when total_orders = {i}\n  then send t{i} via email\n" for i in range(130)
    )
    rows = [customer(f"C{n}", total_orders=n) for n in (0, 62, 63, 129)]
    rows.append(customer("C63b", total_orders=63, email_opt_in=False))
    result, planned, removed = plan(tmp_path, rules, rows)
    assert [(r["customer_id"], r["rule"]) for r in planned] == [
        ("C0", "r0"),
        ("C62", "r62"),
        ("C63", "r63"),
        ("C129", "r129"),
    ]
    assert removed == {("C63b", "r63"): "consent"}
    assert (counts(result, "r63").matched, counts(result, "r63").consent) == (2, 1)
    assert sum(c.matched for c in result.plan.counts) == 5


@pytest.mark.parametrize(
    ("condition", "policy"),
    [
        ("total_orders = 0", ""),
        ("total_orders = 0", "  holdout 10%\n"),
        # DuckDB plans an IN list of five or more constants as a join, losing the row order
        ("total_orders in [0, 1, 2, 3, 4, 5]", ""),
        ("total_orders not in [1, 2, 3, 4, 5, 6]", ""),
    ],
    ids=["no window", "holdout", "in a list of six", "not in a list of six"],
)
def test_plan_keeps_input_order_across_threads(tmp_path, condition, policy):
    """Enough customers for DuckDB to read and plan in parallel; ids are not in sorted order."""
    n = 300_000
    customers = tmp_path / "customers.csv"
    duckdb.execute(f"""
        COPY (SELECT 'C' || lpad(CAST(i * 7919 % {n} AS VARCHAR), 6, '0') AS customer_id,
                {", ".join(f"'' AS {c}" for c in COLUMNS[1:7])},
                0 AS orders_12m, 0 AS spend_12m, 0 AS total_orders,
                TRUE AS sms_opt_in, TRUE AS email_opt_in, '' AS last_contacted
              FROM range({n}) r(i)) TO '{customers}' (HEADER)""")
    folder = write_rules(
        tmp_path / "rules", f"rule all\n  when {condition}\n  then send x via email\n{policy}"
    )
    out = tmp_path / "plan.csv"
    run_plan([folder], Inputs(customers), AS_OF, out=out)
    with customers.open() as given, out.open(encoding="utf-8-sig") as planned:
        expected = [row["customer_id"] for row in csv.DictReader(given)]
        assert [row["customer_id"] for row in csv.DictReader(planned)] == expected


ACTIONS = ["send x via sms", "send y via email", "call z", "tag t"]
POLICIES = ["once per household", "max 2 per run", "holdout 50%", "cap 1 per 30 days"]
rule_specs = st.lists(
    st.tuples(
        conditions,
        st.sampled_from(ACTIONS),
        st.integers(0, 2),
        st.lists(st.sampled_from(POLICIES), unique=True, max_size=2),
    ),
    min_size=1,
    max_size=5,
)
contact_specs = st.lists(
    st.tuples(st.integers(0, 11), st.sampled_from(["sms", "email"]), st.integers(0, 4), DATES),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_specs, customer_rows, contact_specs, AS_OFS)
def test_every_matched_pair_is_planned_or_suppressed_once(
    tmp_path_factory, specs, rows, sent, as_of
):
    """No (customer, rule) is lost or invented, whatever the policies: each pair the reference
    interpreter matches is planned or suppressed with a reason, exactly once."""
    tmp_path = tmp_path_factory.mktemp("plan")
    rules = "".join(
        f"rule r{i}\n  when {condition}\n  then {action}\n  priority {priority}\n"
        + "".join(f"  {policy}\n" for policy in policies)
        for i, (condition, action, priority, policies) in enumerate(specs)
    )
    config = (
        '[contacts]\nquiet_period = "3 days"\n'
        '[channels.sms]\nconsent = "sms_opt_in"\ncap = { count = 1, per = "7 days" }\n'
        '[channels.email]\nconsent = "email_opt_in"\n'
        "[channels.phone]\nrequires_consent = false\n" + CALENDAR_TOML
    )
    rows = happened([{**row, "customer_id": f"C{i}"} for i, row in enumerate(rows)], as_of)
    contacts = [
        (f"C{c}", channel, f"r{r}", day.isoformat()) for c, channel, r, day in sent if c < len(rows)
    ]
    result, planned, removed = plan(
        tmp_path, rules, rows, config, contacts=contacts or None, as_of=as_of, keep_derived=True
    )
    con, ruleset = result.plan.con, result.plan.ruleset
    cursor = con.execute(f"SELECT * FROM {DERIVED}")
    names = [d[0] for d in cursor.description]
    matched = {
        (row["customer_id"], rule.name)
        for row in (dict(zip(names, values, strict=True)) for values in cursor.fetchall())
        for rule in ruleset.rules
        if evaluate(rule.condition, row, as_of)
    }
    kept = {(r["customer_id"], r["rule"]) for r in planned}
    assert len(kept) == len(planned) == len({r["customer_id"] for r in planned})
    assert not kept & set(removed) and kept | set(removed) == matched
    for rule in ruleset.rules:
        c = counts(result, rule.name)
        steps = [c.matched, c.consent, c.caps, c.priority, c.household, c.volume]
        assert steps == sorted(steps, reverse=True), (rule.name, steps)
        assert c.matched == sum(1 for _, name in matched if name == rule.name)
        assert c.sent + c.holdout == c.volume == sum(1 for _, name in kept if name == rule.name)


def test_the_docs_policy_table_lists_every_policy_in_order_with_its_reason_codes():
    """One owner for the vocabulary: docs/engine.md must say what `policies.POLICIES` does."""
    import re

    from retentionrules.policies import POLICIES

    from .conftest import ROOT

    text = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    table = text.split("## Policies, in order")[1].split("\n\n")[1]
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in table.splitlines()[2:]]
    documented = [
        (re.sub(r"^\d+\.\s*", "", step.strip()), tuple(re.findall(r"`(\w+)`", reasons)))
        for step, _what, reasons in rows
    ]
    assert documented == [(p.name, tuple(r.value for r in p.reasons)) for p in POLICIES]


def test_a_customer_whose_contact_rows_were_set_aside_is_held_back_on_every_channel(tmp_path):
    """With --rejects, an unreadable contact row used to vanish and its customer was planned
    as if never contacted: their caps and quiet period cannot be judged, so they wait."""
    from retentionrules.engine import run_plan
    from retentionrules.loader import Inputs

    from .conftest import customer, write_csv, write_rules

    folder = write_rules(
        tmp_path / "rules",
        "rule text\n  when total_orders = 0\n  then send hi via sms\n"
        "rule mark\n  when total_orders = 0\n  then tag everyone\n",
        '[contacts]\nquiet_period = "3 days"\n',
    )
    customers = write_csv(tmp_path / "c.csv", [customer("C1"), customer("C2"), customer("C3")])
    contacts = tmp_path / "k.csv"
    contacts.write_text(
        "customer_id,channel,rule,sent_at\n"
        "C1,sms,text,2026/11/21 10:00\n"  # not a date the docs allow: set aside
        "C2,sms,text,2026-10-01\n"
        "C3,sms,text,2026-11-21,extra\n"  # ragged: whose it is is still read from its first cell
        ",sms,text,2026-11-21\n"  # no id at all: whose it is cannot be told
    )
    result = run_plan(
        [folder], Inputs(customers, contacts=contacts), AS_OF,
        rejects=tmp_path / "r.csv", suppressed=tmp_path / "s.csv",
    )  # fmt: skip
    with (tmp_path / "s.csv").open(encoding="utf-8-sig") as handle:
        removed = {(r["customer_id"], r["rule"]): r["reason"] for r in csv.DictReader(handle)}
    assert removed[("C1", "text")] == removed[("C3", "text")] == "unknown_history"
    assert ("C2", "text") not in removed  # its history is whole
    text = counts(result, "text")
    assert (text.matched, text.consent, text.caps) == (3, 3, 1)
    assert counts(result, "mark").caps == 3  # a tag contacts nobody: never held back
    assert any("2 customers held back from every message" in n for n in result.plan.notes)
    assert any("1 contact row could not be read far enough" in n for n in result.plan.notes)


def test_contacts_on_a_channel_the_configuration_does_not_know_are_never_silent(
    tmp_path, run_cli
):
    """`text` is not the configured `sms`: those contacts count toward no channel's cap, which a
    marketer must hear about, in the summary and the plan's header."""
    from .conftest import customer, write_csv, write_rules

    folder = write_rules(
        tmp_path / "rules",
        "rule hi\n  when total_orders = 0\n  then send hi via sms\n",
        "[channels.sms]\nconsent = \"sms_opt_in\"\ncap = { count = 1, per = \"30 days\" }\n",
    )
    customers = write_csv(
        tmp_path / "c.csv", [customer("C1", sms_opt_in="true"), customer("C2", sms_opt_in="true")]
    )
    contacts = tmp_path / "k.csv"
    contacts.write_text(
        "customer_id,channel,rule,sent_at\n"
        "C1,text,hi,2026-11-20\n"  # the channel written another way: not the sms cap
        "C1,Text,hi,2026-11-19\n"
        "C2, SMS ,hi,2026-11-20\n"  # the configured channel, spelled loosely: counted
        "C3,,hi,2026-11-01\n"  # no channel at all: no channel's cap either
    )
    out = tmp_path / "plan.csv"
    result = run_cli(
        "plan", "--rules", folder, "--customers", customers, "--contacts", contacts,
        "--as-of", AS_OF.isoformat(), "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "3 contacts on channels not configured under [channels] (text: 2, (blank): 1)"
        in result.output
    )
    with out.open(encoding="utf-8-sig") as handle:
        planned = [row["customer_id"] for row in csv.DictReader(handle)]
    assert planned == ["C1"]  # C2's sms cap is reached; C1's `text` contacts are not sms


@pytest.mark.parametrize(
    ("line", "held", "unreadable"),
    [
        ('{"customer_id":"C1","channel":"sms","rule":"text","sent_at":"2026-11-21"', "C1", 0),
        ('{"customer_id":" C1 ","channel":"sms","sent_at":"2026-11-21", "x":', "C1", 0),
        ('{"customer_id":true,"channel":"sms","rule":"text","sent_at":"2026-11-21"}', None, 1),
        ('{"channel":"sms","rule":"text","sent_at":"2026-11-21"}', None, 1),
        ("garbage", None, 1),
    ],
    ids=["no closing brace", "cut mid-line", "id not text", "no id", "not json"],
)
def test_a_contact_line_too_broken_to_read_holds_its_customer_back_or_is_noted(
    tmp_path, line, held, unreadable
):
    """A JSON line that is not JSON still names its customer when the id can be read from it:
    that customer is held back (the contact may be yesterday's). One that names nobody is
    counted in a note: never dropped without a word."""
    from .conftest import customer, write_csv, write_rules

    folder = write_rules(
        tmp_path / "rules",
        "rule text\n  when total_orders = 0\n  then send hi via sms\n",
        '[contacts]\nquiet_period = "3 days"\n',
    )
    customers = write_csv(tmp_path / "c.csv", [customer("C1"), customer("C2")])
    contacts = tmp_path / "k.jsonl"
    contacts.write_text(
        '{"customer_id":"C2","channel":"sms","rule":"text","sent_at":"2026-10-01"}\n'
        + line + "\n",
        encoding="utf-8",
    )
    result = run_plan(
        [folder], Inputs(customers, contacts=contacts), AS_OF, rejects=tmp_path / "r.csv"
    )
    planned = set(assignments(result.plan))
    assert planned == ({"C1", "C2"} - {held} if held else {"C1", "C2"})
    notes = " ".join(result.plan.notes)
    assert ("held back from every message" in notes) == (held is not None)
    assert ("1 contact row could not be read far enough" in notes) == bool(unreadable)
