"""One project, one configuration: rule files belong to the nearest retentionrules.toml above
them; each project is checked and tested under its own, and nothing plans rules under another's."""

from __future__ import annotations

import json

import pytest

from .conftest import DEEP_TOML, ROOT, customer, git, write_csv, write_rules

WHATSAPP = """
[customers.fields]
customer_id = "string"
orders_12m = "number"
spend_12m = "number"
total_orders = "number"
first_order_date = "date"
last_order_date = "date"
whatsapp_opt_in = "bool"

[channels.whatsapp]
consent = "whatsapp_opt_in"
cost = 0.05
"""
SLEEPING = {"last_order_date": "2026-03-01", "orders_12m": 1, "spend_12m": 100, "total_orders": 1}


@pytest.fixture
def two_projects(tmp_path):
    """`a` declares a whatsapp channel; `b` has the defaults (sms, email, phone)."""
    a = write_rules(
        tmp_path / "a",
        "rule chat\n  when stage = sleeping\n  then send hello via whatsapp\n",
        WHATSAPP,
    )
    b = write_rules(tmp_path / "b", "rule text\n  when stage = sleeping\n  then send hi via sms\n")
    columns = ["customer_id", "orders_12m", "spend_12m", "total_orders", "first_order_date",
               "last_order_date", "whatsapp_opt_in", "sms_opt_in"]  # fmt: skip
    rows = [
        {**customer("W1", **SLEEPING), "whatsapp_opt_in": "false"},
        {**customer("W2", **SLEEPING), "whatsapp_opt_in": "true"},
    ]
    data = write_csv(tmp_path / "customers.csv", rows, columns)
    return a, b, data


def test_plan_refuses_rules_from_two_projects_naming_both_configurations(run_cli, two_projects):
    a, b, data = two_projects
    for command in (
        ("plan", "--rules", b, "--rules", a, "--customers", data),
        ("explain", "W1", "--rules", b, "--rules", a, "--customers", data),
        ("diff", a, b, a, "--customers", data),
    ):
        result = run_cli(*command, "--as-of", "2026-11-22")
        assert result.exit_code == 2, result.output
        assert str(a / "retentionrules.toml") in result.output
        assert str(b / "retentionrules.toml") in result.output
        assert "different projects" in result.output


def test_rules_are_planned_with_the_configuration_they_were_checked_against(
    run_cli, two_projects, tmp_path
):
    a, _b, data = two_projects
    out = tmp_path / "plan.jsonl"
    result = run_cli(
        "plan", "--rules", a, "--customers", data, "--as-of", "2026-11-22", "--out", out
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["customer_id"], r["channel"], r["estimated_cost"]) for r in rows] == [
        ("W2", "whatsapp", 0.05)  # W1 gave no consent; the channel's cost is a's
    ]
    assert f"configuration: {a / 'retentionrules.toml'}" in result.output


def test_check_and_test_take_each_project_with_its_own_configuration(run_cli, two_projects):
    a, b, _data = two_projects
    (a / "r.test.toml").write_text(
        'as_of = 2026-11-22\n[[case]]\nname = "a"\ncustomer = { whatsapp_opt_in = true }\n'
        'derived = { stage = "sleeping" }\nexpect = { rule = "chat", channel = "whatsapp" }\n'
    )
    (b / "r.test.toml").write_text(
        'as_of = 2026-11-22\n[[case]]\nname = "b"\ncustomer = { sms_opt_in = true }\n'
        'derived = { stage = "sleeping" }\nexpect = { rule = "text", channel = "sms" }\n'
    )
    checked = run_cli("check", a, b)
    assert checked.exit_code == 0, checked.output
    tested = run_cli("test", a, b, "--min-coverage", "100")
    assert tested.exit_code == 0, tested.output
    assert "2 passed, 0 failed" in tested.output


def test_the_repository_rules_and_examples_test_together_though_rule_names_collide(run_cli):
    result = run_cli("test", ROOT / "rules", ROOT / "examples", "--min-coverage", "100")
    assert result.exit_code == 0, result.output
    assert "rule coverage: 100%" in result.output


def test_a_rule_file_without_a_configuration_is_its_own_project(run_cli, tmp_path):
    """The built-in defaults are a configuration too: mixing them with a project's is refused."""
    a = write_rules(tmp_path / "a", "rule x\n  when stage = sleeping\n  then send hi\n")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "l.rules").write_text("rule y\n  when stage = lost\n  then send bye\n")
    data = write_csv(tmp_path / "c.csv", [customer("C1")])
    result = run_cli("plan", "--rules", a, "--rules", loose, "--customers", data)
    assert result.exit_code == 2 and "the built-in defaults" in result.output


def test_an_explicit_config_makes_one_project(run_cli, two_projects):
    a, b, data = two_projects
    result = run_cli(
        "plan", "--rules", a, "--rules", b, "--customers", data, "--as-of", "2026-11-22",
        "--config", a / "retentionrules.toml",
    )  # fmt: skip
    assert result.exit_code == 1  # b's sms channel is unknown under a's configuration
    assert "unknown channel `sms`" in result.output


def test_score_finds_the_configuration_from_the_current_folder_and_names_it(
    run_cli, tmp_path, monkeypatch
):
    """Not beside the customer export (a download folder), and never silently the defaults."""
    project = write_rules(tmp_path / "shop", "rule x\n  when stage = sleeping\n  then send hi\n")
    (project / "retentionrules.toml").write_text("[tiers]\nLOW = 1\nHIGH = 17\n")
    (project / "sub").mkdir()
    exports = tmp_path / "downloads"
    exports.mkdir()
    (exports / "retentionrules.toml").write_text("[tiers]\nWRONG = 1\n")
    data = write_csv(exports / "customers.csv", [customer("C1", **SLEEPING)])
    monkeypatch.chdir(project / "sub")
    result = run_cli("score", "--customers", data, "--as-of", "2026-11-22")
    assert result.exit_code == 0, result.output
    assert "configuration: " in result.output and "shop/retentionrules.toml" in result.output
    assert "LOW" in result.output and "WRONG" not in result.output
    payload = json.loads(run_cli("score", "--customers", data, "--format", "json").output)
    assert payload["config"].endswith("shop/retentionrules.toml")
    monkeypatch.chdir(tmp_path)
    defaults = run_cli("score", "--customers", data, "--as-of", "2026-11-22")
    assert "configuration: the built-in defaults" in defaults.output
    explicit = run_cli(
        "score", "--customers", data, "--config", exports / "retentionrules.toml", "-f", "json"
    )
    assert json.loads(explicit.output)["config"] == "downloads/retentionrules.toml"  # as typed




def test_diff_of_a_git_revision_reads_file_names_with_spaces_and_chinese(run_cli, tmp_path):
    repo = tmp_path / "repo"
    rules = write_rules(repo / "rules", "", WHATSAPP)
    (rules / "r.rules").unlink()
    (rules / "win back 回访.rules").write_text(
        "rule chat\n  when stage = sleeping\n  then send hello via whatsapp\n", encoding="utf-8"
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "rules")
    (rules / "win back 回访.rules").write_text(
        "rule chat\n  when stage = lost\n  then send hello via whatsapp\n", encoding="utf-8"
    )
    data = write_csv(
        tmp_path / "c.csv",
        [{**customer("W1", **SLEEPING), "whatsapp_opt_in": "true"}],
        ["customer_id", "orders_12m", "spend_12m", "total_orders", "first_order_date",
         "last_order_date", "whatsapp_opt_in"],
    )  # fmt: skip
    result = run_cli(
        "diff", f"HEAD:{rules}", rules, "--customers", data, "--as-of", "2026-11-22", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    (chat,) = json.loads(result.output)["rules"]
    assert (chat["before"], chat["after"], chat["removed"]) == (1, 0, ["W1"])


def test_diff_plans_an_old_revision_with_the_configuration_it_had(run_cli, tmp_path):
    """The old rules used a whatsapp channel that today's configuration no longer declares."""
    repo = tmp_path / "repo"
    rules = write_rules(
        repo / "rules", "rule chat\n  when stage = sleeping\n  then send hello via whatsapp\n",
        WHATSAPP,
    )  # fmt: skip
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "rules")
    (rules / "retentionrules.toml").write_text(WHATSAPP.replace("whatsapp", "wechat"))
    (rules / "r.rules").write_text(
        "rule chat\n  when stage = sleeping\n  then send hi via wechat\n"
    )
    data = write_csv(
        tmp_path / "c.csv",
        [{**customer("W1", **SLEEPING), "whatsapp_opt_in": "true", "wechat_opt_in": "true"}],
        ["customer_id", "orders_12m", "spend_12m", "total_orders", "first_order_date",
         "last_order_date", "whatsapp_opt_in", "wechat_opt_in"],
    )  # fmt: skip
    result = run_cli(
        "diff", f"HEAD:{rules}", rules, "--customers", data, "--as-of", "2026-11-22", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    (chat,) = json.loads(result.output)["rules"]
    assert (chat["before"], chat["after"]) == (1, 1)
    assert chat["cost_before"] == chat["cost_after"] == 0.05


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('timezone = "Mars/Olympus"', "unknown time zone 'Mars/Olympus'"),
        (
            '[customers]\nhousehold = ""\nbirthday = ""\n'
            '[customers.fields]\ncustomer_id = "number"',
            'declare customer_id = "string"',
        ),
    ],
)
def test_a_bad_configuration_is_caught_by_check_not_at_plan_time(
    run_cli, tmp_path, config, message
):
    rules = write_rules(tmp_path / "r", "rule x\n  when total_orders = 0\n  then tag t\n", config)
    result = run_cli("check", rules)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "internal error" not in result.output


# ---------------------------------------------------------------- review findings (issue 8)


@DEEP_TOML
def test_a_configuration_nested_thousands_deep_is_a_configuration_error_not_a_crash(
    run_cli, tmp_path, value
):
    """check, plan and score stopped with "internal error: RecursionError"."""
    rules = write_rules(tmp_path / "r", "rule x\n  when total_orders = 0\n  then tag t\n", "")
    config = rules / "retentionrules.toml"
    config.write_text(f"timezone = {value}\n")
    data = write_csv(tmp_path / "c.csv", [customer("C1")])
    for command in (
        ("check", rules),
        ("plan", "--rules", rules, "--customers", data, "--as-of", "2026-11-22"),
        ("score", "--customers", data, "--as-of", "2026-11-22", "--config", config),
    ):
        result = run_cli(*command)
        assert result.exit_code == 2, result.output[:2000]
        assert "retentionrules.toml:1:1: not readable: arrays or tables nested too deeply" in (
            result.output
        )
        assert "internal error" not in result.output and "RecursionError" not in result.output


def test_a_configuration_with_a_number_of_thousands_of_digits_is_a_configuration_error(
    run_cli, tmp_path
):
    """tomllib's int() refuses 4,300+ digits with a plain ValueError: an internal error."""
    config = "x = 1\ny = " + "9" * 5000
    rules = write_rules(tmp_path / "r", "rule x\n  when total_orders = 0\n  then tag t\n", config)
    result = run_cli("check", rules)
    assert result.exit_code == 2, result.output[:2000]
    assert "retentionrules.toml:2:5: not readable: a number with more than 4,300 digits" in (
        result.output
    )
    assert "internal error" not in result.output


def test_a_configuration_that_is_not_utf8_names_line_and_column_with_a_hint(run_cli, tmp_path):
    """It said "'utf-8' codec can't decode byte 0xc9 in position 29", with no line or hint."""
    rules = write_rules(tmp_path / "r", "rule x\n  when total_orders = 0\n  then tag t\n")
    (rules / "retentionrules.toml").write_bytes(
        '[customers.fields]\ncustomer_id = "string"\n# 城市\n'.encode("gbk")
    )
    result = run_cli("check", rules)
    assert result.exit_code == 2, result.output
    assert "retentionrules.toml:3:3: not UTF-8 text: byte 0xB3" in result.output
    assert "hint: save the file as UTF-8" in result.output
    assert "Traceback" not in result.output and "codec" not in result.output


def test_a_configuration_with_a_byte_order_mark_is_read(run_cli, tmp_path):
    rules = write_rules(
        tmp_path / "r", "rule chat\n  when stage = sleeping\n  then send hello via whatsapp\n"
    )
    (rules / "retentionrules.toml").write_bytes("\ufeff".encode() + WHATSAPP.encode())
    result = run_cli("check", rules)
    assert result.exit_code == 0, result.output  # the whatsapp channel was read


SHOP_TEST = """as_of = 2026-11-22
[[case]]
name = "{name}"
customer = {{ sms_opt_in = true }}
derived = {{ stage = "sleeping" }}
expect = {{ rule = "{rule}" }}
"""


@pytest.fixture
def shop(tmp_path):
    """A project whose rules are in shop/rules and whose tests are in shop/tests."""
    shop = tmp_path / "shop"
    write_rules(shop / "rules", "rule text\n  when stage = sleeping\n  then send hi via sms\n")
    (shop / "rules" / "retentionrules.toml").rename(shop / "retentionrules.toml")
    (shop / "tests").mkdir()
    (shop / "tests" / "shop.test.toml").write_text(SHOP_TEST.format(name="shop", rule="text"))
    return shop


def test_a_test_file_in_a_subfolder_without_rules_is_run(run_cli, shop):
    """rules/sub/x.test.toml was silently not run (exit 0): sub/ holds no rules."""
    (shop / "rules" / "sub").mkdir()
    (shop / "rules" / "sub" / "x.test.toml").write_text(
        SHOP_TEST.format(name="in a subfolder", rule="text").replace("sleeping", "lost")
    )
    result = run_cli("test", shop / "rules")
    assert result.exit_code == 1, result.output
    assert f"FAIL  {shop / 'rules' / 'sub' / 'x.test.toml'}:3  in a subfolder" in result.output
    both = run_cli("test", shop)
    assert both.exit_code == 1 and "1 passed, 1 failed" in both.output, both.output


def test_a_named_test_file_runs_against_the_rules_given_with_it(run_cli, shop):
    """`test tests/shop.test.toml` parsed the TOML as rules (47 errors)."""
    result = run_cli("test", shop / "tests" / "shop.test.toml", shop / "rules")
    assert result.exit_code == 0, result.output
    assert f"PASS  {shop / 'tests' / 'shop.test.toml'}:3  shop" in result.output
    assert "1 passed, 0 failed" in result.output


@pytest.mark.parametrize("command", ["check", "fmt", "plan"])
def test_a_test_file_given_as_rules_is_a_usage_error_that_says_what_it_is(
    run_cli, shop, tmp_path, command
):
    tests = shop / "tests" / "shop.test.toml"
    before = tests.read_bytes()
    data = write_csv(tmp_path / "c.csv", [customer("C1")])
    plan = ("plan", "--rules", tests, "--customers", data)
    result = run_cli(*(plan if command == "plan" else (command, tests)))
    assert result.exit_code == 2, result.output
    assert f"{tests}: a rule test file, not a rule file; run it with `retentionrules test`" in (
        result.output
    )
    assert "RR100" not in result.output and tests.read_bytes() == before


def test_a_test_file_whose_projects_rules_were_not_given_is_a_usage_error(
    run_cli, shop, two_projects
):
    """Run against another project's rules it would test nothing it says."""
    _a, b, _data = two_projects
    tests = shop / "tests" / "shop.test.toml"
    for args in ((tests,), (tests, b)):
        result = run_cli("test", *args)
        assert result.exit_code == 2, result.output
        assert f"no rules given for the project of {tests} (its configuration: " in result.output
        assert "give its rule files or folder too" in result.output


# ---------------------------------------------------------------- hostile file layouts


def test_a_test_file_reached_twice_runs_once(run_cli, shop, tmp_path):
    """Named twice, named beside its folder, through `..`, or through a symbolic link to the
    folder: the same file, one case."""
    tests = shop / "tests" / "shop.test.toml"
    (tmp_path / "link").symlink_to(shop, target_is_directory=True)
    for paths in (
        (shop, tests, tests),
        (shop / "rules", tests, shop / "tests" / ".." / "tests"),
        (shop, tmp_path / "link"),
    ):
        result = run_cli("test", *paths)
        assert result.exit_code == 0, result.output
        assert "1 passed, 0 failed" in result.output, paths


def test_a_symbolic_link_loop_named_like_a_rule_file_is_rr001_not_a_crash(run_cli, shop):
    (shop / "rules" / "loop.rules").symlink_to("loop.rules")
    for command in ("check", "test"):
        result = run_cli(command, shop)
        assert result.exit_code in (1, 2), result.output
        assert "loop.rules: RR001 error: cannot read: Too many levels of symbolic links" in (
            result.output
        )
        assert "internal error" not in result.output


def test_a_test_file_below_a_folder_with_its_own_configuration_belongs_to_that_project(
    run_cli, shop
):
    """tests/retentionrules.toml makes tests/ a project of its own, without rules."""
    (shop / "tests" / "retentionrules.toml").write_text("")
    result = run_cli("test", shop)
    assert result.exit_code == 2, result.output
    assert f"its configuration: {shop / 'tests' / 'retentionrules.toml'}" in result.output
