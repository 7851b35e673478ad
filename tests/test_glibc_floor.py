"""build/glibc_floor.py reads the glibc versions ELF files need as binutils does.

Its ELF parsing is compared with `objdump -T` on real files of this machine
(the Python running the tests, its libpython or _ssl module, ls), and its
verdict with a floor below and above what those files need.
"""

from __future__ import annotations

import _ssl
import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("glibc_floor", ROOT / "build" / "glibc_floor.py")
assert spec and spec.loader
glibc_floor = importlib.util.module_from_spec(spec)
sys.modules["glibc_floor"] = glibc_floor  # dataclasses look the module up by name
spec.loader.exec_module(glibc_floor)

OBJDUMP = shutil.which("objdump")


def real_elf_files() -> list[Path]:
    files = [Path(sys.executable).resolve(), Path(_ssl.__file__), Path("/bin/ls").resolve()]
    libdir = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("INSTSONAME")
    if libdir and library and (Path(libdir) / library).is_file():
        files.append(Path(libdir) / library)
    return [f for f in files if f.is_file() and f.read_bytes()[:4] == b"\x7fELF"]


def objdump_needs(path: Path) -> set[tuple[str, str]]:
    """(version, symbol) of each undefined GLIBC_ symbol, as objdump -T prints them."""
    out = subprocess.run(
        [OBJDUMP, "-T", str(path)], capture_output=True, text=True, check=True
    ).stdout
    found = set()
    for line in out.splitlines():
        match = re.search(r"\*UND\*\s+\S+\s+(?:\((GLIBC_[\w.]+)\)|(GLIBC_[\w.]+))\s+(\S+)$", line)
        if match:
            found.add((match.group(1) or match.group(2), match.group(3)))
    return found


@pytest.mark.skipif(OBJDUMP is None, reason="needs objdump (binutils) to compare with")
@pytest.mark.parametrize("path", real_elf_files(), ids=lambda p: p.name)
def test_versions_and_symbols_match_objdump(path: Path) -> None:
    needs = glibc_floor.glibc_needs(path.name, path.read_bytes())
    ours = {(version, symbol) for version, symbols in needs.versions.items() for symbol in symbols}
    theirs = objdump_needs(path)
    assert theirs, f"objdump found no GLIBC_ symbols in {path}"
    assert ours == theirs, f"only ours: {ours - theirs}, only objdump's: {theirs - ours}"


def test_a_floor_below_what_a_file_needs_fails(capsys: pytest.CaptureFixture[str]) -> None:
    files = [glibc_floor.glibc_needs(p.name, p.read_bytes()) for p in real_elf_files()]
    newest = max(n.highest() for n in files)
    newest_text = ".".join(map(str, newest))
    below = f"{newest[0]}.{newest[1] - 1}"

    assert glibc_floor.report(files, below) == 1
    out = capsys.readouterr().out
    assert f"highest: GLIBC_{newest_text} needed by" in out
    assert f"FAIL: above the floor GLIBC_{below}" in out

    assert glibc_floor.report(files, newest_text) == 0
    assert f"ok: every file runs on glibc {newest_text} or newer" in capsys.readouterr().out


def test_a_file_without_section_headers_is_refused_not_guessed() -> None:
    data = bytearray(Path(sys.executable).resolve().read_bytes()[:64])
    data[0x3C:0x3E] = b"\0\0"  # e_shnum = 0
    with pytest.raises(ValueError, match="no section headers"):
        glibc_floor.glibc_needs("headless", bytes(data))
