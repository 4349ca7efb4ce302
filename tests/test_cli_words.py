"""Everything the admin reads from the command line is Chinese: click's usage errors for every
command, and Jinja's syntax errors in templates."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config.loader import check_schedules

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = re.compile(r"Usage|Error|Try |Missing|Invalid|No such|Got unexpected|requires|does not|is not|Did you")
CLICK_QUOTES = re.compile(r"'[^'\s]*'|。 |\.$", re.M)  # click's 'name', a space after 。, an English full stop


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REMINDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    return CliRunner()


def said(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args))
    assert result.exit_code == 2, result.output
    assert not ENGLISH.search(result.output), result.output
    assert not CLICK_QUOTES.search(result.output.split("错误：", 1)[-1]), result.output
    return result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_answers_an_unknown_option_in_chinese(runner: CliRunner, command: str) -> None:
    output = said(runner, command, "--no-such-option")
    assert "用法：" in output and "错误：没有选项 “--no-such-option”。" in output


def test_a_missing_option_is_named_in_chinese(runner: CliRunner) -> None:
    assert "错误：缺少选项 “--by”。\n" in said(runner, "confirm", "1", "wang_fang")


def test_a_missing_argument_is_named_in_chinese(runner: CliRunner) -> None:
    assert "错误：缺少参数 “提醒标识”。\n" in said(runner, "preview")


def test_an_invalid_date_says_which_format_in_chinese(runner: CliRunner) -> None:
    output = said(runner, "preview", "study-day", "--date", "2026-13-01")
    assert "“--date” 的值无效：“2026-13-01” 不是有效的日期：日期应为 年-月-日，例如 2026-11-06。" in output
    assert "%Y" not in output


def test_a_day_that_does_not_exist_is_explained_as_a_date(runner: CliRunner) -> None:
    output = said(runner, "preview", "study-day", "--date", "2026-02-30")
    assert "日期应为 年-月-日，例如 2026-11-06" in output and "%Y" not in output


def test_a_value_out_of_range_or_not_among_the_choices_is_chinese(runner: CliRunner) -> None:
    assert "错误：“--days” 的值无效：0 不在范围" in said(runner, "upcoming", "--days", "0")
    assert ("错误：“--format” 的值无效：“xlsx” 不在可选值 “table”、“csv”、“markdown” 之中。"
            in said(runner, "report", "--format", "xlsx"))


def test_an_unknown_command_is_chinese(runner: CliRunner) -> None:
    assert "错误：没有命令 “vaildate”，是不是 “validate”？可用命令见 remindbot --help。" in said(runner, "vaildate")


def test_a_mistyped_command_or_option_gets_a_did_you_mean_in_chinese_quotes(runner: CliRunner) -> None:
    # Trial 10: “没有命令 'firee'（…）。 是不是 'fire'？”: ASCII quotes and a stray space.
    assert said(runner, "firee").endswith("错误：没有命令 “firee”，是不是 “fire”？可用命令见 remindbot --help。\n")
    assert "错误：没有选项 “--dry”，是不是 “--dry-run”？\n" in said(runner, "fire", "study-day", "--dry")
    assert ("错误：没有命令 “upgarde”，是不是 “upgrade”？可用命令见 remindbot db --help。"
            in said(runner, "db", "upgarde"))
    assert "错误：没有命令 “xyzzy”。可用命令见 remindbot --help。" in said(runner, "xyzzy")


def test_an_option_without_its_value_is_chinese(runner: CliRunner) -> None:
    assert "错误：选项 “--by” 后面要写一个值。" in said(runner, "confirm", "1", "wang_fang", "--by")


def test_help_reads_in_chinese(runner: CliRunner) -> None:
    result = runner.invoke(main, ["confirm", "--help"])
    assert result.exit_code == 0
    assert "用法：" in result.output and "[选项]" in result.output and "显示本帮助并退出" in result.output
    assert "Usage" not in result.output and "Show this message" not in result.output


@pytest.mark.parametrize("args", [["fire", "--help"], ["fire"], ["--help"]])
def test_the_usage_line_has_no_space_after_the_full_width_colon(runner: CliRunner, args: list[str]) -> None:
    output = runner.invoke(main, args).output
    assert re.search(r"^用法：\S", output, re.M), output
    assert "用法： " not in output


def test_help_headings_end_with_the_full_width_colon_like_the_usage_line(runner: CliRunner) -> None:
    output = runner.invoke(main, ["--help"]).output
    assert re.search(r"^选项：$", output, re.M) and re.search(r"^命令：$", output, re.M), output
    assert "选项:" not in output and "命令:" not in output


@pytest.mark.parametrize(("source", "words"), [
    ("{% if person %}{{ person.name }}", "{% if %} 块没有结束：缺少 {% endif %}"),
    ("{% for p in people %}{{ p.name }}{% endif %}", "这里应为 {% endfor %}"),
    ("{{ reminder.title }", "多出了 “}”"),
    ("{{ reminder.title | upcase }}", "没有名为 upcase 的过滤器"),
])
def test_a_template_syntax_error_is_a_chinese_sentence_with_the_original_in_brackets(
        tmp_path: Path, source: str, words: str) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "message_templates", templates)
    (templates / "study_day.md.j2").write_text(source + "\n", encoding="utf-8")
    _, issues = check_schedules(ROOT / "schedules", templates_dir=templates, env={})
    message = next(i.message for i in issues if "study_day" in i.message)
    assert words in message
    head, original = message.split("（", 1)[0], message.rsplit("（", 1)[1]
    assert not re.search(r"[A-Za-z]{4,}", head.replace("study_day", ""))  # English only in the brackets
    assert re.search(r"[A-Za-z]", original)


def test_a_required_option_is_marked_in_chinese(runner: CliRunner) -> None:
    result = runner.invoke(main, ["resend", "--help"])
    assert result.exit_code == 0
    assert "[必填]" in result.output and "required" not in result.output


def test_a_group_reminder_asks_the_people_mentioned_below_it(runner: CliRunner) -> None:
    result = runner.invoke(main, ["preview", "study-day", "--date", "2026-12-04"])
    assert result.exit_code == 0, result.output
    output = result.output
    asked = output.index("请以下同志在 **2026年12月9日（星期三）18:00** 前确认完成情况")
    assert output.index("<@WangFang>", asked) > asked  # the @-mentions follow the sentence (trial 9)
    assert "以上同志" not in output
