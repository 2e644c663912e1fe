import os, subprocess, sys, time
sys.path.insert(0, "/work/main/bench")
from _server import CoveServer
from _wrk import wrk_post_counted
from relay_floors import cpu_seconds
import httpx
os.environ["COVE_NATIVE_FRONT"] = "1"
native = CoveServer()
del os.environ["COVE_NATIVE_FRONT"]
plain = CoveServer()
def front_pid(server):
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid), "-f", "cove-front"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None
try:
    for s in (native, plain):
        s.cli("deploy", "/work/main/bench/apps/noop/app.py:echo")
        for _ in range(3):
            r = s.http.post("/endpoint/echo", json={"a": 1}); print(r.status_code, dict(r.headers), r.text)
    fp = front_pid(native)
    print("front pid", fp)
    for i in range(3):
        r = native.http.post("/endpoint/echo", json={"i": i}); print(r.status_code, r.headers.get("x-cove-call-id"), r.text)
    r = native.http.get("/api/v1/containers"); print(r.status_code, len(r.json()))
    r = native.http.post("/endpoint/nope", json={}); print(r.status_code, r.text)
    r = httpx.post(native.url + "/endpoint/echo", json={}, headers={"Authorization": "Bearer bad"}); print(r.status_code, r.text)
    for rnd in range(2):
        for name, s, pids in (("native", native, [native.proc.pid, fp]), ("plain", plain, [plain.proc.pid])):
            before = [cpu_seconds(p) for p in pids]
            line, made = wrk_post_counted(s.url + "/endpoint/echo", s.token, "{}", 32, 8, threads=1)
            after = [cpu_seconds(p) for p in pids]
            scale = 1e6 / max(1, made)
            parts = [((a[0]-b[0])+(a[1]-b[1]))*scale for a, b in zip(after, before)]
            print(f"{name:<7} {line} | CPU {sum(parts):4.0f} µs/req  parts {[round(x) for x in parts]}", flush=True)
    print([l for l in native.http.get("/metrics").text.splitlines() if l.startswith(("cove_invocations_total", "cove_express", "cove_invocation_seconds_count"))])
finally:
    native.close(); plain.close()

