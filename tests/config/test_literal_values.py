"""``key=value`` values are taken literally: a path is text, not YAML (issue 24, item 5)."""

from __future__ import annotations

import pytest

from gensis.cli import _parse, main
from gensis.config.overrides import parse_overrides, parse_value


@pytest.mark.parametrize(
    "raw, value",
    [
        ("/x/run #1", "/x/run #1"),  # YAML would cut at the comment: /x/run
        ("a\nb", "a\nb"),  # YAML would fold the newline into a space
        ("0.1 #note", "0.1 #note"),  # not silently 0.1: the key's validation names it
        ("  padded ", "  padded "),
        ("x: y", "x: y"),  # YAML would make a mapping of it
        ("0.5", 0.5),
        ("3", 3),
        ("true", True),
        ("null", None),
        ("[0.2, 1]", [0.2, 1]),
        ("", ""),
        ("{patch_size: 4}", {"patch_size": 4}),
        ("'quoted #1'", "quoted #1"),  # quotes ask for YAML's string
    ],
)
def test_values(raw, value) -> None:
    assert parse_value(raw) == value
    assert parse_overrides([f"k={raw}"]) == {"k": value}


def test_settings_after_a_flag_are_settings(tmp_path) -> None:
    before = _parse(["pretrain", "out=a #1", "train.epochs=2", "--resume"])
    after = _parse(["pretrain", "--resume", "out=a #1", "train.epochs=2"])
    mixed = _parse(["pretrain", "out=a #1", "--resume", "train.epochs=2"])
    assert before.settings == after.settings == mixed.settings == ["out=a #1", "train.epochs=2"]
    assert before.resume and after.resume and mixed.resume


def test_an_unknown_flag_is_still_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(["pretrain", "out=x", "--frobnicate"])
    assert exc.value.code == 2 and "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_a_config_file_that_is_not_utf8_gets_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("out: caf\xe9\n".encode("latin-1"))
    code = main(["pretrain", "-q", "--config", str(bad)])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == f"gensis: error: {bad}: not UTF-8 text (byte 8); save the config as UTF-8"
