#!/usr/bin/env python3
"""Lists the licence of every crate spectrald is built from and checks each against the
licences we accept.

    scripts/licences.py            rewrite LICENSES-THIRD-PARTY.md
    scripts/licences.py --check    exit 1 if the file is stale or a licence is not accepted

Reads `cargo metadata` (offline, from Cargo.lock). Crates reached from spectrald through
normal or build dependencies are "shipped" (in the binary or needed to build it); the rest
are only for tests and benches. Windows/macOS-only crates are left out (Linux is the only
target). The SPDX expressions are evaluated (OR: any side accepted; AND: both; WITH: the
licence before it), so "MIT OR GPL-3.0" passes and "MIT AND GPL-3.0" does not.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "LICENSES-THIRD-PARTY.md"
TARGET = "x86_64-unknown-linux-gnu"

# Permissive licences, plus file-level copyleft (MPL-2.0) whose terms a binary
# distribution meets by pointing to the crate's unchanged source.
ACCEPTED = {
    "MIT", "MIT-0", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Zlib",
    "Unicode-3.0", "Unicode-DFS-2016", "Unlicense", "CC0-1.0", "BSL-1.0", "0BSD",
    "MPL-2.0", "CDLA-Permissive-2.0", "bzip2-1.0.6",
    # libjpeg's licence (mozjpeg, through nokhwa's MJPEG decoding): permissive, asks for
    # the acknowledgement printed in NON_CRATE below.
    "IJG",
}

# Outside Cargo: what the daemon loads or tests run against.
NON_CRATE = """
## Not crates

| component | licence | how spectrald uses it |
|---|---|---|
| ONNX Runtime (`libonnxruntime.so` from PyPI's `onnxruntime` wheel) | MIT | loaded at run time (`ort` load-dynamic) |
| GStreamer and its plugins (Debian packages) | LGPL-2.1-or-later | linked dynamically through `gstreamer-rs` |
| glib / gobject (Debian packages) | LGPL-2.1-or-later | linked dynamically |
| Eclipse Mosquitto (Debian package) | EPL-2.0 / EDL-1.0 | tests only: the broker in `tests/it/mqtt_broker.rs` |
| Chromium (Debian package) | BSD-3-Clause and others | tests only: the live page test |
| Python packages of `scripts/setup.sh` (onnxruntime, numpy, pillow, jsonschema, scikit-learn) | MIT / BSD-3-Clause / HPND | tests and reference benchmarks only |
| libjpeg (in `mozjpeg-sys`, IJG licence) | IJG | this software is based in part on the work of the Independent JPEG Group |
| Models in `models/` | see each model card (`models/*.md`): weights trained here; data licences named there | shipped |
"""


def metadata():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--offline",
         "--filter-platform", TARGET],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def shipped_ids(meta):
    """Package ids reached from the root through normal and build dependencies."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    seen, todo = {root}, [root]
    while todo:
        for dep in nodes[todo.pop()]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "build"} and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
    return seen - {root}


def accepted(expression):
    """Evaluates an SPDX expression against ACCEPTED (None/empty: not accepted)."""
    if not expression:
        return False
    # Old crates write "MIT/Apache-2.0" for OR.
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.+-]+", expression.replace("/", " OR "))
    pos = 0

    def parse_binary(operator, operand, combine):
        nonlocal pos
        value = operand()
        while pos < len(tokens) and tokens[pos] == operator:
            pos += 1
            value = combine(operand(), value)
        return value

    def parse_or():
        return parse_binary("OR", parse_and, lambda a, b: a or b)

    def parse_and():
        return parse_binary("AND", parse_atom, lambda a, b: a and b)

    def parse_atom():
        nonlocal pos
        if tokens[pos] == "(":
            pos += 1
            value = parse_or()
            pos += 1  # ")"
        else:
            value = tokens[pos].removesuffix("+") in ACCEPTED
            pos += 1
        if pos < len(tokens) and tokens[pos] == "WITH":
            pos += 2  # the exception only widens what the licence allows
        return value

    return parse_or()


def self_test():
    """The expression evaluator on known cases (run with --check)."""
    cases = {
        "MIT OR GPL-3.0": True, "MIT AND GPL-3.0": False, "GPL-2.0+": False,
        "(MIT OR Apache-2.0) AND Unicode-3.0": True, "Apache-2.0 WITH LLVM-exception": True,
        "MIT/Apache-2.0": True, "": False, "(GPL-3.0 OR MIT) AND (LGPL-2.1 OR GPL-2.0)": False,
    }
    for expression, want in cases.items():
        assert accepted(expression) == want, f"{expression!r} should be {want}"


def render(meta):
    shipped = shipped_ids(meta)
    root = meta["resolve"]["root"]
    used = {n["id"] for n in meta["resolve"]["nodes"]}
    rows, refused = [], []
    for p in sorted(meta["packages"], key=lambda p: (p["name"], p["version"])):
        if p["id"] == root or p["id"] not in used:
            continue
        licence = p.get("license") or (
            f"see {p['license_file']}" if p.get("license_file") else "")
        where = "shipped" if p["id"] in shipped else "tests/benches"
        rows.append(f"| {p['name']} | {p['version']} | {licence or '(none given)'} | {where} |")
        if not accepted(p.get("license")):
            refused.append(f"{p['name']} {p['version']}: {licence or 'no licence given'}")
    text = (
        "# Third-party licences\n\n"
        "Generated by `scripts/licences.py` from Cargo.lock (Linux target); "
        "`scripts/licences.py --check` runs in the test suite and fails when a crate's "
        "licence is not one we accept or this file is stale.\n\n"
        f"Accepted: {', '.join(sorted(ACCEPTED))}.\n\n"
        f"## Crates ({len(rows)}; {sum('| shipped |' in r for r in rows)} shipped)\n\n"
        "| crate | version | licence | used in |\n|---|---|---|---|\n"
        + "\n".join(rows) + "\n" + NON_CRATE
    )
    return text, refused


def main():
    text, refused = render(metadata())
    if refused:
        print("licences not accepted (add to ACCEPTED only after reading them):",
              *refused, sep="\n  ", file=sys.stderr)
    if "--check" in sys.argv:
        self_test()
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT.name} is stale: run scripts/licences.py and commit it", file=sys.stderr)
            sys.exit(1)
        sys.exit(1 if refused else 0)
    OUT.write_text(text)
    print(f"wrote {OUT.name}")
    sys.exit(1 if refused else 0)


if __name__ == "__main__":
    main()
