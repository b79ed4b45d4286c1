"""The plan as a page people would rather look at: one self-contained HTML file.

`record(plan)` is what the planner's tables say that the plan file does not (the funnel per
rule, what each reason removed, customers by tier and stage, cost per channel, parameters): it
is computed while the plan is made and kept in the plan's header under `report`. `render` turns
a header (and, given a second plan, the audience that moved between them) into HTML text: pure,
no file, no clock, so the same plan always gives the same page. `write_report` reads a verified
plan, its approval and the other plan, and writes the page like every output.

The charts are SVG drawn here, in Python: no script, no chart library, no font or style from the
network; the file opens from an e-mail attachment or a shared drive, stays small (tens of KB)
and prints. Every mark (a bar, a heat-map cell) is an SVG element of class `mark`, and each
chart says how many it drew (`data-marks`), so a test in a real browser can count them. Every
string that comes from data (rule, template, channel and parameter names and values, paths) is
HTML-escaped.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .policies import COLUMNS, POLICIES, Reason

if TYPE_CHECKING:
    from .planner import Plan

RECORD_VERSION = 1  # of the header's `report` section
STEPS = tuple(p.kept for p in POLICIES)  # kept after each policy: matched ... sent
TOP_PARAMETERS = 20  # (name, value) pairs recorded, most costly first
MATRIX_RULES = 24  # rules per axis of the audience matrix; the rest are one row "other rules"
MAX_RECORD_BYTES = 1 << 19  # half of what a header may hold (output.MAX_HEADER_BYTES)
LANGS = ("en", "zh")
SUFFIXES = (".html", ".htm")
NONE = "\x00none"  # the matrix's key for "not in the plan" (no rule name can hold a NUL)
OTHER = "\x00other"  # ... and for the rules beyond MATRIX_RULES


# ---------------------------------------------------------------- recorded at plan time


def record(plan: Plan) -> dict[str, Any]:
    """What the report needs and the plan file does not hold, from the planner's tables: a few
    small GROUP BYs and sums over counts already made. Deterministic: same plan, same record."""
    from .planner import tier_stage_counts

    rules = []
    channels: dict[str, tuple[int, int, float]] = {}  # channel -> sent, held out, cost
    parameters: dict[tuple[str, str], tuple[int, float, list[str]]] = {}  # (name, JSON value)
    for rule, counts, removed in zip(plan.ruleset.rules, plan.counts, plan.removed, strict=True):
        params = dict(rule.action.params)
        rules.append(
            {
                "rule": rule.name,
                "action": rule.action.kind,
                "template": rule.action.template,
                "channel": rule.action.channel,
                "parameters": params,
                "kept": list(counts.after),
                "cost": counts.cost,
                "removed": {r.value: n for r, n in removed.items() if n},
            }
        )
        key = rule.action.channel or ""
        sent, held, cost = channels.get(key, (0, 0, 0.0))
        channels[key] = (sent + counts.sent, held + counts.holdout, cost + counts.cost)
        for name, value in params.items():
            value_key = (name, json.dumps(value, sort_keys=True, ensure_ascii=False))
            actions, total, names = parameters.get(value_key, (0, 0.0, []))
            names = [*names, rule.name]
            parameters[value_key] = (actions + counts.sent, total + counts.cost, names)
    everyone, sent_to = tier_stage_counts(plan)
    top = sorted(parameters.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    found = {
        "version": RECORD_VERSION,
        "rules": rules,
        "tiers": list(plan.config.tier_type().values),
        "customers_by_tier_stage": [list(row) for row in everyone],
        "sent_by_tier_stage": [list(row) for row in sent_to],
        "channels": [
            {"channel": name or None, "sent": sent, "holdout": held, "cost": round(cost, 2)}
            for name, (sent, held, cost) in sorted(channels.items(), key=lambda i: (not i[0], i[0]))
        ],
        "parameters": [
            {
                "name": name,
                "value": json.loads(value),
                "sent": actions,
                "cost": round(cost, 2),
                "rules": names,
            }
            for (name, value), (actions, cost, names) in top[:TOP_PARAMETERS]
        ],
    }
    # A header must stay under output.MAX_HEADER_BYTES for approve and send to read it: a rule
    # set so large (thousands of rules) that its report would not fit gets no report.
    if len(json.dumps(found, indent=2, ensure_ascii=False)) > MAX_RECORD_BYTES:
        return {"version": RECORD_VERSION, "omitted": f"{len(rules)} rules are too many"}
    return found


# ---------------------------------------------------------------- labels

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Plan {plan_id} as of {as_of}",
        "customers": "customers read",
        "actions": "actions in the plan",
        "to_send": "to be sent",
        "held_out": "held out (never sent)",
        "rejected": "rows rejected",
        "total_cost": "estimated cost",
        "approval": "Approval",
        "approved": "Approved by {by} at {at}",
        "not_approved": "Not approved",
        "approval_problem": "Not approved for this plan: {why}",
        "details": "Where it comes from",
        "file": "plan file",
        "config": "configuration",
        "rules_digest": "rules (sha256)",
        "config_digest": "configuration (sha256)",
        "input_digest": "input files (sha256)",
        "plan_digest": "plan file (sha256)",
        "funnel": "Funnel: kept after each step, all rules",
        "funnel_note": "Each bar counts the (customer, rule) pairs still in after the step; "
        "steps run in this order.",
        "by_rule": "Funnel per rule: where the matched customers went",
        "by_rule_note": "One bar per rule, as long as the customers it matched; the colours "
        "say which step took them away, the table what each step kept.",
        "rule": "rule",
        "cost": "cost",
        "heat_all": "All customers by tier and stage",
        "heat_sent": "Customers to be contacted by tier and stage",
        "heat_note": "Held-out customers are not counted as contacted.",
        "tier": "tier",
        "stage": "stage",
        "no_tier": "(none)",
        "cost_channel": "Cost per channel",
        "cost_rule": "Cost per rule",
        "messages": "messages",
        "tag": "(tag: no channel)",
        "reasons": "Why actions were removed",
        "reasons_note": "Removals of (customer, rule) pairs by reason, all rules; per rule in "
        "the table.",
        "parameters": "Top parameters and their cost",
        "parameters_note": "Each (parameter, value) as the rules send it: messages to be sent "
        "and their cost.",
        "no_parameters": "No rule sends parameters.",
        "in_rules": "in rules",
        "impact": "Audience impact against {other}",
        "impact_note": "Customers joined on customer_id: each cell counts those in the row's "
        "rule in {other} and the column's rule in this plan (held-out actions count as in the "
        "rule).",
        "impact_other": "{other} (plan {plan_id}, as of {as_of})",
        "impact_differs": "The two plans were made from different input files or dates: a "
        "move may come from the data, not only from the rules.",
        "entered": "entered",
        "left": "left",
        "moved": "moved to another rule",
        "stayed": "stayed",
        "not_in_plan": "(not in the plan)",
        "other_rules": "(other rules)",
        "before": "before ↓ / now →",
        "matched": "matched",
        "consent": "consent",
        "caps": "caps",
        "priority": "priority",
        "household": "household",
        "volume": "volume",
        "sent": "sent",
        "holdout": "held out",
        "removed_consent": "removed: no consent",
        "removed_caps": "removed: quiet period and caps",
        "removed_priority": "removed: another rule won",
        "removed_household": "removed: once per household",
        "removed_volume": "removed: max per run",
        "reason_consent": "no consent",
        "reason_unknown_history": "unknown contact history",
        "reason_quiet_period": "quiet period",
        "reason_channel_cap": "channel cap",
        "reason_rule_cap": "rule cap",
        "reason_priority": "another rule won",
        "reason_household": "once per household",
        "reason_volume": "max per run",
        "reason_holdout": "held out",
    },
    "zh": {
        "title": "计划 {plan_id}（基准日期 {as_of}）",
        "customers": "读取的客户",
        "actions": "计划中的动作",
        "to_send": "将发送",
        "held_out": "对照组（不发送）",
        "rejected": "被拒绝的行",
        "total_cost": "预计成本",
        "approval": "审批",
        "approved": "已由 {by} 于 {at} 批准",
        "not_approved": "尚未批准",
        "approval_problem": "此计划未获批准：{why}",
        "details": "来源",
        "file": "计划文件",
        "config": "配置",
        "rules_digest": "规则（sha256）",
        "config_digest": "配置（sha256）",
        "input_digest": "输入文件（sha256）",
        "plan_digest": "计划文件（sha256）",
        "funnel": "漏斗：每一步之后保留的数量（全部规则）",
        "funnel_note": "每根柱子是该步骤之后仍保留的（客户，规则）对数；步骤按此顺序执行。",
        "by_rule": "各规则的漏斗：命中的客户去了哪里",
        "by_rule_note": "每条规则一根柱子，长度为命中的客户数；颜色表示被哪一步移除，"
        "表格列出每一步之后保留的数量。",
        "rule": "规则",
        "cost": "成本",
        "heat_all": "全部客户：等级 × 阶段",
        "heat_sent": "将联系的客户：等级 × 阶段",
        "heat_note": "对照组客户不计为已联系。",
        "tier": "等级",
        "stage": "阶段",
        "no_tier": "（无）",
        "cost_channel": "各渠道成本",
        "cost_rule": "各规则成本",
        "messages": "条消息",
        "tag": "（标签：无渠道）",
        "reasons": "动作被移除的原因",
        "reasons_note": "按原因统计被移除的（客户，规则）对，全部规则；各规则见下表。",
        "parameters": "主要参数及其成本",
        "parameters_note": "规则发送的每个（参数，值）：将发送的消息数及其成本。",
        "no_parameters": "没有规则发送参数。",
        "in_rules": "所在规则",
        "impact": "受众变化（对比 {other}）",
        "impact_note": "按 customer_id 关联：每个格子是在 {other} 中属于该行规则、"
        "在本计划中属于该列规则的客户数（对照组计入其规则）。",
        "impact_other": "{other}（计划 {plan_id}，基准日期 {as_of}）",
        "impact_differs": "两个计划的输入文件或日期不同：变化可能来自数据，而不仅是规则。",
        "entered": "新进入",
        "left": "离开",
        "moved": "换到其他规则",
        "stayed": "不变",
        "not_in_plan": "（不在计划中）",
        "other_rules": "（其他规则）",
        "before": "之前 ↓ / 现在 →",
        "matched": "命中",
        "consent": "已授权",
        "caps": "频次限制",
        "priority": "优先级",
        "household": "家庭",
        "volume": "数量上限",
        "sent": "发送",
        "holdout": "对照组",
        "removed_consent": "移除：未授权",
        "removed_caps": "移除：静默期与频次上限",
        "removed_priority": "移除：其他规则优先",
        "removed_household": "移除：每个家庭一次",
        "removed_volume": "移除：单次数量上限",
        "reason_consent": "未授权",
        "reason_unknown_history": "联系记录未知",
        "reason_quiet_period": "静默期",
        "reason_channel_cap": "渠道频次上限",
        "reason_rule_cap": "规则频次上限",
        "reason_priority": "其他规则优先",
        "reason_household": "每个家庭一次",
        "reason_volume": "单次数量上限",
        "reason_holdout": "对照组",
    },
}
HTML_LANG = {"en": "en", "zh": "zh-Hans"}

# The funnel per rule: what became of the matched customers, one segment each, left to right.
SEGMENTS = (
    ("sent", "#2f6fb3"),
    ("holdout", "#9cc3e8"),
    ("removed_volume", "#b58ad1"),
    ("removed_household", "#d99ac7"),
    ("removed_priority", "#f2b36b"),
    ("removed_caps", "#e8806b"),
    ("removed_consent", "#c9c9c9"),
)
FONTS = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", '
    '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Hiragino Sans GB", '
    '"Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif'
)
STYLE = """
body { font-family: FONTS; color: #1f2933; background: #f5f7fa; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 0 0 6px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 6px; padding: 16px 20px;
  margin: 0 0 16px; }
p.note { color: #52606d; font-size: 13px; margin: 0 0 10px; }
.figures { display: flex; flex-wrap: wrap; gap: 10px 28px; margin: 0 0 10px; }
.figure b { display: block; font-size: 22px; }
.figure span { color: #52606d; font-size: 13px; }
.approved { color: #1e7b34; font-weight: 600; }
.unapproved { color: #b42318; font-weight: 600; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
svg.chart { display: block; width: 100%; height: auto; margin: 4px 0 8px; }
svg.chart text { font-family: FONTS; font-size: 12px; fill: #1f2933; }
svg.chart text.dim { fill: #52606d; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e7eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.mono, dd { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px;
  margin: 0; }
dt { color: #52606d; }
dd { margin: 0; overflow-wrap: anywhere; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; margin: 4px 0; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px;
  vertical-align: -1px; border-radius: 2px; }
@media print { body { background: #fff; } section { break-inside: avoid; } }
""".replace("FONTS", FONTS)


def labels(lang: str) -> dict[str, str]:
    if lang not in LABELS:
        raise ValueError(f"language {lang!r}: one of {', '.join(LANGS)}")
    return LABELS[lang]


# ---------------------------------------------------------------- the audience matrix


@dataclass(frozen=True)
class AudienceImpact:
    """Customers by their rule in the other plan (rows) and in this one (columns), joined on
    customer_id; NONE: not in that plan, OTHER: the rules beyond MATRIX_RULES."""

    other: str  # how the other plan is named on the page
    other_header: Mapping[str, Any]
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], int]
    entered: int
    left: int
    moved: int
    stayed: int


def audience_impact(
    before: Mapping[str, str],
    after: Mapping[str, str],
    other: str = "",
    other_header: Mapping[str, Any] | None = None,
) -> AudienceImpact:
    """Who moved between rules: `before` and `after` map each customer in a plan to their rule.
    The axes list the rules in the order they first appear in each plan (a rule's order in the
    file), the most moved first beyond MATRIX_RULES, then `not in the plan`."""
    pairs: dict[tuple[str, str], int] = {}
    for customer in dict.fromkeys([*before, *after]):
        key = (before.get(customer, NONE), after.get(customer, NONE))
        pairs[key] = pairs.get(key, 0) + 1
    entered = sum(n for (old, _), n in pairs.items() if old == NONE)
    left = sum(n for (_, new), n in pairs.items() if new == NONE)
    stayed = sum(n for (old, new), n in pairs.items() if old == new)
    moved = sum(pairs.values()) - entered - left - stayed
    rows = _axis(list(dict.fromkeys(before.values())), pairs, 0)
    columns = _axis(list(dict.fromkeys(after.values())), pairs, 1)
    cells: dict[tuple[str, str], int] = {}
    for (old, new), n in pairs.items():
        key = (old if old in rows else OTHER, new if new in columns else OTHER)
        cells[key] = cells.get(key, 0) + n
    return AudienceImpact(
        other, other_header or {}, rows, columns, cells, entered, left, moved, stayed
    )


def _axis(rules: list[str], pairs: Mapping[tuple[str, str], int], side: int) -> list[str]:
    if len(rules) > MATRIX_RULES:
        changed = {rule: 0 for rule in rules}
        for key, n in pairs.items():
            if key[0] != key[1] and key[side] in changed:
                changed[key[side]] += n
        kept = set(sorted(rules, key=lambda r: -changed[r])[: MATRIX_RULES - 1])
        return [*(r for r in rules if r in kept), OTHER, NONE]
    return [*rules, NONE]


# ---------------------------------------------------------------- SVG


def _e(value: object) -> str:
    """Text or an attribute value from data, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(chart: str, width: int, height: int, marks: int, body: list[str], title: str) -> str:
    return (
        f'<svg class="chart" data-chart="{chart}" data-marks="{marks}" role="img" '
        f'aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


@dataclass(frozen=True)
class _Bar:
    label: str
    value: float
    text: str  # the value as shown beside the bar
    data: str = ""  # data attributes (already escaped)


def _bars(chart: str, bars: Sequence[_Bar], title: str, colour: str = "#2f6fb3") -> str:
    """Horizontal bars, one `rect.mark` each, labels left and values right."""
    width, left, right, row = 900, 210, 190, 22
    span = width - left - right
    top = max((b.value for b in bars), default=0) or 1
    body = []
    for i, bar in enumerate(bars):
        y = 6 + i * row
        length = span * bar.value / top
        body.append(
            f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{_e(_short(bar.label))}'
            f"<title>{_e(bar.label)}</title></text>"
            f'<rect class="mark" x="{left}" y="{y + 2}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{colour}" data-value="{bar.value}"{bar.data}>'
            f"<title>{_e(bar.label)}: {_e(bar.text)}</title></rect>"
            f'<text class="dim" x="{left + length + 6:.1f}" y="{y + 13}">{_e(bar.text)}</text>'
        )
    return _svg(chart, width, 12 + row * len(bars), len(bars), body, title)


def _stacked(chart: str, rules: Sequence[Mapping[str, Any]], words: Mapping[str, str]) -> str:
    """One bar per rule, as long as what it matched, cut into SEGMENTS."""
    width, left, right, row = 900, 210, 70, 22
    span = width - left - right
    top = max((r["kept"][0] for r in rules), default=0) or 1
    body = []
    for i, rule in enumerate(rules):
        y = 6 + i * row
        kept = rule["kept"]
        held = kept[-2] - kept[-1]
        sizes = {
            "sent": kept[-1],
            "holdout": held,
            "removed_volume": kept[4] - kept[5],
            "removed_household": kept[3] - kept[4],
            "removed_priority": kept[2] - kept[3],
            "removed_caps": kept[1] - kept[2],
            "removed_consent": kept[0] - kept[1],
        }
        name = rule["rule"]
        body.append(
            f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{_e(_short(name))}'
            f"<title>{_e(name)}</title></text>"
        )
        x = float(left)
        for segment, colour in SEGMENTS:
            length = span * sizes[segment] / top
            body.append(
                f'<rect class="mark" x="{x:.1f}" y="{y + 2}" width="{length:.1f}" '
                f'height="{row - 6}" fill="{colour}" data-rule="{_e(name)}" '
                f'data-segment="{segment}" data-value="{sizes[segment]}">'
                f"<title>{_e(name)}: {_e(words[segment])} {_n(sizes[segment])}</title></rect>"
            )
            x += length
        body.append(f'<text class="dim" x="{x + 6:.1f}" y="{y + 13}">{_n(kept[0])}</text>')
    marks = len(rules) * len(SEGMENTS)
    return _svg(chart, width, 12 + row * len(rules), marks, body, words["by_rule"])


def _heat(
    chart: str,
    rows: Sequence[tuple[str, str]],
    columns: Sequence[tuple[str, str]],
    cells: Mapping[tuple[str, str], int],
    title: str,
    corner: str = "",
    colour: tuple[int, int, int] = (47, 111, 179),
) -> str:
    """A grid of `rect.mark` cells, shaded by count; rows and columns are (key, label)."""
    left, head, cell_w, cell_h = 150, 46, 78, 28
    width, height = left + cell_w * len(columns) + 4, head + cell_h * len(rows) + 4
    top = max(cells.values(), default=0) or 1
    body = [f'<text class="dim" x="4" y="{head - 10}">{_e(corner)}</text>'] if corner else []
    for j, (_, label) in enumerate(columns):
        x = left + j * cell_w + cell_w / 2
        body.append(
            f'<text x="{x:.0f}" y="{head - 10}" text-anchor="middle">{_e(_short(label, 11))}'
            f"<title>{_e(label)}</title></text>"
        )
    for i, (row_key, row_label) in enumerate(rows):
        y = head + i * cell_h
        body.append(
            f'<text x="{left - 8}" y="{y + 18}" text-anchor="end">{_e(_short(row_label, 20))}'
            f"<title>{_e(row_label)}</title></text>"
        )
        for j, (column_key, column_label) in enumerate(columns):
            n = cells.get((row_key, column_key), 0)
            share = n / top
            r, g, b = (round(255 - (255 - c) * share) for c in colour)
            x = left + j * cell_w
            ink = "#fff" if share > 0.55 else "#1f2933"
            body.append(
                f'<rect class="mark" x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" '
                f'height="{cell_h - 2}" fill="rgb({r},{g},{b})" stroke="#e4e7eb" '
                f'data-row="{_e(row_label)}" data-column="{_e(column_label)}" data-value="{n}">'
                f"<title>{_e(row_label)} × {_e(column_label)}: {_n(n)}</title></rect>"
                f'<text x="{x + cell_w / 2:.0f}" y="{y + 18}" text-anchor="middle" '
                f'style="fill:{ink}">{_n(n) if n else ""}</text>'
            )
    return _svg(chart, width, height, len(rows) * len(columns), body, title)


# ---------------------------------------------------------------- the page


def tier_rows(record: Mapping[str, Any]) -> list[str | None]:
    """The heat maps' rows: the tiers, highest first, and `(none)` when some customer has no
    tier."""
    tiers: list[str | None] = list(reversed(record["tiers"]))
    rows = [*record["customers_by_tier_stage"], *record["sent_by_tier_stage"]]
    return [*tiers, None] if any(row[0] is None for row in rows) else tiers


def render(
    header: Mapping[str, Any],
    *,
    name: str,
    lang: str = "en",
    config: str | None = None,
    approval: Mapping[str, Any] | None = None,
    approval_problem: str | None = None,
    impact: AudienceImpact | None = None,
) -> str:
    """The report of the plan whose header is `header` (with its `report` section); `name`: how
    the plan file is shown, `config` its configuration (default: the header's path). Pure: the
    same arguments give the same text."""
    words = labels(lang)
    record = header["report"]
    rules: list[Mapping[str, Any]] = record["rules"]
    title = words["title"].format(plan_id=header["plan_id"], as_of=header["as_of"])
    config = config or header.get("config_source") or "—"
    parts = [_overview(header, record, words, (name, config), approval, approval_problem)]
    parts.append(_funnel(rules, words))
    parts.append(_heat_maps(record, words))
    parts.append(_costs(record, rules, words))
    parts.append(_reasons(rules, words))
    parts.append(_parameters(record, words))
    if impact is not None:
        parts.append(_impact(impact, header, words))
    return (
        f'<!DOCTYPE html>\n<html lang="{HTML_LANG[lang]}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # Nothing may be fetched: no script, no style, no image, no frame from anywhere.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(parts)
        + "\n</main>\n</body>\n</html>\n"
    )


def _section(key: str, heading: str, *content: str) -> str:
    return f'<section id="{key}">\n<h2>{_e(heading)}</h2>\n' + "\n".join(content) + "\n</section>"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A table of text cells, escaped here."""
    heading = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    attribute = f' class="{cls}"' if cls else ""
    return f"<table{attribute}><thead><tr>{heading}</tr></thead><tbody>{body}</tbody></table>"


def _overview(
    header: Mapping[str, Any],
    record: Mapping[str, Any],
    words: Mapping[str, str],
    names: tuple[str, str],
    approval: Mapping[str, Any] | None,
    problem: str | None,
) -> str:
    rules = record["rules"]
    sent = sum(r["kept"][-1] for r in rules)
    held = sum(r["kept"][-2] - r["kept"][-1] for r in rules)
    cost = sum(r["cost"] for r in rules)
    figures = [
        (_n(header["customers"]), words["customers"]),
        (_n(header["actions"]), words["actions"]),
        (_n(sent), words["to_send"]),
        (_n(held), words["held_out"]),
        (_money(cost), words["total_cost"]),
        (_n(header["rejected_rows"]), words["rejected"]),
    ]
    shown = "".join(
        f'<div class="figure"><b>{_e(value)}</b><span>{_e(label)}</span></div>'
        for value, label in figures
    )
    if approval is not None:
        state = words["approved"].format(by=approval["approved_by"], at=approval["approved_at"])
        note = approval.get("note")
        status = f'<p class="approved" id="approval">{_e(state)}' + (
            f": {_e(note)}</p>" if note else "</p>"
        )
    elif problem is not None:
        text = words["approval_problem"].format(why=problem)
        status = f'<p class="unapproved" id="approval">{_e(text)}</p>'
    else:
        status = f'<p class="unapproved" id="approval">{_e(words["not_approved"])}</p>'
    details = [
        (words["file"], names[0]),
        (words["config"], names[1]),
        (words["rules_digest"], header["rules_digest"]),
        (words["config_digest"], header["config_digest"]),
        (words["input_digest"], header["input_digest"] or "—"),
        (words["plan_digest"], header["plan_sha256"]),
    ]
    listed = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in details)
    title = words["title"].format(plan_id=header["plan_id"], as_of=header["as_of"])
    return (
        f'<section id="overview">\n<h1>{_e(title)}</h1>\n<div class="figures">{shown}</div>\n'
        f"{status}\n<h2>{_e(words['details'])}</h2>\n<dl>{listed}</dl>\n</section>"
    )


def _funnel(rules: Sequence[Mapping[str, Any]], words: Mapping[str, str]) -> str:
    totals = [sum(r["kept"][i] for r in rules) for i in range(len(STEPS))]
    bars = [
        _Bar(words[step], n, _n(n), f' data-step="{step}"')
        for step, n in zip(STEPS, totals, strict=True)
    ]
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{_e(words[segment])}</span>'
        for segment, colour in SEGMENTS
    )
    head = [words["rule"], *(words[c] for c in COLUMNS), words["cost"]]
    rows = [
        [
            r["rule"],
            *(_n(n) for n in r["kept"]),
            _n(r["kept"][-2] - r["kept"][-1]),
            _money(r["cost"]),
        ]
        for r in rules
    ]
    return "\n".join(
        [
            _section(
                "funnel",
                words["funnel"],
                _note(words["funnel_note"]),
                _bars("funnel", bars, words["funnel"]),
            ),
            _section(
                "by-rule",
                words["by_rule"],
                _note(words["by_rule_note"]),
                f'<div class="legend">{legend}</div>',
                _stacked("funnel-by-rule", rules, words),
                _table(head, rows),
            ),
        ]
    )


def _heat_maps(record: Mapping[str, Any], words: Mapping[str, str]) -> str:
    from .types import STAGES

    rows = [(tier or "", tier or words["no_tier"]) for tier in tier_rows(record)]
    columns = [(stage, stage) for stage in STAGES]
    corner = f"{words['tier']} ↓ / {words['stage']} →"
    maps = []
    for key, chart, heading in (
        ("customers_by_tier_stage", "heat-all", words["heat_all"]),
        ("sent_by_tier_stage", "heat-sent", words["heat_sent"]),
    ):
        cells = {(tier or "", stage): n for tier, stage, n in record[key]}
        maps.append(
            f"<div><h2>{_e(heading)}</h2>{_heat(chart, rows, columns, cells, heading, corner)}"
            "</div>"
        )
    return (
        '<section id="tiers">\n<div class="pair">'
        + "".join(maps)
        + "</div>\n"
        + _note(words["heat_note"])
        + "\n</section>"
    )


def _channel(name: str | None, words: Mapping[str, str]) -> str:
    return name if name is not None else words["tag"]


def _costs(
    record: Mapping[str, Any], rules: Sequence[Mapping[str, Any]], words: Mapping[str, str]
) -> str:
    channels = [
        _Bar(
            _channel(c["channel"], words),
            c["cost"],
            f"{_money(c['cost'])} · {_n(c['sent'])} {words['messages']}",
            f' data-channel="{_e(c["channel"] or "")}"',
        )
        for c in record["channels"]
    ]
    per_rule = [
        _Bar(r["rule"], r["cost"], _money(r["cost"]), f' data-rule="{_e(r["rule"])}"')
        for r in rules
    ]
    return "\n".join(
        [
            _section(
                "cost-channel",
                words["cost_channel"],
                _bars("cost-channel", channels, words["cost_channel"], "#1e7b70"),
            ),
            _section(
                "cost-rule",
                words["cost_rule"],
                _bars("cost-rule", per_rule, words["cost_rule"], "#1e7b70"),
            ),
        ]
    )


def _reasons(rules: Sequence[Mapping[str, Any]], words: Mapping[str, str]) -> str:
    totals = {r.value: sum(rule["removed"].get(r.value, 0) for rule in rules) for r in Reason}
    bars = [
        _Bar(words[f"reason_{reason}"], n, _n(n), f' data-reason="{reason}"')
        for reason, n in totals.items()
    ]
    used = [reason for reason, n in totals.items() if n]
    head = [words["rule"], *(words[f"reason_{reason}"] for reason in used)]
    rows = [
        [rule["rule"], *(_n(rule["removed"].get(reason, 0)) for reason in used)]
        for rule in rules
        if rule["removed"]
    ]
    return _section(
        "reasons",
        words["reasons"],
        _note(words["reasons_note"]),
        _bars("reasons", bars, words["reasons"], "#c05a44"),
        _table(head, rows) if rows else "",
    )


def _parameter_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _parameters(record: Mapping[str, Any], words: Mapping[str, str]) -> str:
    found = record["parameters"]
    if not found:
        return _section("parameters", words["parameters"], _note(words["no_parameters"]))
    bars = [
        _Bar(
            f"{p['name']} = {_parameter_text(p['value'])}",
            p["cost"],
            f"{_money(p['cost'])} · {_n(p['sent'])} {words['messages']}",
        )
        for p in found
    ]
    rows = [
        [
            p["name"],
            _parameter_text(p["value"]),
            _n(p["sent"]),
            _money(p["cost"]),
            ", ".join(p["rules"]),
        ]
        for p in found
    ]
    head = ["", "", words["messages"], words["cost"], words["in_rules"]]
    return _section(
        "parameters",
        words["parameters"],
        _note(words["parameters_note"]),
        _bars("parameters", bars, words["parameters"], "#8a5cb8"),
        _table(head, rows),
    )


def _impact(impact: AudienceImpact, header: Mapping[str, Any], words: Mapping[str, str]) -> str:
    other = impact.other_header

    def label(key: str) -> str:
        return {NONE: words["not_in_plan"], OTHER: words["other_rules"]}.get(key, key)

    rows = [(key, label(key)) for key in impact.rows]
    columns = [(key, label(key)) for key in impact.columns]
    heading = words["impact"].format(other=impact.other)
    figures = [
        (impact.entered, words["entered"]),
        (impact.left, words["left"]),
        (impact.moved, words["moved"]),
        (impact.stayed, words["stayed"]),
    ]
    shown = "".join(
        f'<div class="figure" data-figure="{key}"><b>{_n(n)}</b><span>{_e(text)}</span></div>'
        for (n, text), key in zip(figures, ("entered", "left", "moved", "stayed"), strict=True)
    )
    same = all(other.get(k) == header.get(k) for k in ("as_of", "input_digest"))
    described = words["impact_other"].format(
        other=impact.other, plan_id=other.get("plan_id", "?"), as_of=other.get("as_of", "?")
    )
    return _section(
        "impact",
        heading,
        _note(described),
        _note(words["impact_note"].format(other=impact.other)),
        "" if same else f'<p class="unapproved">{_e(words["impact_differs"])}</p>',
        f'<div class="figures">{shown}</div>',
        _heat("impact", rows, columns, impact.cells, heading, words["before"], (192, 90, 68)),
    )


# ---------------------------------------------------------------- reading plans, writing


# What a report may hold, beyond which a header is not one `record` wrote: a page a few MB at
# most, whatever a hand-edited header says.
_MAX_TIERS, _MAX_CELLS, _MAX_RULES = 64, 4096, 5000


def checked_record(header: Mapping[str, Any], rows: Sequence[Any]) -> dict[str, Any]:
    """The header's `report` section, once it has the shape `record` writes and agrees with
    the plan's rows (which the header's digest vouches for): the rows each rule and channel
    planned, held out and cost. Nothing else vouches for the section, so an edited one (a rule
    that never ran, a cost of 0.00 under an approval) is refused rather than shown. Raises
    DataError saying what does not hold."""
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from .errors import DataError

    class _Strict(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")

    class _Rule(_Strict):
        rule: str
        action: str
        template: str | None
        channel: str | None
        parameters: dict[str, Any]
        kept: list[int] = Field(min_length=len(POLICIES), max_length=len(POLICIES))
        cost: float
        removed: dict[str, int]

    class _Channel(_Strict):
        channel: str | None
        sent: int
        holdout: int
        cost: float

    class _Parameter(_Strict):
        name: str
        value: Any
        sent: int
        cost: float
        rules: list[str] = Field(max_length=_MAX_RULES)

    class _Record(_Strict):
        version: int
        rules: list[_Rule] = Field(max_length=_MAX_RULES)
        tiers: list[str] = Field(max_length=_MAX_TIERS)
        customers_by_tier_stage: list[tuple[str | None, str, int]] = Field(max_length=_MAX_CELLS)
        sent_by_tier_stage: list[tuple[str | None, str, int]] = Field(max_length=_MAX_CELLS)
        channels: list[_Channel] = Field(max_length=_MAX_RULES)
        parameters: list[_Parameter] = Field(max_length=TOP_PARAMETERS)

    where = "the plan's header, section `report`"
    found = header.get("report")
    if isinstance(found, dict) and found.get("version") != RECORD_VERSION:
        raise DataError(f"{where}: version {found.get('version')!r}, not {RECORD_VERSION}")
    try:
        # As JSON, which the header is: strict, yet an array may be a (tier, stage, count) row.
        record = _Record.model_validate_json(json.dumps(found)).model_dump()
    except ValidationError as error:
        first = error.errors()[0]
        place = ".".join(str(part) for part in first["loc"]) or "report"
        raise DataError(
            f"{where}: {place}: {first['msg']} (not what retentionrules writes: edited by hand?)"
        ) from None
    problems = []
    planned: dict[str, list[Any]] = {}
    for row in rows:
        planned.setdefault(row.rule, []).append(row)
    names = [r["rule"] for r in record["rules"]]
    for name in sorted(set(planned) - set(names)):
        problems.append(f"rule {name} is in the plan but not in the report")
    for rule in record["rules"]:
        kept, mine = rule["kept"], planned.get(rule["rule"], [])
        sent = sum(1 for row in mine if not row.holdout)
        cost = sum(row.cost for row in mine)
        if any(a < b for a, b in itertools.pairwise(kept)) or min(kept) < 0:
            problems.append(f"rule {rule['rule']}: its funnel grows from one step to the next")
        if (kept[-2], kept[-1]) != (len(mine), sent) or abs(rule["cost"] - cost) > 0.005:
            problems.append(
                f"rule {rule['rule']}: the report says {kept[-2]} planned, {kept[-1]} to send, "
                f"cost {rule['cost']:.2f}; the plan has {len(mine)}, {sent}, {cost:.2f}"
            )
    for channel in record["channels"]:
        mine = [row for row in rows if row.channel == channel["channel"]]
        sent = sum(1 for row in mine if not row.holdout)
        if (channel["sent"], channel["holdout"]) != (sent, len(mine) - sent):
            problems.append(f"channel {channel['channel']}: not the plan's count")
    to_send = sum(1 for row in rows if not row.holdout)
    if sum(n for *_, n in record["sent_by_tier_stage"]) != to_send:
        problems.append("customers to be sent by tier and stage: not the plan's count")
    if sum(n for *_, n in record["customers_by_tier_stage"]) != header.get("customers"):
        problems.append("customers by tier and stage: not the header's count of customers")
    if header.get("actions") != len(rows):
        counted = header.get("actions")
        problems.append(f"the header counts {counted} actions, the plan has {len(rows)}")
    if problems:
        raise DataError(
            f"{where} does not agree with the plan's rows (edited by hand?): "
            + "; ".join(problems[:5])
            + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        )
    return record


def default_out(plan: Path) -> Path:
    """`plans/demo-plan.jsonl` -> `plans/demo-plan.report.html`."""
    return plan.with_name(plan.name.removesuffix(plan.suffix) + ".report.html")


def write_report(
    plan: Path,
    out: Path | None = None,
    against: Path | None = None,
    lang: str = "en",
) -> Path:
    """Write the report of `plan` (checked against its header) to `out` (default: beside the
    plan, `PLAN-STEM.report.html`); with `against`, the audience impact between the two plans.
    Never over one of the files it reads. Returns the file written."""
    from .config import shown_path
    from .errors import DataError, UsageError
    from .output import (
        check_writable,
        lock_file,
        refuse_aliases,
        sidecar,
        write_text,
    )
    from .send import approval_file, approval_status, read_plan

    labels(lang)
    plan = Path(plan)
    out = default_out(plan) if out is None else Path(out)
    inputs = [("PLAN", plan), ("PLAN's header", sidecar(plan)), ("PLAN's lock", lock_file(plan))]
    inputs.append(("PLAN's approval", approval_file(plan)))
    if against is not None:
        against = Path(against)
        inputs += [("--against", against), ("--against's header", sidecar(against))]
    refuse_aliases(inputs, [("--out", out)])
    check_writable(out, "--out", SUFFIXES)
    for path in (plan, against):
        if path is not None and not path.exists() and not path.is_symlink():
            raise UsageError(f"{path}: no such plan")
        if path is not None and path.is_dir():
            raise UsageError(f"{path}: a folder, not a plan file")
    impact = None
    header, rows = read_plan(plan)
    if against is not None:
        other_header, other_rows = read_plan(against)
        impact = audience_impact(
            {m.customer_id: m.rule for m in other_rows},
            {m.customer_id: m.rule for m in rows},
            str(against),
            other_header,
        )
    recorded = header.get("report")
    if not isinstance(recorded, dict):
        raise DataError(
            f"{plan}: the plan's header holds no report data (it was written by an older "
            "retentionrules); plan it again to report on it"
        )
    if "omitted" in recorded:
        raise DataError(f"{plan}: no report: {recorded['omitted']} for the plan's header to hold")
    try:
        header = {**header, "report": checked_record(header, rows)}
    except DataError as error:
        raise DataError(f"{plan}: {error}") from None
    approval, problem = approval_status(plan, header)
    text = render(
        header,
        name=str(plan),
        lang=lang,
        config=shown_path(header.get("config_source")),
        approval=approval,
        approval_problem=problem,
        impact=impact,
    )
    write_text(out, text, "--out", SUFFIXES)
    return out
