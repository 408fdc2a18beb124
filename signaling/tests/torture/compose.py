#!/usr/bin/env python3
"""Writes sipbridge's RFC 4475 torture corpus: one NAME.dat per message.

Every message here was written for sipbridge after the description of the
RFC 4475 section with the same short name: it exercises the same parser
corner (folding, compact forms, escaping, overlarge scalars, bad
Content-Length, mismatched CSeq, ...) but it is NOT the RFC's bit-exact
Appendix B text. `extract.py` in this directory replaces these files with
the RFC's own archive when the RFC text is available.

Usage:
    python3 compose.py [OUTDIR]   # OUTDIR defaults to this directory

Lines are joined with CRLF. Where a message is meant to be valid, its
Content-Length is computed from the body (the `{CL}` placeholder); where
the Content-Length itself is the defect, it is written out literally.
Only stdlib; the output is deterministic.
"""

import os
import sys

CRLF = b"\r\n"

SDP = [
    "v=0",
    "o=tester 2890844526 2890844526 IN IP4 192.0.2.10",
    "s=-",
    "c=IN IP4 192.0.2.10",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0 8",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
]


def sdp(host="192.0.2.10"):
    return CRLF.join(l.replace("192.0.2.10", host).encode() for l in SDP) + CRLF


def msg(lines, body=b""):
    """Start line + header lines (str or bytes), blank line, body; `{CL}`
    in a header line becomes the body's length."""
    out = []
    for l in lines:
        b = l.encode("utf-8") if isinstance(l, str) else l
        out.append(b.replace(b"{CL}", str(len(body)).encode()))
    return CRLF.join(out) + CRLF + CRLF + body


M = {}

# --- 3.1.1 valid messages -------------------------------------------------

# 3.1.1.1 A short tortuous INVITE: odd case in header names, LWS before the
# colon, folding almost everywhere (inside Via, CSeq, Contact parameters),
# an escaped quote and backslash in a display name, leading zeros, an empty
# Subject, unknown header fields (one folded, one made of separators only),
# compact forms, several Via values in one field. The To carries a tag, so
# a user agent treats it as a request inside a dialog it does not know.
M["wsinv"] = msg([
    "INVITE sip:carol.w@torture.example.net;oddparam SIP/2.0",
    "tO   :",
    " sip:carol.w@torture.example.net ;   tag    = 41f09cc1",
    'fROM   : "Dan \\"the Tester\\\\\\""      <sip:dan@example.org>',
    "  ;",
    "  tag =  a77b3e",
    "mAX-fORWARDS: 00070",
    "Call-ID: wsinv.c41a9e77@192.0.2.31",
    "Content-Length   : {CL}",
    "cseq: 00042",
    "  INVITE",
    "Via  : SIP  /   2.0",
    " /UDP",
    "    192.0.2.31;rport;branch=legacy7731x",
    "s  :",
    "X-Folded-Unknown:   first part of a value",
    " second part of the same value",
    "X-Separators-Only: ,;;,;,,;",
    "c: application/sdp",
    "Route:",
    " <sip:edge.example.org;lr;knownless=val;valueless>",
    "v:  SIP  / 2.0  / TCP     relay.example.org   ;",
    "  branch  =   z9hG4bKrelay61  ,",
    " SIP  /    2.0   / UDP  198.51.100.7   ; branch=",
    " z9hG4bKfar0098",
    'm:"Quoted \\"inner\\" name" <sip:dan@example.org> ; fresh =',
    "      value1 ;",
    "  another ; q = 0.5",
], sdp("192.0.2.31"))

# 3.1.1.2 A wide range of valid characters: every token character in the
# method (unknown, so 501), a Request-URI whose user and password use the
# whole unreserved/user-unreserved set (including '?' and '/' before the
# '@'), quoted-pairs of control characters in a display name, a display
# name of several odd tokens, a Call-ID of word characters, an extension
# header whose name is all token characters and whose value is UTF-8.
METH = "~Odd.Method_0123456789-*+`%!'~"
M["intmeth"] = msg([
    METH + " sip:w1ld_user.NAME~(is!ok)&so'is+this$/and?,/;;*:&a+b=2,more!*pa$sw~rd_(yes.it-is)@torture.example.net SIP/2.0",
    "Via: SIP/2.0/TCP host9.example.net;branch=z9hG4bK-.!%77*_+`'~",
    b'To: "Ctl:\\\x07 nul:\\\x00 del:\\\x7f" <sip:1_weird~name.(ok)&it+is$=fine@torture.example.net>',
    "From: tok~en1 ONE'two`three+*%!-. <sip:plain@example.org>;tag=t~a'g`*+%!-._1",
    "Call-ID: intm.3f~`!%*_+-'()<>:\\\"/[]?{}@host~`!%*_+-.'()<>:\\\"/[]?{}",
    "CSeq: 4096 " + METH,
    "Max-Forwards: 255",
    "X-Ext.Name!%*+_`'~: \u00d7\u00fc\u20ac \u2713 val\u00f6r \u304a\u306f\u3088\u3046",
    "Content-Length: {CL}",
])

# 3.1.1.3 Valid %-escaping: escaped ':' and '@' in the user part of the
# Request-URI and To, escaped spaces in From, escaped characters in a
# Contact's user part, parameter names and values (one value escaping '%').
M["esc01"] = msg([
    "INVITE sip:sips%3Acarol%40example.org@torture.example.net SIP/2.0",
    "To: sip:sips%3Acarol%40example.org@torture.example.net",
    "From: <sip:here%20are%20spaces@example.org>;tag=e5c01",
    "Max-Forwards: 70",
    "Call-ID: esc01.84bd2a01@192.0.2.8",
    "CSeq: 7 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.8;branch=z9hG4bKesc01a",
    "Contact: <sip:d%61n@192.0.2.8;%6C%72;sp%65cial=v%61l%25%34%31>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.8"))

# 3.1.1.4 Escaped NULs in URIs (%00 in user parts of To, From, Contact).
M["escnull"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "To: sip:zero-%00-byte@torture.example.net",
    "From: sip:zero-%00-byte@torture.example.net;tag=n0ll9",
    "Call-ID: escnull.7de2b0c3@192.0.2.12",
    "Max-Forwards: 70",
    "CSeq: 11 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.12;branch=z9hG4bKescnull1",
    "Contact: <sip:%00@192.0.2.12>",
    "Contact: <sip:%00%00%00@192.0.2.12>",
    "L:{CL}",
])

# 3.1.1.5 An escaped method name is not the method it decodes to: an
# unknown method (501), CSeq spelled the same way.
M["esc02"] = msg([
    "IN%56IT%45 sip:carol@torture.example.net SIP/2.0",
    "To: <sip:carol@torture.example.net>",
    "From: <sip:dan@example.org>;tag=e02x7",
    "Max-Forwards: 70",
    "Call-ID: esc02.5513aa@192.0.2.13",
    "CSeq: 3 IN%56IT%45",
    "Via: SIP/2.0/UDP 192.0.2.13;branch=z9hG4bKesc02",
    "Contact: <sip:dan@192.0.2.13>",
    "l: {CL}",
])

# 3.1.1.6 No LWS between a token display name and '<'.
M["lwsdisp"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: tester<sip:tester@example.org>;tag=ld8812",
    "Max-Forwards: 70",
    "Call-ID: lwsdisp.0cf7e1@192.0.2.14",
    "CSeq: 2 OPTIONS",
    "Via: SIP/2.0/UDP 192.0.2.14;branch=z9hG4bKlwsdisp",
    "l: {CL}",
])


# 3.1.1.7 Long values everywhere: a long display name and long URI
# parameter names/values in To, long header parameters and a very long tag
# in From, a long Call-ID, a long branch, many Via fields, a long unknown
# header, a long Contact user part. Valid; a new call.
def longreq():
    word = "torturously"
    long_dn = " ".join(["A display name that goes on and on"] * 8)
    long_pname = "param" + word * 12
    long_pval = "value" + word * 20
    long_tag = "tag" + "0123456789abcdef" * 40
    long_callid = "longreq." + ("k7" + word) * 40 + "@192.0.2.15"
    long_branch = "z9hG4bK" + ("lb" + word) * 25
    vias = [f"Via: SIP/2.0/UDP hop{i}.example.net;branch=z9hG4bKhop{i:02d}" for i in range(1, 33)]
    long_user = "u" + word * 30
    return msg([
        "INVITE sip:carol@torture.example.net SIP/2.0",
        f'To: "{long_dn}" <sip:carol@torture.example.net;{long_pname}={long_pval}>',
        f"From: sip:dan@example.org;{long_pname}={long_pval};tag={long_tag}",
        f"Call-ID: {long_callid}",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
        f"Via: SIP/2.0/UDP 192.0.2.15;branch={long_branch}",
        *vias,
        "X-Unknown-Long-Header: " + ("this value keeps going " * 60).strip(),
        f"Contact: <sip:{long_user}@192.0.2.15>",
        "Content-Type: application/sdp",
        "Content-Length: {CL}",
    ], sdp("192.0.2.15"))


M["longreq"] = longreq()

# 3.1.1.8 Extra octets after the message in a UDP datagram: a complete
# REGISTER with Content-Length 0, followed by a whole INVITE that must be
# ignored.
M["dblreq"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "To: sip:dan@torture.example.net",
    "From: sip:dan@torture.example.net;tag=dbl81",
    "Max-Forwards: 70",
    "Call-ID: dblreq.a9933e@192.0.2.16",
    "CSeq: 5 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.16;branch=z9hG4bKdblreq1",
    "Contact: <sip:dan@192.0.2.16>",
    "Content-Length: 0",
]) + msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@torture.example.net;tag=dbl82",
    "Max-Forwards: 70",
    "Call-ID: dblreq.a9933e.trailing@192.0.2.16",
    "CSeq: 6 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.16;branch=z9hG4bKdblreq2",
    "Contact: <sip:dan@192.0.2.16>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.16"))

# 3.1.1.9 Semicolon-separated parameters inside the user part of the
# Request-URI (with an escaped '@' in a value).
M["semiuri"] = msg([
    "OPTIONS sip:carol;ctx=v%40example.net;flag@torture.example.net SIP/2.0",
    "To: <sip:carol;ctx=v%40example.net;flag@torture.example.net>",
    "From: <sip:dan@example.org>;tag=se27",
    "Call-ID: semiuri.03d8c2@192.0.2.17",
    "CSeq: 9 OPTIONS",
    "Via: SIP/2.0/UDP 192.0.2.17;branch=z9hG4bKsemiuri",
    "Max-Forwards: 70",
    "l: {CL}",
])

# 3.1.1.10 Via transports: known (UDP, TCP, TLS, SCTP) and unknown ones.
M["transports"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: <sip:dan@example.org>;tag=tr7731",
    "Call-ID: transports.11ab9f@192.0.2.18",
    "CSeq: 1 OPTIONS",
    "Via: SIP/2.0/UDP t1.example.org;branch=z9hG4bKtransp1",
    "Via: SIP/2.0/SCTP t2.example.org;branch=z9hG4bKtransp2",
    "Via: SIP/2.0/TLS t3.example.org;branch=z9hG4bKtransp3",
    "Via: SIP/2.0/WHATEVERNET t4.example.org;branch=z9hG4bKtransp4",
    "Via: SIP/2.0/TCP t5.example.org;branch=z9hG4bKtransp5",
    "Max-Forwards: 70",
    "Contact: <sip:dan@t1.example.org>",
    "Content-Length: {CL}",
])


# 3.1.1.11 A multipart/mixed body whose second part is binary and holds
# NUL octets (and a CRLF CRLF); framing must come from Content-Length.
def mpart01():
    boundary = "b0und4ry-71c3e9"
    binary = bytes((i * 37 + 11) % 256 for i in range(96)) + b"\x00\x00\r\n\r\n\x00" + bytes(range(0, 32))
    body = CRLF.join([
        b"--" + boundary.encode(),
        b"Content-Type: text/plain;charset=us-ascii",
        b"Content-Transfer-Encoding: binary",
        b"",
        b"A short text part before the binary one.",
        b"--" + boundary.encode(),
        b"Content-Type: application/octet-stream",
        b"Content-Transfer-Encoding: binary",
        b"",
        binary,
        b"--" + boundary.encode() + b"--",
        b"",
    ])
    return msg([
        "MESSAGE sip:carol@torture.example.net SIP/2.0",
        "To: <sip:carol@torture.example.net>",
        "From: <sip:dan@example.org>;tag=mp01q",
        "Call-ID: mpart01.6b1d42@192.0.2.19",
        "CSeq: 21 MESSAGE",
        "Via: SIP/2.0/UDP 192.0.2.19;branch=z9hG4bKmpart01",
        "Max-Forwards: 70",
        "Date: Wed, 07 Jun 2006 10:15:00 GMT",
        f"Content-Type: multipart/mixed;boundary={boundary}",
        "Content-Length: {CL}",
    ], body)


M["mpart01"] = mpart01()

# 3.1.1.12 A response with an unusual reason phrase: UTF-8, punctuation,
# digits and operators.
M["unreason"] = msg([
    "SIP/2.0 200 \u00c7a marche \u2014 \u4e00\u5207\u90fd\u597d; 6 \u00d7 7 = 42, \u00bfs\u00ed? \u0441\u043f\u0430\u0441\u0438\u0431\u043e!",
    "Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKunreason",
    "Call-ID: unreason.f00d42@192.0.2.20",
    "CSeq: 300 INVITE",
    "From: <sip:dan@example.org>;tag=ur881",
    "To: <sip:carol@torture.example.net>;tag=ur992",
    "Contact: <sip:carol@192.0.2.21>",
    "Content-Type: application/sdp",
    "l: {CL}",
], sdp("192.0.2.21"))

# 3.1.1.13 A response with an empty reason phrase (the SP before it stays).
M["noreason"] = msg([
    "SIP/2.0 100 ",
    "Via: SIP/2.0/UDP 192.0.2.22;branch=z9hG4bKnoreason",
    "Call-ID: noreason.4c21@192.0.2.22",
    "CSeq: 88 INVITE",
    "From: <sip:dan@example.org>;tag=nr41",
    "To: <sip:carol@torture.example.net>",
    "Content-Length: {CL}",
])

# --- 3.1.2 invalid messages -----------------------------------------------

# 3.1.2.1 Extraneous separators: empty parameters and empty list elements
# in Via and Contact.
M["badinv01"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=bi01",
    "Max-Forwards: 70",
    "Call-ID: badinv01.33c1@192.0.2.23",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.23;;,;,,",
    'Contact: "Dan" <sip:dan@192.0.2.23>;;;;,;',
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.23"))

# 3.1.2.2 Content-Length larger than the message.
M["clerr"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "Max-Forwards: 70",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=ce77",
    "Call-ID: clerr.98a1@192.0.2.24",
    "CSeq: 4 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.24;branch=z9hG4bKclerr",
    "Contact: <sip:dan@192.0.2.24>",
    "Content-Type: application/sdp",
    "Content-Length: 5000",
], sdp("192.0.2.24"))

# 3.1.2.3 Negative Content-Length.
M["ncl"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "Max-Forwards: 70",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=ncl5",
    "Call-ID: ncl.e1f0@192.0.2.25",
    "CSeq: 2 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKncl",
    "Contact: <sip:dan@192.0.2.25>",
    "Content-Type: application/sdp",
    "Content-Length: -4521",
], sdp("192.0.2.25"))

# 3.1.2.4 Request scalars beyond their ranges: CSeq number 2^64 (above
# 2^31-1), Max-Forwards 256 (above 255), Expires 2^32, a Contact expires
# parameter of 2^40.
M["scalar02"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "Via: SIP/2.0/TCP 192.0.2.26;branch=z9hG4bKscalar02",
    "Max-Forwards: 256",
    "To: <sip:dan@torture.example.net>",
    "From: <sip:dan@torture.example.net>;tag=sc02a",
    "Call-ID: scalar02.0b77@192.0.2.26",
    "CSeq: 18446744073709551616 REGISTER",
    "Contact: <sip:dan@192.0.2.26>;expires=1099511627776",
    "Expires: 4294967296",
    "Content-Length: {CL}",
])

# 3.1.2.5 A response with overlarge scalars: CSeq number 2^64, Retry-After
# 2^32, a four-digit warn-code.
M["scalarlg"] = msg([
    "SIP/2.0 503 Service Unavailable",
    "Via: SIP/2.0/TCP 192.0.2.27;branch=z9hG4bKscalarlg",
    "To: <sip:carol@torture.example.net>;tag=sl91",
    "From: <sip:dan@example.org>;tag=sl90",
    "Call-ID: scalarlg.7a7a@192.0.2.27",
    "CSeq: 18446744073709551616 OPTIONS",
    "Retry-After: 4294967296",
    'Warning: 3998 torture.example.net "warn-code has four digits"',
    "Content-Length: {CL}",
])

# 3.1.2.6 An unterminated quoted string in a display name.
M["quotbal"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    'To: "Ms. Carol Tester <sip:carol@torture.example.net>',
    "From: sip:dan@example.org;tag=qb31",
    "Max-Forwards: 70",
    "Call-ID: quotbal.2ee0@192.0.2.28",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.28;branch=z9hG4bKquotbal",
    "Contact: <sip:dan@192.0.2.28>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.28"))

# 3.1.2.7 The Request-URI enclosed in <>.
M["ltgtruri"] = msg([
    "INVITE <sip:carol@torture.example.net> SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=lg17",
    "Max-Forwards: 70",
    "Call-ID: ltgtruri.51f3@192.0.2.29",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.29;branch=z9hG4bKltgtruri",
    "Contact: <sip:dan@192.0.2.29>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.29"))

# 3.1.2.8 LWS inside the Request-URI (before a URI parameter).
M["lwsruri"] = msg([
    "INVITE sip:carol@torture.example.net; lr SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=lr22",
    "Max-Forwards: 70",
    "Call-ID: lwsruri.8c0d@192.0.2.30",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKlwsruri",
    "Contact: <sip:dan@192.0.2.30>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.30"))

# 3.1.2.9 More than one SP between Request-Line elements.
M["lwsstart"] = msg([
    "INVITE  sip:carol@torture.example.net  SIP/2.0",
    "Max-Forwards: 70",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=ls09",
    "Call-ID: lwsstart.6e2a@192.0.2.32",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.32;branch=z9hG4bKlwsstart",
    "Contact: <sip:dan@192.0.2.32>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.32"))

# 3.1.2.10 SP characters after the SIP-Version of the Request-Line.
M["trws"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0   ",
    "Via: SIP/2.0/UDP 192.0.2.33;branch=z9hG4bKtrws",
    "Max-Forwards: 70",
    "From: <sip:dan@example.org>;tag=tw10",
    "To: <sip:carol@torture.example.net>",
    "Call-ID: trws.40b9@192.0.2.33",
    "CSeq: 3 OPTIONS",
    "Content-Length: {CL}",
])

# 3.1.2.11 An escaped header in a SIP Request-URI.
M["escruri"] = msg([
    "INVITE sip:carol@torture.example.net?Route=%3Csip:edge.example.org;lr%3E SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=er11",
    "Max-Forwards: 70",
    "Call-ID: escruri.19dc@192.0.2.34",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.34;branch=z9hG4bKescruri",
    "Contact: <sip:dan@192.0.2.34>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.34"))

# 3.1.2.12 A Date whose time zone is not GMT.
M["baddate"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=bd12",
    "Max-Forwards: 70",
    "Call-ID: baddate.3f11@192.0.2.35",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.35;branch=z9hG4bKbaddate",
    "Date: Tue, 14 Mar 2006 09:30:00 PST",
    "Contact: <sip:dan@192.0.2.35>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.35"))

# 3.1.2.13 A Contact URI with an (escaped) header, not enclosed in <>: the
# field must be in name-addr form.
M["regbadct"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "To: sip:dan@torture.example.net",
    "From: sip:dan@torture.example.net;tag=rb13",
    "Max-Forwards: 70",
    "Call-ID: regbadct.d00f@192.0.2.36",
    "CSeq: 1 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.36;branch=z9hG4bKregbadct",
    "l: {CL}",
    "Contact: sip:dan@192.0.2.36?Route=%3Csip:edge.example.org%3E",
])

# 3.1.2.14 Spaces inside the <> around an addr-spec.
M["badaspec"] = msg([
    "OPTIONS sip:k.brown@torture.example.net SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.37;branch=z9hG4bKbadaspec",
    "Max-Forwards: 70",
    "From: \"Dan\" <sip:dan@example.org>;tag=ba14",
    'To: "Brown, Kim" < sip:k.brown@torture.example.net >',
    "Call-ID: badaspec.a1b2@192.0.2.37",
    "CSeq: 6 OPTIONS",
    "Content-Length: {CL}",
])

# 3.1.2.15 Non-token characters (a comma) in an unquoted display name.
M["baddn"] = msg([
    "OPTIONS sip:k.brown@torture.example.net SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.38;branch=z9hG4bKbaddn",
    "Max-Forwards: 70",
    "From: Smith, Pat <sip:pat.smith@example.org>;tag=dn15",
    "To: Brown, Kim <sip:k.brown@torture.example.net>",
    "Call-ID: baddn.77e0@192.0.2.38",
    "CSeq: 2 OPTIONS",
    "Content-Length: {CL}",
])

# 3.1.2.16 An unknown SIP version.
M["badvers"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/9.1",
    "Via: SIP/2.0/UDP 192.0.2.39;branch=z9hG4bKbadvers",
    "Max-Forwards: 70",
    "From: <sip:dan@example.org>;tag=bv16",
    "To: <sip:carol@torture.example.net>",
    "Call-ID: badvers.0e0e@192.0.2.39",
    "CSeq: 1 OPTIONS",
    "Content-Length: {CL}",
])

# 3.1.2.17 Request-Line method and CSeq method differ (both known).
M["mismatch01"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=mm17",
    "Max-Forwards: 70",
    "Call-ID: mismatch01.c3a8@192.0.2.40",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.40;branch=z9hG4bKmismatch01",
    "Content-Length: {CL}",
])

# 3.1.2.18 An unknown method whose CSeq names a different (known) method:
# the mismatch is the error (400), not the unknown method.
M["mismatch02"] = msg([
    "ZAPME sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=mm18",
    "Max-Forwards: 70",
    "Call-ID: mismatch02.c3a9@192.0.2.41",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.41;branch=z9hG4bKmismatch02",
    "Contact: <sip:dan@192.0.2.41>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.41"))

# 3.1.2.19 A response code far beyond three digits (above 2^64).
M["bigcode"] = msg([
    "SIP/2.0 18446744073709551621 still standing afterwards",
    "Via: SIP/2.0/UDP 192.0.2.42;branch=z9hG4bKbigcode",
    "From: <sip:dan@example.org>;tag=bc19",
    "To: <sip:carol@torture.example.net>;tag=bc20",
    "Call-ID: bigcode.1e1e@192.0.2.42",
    "CSeq: 1 INVITE",
    "Contact: <sip:carol@192.0.2.43>",
    "Content-Length: {CL}",
])

# --- 3.2 transaction layer ------------------------------------------------

# 3.2.1 The RFC 3261 magic cookie as the whole branch (no identifier).
M["badbranch"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=bb21",
    "Max-Forwards: 70",
    "Call-ID: badbranch.9f3c@192.0.2.44",
    "CSeq: 1 OPTIONS",
    "Via: SIP/2.0/UDP 192.0.2.44;branch=z9hG4bK",
    "Contact: <sip:dan@192.0.2.44>",
    "Content-Length: {CL}",
])

# --- 3.3 application layer ------------------------------------------------

# 3.3.1 Required header fields missing (Call-ID, From, To).
M["insuf"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.45;branch=z9hG4bKinsuf",
    "Max-Forwards: 70",
    "Contact: <sip:dan@192.0.2.45>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.45"))

# 3.3.2 A Request-URI with a scheme nobody knows.
M["unkscm"] = msg([
    "OPTIONS zzyzx-scheme:an.opaque/thing%20here SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=us32",
    "Max-Forwards: 70",
    "Call-ID: unkscm.4d4d@192.0.2.46",
    "CSeq: 1 OPTIONS",
    "Via: SIP/2.0/UDP 192.0.2.46;branch=z9hG4bKunkscm",
    "Content-Length: {CL}",
])

# 3.3.3 A Request-URI with a registered but atypical scheme (with a '.').
M["novelsc"] = msg([
    "OPTIONS xmlrpc.beeps://192.0.2.120:3003 SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=nv33",
    "Max-Forwards: 70",
    "Call-ID: novelsc.5e5e@192.0.2.47",
    "CSeq: 1 OPTIONS",
    "Via: SIP/2.0/UDP 192.0.2.47;branch=z9hG4bKnovelsc",
    "Content-Length: {CL}",
])

# 3.3.4 Unknown URI schemes in To, From and Contact (valid: those fields
# need not be SIP URIs).
M["unksm2"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "To: nosuchscheme:some.opaque-thing",
    "From: <http://www.example.org/people/dan>;tag=u2x34",
    "Max-Forwards: 70",
    "Call-ID: unksm2.6f6f@192.0.2.48",
    "CSeq: 1 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.48;branch=z9hG4bKunksm2",
    "Contact: <otherscheme:dan-at-home>",
    "Content-Length: {CL}",
])

# 3.3.5 Require and Proxy-Require with option tags nobody supports.
M["bext01"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=be35",
    "Max-Forwards: 70",
    "Call-ID: bext01.7070@192.0.2.49",
    "CSeq: 1 OPTIONS",
    "Via: SIP/2.0/UDP 192.0.2.49;branch=z9hG4bKbext01",
    "Require: no-such-extension, another-nonexistent-one",
    "Proxy-Require: proxies-dont-know-this, nor-this",
    "Content-Length: {CL}",
])

# 3.3.6 An INVITE whose body has a Content-Type nobody knows.
M["invut"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "Contact: <sip:dan@192.0.2.50>",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=iu36",
    "Max-Forwards: 70",
    "Call-ID: invut.8181@192.0.2.50",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKinvut",
    "Content-Type: application/x-no-such-format",
    "Content-Length: {CL}",
], b"<session><audio codec='mystery'/></session>\r\n")

# 3.3.7 An Authorization header with an unknown scheme.
M["regaut01"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "To: sip:dan@torture.example.net",
    "From: sip:dan@torture.example.net;tag=ra37",
    "Max-Forwards: 70",
    "Call-ID: regaut01.9292@192.0.2.51",
    "CSeq: 1 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.51;branch=z9hG4bKregaut01",
    'Authorization: ZebraAuth blob="k9sd0f==", realm-ish=nothing',
    "Content-Length: {CL}",
])

# 3.3.8 Several values in fields that take one (Call-ID, To, From,
# Max-Forwards, CSeq).
M["multi01"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.52;branch=z9hG4bKmulti01",
    "Max-Forwards: 70",
    "CSeq: 1 INVITE",
    "From: sip:dan@example.org;tag=mu38a",
    "Call-ID: multi01.a3a3@192.0.2.52",
    "To: sip:carol@torture.example.net",
    "Call-ID: multi01.b4b4@192.0.2.52",
    "From: sip:eve@example.org;tag=mu38b",
    "To: sip:frank@torture.example.net",
    "Max-Forwards: 20",
    "CSeq: 2 INVITE",
    "Contact: <sip:dan@192.0.2.52>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.52"))

# 3.3.9 Two Content-Length fields that disagree.
M["mcl01"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKmcl01",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=mc39",
    "Call-ID: mcl01.b5b5@192.0.2.53",
    "Max-Forwards: 70",
    "CSeq: 1 OPTIONS",
    "Content-Length: 0",
    "Content-Length: 15",
    "l: 30",
    "Content-Type: text/plain",
], b"fifteen octets.")

# 3.3.10 A 200 OK whose second Via sends to the broadcast address.
M["bcast"] = msg([
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 192.0.2.54;branch=z9hG4bKbcast1",
    "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bKbcast2",
    "From: <sip:dan@example.org>;tag=bc310",
    "To: <sip:carol@torture.example.net>;tag=bc311",
    "Call-ID: bcast.c6c6@192.0.2.54",
    "CSeq: 1 INVITE",
    "Contact: <sip:carol@192.0.2.55>",
    "Content-Length: {CL}",
])

# 3.3.11 Max-Forwards of zero (an endpoint still serves it).
M["zeromf"] = msg([
    "OPTIONS sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=zm311",
    "Max-Forwards: 0",
    "Call-ID: zeromf.d7d7@192.0.2.56",
    "CSeq: 1 OPTIONS",
    "Via: SIP/2.0/UDP 192.0.2.56;branch=z9hG4bKzeromf",
    "Content-Length: {CL}",
])

# 3.3.12 A Contact without <> whose ';' parameter is therefore a header
# parameter, not a URI parameter.
M["cparam01"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.57;branch=z9hG4bKcparam01",
    "Max-Forwards: 70",
    "From: sip:+15550001111@torture.example.net;tag=cp312",
    "To: sip:+15550001111@torture.example.net",
    "Call-ID: cparam01.e8e8@192.0.2.57",
    "CSeq: 1 REGISTER",
    "Contact: sip:+15550001111@gw7.example.org;oddflag",
    "l: {CL}",
])

# 3.3.13 The same parameter inside <>: a URI parameter.
M["cparam02"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.58;branch=z9hG4bKcparam02",
    "Max-Forwards: 70",
    "From: sip:+15550001111@torture.example.net;tag=cp313",
    "To: sip:+15550001111@torture.example.net",
    "Call-ID: cparam02.f9f9@192.0.2.58",
    "CSeq: 1 REGISTER",
    "Contact: <sip:+15550001111@gw7.example.org;oddflag>",
    "l: {CL}",
])

# 3.3.14 A Contact URI with an escaped header, correctly inside <>.
M["regescrt"] = msg([
    "REGISTER sip:torture.example.net SIP/2.0",
    "To: sip:dan@torture.example.net",
    "From: sip:dan@torture.example.net;tag=re314",
    "Max-Forwards: 70",
    "Call-ID: regescrt.0a0a@192.0.2.59",
    "CSeq: 1 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.59;branch=z9hG4bKregescrt",
    "l: {CL}",
    "Contact: <sip:dan@192.0.2.59?Route=%3Csip:edge.example.org%3E>",
])

# 3.3.15 An SDP offer whose sender accepts no body type we can answer in.
M["sdp01"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org;tag=sd315",
    "Max-Forwards: 70",
    "Call-ID: sdp01.1b1b@192.0.2.60",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.60;branch=z9hG4bKsdp01",
    "Accept: text/x-nobody-knows-this",
    "Contact: <sip:dan@192.0.2.60>",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], sdp("192.0.2.60"))

# --- 3.4 backward compatibility -------------------------------------------

# 3.4.1 RFC 2543 syntax: no branch in the Via, no From tag, no
# Max-Forwards, no Content-Length (the body is the rest of the datagram).
M["inv2543"] = msg([
    "INVITE sip:carol@torture.example.net SIP/2.0",
    "To: sip:carol@torture.example.net",
    "From: sip:dan@example.org",
    "Call-ID: inv2543.2c2c@192.0.2.61",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.61",
    "Contact: <sip:dan@192.0.2.61>",
    "Content-Type: application/sdp",
], sdp("192.0.2.61"))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    assert len(M) == 49, len(M)
    for name, data in sorted(M.items()):
        with open(os.path.join(outdir, name + ".dat"), "wb") as f:
            f.write(data)
    print(f"{len(M)} messages written to {outdir}")


if __name__ == "__main__":
    main()
