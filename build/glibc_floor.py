"""The newest glibc that a PyInstaller one-file executable needs, read from its files.

    python build/glibc_floor.py [--max 2.31] dist/mininq

Reads the bootloader (the executable itself) and every ELF file bundled in its
archive (libpython, extension modules, OpenSSL, SQLite, ...), takes the GLIBC_x.y
versions each one's .gnu.version_r section asks for (the versions the dynamic
linker checks at load time, as `objdump -T` shows them), and prints the highest
one, which file needs it and for which symbols. With --max it exits 1 when any
file needs a newer version (or GLIBC_PRIVATE, which ties a file to one glibc build).

Needs PyInstaller (for its archive reader) and nothing else: the ELF sections
are parsed here, so no binutils are needed on the machine that checks.
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

SHT_DYNSYM = 11
SHT_GNU_VERNEED = 0x6FFFFFFE
SHT_GNU_VERSYM = 0x6FFFFFFF
ELF_MAGIC = b"\x7fELF"


@dataclass
class Needs:
    """The glibc versions one ELF file needs, each with the symbols asking for it."""

    name: str
    versions: dict[str, list[str]] = field(default_factory=dict)

    def highest(self) -> tuple[int, ...] | None:
        numbers = [version_key(v) for v in self.versions if v != "GLIBC_PRIVATE"]
        return max(numbers, default=None)


def version_key(name: str) -> tuple[int, ...]:
    """GLIBC_2.31 -> (2, 31), for comparing versions as numbers."""
    return tuple(int(part) for part in name.removeprefix("GLIBC_").split("."))


def glibc_needs(name: str, data: bytes) -> Needs:
    """Parse one ELF file's version-needs (.gnu.version_r) and the symbols behind them."""
    if data[:4] != ELF_MAGIC:
        raise ValueError(f"{name}: not an ELF file")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        section_format = end + "IIQQQQIIQQ"
        symbol_format, symbol_size = end + "IBBHQQ", 24
    else:
        (shoff,) = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
        section_format = end + "IIIIIIIIII"
        symbol_format, symbol_size = end + "IIIBBH", 16
    if shnum == 0:
        raise ValueError(f"{name}: no section headers, its version needs can't be read")
    sections = [
        struct.unpack_from(section_format, data, shoff + i * shentsize) for i in range(shnum)
    ]
    # (type, offset, size, link, info) of each section
    sections = [(s[1], s[4], s[5], s[6], s[7]) for s in sections]

    def string(table: int, offset: int) -> str:
        start = sections[table][1] + offset
        return data[start : data.index(b"\0", start)].decode()

    needs = Needs(name)
    index_to_version: dict[int, str] = {}
    for sh_type, offset, _size, link, info in sections:
        if sh_type != SHT_GNU_VERNEED:
            continue
        entry = offset
        for _ in range(info):
            _ver, count, _file, aux, next_entry = struct.unpack_from(end + "HHIII", data, entry)
            aux_entry = entry + aux
            for _ in range(count):
                _hash, _flags, other, vname, next_aux = struct.unpack_from(
                    end + "IHHII", data, aux_entry
                )
                version = string(link, vname)
                if version.startswith("GLIBC_"):
                    needs.versions.setdefault(version, [])
                    index_to_version[other] = version
                aux_entry += next_aux
            if not next_entry:
                break
            entry += next_entry

    # Which undefined symbols ask for each version (.gnu.version pairs with .dynsym).
    dynsym = next((s for s in sections if s[0] == SHT_DYNSYM), None)
    versym = next((s for s in sections if s[0] == SHT_GNU_VERSYM), None)
    if dynsym and versym:
        _t, sym_offset, sym_size, sym_strings, _i = dynsym
        for i in range(sym_size // symbol_size):
            fields = struct.unpack_from(symbol_format, data, sym_offset + i * symbol_size)
            st_name, st_shndx = fields[0], fields[3] if is64 else fields[5]
            (index,) = struct.unpack_from(end + "H", data, versym[1] + 2 * i)
            version = index_to_version.get(index & 0x7FFF)
            if version and st_shndx == 0:
                needs.versions[version].append(string(sym_strings, st_name))
    return needs


def bundled_files(executable: Path) -> list[tuple[str, bytes]]:
    """The bootloader and every ELF file in the one-file archive."""
    from PyInstaller.archive.readers import CArchiveReader

    files = [(f"{executable.name} (bootloader)", executable.read_bytes())]
    archive = CArchiveReader(str(executable))
    for name in sorted(archive.toc):
        data = archive.extract(name)
        if data and data[:4] == ELF_MAGIC:
            files.append((name, data))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("executable", type=Path)
    parser.add_argument("--max", metavar="X.Y", help="fail when any file needs a newer glibc")
    parser.add_argument("--all", action="store_true", help="list every file's highest version")
    args = parser.parse_args(argv)

    results = [glibc_needs(name, data) for name, data in bundled_files(args.executable)]
    print(f"{len(results)} ELF files checked (the bootloader and the bundled ones)")
    return report(results, args.max, show_all=args.all)


def report(results: list[Needs], floor: str | None, show_all: bool = False) -> int:
    """Print the files needing the newest glibc; 1 when any is above `floor` (X.Y)."""
    ranked = sorted(results, key=lambda n: n.highest() or (), reverse=True)
    for needs in ranked if show_all else ranked[:5]:
        top = needs.highest()
        label = "GLIBC_" + ".".join(map(str, top)) if top else "no versioned glibc symbols"
        print(f"  {label:<16} {needs.name}")
    worst = ranked[0]
    top = worst.highest()
    if top is None:
        print("highest: none (no file asks for a GLIBC_ version)")
        return 0
    highest = "GLIBC_" + ".".join(map(str, top))
    symbols = ", ".join(sorted(set(worst.versions[highest]))) or "(version only)"
    print(f"highest: {highest} needed by {worst.name}: {symbols}")

    failed = False
    private = [n.name for n in results if "GLIBC_PRIVATE" in n.versions]
    if private:
        print(f"GLIBC_PRIVATE needed by {', '.join(private)}: tied to one glibc build")
        failed = True
    if floor and top > version_key(floor):
        over = [n.name for n in results if (n.highest() or ()) > version_key(floor)]
        print(f"FAIL: above the floor GLIBC_{floor}: {', '.join(over)}")
        failed = True
    elif floor:
        print(f"ok: every file runs on glibc {floor} or newer")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
