#!/usr/bin/env bash
# Self-test of the two WebRTC test peers against each other, both ways round:
# chromium-peer (tone 440 Hz) <-> aiortc_peer (tone 1000 Hz), non-trickle
# offer/answer, then each side records 3 s and a Goertzel check wants the
# OTHER side's tone (and not its own, and not silence).
# Runs inside a private network namespace with only `lo` (needs root or
# unprivileged user namespaces). Usage: tests/peers/selftest.sh [outdir]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$(mktemp -d /tmp/peers-selftest.XXXXXX)}"
mkdir -p "$out"
py="$root/target/pyenv/bin/python"
[ -x "$py" ] || { echo "selftest: $py missing; run scripts/install-deps.sh" >&2; exit 2; }
unshare_cmd=(unshare -n)
[ "$(id -u)" -eq 0 ] || unshare_cmd=(unshare -rn)
export HERE="$here" OUT="$out" PY="$py"
# The Python driver comes on stdin (the heredoc); peers get their own pipes.
exec timeout 180 "${unshare_cmd[@]}" sh -c 'ip link set lo up && exec "$PY" -' <<'EOF'
import array, json, math, os, queue, subprocess, sys, threading, time

HERE, OUT, PY = os.environ["HERE"], os.environ["OUT"], os.environ["PY"]
TONES = {"chromium": 440.0, "aiortc": 1000.0}

class Peer:
    def __init__(self, name):
        argv = (["node", f"{HERE}/chromium-peer.mjs"] if name == "chromium"
                else [PY, f"{HERE}/aiortc_peer.py"])
        argv += ["--tone", str(int(TONES[name])), "--log-prefix", name]
        self.name, self.q, self.next_id = name, queue.Queue(), 0
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda m: m.get("event") == "ready", 60)
        print(f"{name}: ready after {time.monotonic() - self.t0:.2f} s", flush=True)

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))
        self.q.put(None)

    def wait_for(self, pred, timeout):
        end = time.monotonic() + timeout
        while True:
            m = self.q.get(timeout=max(0.01, end - time.monotonic()))
            if m is None:
                raise RuntimeError(f"{self.name} exited")
            if "event" in m:
                print(f"{self.name}: event {m}", flush=True)
            if pred(m):
                return m

    def send(self, cmd, **kw):
        self.next_id += 1
        self.p.stdin.write(json.dumps({"id": self.next_id, "cmd": cmd, **kw}) + "\n")
        self.p.stdin.flush()
        return self.next_id

    def reply(self, rid, timeout=30):
        m = self.wait_for(lambda m: m.get("id") == rid, timeout)
        if "error" in m:
            raise RuntimeError(f"{self.name}: {m['error']}")
        return m

    def call(self, cmd, timeout=30, **kw):
        return self.reply(self.send(cmd, **kw), timeout)

    def stop(self):
        try:
            self.call("close", 10)
            self.p.wait(10)
        except Exception as e:
            print(f"{self.name}: close failed ({e}); killing pid {self.p.pid}", flush=True)
            self.p.kill()
            self.p.wait()
        print(f"{self.name}: exit code {self.p.returncode}", flush=True)

def goertzel_amp(x, f, rate=48000):
    w = 2 * math.pi * f / rate
    c, s1, s2 = 2 * math.cos(w), 0.0, 0.0
    for v in x:
        s1, s2 = v + c * s1 - s2, s1
    return 2 * math.sqrt(max(0.0, s1 * s1 + s2 * s2 - c * s1 * s2)) / len(x)

def analyse(path, want, own):
    with open(path, "rb") as f:
        data = f.read()[44:]
    x = array.array("h"); x.frombytes(data)
    x = [v / 32768 for v in x[48000:]]  # skip the first second (jitter buffer settling)
    rms = math.sqrt(sum(v * v for v in x) / len(x))
    a_want, a_own = goertzel_amp(x, want), goertzel_amp(x, own)
    share = (a_want ** 2 / 2) / (rms ** 2) if rms else 0.0
    return rms, a_want, a_own, share

def run(offerer_name, answerer_name):
    print(f"=== {offerer_name} offers, {answerer_name} answers", flush=True)
    peers = {}
    try:
        for n in (offerer_name, answerer_name):
            peers[n] = Peer(n)
        off, ans = peers[offerer_name], peers[answerer_name]
        t = time.monotonic()
        o = off.call("createOffer")
        ans.call("setRemoteDescription", type="offer", sdp=o["sdp"])
        a = ans.call("createAnswer")
        off.call("setRemoteDescription", type="answer", sdp=a["sdp"])
        for sdp, who in ((o["sdp"], offerer_name), (a["sdp"], answerer_name)):
            lines = [l for l in sdp.split("\r\n") if l.startswith(("m=", "a=candidate", "a=rtpmap", "a=setup"))]
            print(f"{who} SDP: " + " | ".join(lines), flush=True)
        ids = {n: p.send("waitConnected", timeoutMs=15000) for n, p in peers.items()}
        for n, p in peers.items():
            p.reply(ids[n], 20)
        print(f"connected {time.monotonic() - t:.2f} s after createOffer", flush=True)
        time.sleep(1.0)
        ids = {n: p.send("record", ms=3000, path=f"{OUT}/{offerer_name}-offers-{n}.wav") for n, p in peers.items()}
        recs = {n: p.reply(ids[n], 15) for n, p in peers.items()}
        for n, p in peers.items():
            print(f"{n} stats: {json.dumps(p.call('stats'))}", flush=True)
        ok = True
        for n, r in recs.items():
            other = answerer_name if n == offerer_name else offerer_name
            rms, a_want, a_own, share = analyse(r["path"], TONES[other], TONES[n])
            good = a_want > 0.1 and share > 0.8 and a_own < 0.01
            ok &= good
            print(f"{n} heard: reply={json.dumps(r)} rms={rms:.4f} "
                  f"amp@{TONES[other]:.0f}Hz={a_want:.4f} amp@{TONES[n]:.0f}Hz(own)={a_own:.5f} "
                  f"tone share={share:.3f} -> {'OK' if good else 'FAIL'}", flush=True)
        return ok
    finally:
        for p in peers.values():
            p.stop()

results = [run("chromium", "aiortc"), run("aiortc", "chromium")]
passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed", flush=True)
sys.exit(0 if all(results) else 1)
EOF
