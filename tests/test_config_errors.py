"""Configuration errors for people: `retentionrules.toml:LINE:COL: key: message`, the line, a
caret under the place and a hint; in our own words, never pydantic's; found by `check` (and by
`plan`), exit 2."""

from __future__ import annotations

import pytest

from .conftest import customer, write_csv, write_rules

RULE = "rule r\n  when stage = sleeping\n  then send x via sms\n"

# (the configuration, what check prints for it): checked by hand against the file's text
CASES = [
    (
        'timezone = "Mars/Base"\n',
        'retentionrules.toml:1:12: timezone: unknown time zone \'Mars/Base\'\n'
        '    timezone = "Mars/Base"\n'
        "               ^^^^^^^^^^^\n"
        "    hint: use a name from the time zone database, such as Asia/Shanghai or UTC\n",
    ),
    (
        '[stages]\nactive = "200 days"\nsilent = "180 days"\n',
        "retentionrules.toml:3:10: stages.silent: silent (180 days) must be longer than active "
        "(200 days)\n"
        '    silent = "180 days"\n'
        "             ^^^^^^^^^^\n"
        "    hint: stages are in order: active < silent < sleeping; after sleeping a customer "
        "is lost\n",
    ),
    (
        '[stages]\nsleeping = "5 months"\n',  # 5 months is 140 to 155 days: before silent's 180
        "retentionrules.toml:2:12: stages.sleeping: sleeping (5 months) must be longer than "
        "silent (180 days, the default)\n"
        '    sleeping = "5 months"\n'
        "               ^^^^^^^^^^\n"
        "    hint: stages are in order: active < silent < sleeping; after sleeping a customer "
        "is lost\n",
    ),
    (
        '[channels.sms]\nconsent = "sms_opt_in"\ncost = "abc"\n',
        "retentionrules.toml:3:8: channels.sms.cost: expected a number, not \"abc\"\n"
        '    cost = "abc"\n'
        "           ^^^^^\n"
        "    hint: write numbers without quotes, e.g. cost = 0.1\n",
    ),
    (
        '[channels.sms]\nconsent = "sms_opt_in"\ncapp = 3\n',
        "retentionrules.toml:3:1: channels.sms.capp: unknown setting `capp`\n"
        "    capp = 3\n"
        "    ^^^^\n"
        "    hint: did you mean `cap`?\n",
    ),
    (
        '[channels.sms]\nconsent = "sms_opt_in"\ncap = { count = 0, per = "40 days" }\n',
        "retentionrules.toml:3:17: channels.sms.cap.count: must be more than 0, not 0\n"
        '    cap = { count = 0, per = "40 days" }\n'
        "                    ^\n",
    ),
    (
        '[customers]\nid = "cid"\n',
        "retentionrules.toml:2:6: customers.id: names 'cid', which is not in customers.fields\n"
        '    id = "cid"\n'
        "         ^^^^^\n",
    ),
    (
        "holdout_salt = 5\n",
        "retentionrules.toml:1:16: holdout_salt: expected text in quotes, not 5\n"
        "    holdout_salt = 5\n"
        "                   ^\n"
        '    hint: write text in double quotes, e.g. "sms"\n',
    ),
    (
        'timezon = "UTC"\n',
        "retentionrules.toml:1:1: timezon: unknown setting `timezon`\n"
        '    timezon = "UTC"\n'
        "    ^^^^^^^\n"
        "    hint: did you mean `timezone`?\n",
    ),
    (
        '[orders]\nquantiy = "qty"\n',
        "retentionrules.toml:2:1: orders.quantiy: unknown setting `quantiy`\n"
        '    quantiy = "qty"\n'
        "    ^^^^^^^\n"
        "    hint: did you mean `quantity`?\n",
    ),
    (
        '[channels.sms]\nconsent = "sms_opt_in"\n'
        'cap = { per = "40 days", "数量" = 10, count = 0 }\n',
        "retentionrules.toml:3:45: channels.sms.cap.count: must be more than 0, not 0\n"
        '    cap = { per = "40 days", "数量" = 10, count = 0 }\n'
        + " " * 50 + "^\n"
        "retentionrules.toml:3:26: channels.sms.cap.数量: unknown setting `数量`\n"
        '    cap = { per = "40 days", "数量" = 10, count = 0 }\n'
        "                             ^^^^^^\n"
        "    hint: the settings here are count, per\n"  # under the 0: 数量 takes 4 columns
    ),
]
END = "retentionrules: the configuration has errors; nothing was run\n"


@pytest.mark.parametrize("config, expected", CASES, ids=[c[0].split("\n")[0] for c in CASES])
def test_config_errors_name_line_column_key_and_a_hint(run_cli, tmp_path, monkeypatch, config,
                                                       expected):  # fmt: skip
    write_rules(tmp_path, RULE, config)
    monkeypatch.chdir(tmp_path)
    result = run_cli("check", ".")
    assert result.exit_code == 2
    assert result.output == expected + END


@pytest.mark.parametrize("config", [c[0] for c in CASES] + [
    '[scoring]\nweights = { recency = "x" }\n', "[channels]\nsms = 3\n",
    '[contacts]\nquiet_period = 3\n', '[tiers]\nB = "one"\n', "approval = 1\n",
    '[products.sku.x]\ndays_per_unit = "a"\n', "[[customers]]\nid = 1\n",
])  # fmt: skip
def test_config_errors_never_use_pydantics_words(run_cli, tmp_path, monkeypatch, config):
    write_rules(tmp_path, RULE, config)
    monkeypatch.chdir(tmp_path)
    result = run_cli("check", ".")
    assert result.exit_code == 2
    for words in ("Input should", "Value error", "Extra inputs", "validation error", "pydantic",
                  "type=", "Traceback"):  # fmt: skip
        assert words not in result.output
    assert result.output.startswith("retentionrules.toml:")


def test_stages_out_of_order_stop_plan_too_before_any_data_is_read(run_cli, tmp_path):
    write_rules(tmp_path / "p", RULE, '[stages]\nactive = "200 days"\nsilent = "180 days"\n')
    customers = write_csv(tmp_path / "c.csv", [customer("C1")])
    result = run_cli("plan", "--rules", tmp_path / "p", "--customers", customers)
    assert result.exit_code == 2
    assert "retentionrules.toml:3:10: stages.silent: silent (180 days) must be longer" in (
        result.output
    )
