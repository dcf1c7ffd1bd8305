"""The Python 3 + boto3 counterpart of a Ferry function, for scripts/bench-cold-start.

It does at init what the Rust function does: read its FERRY_* settings and build the same
boto3 clients (FERRY_BENCH_CLIENTS, e.g. "s3,s3control,iam,sns"), as a handler module does
at import. Then a minimal runtime loop polls the Runtime API's `next` like awslambdaric does.
"""

import json
import os
import urllib.request

import boto3

SETTINGS = {k: v for k, v in os.environ.items() if k.startswith("FERRY_") and k != "FERRY_BENCH_CLIENTS"}
CLIENTS = {
    name: boto3.client(name)
    for name in os.environ.get("FERRY_BENCH_CLIENTS", "s3").split(",")
    if name
}


def handler(event, context):
    return {"clients": sorted(CLIENTS), "settings": sorted(SETTINGS)}


def main():
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    base = f"http://{api}/2018-06-01/runtime/invocation"
    while True:
        with urllib.request.urlopen(f"{base}/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read() or b"{}")
        body = json.dumps(handler(event, None)).encode()
        urllib.request.urlopen(urllib.request.Request(f"{base}/{request_id}/response", data=body, method="POST"))


if __name__ == "__main__":
    main()
