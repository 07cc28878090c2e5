"""Check that a command was refused the way gensis promises: one line, exit 2, nothing changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gensis.cli import main
from gensis.runtime.lock import LOCK_NAME  # a run folder's lock holds no data: see runtime/lock.py


def digest(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (to prove nothing was touched)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "cache" not in p.parts and p.name != LOCK_NAME
    }


def assert_refused(world: dict, capsys, out: Path, argv: str, fragment: str) -> str:
    """Run ``gensis <argv>`` (placeholders from ``world`` and ``out``); returns the message."""
    before = digest(world["root"])
    code = main([a.format(**world, out=out) for a in argv.split()] + ["-q"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("gensis: error: ") and fragment.format(**world) in lines[0], lines[0]
    assert digest(world["root"]) == before
    assert not out.exists()
    return lines[0]
