"""Generate the Unicode tables the tokenizer's normalizers and pre-tokenizers need.

Usage: python tools/gen_unicode_tables.py OUT.inc

Writes a C++ fragment (included by cpp/tokenizer/unicode.cpp) holding one sorted table of
code point ranges. Each range starts at `first` and runs up to the next entry's `first`; all
its code points share the same flag bits:

    letter (L*), number (N*), mark (M*), punct (P*), symbol (S*), separator (Z*),
    control (Cc, Cf, Cs, Co), unassigned (Cn), whitespace (the Unicode White_Space property,
    which is what `\\s` means in the GPT-2 regex as run by Oniguruma/Rust and llama.cpp),
    nonspacing mark (Mn: what BERT's accent stripping drops after NFD).

Three more tables serve the normalizers (BERT's lowercase + strip accents):
    kNfdMap       canonical decomposition (NFD) of every code point that has one, except the
                  Hangul syllables (decomposed arithmetically in C++);
    kCccRanges    canonical combining class (for NFD's canonical ordering of marks);
    kLowerMap     the full lowercase mapping of a single code point (str.lower() on one
                  character: no context, so U+03A3 always becomes U+03C3, as Rust's
                  char::to_lowercase does).
Mapping tables are sorted by code point and point into one shared array of code points.

The data comes from this Python's `unicodedata`, so the Unicode version is the interpreter's;
it is recorded in the output.
"""

from __future__ import annotations

import sys
import unicodedata

FLAG_BITS = {
    "letter": 0x001,
    "number": 0x002,
    "mark": 0x004,
    "punct": 0x008,
    "symbol": 0x010,
    "separator": 0x020,
    "control": 0x040,
    "unassigned": 0x080,
    "whitespace": 0x100,
    "nonspacing": 0x200,
}

CATEGORY_GROUP = {
    "L": "letter",
    "N": "number",
    "M": "mark",
    "P": "punct",
    "S": "symbol",
    "Z": "separator",
}

# str.isspace() is true for characters of bidirectional class WS, B or S, and for Zs. That set is
# the White_Space property plus U+001C..U+001F (information separators), which White_Space
# excludes; \s in Oniguruma, Rust regex and llama.cpp follows White_Space.
NOT_WHITE_SPACE = {0x1C, 0x1D, 0x1E, 0x1F}
# The White_Space property as listed in PropList.txt (stable since Unicode 6.3). Checked against
# what unicodedata gives, so a Python with different data fails loudly instead of drifting.
WHITE_SPACE = (
    set(range(0x09, 0x0E))
    | {0x20, 0x85, 0xA0, 0x1680}
    | set(range(0x2000, 0x200B))
    | {0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
)

MAX_CODE_POINT = 0x10FFFF


def flags_of(cp: int) -> int:
    ch = chr(cp)
    cat = unicodedata.category(ch)
    if cat == "Cn":
        f = FLAG_BITS["unassigned"]
    elif cat[0] == "C":
        f = FLAG_BITS["control"]
    else:
        f = FLAG_BITS[CATEGORY_GROUP[cat[0]]]
    if ch.isspace() and cp not in NOT_WHITE_SPACE:
        f |= FLAG_BITS["whitespace"]
    if cat == "Mn":
        f |= FLAG_BITS["nonspacing"]
    return f


def build_ranges() -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    prev = None
    for cp in range(MAX_CODE_POINT + 1):
        f = flags_of(cp)
        if f != prev:
            ranges.append((cp, f))
            prev = f
    return ranges


def check_white_space() -> None:
    found = {cp for cp in range(MAX_CODE_POINT + 1) if flags_of(cp) & FLAG_BITS["whitespace"]}
    if found != WHITE_SPACE:
        extra = sorted(found - WHITE_SPACE)
        missing = sorted(WHITE_SPACE - found)
        raise SystemExit(
            f"White_Space mismatch: extra {[hex(c) for c in extra]}, missing {[hex(c) for c in missing]}"
        )


HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
SURROGATES = range(0xD800, 0xE000)


def build_mappings() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(code point, NFD) and (code point, lowercase) for every code point the mapping changes."""
    nfd, lower = [], []
    for cp in range(MAX_CODE_POINT + 1):
        if cp in SURROGATES:
            continue
        ch = chr(cp)
        d = unicodedata.normalize("NFD", ch)
        if d != ch and not HANGUL_FIRST <= cp <= HANGUL_LAST:
            nfd.append((cp, d))
        low = ch.lower()
        if low != ch:
            lower.append((cp, low))
    return nfd, lower


def build_ccc_ranges() -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    prev = None
    for cp in range(MAX_CODE_POINT + 1):
        c = 0 if cp in SURROGATES else unicodedata.combining(chr(cp))
        if c != prev:
            ranges.append((cp, c))
            prev = c
    return ranges


def render_mapping(name: str, entries: list[tuple[int, str]], data: list[int]) -> list[str]:
    """{code point, offset into kMapData, length}; appends the mapped code points to data."""
    lines = [f"static const UnicodeMapping {name}[] = {{"]
    row: list[str] = []
    for cp, text in entries:
        row.append(f"{{0x{cp:05x}, {len(data)}, {len(text)}}}")
        data.extend(ord(c) for c in text)
        if len(row) == 6:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("};")
    return lines


def render_tables() -> str:
    nfd, lower = build_mappings()
    data: list[int] = []
    lines = ["// {code point, offset into kMapData, number of code points}, sorted by code point."]
    lines += render_mapping("kNfdMap", nfd, data)
    lines += render_mapping("kLowerMap", lower, data)
    lines.append(f"static const uint32_t kMapData[{len(data)}] = {{")
    for k in range(0, len(data), 10):
        lines.append("    " + ", ".join(f"0x{c:05x}" for c in data[k : k + 10]) + ",")
    lines.append("};")
    lines.append("// {first code point of the range, canonical combining class}.")
    lines.append("static const CombiningClassRange kCccRanges[] = {")
    row: list[str] = []
    for first, c in build_ccc_ranges():
        row.append(f"{{0x{first:05x}, {c}}}")
        if len(row) == 8:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("};")
    return "\n".join(lines) + "\n"


def render(ranges: list[tuple[int, int]]) -> str:
    lines = [
        "// Generated by tools/gen_unicode_tables.py from Python's unicodedata; do not edit.",
        f"// Unicode {unicodedata.unidata_version}; {len(ranges)} ranges.",
        f'static const char kUnicodeVersion[] = "{unicodedata.unidata_version}";',
    ]
    for name, bit in FLAG_BITS.items():
        lines.append(f"static constexpr uint16_t kGen{name.capitalize()} = 0x{bit:03x};")
    lines.append("// {first code point of the range, flags}; a range ends where the next begins.")
    lines.append("static const UnicodeRange kUnicodeRanges[] = {")
    row: list[str] = []
    for first, f in ranges:
        row.append(f"{{0x{first:05x}, 0x{f:03x}}}")
        if len(row) == 6:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("};")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    check_white_space()
    text = render(build_ranges()) + render_tables()
    with open(argv[1], "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
