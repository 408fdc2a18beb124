#!/usr/bin/env python3
"""WebRTC test peer built on aiortc (a second, independent WebRTC stack).

Protocol (JSON lines on stdin/stdout) and usage: see README.md beside this
file. stdout carries protocol lines only; every log goes to stderr.

Run it with the project venv: target/pyenv/bin/python tests/peers/aiortc_peer.py
(created from tests/requirements.txt by scripts/install-deps.sh).

Why it is built this way:
- aioice leaves 127.0.0.1 out when it lists host addresses, and the tests run
  in a network namespace with only `lo`: we patch its address lister (in this
  process only) so the one host candidate is 127.0.0.1.
- No STUN/TURN: RTCConfiguration(iceServers=[]); None would mean Google STUN.
- aiortc has no microphone and no RTCDTMFSender: the mic is a track that
  synthesises the tone; sendDtmf answers with an error.
- aiortc sets the local description only after gathering all candidates, so
  its SDP is complete (non-trickle) by construction.
"""

import argparse
import array
import asyncio
import fractions
import json
import logging
import math
import os
import signal
import struct
import sys
import time

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.sdp import candidate_from_sdp

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
AMPLITUDE = 0.3
GATHER_TIMEOUT_S = 10.0

log = logging.getLogger("aiortc-peer")


# --------------------------------------------------------------------------
# Patches (this process only; site-packages stay untouched)

def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list:
    # aioice.ice.get_host_addresses drops 127.0.0.1 and ::1. Tests are
    # loopback-only, so offer exactly the loopback address.
    return ["127.0.0.1"] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback_host_addresses

# aiortc's inbound stats have no bytesReceived and no codec: count payload
# bytes and remember the last payload type on each receiver.
_orig_handle_rtp = RTCRtpReceiver._handle_rtp_packet


async def _counting_handle_rtp(self, packet, arrival_time_ms):
    self._peer_bytes = getattr(self, "_peer_bytes", 0) + len(packet.payload)
    self._peer_pt = packet.payload_type
    return await _orig_handle_rtp(self, packet, arrival_time_ms)


RTCRtpReceiver._handle_rtp_packet = _counting_handle_rtp


# --------------------------------------------------------------------------
# Media

class ToneTrack(MediaStreamTrack):
    """The peer's "microphone": a continuous sine, 48 kHz s16, 20 ms frames,
    paced in real time (aiortc pulls frames as fast as recv returns).

    Frames are stereo with both channels equal: aiortc's Opus encoder wants
    stereo, and if given mono its resampler upmixes at -3 dB (0.3 arrives as
    0.21). Its G.711/G.722 encoders downmix stereo to mono at full level."""

    kind = "audio"

    def __init__(self, freq: float):
        super().__init__()
        self.freq = freq
        self.phase = 0.0
        self.pts = 0
        self.start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        else:
            wait = self.start + self.pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        step = 2 * math.pi * self.freq / RATE
        amp = AMPLITUDE * 32767
        samples = array.array("h")
        for i in range(FRAME):
            v = int(round(amp * math.sin(self.phase + i * step)))
            samples.extend((v, v))  # interleaved L, R
        self.phase = (self.phase + FRAME * step) % (2 * math.pi)
        if sys.byteorder != "little":
            samples.byteswap()
        frame = av.AudioFrame(format="s16", layout="stereo", samples=FRAME)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += FRAME
        return frame


class RemoteRecorder:
    """Drains the remote track all the time (its queue is unbounded) and, while
    a recording is running, keeps the audio as mono s16 at 48 kHz."""

    def __init__(self):
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self.buf = None  # bytearray while recording
        self.target = 0  # bytes wanted
        self.done = None  # future set when the target is reached
        self.task = None
        self.frames = 0

    def attach(self, track):
        if self.task:
            self.task.cancel()
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self.task = asyncio.ensure_future(self._drain(track))

    async def _drain(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                log.info("remote track ended")
                return
            self.frames += 1
            for out in self.resampler.resample(frame):
                if self.buf is None:
                    continue
                data = bytes(out.planes[0])[: out.samples * 2]
                self.buf.extend(data)
                if len(self.buf) >= self.target and not self.done.done():
                    self.done.set_result(None)

    async def record(self, ms: float):
        if self.buf is not None:
            raise RuntimeError("a recording is already running")
        n = int(round(RATE * ms / 1000))
        self.buf = bytearray()
        self.target = n * 2
        self.done = asyncio.get_running_loop().create_future()
        try:
            # Frames arrive in real time: n samples take ~ms. If media stops,
            # give up a second late and fill the rest with silence, as a
            # listener would hear it (the reply says how much was padded).
            await asyncio.wait_for(asyncio.shield(self.done), ms / 1000 + 1.0)
        except asyncio.TimeoutError:
            pass
        pcm = bytes(self.buf[: self.target])
        self.buf = None
        padded = n - len(pcm) // 2
        pcm += b"\0\0" * padded
        return pcm, n, padded


def write_wav(path: str, pcm: bytes):
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
    header += b"data" + struct.pack("<I", len(pcm))
    with open(path, "wb") as f:
        f.write(header + pcm)


def rms_of(pcm: bytes) -> float:
    n = len(pcm) // 2
    if n == 0:
        return 0.0
    vals = array.array("h")
    vals.frombytes(pcm[: n * 2])
    if sys.byteorder != "little":
        vals.byteswap()
    return math.sqrt(sum(v * v for v in vals) / n) / 32768


# --------------------------------------------------------------------------
# Peer

class Peer:
    def __init__(self, tone: float):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = ToneTrack(tone)
        self.recorder = RemoteRecorder()
        self.state_changed = asyncio.Event()
        self.signalling = asyncio.Lock()

        @self.pc.on("connectionstatechange")
        def _on_state():
            emit({"event": "connectionstatechange", "state": self.pc.connectionState})
            self.state_changed.set()

        @self.pc.on("track")
        def _on_track(track):
            log.info("remote %s track", track.kind)
            if track.kind == "audio":
                self.recorder.attach(track)

    def _ensure_mic(self):
        # On an answer this reuses the transceiver the remote offer created.
        if not any(s.track is self.mic for s in self.pc.getSenders()):
            self.pc.addTrack(self.mic)

    async def _set_local(self, desc):
        # aiortc gathers inside setLocalDescription; bound it like Chromium.
        try:
            await asyncio.wait_for(self.pc.setLocalDescription(desc), GATHER_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RuntimeError(f"ICE gathering did not complete within {GATHER_TIMEOUT_S:.0f} s")
        return {"type": self.pc.localDescription.type, "sdp": self.pc.localDescription.sdp}

    async def createOffer(self, req):
        self._ensure_mic()
        return await self._set_local(await self.pc.createOffer())

    async def createAnswer(self, req):
        self._ensure_mic()
        return await self._set_local(await self.pc.createAnswer())

    async def setRemoteDescription(self, req):
        if req.get("type") not in ("offer", "answer"):
            raise ValueError('type must be "offer" or "answer"')
        if not isinstance(req.get("sdp"), str):
            raise ValueError("sdp must be a string")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=req["sdp"], type=req["type"]))
        return {}

    async def addIceCandidate(self, req):
        text = req.get("candidate") or ""
        if text.startswith("a="):
            text = text[2:]
        if text.startswith("candidate:"):
            text = text[len("candidate:"):]
        if not text:
            await self.pc.addIceCandidate(None)  # end of candidates
            return {}
        cand = candidate_from_sdp(text)
        cand.sdpMid = req.get("sdpMid")
        cand.sdpMLineIndex = req.get("sdpMLineIndex")
        if cand.sdpMid is None and cand.sdpMLineIndex is None:
            cand.sdpMLineIndex = 0
        await self.pc.addIceCandidate(cand)
        return {}

    async def waitConnected(self, req):
        timeout = float(req.get("timeoutMs", 15000)) / 1000
        deadline = time.monotonic() + timeout
        while True:
            state = self.pc.connectionState
            if state == "connected":
                return {"state": state}
            if state in ("failed", "closed"):
                raise RuntimeError(f"peer connection {state} (ICE {self.pc.iceConnectionState})")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"not connected within {timeout * 1000:.0f} ms; last state {state} "
                    f"(ICE {self.pc.iceConnectionState})"
                )
            self.state_changed.clear()
            try:
                await asyncio.wait_for(self.state_changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def record(self, req):
        ms = req.get("ms")
        if not isinstance(ms, (int, float)) or ms <= 0:
            raise ValueError("ms must be a positive number")
        if not isinstance(req.get("path"), str) or not req["path"]:
            raise ValueError("path is required")
        path = os.path.abspath(req["path"])
        pcm, n, padded = await self.recorder.record(ms)
        write_wav(path, pcm)
        if padded:
            log.warning("record: only %d of %d samples arrived; padded with silence", n - padded, n)
        res = {"path": path, "samples": n, "rms": round(rms_of(pcm), 6)}
        if padded:
            res["padded"] = padded
        return res

    async def sendDtmf(self, req):
        raise RuntimeError("aiortc has no DTMF sender (RTCDTMFSender is not implemented)")

    async def stats(self, req):
        inbound, outbound = {}, {}
        for t in self.pc.getTransceivers():
            if t.kind != "audio":
                continue
            r = t.receiver
            for s in (await r.getStats()).values():
                if s.type == "inbound-rtp":
                    inbound = {"ssrc": s.ssrc, "packetsReceived": s.packetsReceived,
                               "packetsLost": s.packetsLost, "jitter": s.jitter}
            inbound["bytesReceived"] = getattr(r, "_peer_bytes", 0)
            pt = getattr(r, "_peer_pt", None)
            codec = r._RTCRtpReceiver__codecs.get(pt) if pt is not None else None
            if codec:
                inbound.update(codec=codec.mimeType, payloadType=pt, clockRate=codec.clockRate)
            if t.sender.track is not None and t.sender.transport is not None:
                for s in (await t.sender.getStats()).values():
                    if s.type == "outbound-rtp":
                        outbound = {"ssrc": s.ssrc, "packetsSent": s.packetsSent, "bytesSent": s.bytesSent}
                if t._codecs:
                    c = t._codecs[0]
                    outbound.update(codec=c.mimeType, payloadType=c.payloadType, clockRate=c.clockRate)
            break
        return {"inbound": inbound, "outbound": outbound, "state": self.pc.connectionState,
                "iceState": self.pc.iceConnectionState}

    async def close(self, req):
        return {}


# --------------------------------------------------------------------------
# Protocol plumbing

def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


COMMANDS = {"createOffer", "createAnswer", "setRemoteDescription", "addIceCandidate",
            "waitConnected", "record", "sendDtmf", "stats", "close"}
# Signalling runs one at a time so pipelined requests keep their order; the
# rest run at once (e.g. stats during a record). Replies are matched by id.
SERIAL = {"createOffer", "createAnswer", "setRemoteDescription", "addIceCandidate"}


async def handle(peer, req, stop):
    rid = req["id"]
    cmd = req["cmd"]
    try:
        if cmd in SERIAL:
            async with peer.signalling:
                res = await getattr(peer, cmd)(req)
        else:
            res = await getattr(peer, cmd)(req)
        emit({"id": rid, **res})
    except Exception as e:  # every failure is a reply, never a crash
        log.debug("command %s failed", cmd, exc_info=True)
        emit({"id": rid, "error": str(e) or type(e).__name__})
    if cmd == "close":
        stop.set()


async def main():
    ap = argparse.ArgumentParser(description="aiortc WebRTC test peer (JSON lines on stdin/stdout)")
    ap.add_argument("--tone", type=float, default=1000.0, help="frequency of the sent sine tone, Hz")
    ap.add_argument("--log-prefix", default="aiortc-peer")
    args = ap.parse_args()
    if not 0 < args.tone < RATE / 2:
        ap.error("--tone must be a frequency in Hz, 0 < f < 24000")

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"[{args.log_prefix}] %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)

    peer = Peer(args.tone)
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)  # SDPs are long lines
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"event": "ready"})

    tasks = set()

    async def read_loop():
        while True:
            line = await reader.readline()
            if not line:
                break  # EOF: close like a "close" command
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                emit({"id": None, "error": f"bad JSON: {e}"})
                continue
            if not isinstance(req, dict):
                emit({"id": None, "error": "request must be a JSON object"})
                continue
            rid = req.get("id")
            if not isinstance(rid, (int, float)) or isinstance(rid, bool):
                emit({"id": None, "error": "request needs a numeric id"})
                continue
            if req.get("cmd") not in COMMANDS:
                emit({"id": rid, "error": f"unknown cmd {json.dumps(req.get('cmd'))}"})
                continue
            t = asyncio.ensure_future(handle(peer, req, stop))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        # Let requests already in flight (e.g. a record) answer, bounded.
        if tasks:
            await asyncio.wait(list(tasks), timeout=15)
        stop.set()

    reading = asyncio.ensure_future(read_loop())
    await stop.wait()
    log.info("shutting down")
    reading.cancel()
    for t in list(tasks):
        t.cancel()
    try:
        await asyncio.wait_for(peer.pc.close(), 5)
    except Exception as e:
        log.warning("close: %s", e)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BrokenPipeError:
        pass
    # Leave at once: aiortc's decoder/encoder threads must not delay exit.
    sys.stdout.flush()
    os._exit(0)
