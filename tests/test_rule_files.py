"""Reading rule files: UTF-8 with or without a byte order mark, any line ends; anything else is
RR001 at the first bad byte, for every command, never an internal error or a hang."""

import os

import pytest

from .conftest import customer, write_csv, write_rules

RULES = 'rule shanghai\n  when city = "上海"\n  then send x\n'
TESTS = (
    "as_of = 2026-11-22\n\n[[case]]\n"
    'name = "shanghai"\ncustomer = { city = "上海", sms_opt_in = true, email_opt_in = true }\n'
    'expect = { rule = "shanghai" }\n'
)


@pytest.fixture
def shop(tmp_path):
    customers = write_csv(tmp_path / "c.csv", [customer("C1", city="上海")])
    return tmp_path, customers


def plan(run_cli, rules, customers):
    return run_cli("plan", "--rules", rules, "--customers", customers, "--as-of", "2026-11-22")


def test_a_byte_order_mark_is_accepted_by_check_fmt_plan_test_and_diff(shop, run_cli):
    folder, customers = shop
    rules = write_rules(folder / "rules", "")
    (rules / "r.rules").write_bytes(b"\xef\xbb\xbf" + RULES.encode())
    (rules / "r.test.toml").write_text(TESTS, encoding="utf-8")
    assert run_cli("check", rules).exit_code == 0
    assert run_cli("fmt", "--check", rules).exit_code == 0
    planned = plan(run_cli, rules, customers)
    assert planned.exit_code == 0 and "shanghai" in planned.output
    assert run_cli("test", rules).exit_code == 0
    diff = run_cli("diff", rules, rules, "--customers", customers, "--as-of", "2026-11-22")
    assert diff.exit_code == 0


def test_fmt_keeps_a_byte_order_mark_and_writes_lf_line_ends(tmp_path, run_cli):
    path = tmp_path / "r.rules"
    path.write_bytes(b"\xef\xbb\xbfrule  r\r\n  then send x\r\n  when tier=G\r\n")
    assert run_cli("fmt", "--check", path).exit_code == 1
    assert run_cli("fmt", path).exit_code == 0
    assert path.read_bytes() == b"\xef\xbb\xbfrule r\n  when tier = G\n  then send x\n"
    assert run_cli("fmt", "--check", path).exit_code == 0


def test_a_crlf_file_that_is_otherwise_canonical_is_rewritten_with_lf(tmp_path, run_cli):
    path = tmp_path / "r.rules"
    path.write_bytes(b"rule r\r\n  when tier = G\r\n  then send x\r\n")
    assert run_cli("check", path).exit_code == 0
    assert run_cli("fmt", "--check", path).exit_code == 1
    assert run_cli("fmt", path).exit_code == 0
    assert path.read_bytes() == b"rule r\n  when tier = G\n  then send x\n"


@pytest.mark.parametrize("command", ["check", "fmt", "plan"])
def test_a_gbk_file_is_not_utf8_at_its_first_bad_byte(shop, run_cli, command):
    folder, customers = shop
    rules = write_rules(folder / "rules", "")
    (rules / "r.rules").write_bytes(RULES.encode("gbk"))
    result = plan(run_cli, rules, customers) if command == "plan" else run_cli(command, rules)
    assert result.exit_code == 1
    assert f"{rules / 'r.rules'}:2:16: RR001 error: not UTF-8 text" in result.output
    assert "GBK" in result.output and "internal error" not in result.output


def test_the_column_of_a_bad_byte_counts_characters_not_bytes(tmp_path, run_cli):
    path = tmp_path / "r.rules"
    # valid UTF-8 Chinese, then GBK: the bad byte is line 2's 18th character (its 22nd byte)
    path.write_bytes('rule r\n  when city = "上海'.encode() + '北京"\n'.encode("gbk"))
    result = run_cli("check", path)
    assert result.exit_code == 1
    assert f"{path}:2:18: RR001" in result.output


def test_a_utf16_file_says_so(tmp_path, run_cli):
    path = tmp_path / "r.rules"
    path.write_bytes(RULES.encode("utf-16"))
    result = run_cli("check", path)
    assert result.exit_code == 1
    assert f"{path}:1:1: RR001" in result.output and "UTF-16" in result.output


def test_a_test_run_on_a_gbk_rule_file_is_a_broken_rule_file(shop, run_cli):
    folder, _ = shop
    rules = write_rules(folder / "rules", "")
    (rules / "r.rules").write_bytes(RULES.encode("gbk"))
    (rules / "r.test.toml").write_text(TESTS, encoding="utf-8")
    result = run_cli("test", rules)
    assert result.exit_code == 2
    assert "RR001" in result.output and "internal error" not in result.output


def test_a_fifo_named_like_a_rule_file_is_not_read(tmp_path, run_cli):
    """Reading a FIFO would wait for a writer forever."""
    write_rules(tmp_path, "when tier = G then send x  # noqa\n")
    os.mkfifo(tmp_path / "pipe.rules")
    result = run_cli("check", tmp_path)
    assert result.exit_code == 1
    assert "pipe.rules: RR001 error: cannot read: not a regular file" in result.output
