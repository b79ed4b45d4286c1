"""The HTML report (`retentionrules report`): what the plan's header records for it, the page
itself (escaping, labels, the audience matrix), and the page opened in a real browser.

The browser test drives Debian's headless Chromium with Playwright (never a downloaded browser):
no console errors, no request but the file itself, every chart drawn with one mark per rule,
cell or channel of the header, Chinese labels in the Chinese report; it saves a screenshot, and
with RR_UPDATE_SCREENSHOT=1 writes the README's (docs/report.png).
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from retentionrules import report
from retentionrules.engine import run_plan
from retentionrules.loader import Inputs
from retentionrules.output import read_plan_header, sidecar
from retentionrules.policies import Reason
from retentionrules.send import approval_file, approve
from retentionrules.types import STAGES

from .conftest import ROOT

EXAMPLES = ROOT / "examples"
SHOP = Inputs(
    EXAMPLES / "customers.csv",
    orders=EXAMPLES / "orders.csv",
    products=EXAMPLES / "products.csv",
)
AS_OF = dt.date(2026, 11, 22)


def _plan(tmp_path: Path, name: str = "demo-plan.jsonl", **options) -> Path:
    """The demo shop's plan, as the README's quick start makes it."""
    out = tmp_path / name
    run_plan([EXAMPLES / "rules"], options.pop("inputs", SHOP), AS_OF, out=out, **options)
    return out


# ---------------------------------------------------------------- what the header records


def test_the_header_records_what_the_suppressed_file_and_the_plan_say(tmp_path):
    """Per rule and reason, the recorded removals are the `--suppressed` file's counts (held-out
    actions are the plan's rows marked holdout); the tier x stage counts add up to the customers
    read and to the rows sent; the channels' messages and cost to the plan's rows. With a contact
    history, so that the quiet period and both caps remove actions."""
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "channel", "rule", "sent_at"])
        for i in range(1, 301, 3):  # every third customer: some recently, some long ago
            day = AS_OF - dt.timedelta(days=1 if i % 2 else 40)
            writer.writerow([f"C{i:07d}", "sms" if i % 4 else "phone", "vip_call", day])
    inputs = Inputs(SHOP.customers, SHOP.orders, contacts, products=SHOP.products)
    suppressed = tmp_path / "suppressed.csv"
    plan = _plan(tmp_path, inputs=inputs, suppressed=suppressed)
    recorded = read_plan_header(plan)["report"]
    with suppressed.open(encoding="utf-8-sig", newline="") as handle:
        removals = collections.Counter((r["rule"], r["reason"]) for r in csv.DictReader(handle))
    rows = [json.loads(line) for line in plan.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        if row["holdout"]:
            removals[row["rule"], Reason.HOLDOUT.value] += 1
    got = collections.Counter(
        {(r["rule"], reason): n for r in recorded["rules"] for reason, n in r["removed"].items()}
    )
    assert got == removals
    assert {reason for _, reason in got} >= {"consent", "quiet_period", "priority"}
    header = read_plan_header(plan)
    assert sum(n for *_, n in recorded["customers_by_tier_stage"]) == header["customers"] == 300
    sent = [row for row in rows if not row["holdout"]]
    assert sum(n for *_, n in recorded["sent_by_tier_stage"]) == len(sent)
    by_channel = collections.Counter(row["channel"] for row in sent)
    assert {c["channel"]: c["sent"] for c in recorded["channels"]} == by_channel
    for channel in recorded["channels"]:
        cost = sum(row["estimated_cost"] for row in sent if row["channel"] == channel["channel"])
        assert channel["cost"] == pytest.approx(cost)
    assert [r["kept"][-1] for r in recorded["rules"]] == [
        sum(1 for row in sent if row["rule"] == r["rule"]) for r in recorded["rules"]
    ]


def test_parameters_are_recorded_with_their_messages_and_cost(tmp_path):
    recorded = read_plan_header(_plan(tmp_path))["report"]
    amounts = {p["value"]: (p["sent"], p["cost"], p["rules"]) for p in recorded["parameters"]}
    # winback_silver sends amount = 20 by sms (0.10 each) to 7 customers: README's summary
    assert amounts[20] == (7, 0.7, ["winback_silver"])
    assert amounts[50] == (2, 0.2, ["winback_gold"])
    costs = [p["cost"] for p in recorded["parameters"]]
    assert costs == sorted(costs, reverse=True)


def test_a_plan_without_an_output_computes_no_report_data():
    """The report's queries run only when a header is written."""
    result = run_plan([EXAMPLES / "rules"], SHOP, AS_OF)
    assert "report" not in result.meta


# ---------------------------------------------------------------- the page, pure


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


HOSTILE = '<script>alert("x")</script>'


def _header(name: str = "rule_a", value: object = 1) -> dict:
    """A header as a plan writes it, small enough to check by hand."""
    rule = {
        "rule": name,
        "action": "send",
        "template": HOSTILE,
        "channel": '"><img src=x onerror=alert(1)>',
        "parameters": {"note": value},
        "kept": [10, 8, 7, 6, 6, 5, 4],
        "cost": 0.4,
        "removed": {"consent": 2, "quiet_period": 1, "priority": 1, "volume": 1, "holdout": 1},
    }
    return {
        "plan_id": "0123456789abcdef",
        "as_of": "2026-11-22",
        "customers": 12,
        "actions": 5,
        "rejected_rows": 0,
        "rules_digest": "r" * 64,
        "config_digest": "c" * 64,
        "input_digest": "i" * 64,
        "plan_sha256": "p" * 64,
        "config_source": f"/shop/{HOSTILE}/retentionrules.toml",
        "report": {
            "version": 1,
            "rules": [rule],
            "tiers": ["B", "S", "G", "P"],
            "customers_by_tier_stage": [["G", "active", 7], [None, "potential", 5]],
            "sent_by_tier_stage": [["G", "active", 4]],
            "channels": [{"channel": rule["channel"], "sent": 4, "holdout": 1, "cost": 0.4}],
            "parameters": [
                {"name": "note", "value": value, "sent": 4, "cost": 0.4, "rules": [name]}
            ],
        },
    }


def test_every_string_from_data_is_escaped():
    """Rule, template, channel, parameter, path and approval note: hostile text shows as text,
    never as a tag or an attribute."""
    header = _header(HOSTILE, HOSTILE)
    approval = {"approved_by": HOSTILE, "approved_at": "2026-11-22T09:00:00+08:00", "note": HOSTILE}
    impact = report.audience_impact({"C1": HOSTILE}, {"C1": "x"}, HOSTILE, header)
    page = report.render(header, name=HOSTILE, approval=approval, impact=impact)
    parsed = _Tags()
    parsed.feed(page)
    tags = {tag for tag, _ in parsed.tags}
    assert "script" not in tags and "img" not in tags
    attributes = {name for _, attrs in parsed.tags for name, _ in attrs}
    assert not any(name.startswith("on") for name in attributes)
    assert "<script>" not in page
    assert HOSTILE in "".join(parsed.text)  # shown, as text


def test_the_page_fetches_nothing_and_runs_no_script():
    page = report.render(_header(), name="plan.jsonl")
    parsed = _Tags()
    parsed.feed(page)
    tags = {tag for tag, _ in parsed.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    assert "default-src 'none'" in page


def test_english_and_chinese_labels_cover_the_same_words():
    assert set(report.LABELS["en"]) == set(report.LABELS["zh"])
    assert all(report.LABELS["zh"][key] for key in report.LABELS["en"])


def test_the_chinese_page_is_marked_chinese_and_names_a_cjk_font():
    page = report.render(_header(), name="plan.jsonl", lang="zh")
    assert '<html lang="zh-Hans">' in page and '<meta charset="utf-8">' in page
    assert "各渠道成本" in page and "Cost per channel" not in page
    assert '"Noto Sans CJK SC"' in page
    with pytest.raises(ValueError, match="one of en, zh"):
        report.render(_header(), name="plan.jsonl", lang="fr")


def test_the_same_header_gives_the_same_page():
    assert report.render(_header(), name="p") == report.render(_header(), name="p")


# A hand-checked audience change: customer -> rule before and after.
BEFORE = {"C1": "winback", "C2": "winback", "C3": "care", "C4": "care", "C5": "winback"}
AFTER = {"C1": "winback", "C2": "care", "C4": "care", "C6": "winback", "C7": "first"}


def test_the_audience_matrix_counts_who_moved_entered_and_left():
    impact = report.audience_impact(BEFORE, AFTER)
    none = report.NONE
    assert impact.cells == {
        ("winback", "winback"): 1,  # C1
        ("winback", "care"): 1,  # C2
        ("care", none): 1,  # C3
        ("care", "care"): 1,  # C4
        ("winback", none): 1,  # C5
        (none, "winback"): 1,  # C6
        (none, "first"): 1,  # C7
    }
    assert (impact.entered, impact.left, impact.moved, impact.stayed) == (2, 2, 1, 2)
    assert impact.rows == ["winback", "care", none]
    assert impact.columns == ["winback", "care", "first", none]


def test_beyond_its_size_the_matrix_keeps_the_most_moved_rules_and_sums_the_rest():
    size = report.MATRIX_RULES
    before = {f"C{i}": f"r{i}" for i in range(size + 10)}
    after = dict(before)
    after["C30"] = "r0"  # r30 lost one, r0 gained one
    impact = report.audience_impact(before, after)
    assert len(impact.rows) == size + 1 and impact.rows[-2:] == [report.OTHER, report.NONE]
    assert "r30" in impact.rows and "r0" in impact.columns
    assert sum(impact.cells.values()) == len(before)


# ---------------------------------------------------------------- the command


def test_report_writes_beside_the_plan_and_never_over_an_input(run_cli, tmp_path):
    plan = _plan(tmp_path)
    result = run_cli("report", plan)
    assert result.exit_code == 0, result.output
    page = tmp_path / "demo-plan.report.html"
    assert f"wrote {page}" in result.output
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    for target in (plan, sidecar(plan)):
        refused = run_cli("report", plan, "--out", target)
        assert refused.exit_code == 2 and "would destroy an input" in refused.output
    other = _plan(tmp_path, "other.jsonl")
    refused = run_cli("report", plan, "--against", other, "--out", other)
    assert refused.exit_code == 2
    wrong = run_cli("report", plan, "--out", tmp_path / "report.txt")
    assert wrong.exit_code == 2 and "use .html, .htm" in wrong.output
    assert run_cli("report", tmp_path / "missing.jsonl").exit_code == 2


def test_a_plan_edited_or_written_without_report_data_is_refused(run_cli, tmp_path):
    plan = _plan(tmp_path)
    header = json.loads(sidecar(plan).read_text(encoding="utf-8"))
    del header["report"]
    sidecar(plan).write_text(json.dumps(header), encoding="utf-8")
    result = run_cli("report", plan)
    assert result.exit_code == 1 and "holds no report data" in result.output
    plan.write_text(plan.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    result = run_cli("report", plan)
    assert result.exit_code == 1 and "does not match its header" in result.output


def test_the_report_shows_the_approval_as_send_judges_it(tmp_path):
    plan = _plan(tmp_path)
    out = tmp_path / "r.html"
    report.write_report(plan, out)
    assert "Not approved" in out.read_text(encoding="utf-8")
    approve(plan, "lin", "checked", dt.datetime(2026, 11, 22, 9, 0))
    report.write_report(plan, out)
    assert "Approved by lin at 2026-11-22T09:00:00+08:00: checked" in out.read_text("utf-8")


# ---------------------------------------------------------------- in a real browser

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _expected_marks(header: dict, impact: report.AudienceImpact) -> dict[str, int]:
    recorded = header["report"]
    rules = len(recorded["rules"])
    cells = len(report.tier_rows(recorded)) * len(STAGES)
    return {
        "funnel": len(report.STEPS),
        "funnel-by-rule": rules * len(report.SEGMENTS),
        "heat-all": cells,
        "heat-sent": cells,
        "cost-channel": len(recorded["channels"]),
        "cost-rule": rules,
        "reasons": len(Reason),
        "parameters": len(recorded["parameters"]),
        "impact": len(impact.rows) * len(impact.columns),
    }


def test_the_report_renders_in_headless_chromium(tmp_path, monkeypatch):
    from playwright import sync_api as playwright  # the test extra: never skipped

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert os.path.exists(chromium), "install Debian's chromium (apt-get install chromium)"
    monkeypatch.chdir(tmp_path)  # the page names files as the README's commands do
    shutil.copytree(EXAMPLES / "rules", "examples/rules")
    shutil.copy(EXAMPLES / "retentionrules.toml", "examples")
    plan = Path("demo-plan.jsonl")
    run_plan([Path("examples/rules")], SHOP, AS_OF, out=plan)
    approve(plan, "lin", "checked the win-back audience", dt.datetime(2026, 11, 22, 9, 0))
    # Before a rule change (the README's diff: win-back for gold members had been for silver
    # ones too): an audience that moved between rules.
    before_rules = Path("before/rules")
    before_rules.mkdir(parents=True)
    shutil.copy(EXAMPLES / "retentionrules.toml", "before")
    source = (EXAMPLES / "rules" / "shop.rules").read_text(encoding="utf-8")
    changed = source.replace("stage = sleeping and tier >= G", "stage = sleeping and tier >= S")
    assert changed != source
    (before_rules / "shop.rules").write_text(changed, encoding="utf-8")
    earlier = Path("before-plan.jsonl")
    run_plan([before_rules], SHOP, AS_OF, out=earlier)
    pages = {}
    for lang in ("en", "zh"):
        pages[lang] = report.write_report(plan, Path(f"report-{lang}.html"), earlier, lang=lang)
    header = read_plan_header(plan)
    before = {r["customer_id"]: r["rule"] for r in map(json.loads, earlier.open())}
    after = {r["customer_id"]: r["rule"] for r in map(json.loads, plan.open())}
    expected = _expected_marks(header, report.audience_impact(before, after))
    assert expected["impact"] > 4 and expected["parameters"] > 0

    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            for lang, page_file in pages.items():
                page = browser.new_page(viewport={"width": 1000, "height": 1200})
                errors: list[str] = []
                requests: list[str] = []
                page.on("console", lambda m, e=errors: m.type == "error" and e.append(m.text))
                page.on("pageerror", lambda error, e=errors: e.append(str(error)))
                page.on("request", lambda r, seen=requests: seen.append(r.url))
                url = page_file.resolve().as_uri()
                page.goto(url)
                page.wait_for_load_state("load")
                assert errors == []
                assert requests == [url]  # the file itself, nothing else
                charts = page.locator("svg.chart")
                drawn = {}
                for i in range(charts.count()):
                    chart = charts.nth(i)
                    box = chart.bounding_box()
                    assert box is not None and box["width"] > 100 and box["height"] > 20
                    name = chart.get_attribute("data-chart")
                    drawn[name] = chart.locator(".mark").count()
                assert drawn == expected
                # bars are as long as their counts: the longest funnel bar is `matched`
                widths = page.eval_on_selector_all(
                    'svg[data-chart="funnel"] .mark', "ms => ms.map(m => m.getBBox().width)"
                )
                assert widths[0] == max(widths) > 0 and widths == sorted(widths, reverse=True)
                title = page.locator("h1").inner_text()
                assert header["plan_id"] in title
                if lang == "zh":
                    assert page.locator("html").get_attribute("lang") == "zh-Hans"
                    assert "基准日期" in title
                    assert page.get_by_text("各渠道成本").is_visible()
                    assert page.get_by_text("已由 lin 于").is_visible()
                else:
                    assert page.get_by_text("Approved by lin").is_visible()
                shot = tmp_path / f"report-{lang}.png"
                page.screenshot(path=shot, full_page=True)
                assert shot.stat().st_size > 10_000
                if lang == "en" and os.environ.get("RR_UPDATE_SCREENSHOT") == "1":
                    page.set_viewport_size({"width": 1000, "height": 1350})
                    page.screenshot(path=ROOT / "docs" / "report.png")
                page.close()
        finally:
            browser.close()


# ---------------------------------------------------------------- headers not written by us


def _edit_header(plan: Path, change) -> None:
    header_path = sidecar(plan)
    header = json.loads(header_path.read_text(encoding="utf-8"))
    change(header)
    header_path.write_text(json.dumps(header), encoding="utf-8")


def test_an_edited_report_section_is_refused_even_under_an_approval(run_cli, tmp_path):
    """Only the plan's rows are vouched for (their digest is in the header and the approval):
    a report section that says 13 to send at no cost, beside a plan of 94, is not shown."""
    plan = _plan(tmp_path)
    approve(plan, "lin", "checked", dt.datetime(2026, 11, 22, 9, 0))

    def cheaper(header):
        for rule in header["report"]["rules"]:
            rule.update(kept=[1] * 7, cost=0.0)

    _edit_header(plan, cheaper)
    result = run_cli("report", plan)
    assert result.exit_code == 1, result.output
    assert "does not agree with the plan's rows" in result.output
    assert "1 to send, cost 0.00; the plan has" in result.output
    assert not (tmp_path / "demo-plan.report.html").exists()


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda h: h["report"].pop("rules"), "rules"),
        (lambda h: h["report"].update(rules="many"), "rules"),
        (lambda h: h["report"]["rules"][0].update(kept=["6"] * 7), "rules.0.kept.0"),
        (lambda h: h["report"]["rules"][0].update(kept=[6]), "rules.0.kept"),
        (lambda h: h["report"].update(tiers=[f"T{i}" for i in range(20_000)]), "tiers"),
        (lambda h: h["report"].update(customers_by_tier_stage=[["G"]]), "customers_by_tier_stage"),
        (lambda h: h["report"].update(version=999), "version 999"),
    ],
)
def test_a_report_section_not_of_our_shape_is_bad_data(run_cli, tmp_path, change, where):
    plan = _plan(tmp_path)
    _edit_header(plan, change)
    result = run_cli("report", plan)
    assert result.exit_code == 1, result.output
    assert "section `report`" in result.output and where in result.output
    assert "internal error" not in result.output


def test_an_approval_not_of_our_shape_is_named_as_such(run_cli, tmp_path):
    plan = _plan(tmp_path)
    approve(plan, "lin", "checked", dt.datetime(2026, 11, 22, 9, 0))
    approval = approval_file(plan)
    record = json.loads(approval.read_text(encoding="utf-8"))
    for broken in ({k: v for k, v in record.items() if k != "approved_at"}, [], "[" * 50_000):
        approval.write_text(broken if isinstance(broken, str) else json.dumps(broken))
        result = run_cli("report", plan)
        assert result.exit_code == 0, result.output
        assert "not an approval" in (tmp_path / "demo-plan.report.html").read_text("utf-8")


def test_a_header_nested_too_deep_is_bad_data(run_cli, tmp_path):
    plan = _plan(tmp_path)
    sidecar(plan).write_text("[" * 50_000)
    result = run_cli("report", plan)
    assert result.exit_code in (1, 2) and "not a plan header" in result.output
    assert "internal error" not in result.output


def test_a_folder_given_as_the_plan_is_a_usage_error(run_cli, tmp_path):
    result = run_cli("report", tmp_path)
    assert result.exit_code == 2 and "a folder, not a plan file" in result.output
