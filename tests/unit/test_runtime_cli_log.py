"""capsa-runtime's --log, --log-format and --debug: logrus's lines, where runc puts them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from capsa.errors import InvalidArgument
from capsa.runtime.log import RuntimeLog, timestamp

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)"


def test_text_lines_in_the_file_and_the_error_plainly_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log"
    log = RuntimeLog(str(path), "text", debug=True)
    log.debug("forked")
    log.warning("limit not enforced")
    log.error('no "such" container')
    lines = path.read_text().splitlines()
    assert re.fullmatch(rf'time="{STAMP}" level=debug msg=forked', lines[0]), lines[0]
    assert re.fullmatch(rf'time="{STAMP}" level=warning msg="limit not enforced"', lines[1])
    assert lines[2].endswith(r'level=error msg="no \"such\" container"'), lines[2]
    assert capsys.readouterr().err == 'capsa-runtime: no "such" container\n'


def test_json_lines_have_level_msg_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log"
    log = RuntimeLog(str(path), "json")
    log.debug("not written: no --debug")
    log.error("bad <thing> & more")
    (line,) = path.read_text().splitlines()
    assert line.startswith('{"level":"error","msg":"bad \\u003cthing\\u003e \\u0026 more","time":"')
    assert list(json.loads(line)) == ["level", "msg", "time"]
    assert re.fullmatch(STAMP, json.loads(line)["time"])


def test_without_a_file_the_lines_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    RuntimeLog(None, "text", debug=True).debug("step")
    assert capsys.readouterr().err == "capsa-runtime: debug: step\n"
    RuntimeLog(None, "json").warning("w")
    assert json.loads(capsys.readouterr().err)["level"] == "warning"


def test_bad_format_and_unwritable_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="invalid log-format: xml"):
        RuntimeLog(None, "xml")
    with pytest.raises(InvalidArgument, match="cannot open log file"):
        RuntimeLog(str(tmp_path / "missing" / "log"))


def test_timestamp_is_rfc3339_to_the_second() -> None:
    assert re.fullmatch(STAMP, timestamp(0))
