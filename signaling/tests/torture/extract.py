#!/usr/bin/env python3
"""Rebuilds the RFC 4475 torture corpus (one .dat file per message) from
the text of the RFC itself.

RFC 4475 Appendix B carries every test message bit-exact as a base64
encoded, gzip-compressed tar archive between the lines
"-- BEGIN MESSAGE ARCHIVE --" and "-- END MESSAGE ARCHIVE --". As the RFC's
own recovery recipe says, the archive is every line between those markers
that holds exactly one whitespace-free token: page footers, page headers
and form feeds (which contain spaces or are blank) fall out by themselves.

Usage:
    python3 extract.py rfc4475.txt [OUTDIR]   # OUTDIR defaults to this dir
    python3 extract.py --self-test            # checks this script's logic

Only stdlib. The RFC text must be the IETF's own published text; nothing
else is a source for the corpus.
"""

import base64
import gzip
import io
import os
import re
import sys
import tarfile

BEGIN = re.compile(r"--\s*BEGIN MESSAGE ARCHIVE\s*--")
END = re.compile(r"--\s*END MESSAGE ARCHIVE\s*--")
TOKEN_LINE = re.compile(r"^\s*\S+\s*$")
EXPECTED_COUNT = 49


def archive_bytes(rfc_text):
    """The decoded (still gzip-compressed) archive from the RFC text."""
    inside = False
    chunks = []
    found = False
    for line in rfc_text.splitlines():
        if not inside and BEGIN.search(line):
            inside = found = True
            continue
        if inside and END.search(line):
            inside = False
            break
        if inside and TOKEN_LINE.match(line) and "\f" not in line:
            chunks.append(line.strip())
    if not found:
        raise SystemExit("no '-- BEGIN MESSAGE ARCHIVE --' marker: is this RFC 4475?")
    if inside:
        raise SystemExit("archive not terminated by '-- END MESSAGE ARCHIVE --'")
    return base64.b64decode("".join(chunks), validate=True)


def messages(archive):
    """(name, bytes) of every .dat member, by base name."""
    data = archive
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            name = os.path.basename(member.name)
            if not name.endswith(".dat"):
                continue
            out.append((name, tar.extractfile(member).read()))
    return sorted(out)


def extract(rfc_path, outdir):
    with open(rfc_path, encoding="latin-1") as f:
        text = f.read()
    msgs = messages(archive_bytes(text))
    os.makedirs(outdir, exist_ok=True)
    for name, body in msgs:
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(body)
        if b"\r\n\r\n" not in body:
            # Reported, not repaired: the test decides what such a message
            # must get (a message without the blank line cannot be framed).
            print(f"note: {name} has no blank line ending its header section", file=sys.stderr)
    print(f"{len(msgs)} messages written to {outdir}")
    if len(msgs) != EXPECTED_COUNT:
        raise SystemExit(f"expected {EXPECTED_COUNT} messages, got {len(msgs)}")


def self_test():
    """Round trip through an RFC-shaped document of our own making: page
    footers, headers and form feeds inside the archive block, 72-column
    base64 lines, two members in a subdirectory."""
    members = {"torture/alpha.dat": b"OPTIONS sip:a@b SIP/2.0\r\n\r\n", "torture/beta.dat": b"\x00\xff binary\r\n"}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    b64 = base64.b64encode(gzip.compress(raw.getvalue())).decode()
    lines = [b64[i:i + 72] for i in range(0, len(b64), 72)]
    page_break = ["", "Sparks, et al.              Informational                     [Page 50]", "\f",
                  "RFC 4475                SIP Torture Test Messages               May 2006", ""]
    body = lines[:3] + page_break + lines[3:]
    doc = "\n".join(["Appendix B.  Bit-Exact Archive", "", "   -- BEGIN MESSAGE ARCHIVE --"]
                    + ["   " + l if l and l != "\f" and " " not in l else l for l in body]
                    + ["   -- END MESSAGE ARCHIVE --", "", "Authors' Addresses"])
    got = dict(messages(archive_bytes(doc)))
    want = {os.path.basename(k): v for k, v in members.items()}
    assert got == want, (got, want)
    print("self-test passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    elif len(sys.argv) in (2, 3):
        extract(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else os.path.dirname(os.path.abspath(__file__)))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
