"""explain and failing rule tests: each test of a rule once, with the values it read, and a
removal that says what caused it (the household member kept instead, the contacts that fill a
cap or fall in the quiet period)."""

from __future__ import annotations

from .conftest import customer, write_csv, write_rules

AS_OF = "2026-11-22"
CONFIG = """
[contacts]
quiet_period = "3 days"

[channels.sms]
consent = "sms_opt_in"
cost = 0.1
cap = { count = 2, per = "40 days" }

[channels.email]
consent = "email_opt_in"
"""
RULES = """\
rule recent "bought within a month"
  when last_order_date within 30 days
  then send thanks via email
  priority 10

rule family "one coupon a household"
  when stage = active and total_orders >= 1
  then send coupon via sms with amount = 5
  priority 80
  once per household

rule winback "capped on its own"
  when stage = sleeping
  then send winback via email
  priority 70
  cap 1 per 30 days
"""


def shop(tmp_path):
    rules = write_rules(tmp_path / "rules", RULES, CONFIG)
    rows = [
        customer("C1", household_id="H1", last_order_date="2026-11-10", orders_12m=1,
                 spend_12m=100, total_orders=1),
        customer("C2", household_id="H1", last_order_date="2026-11-12", orders_12m=6,
                 spend_12m=3000, total_orders=6),
        customer("C3", last_order_date="2026-11-01", orders_12m=2, spend_12m=200,
                 total_orders=2),
        customer("C4", last_order_date="2026-03-01", orders_12m=2, spend_12m=200,
                 total_orders=2),
        customer("C5", last_order_date="2026-03-01", orders_12m=2, spend_12m=200,
                 total_orders=2),
    ]  # fmt: skip
    customers = write_csv(tmp_path / "customers.csv", rows)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "customer_id,channel,rule,sent_at\n"
        "C3,sms,other,2026-10-20\nC3,sms,other,2026-11-01\n"  # the sms cap: 2 per 40 days
        "C4,email,winback,2026-11-02\n"  # the rule's cap: 1 per 30 days
        "C5,email,other,2026-11-21\n",  # the quiet period: 3 days
        encoding="utf-8",
    )
    return ("--rules", rules, "--customers", customers, "--contacts", contacts, "--as-of", AS_OF)


def trace(output: str, rule: str) -> list[str]:
    """The lines of one rule's trace in explain's output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line[2:].startswith(f"{rule}:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), None)
    return lines[start:end]


def test_a_within_test_is_shown_once_with_the_value_it_read(run_cli, tmp_path):
    """`x within 30 days` is two comparisons to the engine and one test to the person who
    wrote it: shown once, with the date it read."""
    result = run_cli("explain", "C4", *shop(tmp_path))
    assert result.exit_code == 0, result.output
    assert trace(result.output, "recent") == [
        "✗ recent: not matched",
        "    false  last_order_date within 30 days  (last_order_date: 2026-03-01)",
    ]


def test_a_failing_rule_test_shows_a_within_test_once(run_cli, tmp_path):
    rules = write_rules(tmp_path / "rules", RULES, CONFIG)
    (rules / "r.test.toml").write_text(
        'as_of = 2026-11-22\n[[case]]\nname = "bought in March: no thanks"\n'
        "customer = { email_opt_in = true, last_order_date = 2026-03-01 }\n"
        'expect = { rule = "recent" }\n',
        encoding="utf-8",
    )
    result = run_cli("test", rules)
    assert result.exit_code == 1, result.output
    lines = [line.strip() for line in result.output.splitlines() if "within" in line]
    assert lines == ["false  last_order_date within 30 days  (last_order_date: 2026-03-01)"]


def test_every_test_shows_the_fields_it_read(run_cli, tmp_path):
    result = run_cli("explain", "C1", *shop(tmp_path))
    lines = trace(result.output, "family")
    assert "    true   stage = active  (stage: active)" in lines
    assert "    true   total_orders >= 1  (total_orders: 1)" in lines


def test_removed_by_household_names_the_member_who_was_kept(run_cli, tmp_path):
    result = run_cli("explain", "C1", "C2", *shop(tmp_path))
    assert result.exit_code == 0, result.output
    c1, c2 = result.output.split("customer C2")
    assert (
        "✓ family: removed: household (household H1 keeps C2: highest rfm_score, then lowest id)"
    ) in c1
    assert "✓ family: planned\n" in c2


def test_removed_by_a_channel_cap_names_the_contacts_that_fill_it(run_cli, tmp_path):
    result = run_cli("explain", "C3", *shop(tmp_path))
    assert trace(result.output, "family")[0] == (
        "✓ family: removed: channel_cap (sms allows 2 per 40 days: contacted 2026-11-01 by sms "
        "for other, contacted 2026-10-20 by sms for other)"
    )


def test_removed_by_a_rule_cap_names_the_contact_that_fills_it(run_cli, tmp_path):
    result = run_cli("explain", "C4", *shop(tmp_path))
    assert trace(result.output, "winback")[0] == (
        "✓ winback: removed: rule_cap (the rule allows 1 per 30 days: contacted 2026-11-02 by "
        "email for winback)"
    )


def test_removed_by_the_quiet_period_names_the_contact_in_it(run_cli, tmp_path):
    result = run_cli("explain", "C5", *shop(tmp_path))
    assert trace(result.output, "winback")[0] == (
        "✓ winback: removed: quiet_period (contacted 2026-11-21 by email for other, within the "
        "quiet period of 3 days)"
    )


def test_without_a_contact_history_the_quiet_period_names_last_contacted(run_cli, tmp_path):
    args = list(shop(tmp_path))
    i = args.index("--contacts")
    del args[i : i + 2]
    rows = [customer("C9", last_order_date="2026-03-01", last_contacted="2026-11-20",
                     orders_12m=1, spend_12m=50, total_orders=1)]  # fmt: skip
    args[args.index("--customers") + 1] = write_csv(tmp_path / "quiet.csv", rows)
    result = run_cli("explain", "C9", *args)
    assert trace(result.output, "winback")[0] == (
        "✓ winback: removed: quiet_period (last contacted 2026-11-20, within the quiet period "
        "of 3 days)"
    )
