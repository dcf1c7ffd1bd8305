#!/usr/bin/env python3
"""Cold-start benchmark of Ferry's Lambda functions against a Python 3 + boto3 counterpart.

Each function binary (functions/*/, discovered) and its Python counterpart
(scripts/bench_python_handler.py, building the same AWS clients) is started against a local
stand-in of the Lambda Runtime API with a Lambda-like environment. Measured per start:

- init time: from just before exec to the first `GET /2018-06-01/runtime/invocation/next`
  (both clocks are this process's perf_counter);
- peak RSS: the process's VmHWM (/proc/<pid>/status) once it polls, i.e. the high-water mark
  of its whole init (mapped code included); and its anonymous RSS (RssAnon: heap, stacks) then.

The stand-in never answers `next`: the process is killed once measured. Runs alternate between
the two languages so both see the same machine load; one unmeasured warm-up run each comes
first (page cache). Usage: bench_cold_start.py --runs N --python PY --release-dir DIR.
"""

import argparse
import glob
import http.server
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NEXT_PATH = "/2018-06-01/runtime/invocation/next"


class RuntimeApi(http.server.ThreadingHTTPServer):
    """Records when `next` is first polled, then holds the request open."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.first_poll = None
        self.polled = threading.Event()
        self.release = threading.Event()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self):
        self.release.set()
        self.shutdown()
        self.server_close()


class RuntimeApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        now = time.perf_counter()
        if self.path == NEXT_PATH:
            if self.server.first_poll is None:
                self.server.first_poll = now
                self.server.polled.set()
            # Hold the poll like a Runtime API with no invocation waiting.
            self.server.release.wait(60)
            return
        self.send_error(404)

    def log_message(self, *args):
        pass


def function_packages():
    """(package dir, binary name, AWS clients it builds) for every functions/*/."""
    found = []
    for manifest in sorted(glob.glob(os.path.join(ROOT, "functions", "*", "Cargo.toml"))):
        with open(manifest, "rb") as f:
            cargo = tomllib.load(f)
        bins = cargo.get("bin") or [{"name": cargo["package"]["name"]}]
        deps = cargo.get("dependencies", {})
        clients = set()
        sources = glob.glob(os.path.join(os.path.dirname(manifest), "src", "**", "*.rs"), recursive=True)
        uses_ports = any("AwsPorts" in open(p, encoding="utf-8").read() for p in sources)
        if "ferry-aws" in deps and uses_ports:
            # AwsPorts::from_config builds these four (crates/ferry-aws/src/ports.rs).
            clients |= {"s3", "s3control", "iam", "sns"}
        for dep in deps:
            m = re.fullmatch(r"aws-sdk-([a-z0-9]+)", dep)
            if m:
                clients.add(m.group(1))
        for b in bins:
            found.append((os.path.dirname(manifest), b["name"], sorted(clients)))
    return found


def ferry_settings(package_dir):
    """The FERRY_* environment as deployed: every variable template.yaml sets (its literal value
    where it has one) and those `AwsPorts::for_lambda` requires. Variables only the code
    mentions are optional and stay unset, as in the stack."""
    with open(os.path.join(ROOT, "template.yaml"), encoding="utf-8") as f:
        template = f.read()
    literal = dict(re.findall(r'\b(FERRY_[A-Z0-9_]+):\s*"([^"$]*)"\s*$', template, re.M))
    names = set(re.findall(r"\b(FERRY_[A-Z0-9_]*[A-Z0-9]):", template))
    with open(os.path.join(ROOT, "crates", "ferry-aws", "src", "ports.rs"), encoding="utf-8") as f:
        names |= set(re.findall(r'env\("(FERRY_[A-Z0-9_]+)"\)', f.read()))
    values = {}
    for n in sorted(names):
        if n in literal:
            values[n] = literal[n]
        elif n.endswith("_BUCKET"):
            values[n] = "ferry-state-222222222222-us-east-1"
        elif n.endswith("TOPIC_ARN"):
            values[n] = f"arn:aws:sns:us-east-1:222222222222:ferry-{n.lower()}"
        elif n.endswith("ROLE_ARN"):
            values[n] = "arn:aws:iam::222222222222:role/ferry-bench-batch"
        elif n.endswith("FUNCTION_ARN"):
            values[n] = "arn:aws:lambda:us-east-1:222222222222:function:ferry-bench"
        elif n.endswith("KEY_ARN"):
            values[n] = "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        else:
            values[n] = "ferry-bench"
    return values


def lambda_env(function_name, settings, extra):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "ASIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLETOKEN",
        "AWS_LAMBDA_FUNCTION_NAME": f"ferry-{function_name}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/ferry-{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/24/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "RUST_LOG": "info",
    }
    env.update(settings)
    env.update(extra)
    return env


def memory_kib(pid):
    """(peak RSS, anonymous RSS now) in KiB: VmHWM and RssAnon of /proc/<pid>/status."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmHWM", "RssAnon"):
                found[key] = int(line.split()[1])
    return found["VmHWM"], found["RssAnon"]


def start_once(cmd, env, timeout=60.0):
    """(init seconds, peak RSS KiB, anonymous RSS KiB) of one start, or raises with the
    process's stderr."""
    api = RuntimeApi()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=api.address)
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = t0 + timeout
            while not api.polled.wait(0.005):
                if proc.poll() is not None or time.perf_counter() > deadline:
                    err.seek(0)
                    raise RuntimeError(
                        f"{cmd[0]} exited ({proc.returncode}) or timed out before polling `next`:\n"
                        + err.read().decode(errors="replace")[-2000:]
                    )
            init = api.first_poll - t0
            peak, anon = memory_kib(proc.pid)
        finally:
            proc.kill()
            proc.wait()
            api.stop()
    return init, peak, anon


def pct(values, p):
    s = sorted(values)
    # Nearest rank.
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--python", required=True, help="python with boto3")
    ap.add_argument("--release-dir", required=True)
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()

    results = []
    handler = os.path.join(ROOT, "scripts", "bench_python_handler.py")
    for package_dir, binary, clients in function_packages():
        settings = ferry_settings(package_dir)
        rust_cmd = [os.path.join(args.release_dir, binary)]
        py_cmd = [args.python, handler]
        env = lambda_env(binary, settings, {})
        py_env = lambda_env(binary, settings, {"FERRY_BENCH_CLIENTS": ",".join(clients)})
        start_once(rust_cmd, env)  # warm-up (page cache), not measured
        start_once(py_cmd, py_env)
        rust, py = [], []
        for _ in range(args.runs):
            rust.append(start_once(rust_cmd, env))
            py.append(start_once(py_cmd, py_env))
        results.append({
            "function": binary,
            "clients": clients,
            "settings": sorted(settings),
            "rust": rust,
            "python": py,
            "binary_bytes": os.path.getsize(rust_cmd[0]),
        })
        print(f"measured {binary}", file=sys.stderr)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)

    ok = True
    print(f"Cold start, {args.runs} runs each (init = exec → first `next` poll; RSS = peak at that poll)\n")
    print("| function | clients | Rust init median / p90 (ms) | Python init median / p90 (ms) | init ratio | "
          "Rust peak RSS median (MiB) | Python peak RSS median (MiB) | RSS ratio | "
          "anon RSS Rust / Python (MiB) | targets |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ri = [run[0] * 1000 for run in r["rust"]]
        pi = [run[0] * 1000 for run in r["python"]]
        rm = [run[1] / 1024 for run in r["rust"]]
        pm = [run[1] / 1024 for run in r["python"]]
        ra = [run[2] / 1024 for run in r["rust"]]
        pa = [run[2] / 1024 for run in r["python"]]
        init_ratio = statistics.median(pi) / statistics.median(ri)
        rss_ratio = statistics.median(pm) / statistics.median(rm)
        meets = init_ratio >= 20 and rss_ratio >= 4
        ok &= meets
        print(
            f"| {r['function']} | {','.join(r['clients'])} "
            f"| {statistics.median(ri):.1f} / {pct(ri, 90):.1f} "
            f"| {statistics.median(pi):.1f} / {pct(pi, 90):.1f} "
            f"| {init_ratio:.0f}× "
            f"| {statistics.median(rm):.1f} | {statistics.median(pm):.1f} | {rss_ratio:.1f}× "
            f"| {statistics.median(ra):.1f} / {statistics.median(pa):.1f} "
            f"| {'met' if meets else 'MISSED'} (≥ 20× init, ≥ 4× peak RSS) |"
        )
    print()
    print("| function | release binary (bytes) |")
    print("|---|---|")
    for r in results:
        print(f"| {r['function']} | {r['binary_bytes']:,} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
