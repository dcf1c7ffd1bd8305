#!/usr/bin/env python3
"""Seeds the fuzz corpora from the repository's real-shaped inputs: examples/*.toml, the
events/ fixtures, the manifest test fixtures, and inventory files written the way S3 writes
them. Idempotent: a seed is named by the hash of its bytes. Usage: seed.py <repo-root>."""

import glob
import gzip
import hashlib
import json
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


TOKEN = "3f" * 32

# Transfer specs: the examples and the CLI's bad specs.
for p in sorted(glob.glob(f"{ROOT}/examples/*.toml") + glob.glob(f"{ROOT}/crates/ferry-cli/tests/bad-specs/*.toml")):
    add("spec_toml", read(p))

# Custom resource events, and their properties alone.
for p in sorted(glob.glob(f"{ROOT}/events/stack-handler-*.json")):
    raw = read(p)
    add("cfn_event", raw)
    event = json.loads(raw)
    if isinstance(event.get("ResourceProperties"), dict):
        add("cfn_event", json.dumps(event["ResourceProperties"]))

# Approval messages: the SNS messages of the events (with a real-shaped token) and text forms.
for p in sorted(glob.glob(f"{ROOT}/events/approval-handler-*.json")):
    event = json.loads(read(p))
    for record in event.get("Records", []):
        message = record.get("Sns", {}).get("Message")
        if isinstance(message, str):
            add("approval_message", message.replace("<token from the instructions e-mail>", TOKEN))
for text in [f"approve {TOKEN}", f"reject {TOKEN} wrong bucket, see ticket 42", "resend",
             json.dumps({"action": "reject", "token": TOKEN.upper(), "reason": "  "})]:
    add("approval_message", text)

# CSV manifests: selector byte 0 (no expectations), 1 (bucket), 5 (bucket, no version ids).
for p in sorted(glob.glob(f"{ROOT}/crates/ferry-listings/tests/fixtures/manifests/*.csv")):
    for selector in (0, 5):
        add("csv_manifest", bytes([selector]) + read(p))

# Keys.
for key in ["photos/2024/a b+c%20.jpg", "caf%C3%A9/%E6%97%A5", "bad%zz%", "%F0%9F%98", "日本/ü ~"]:
    add("key_codec", key)

# Inventory manifest.json as S3 writes it.
ALL = ("Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, "
       "StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, "
       "ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, "
       "IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm, "
       "ObjectAccessControlList, ObjectOwner, LifecycleExpirationDate")
PARQUET = ("message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
           "optional binary version_id (UTF8); optional int64 size; }")
ORC = "struct<bucket:string,key:string,size:bigint,last_modified_date:timestamp>"
for fmt, schema in [("CSV", ALL), ("CSV", "Bucket, Key, Size"), ("Parquet", PARQUET), ("ORC", ORC)]:
    add("inventory_manifest_json", json.dumps({
        "sourceBucket": "src-bucket",
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "version": "2016-11-30",
        "creationTimestamp": "1714521600000",
        "fileFormat": fmt,
        "fileSchema": schema,
        "files": [{"key": "inv/src-bucket/all/data/0f3c.csv.gz", "size": 1234,
                   "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"}],
    }, indent=2))

# Inventory CSV rows; selector: low 2 bits schema (0 all versions, 1 current, 2 small
# versions), bits 2-3 mode (0 plain, 1/2 we gzip, 3 raw gzip).
def q(fields):
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n"

all_rows = (
    q(["src-bucket", "a+b%2Bc.txt", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", "true", "false", "100",
       "2024-05-01T00:00:00.000Z", "d41d8cd98f00b204e9800998ecf8427e", "STANDARD", "false", "",
       "SSE-S3", "", "", "", "", "DISABLED", "", "eyJ2ZXJzaW9uIjoiMjAyMi0xMS0xMCJ9, \"x\"",
       "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be", ""])
    + q(["src-bucket", "gone", "dmv", "true", "true", "", "2024-05-01T00:00:00.000Z", "", "",
         "", "", "", "", "", "", "", "", "", "", "", ""])
    + q(["src-bucket", "huge", "", "true", "false", "6442450944", "2024-05-01T00:00:00.000Z",
         "x", "GLACIER", "true", "", "SSE-KMS", "", "", "", "", "ENABLED", "", "", "", ""])
)
current_rows = (
    q(["src-bucket", "photos/%E6%97%A5.jpg", "5", "2024-05-01T00:00:00.000Z", "e", "STANDARD",
       "SSE-KMS", "ENABLED", ""])
    + q(["src-bucket", "cold", "5", "2024-05-01T00:00:00Z", "e", "DEEP_ARCHIVE", "NOT-SSE",
         "DISABLED", ""])
)
small_rows = q(["src-bucket", "k", "", "true", "false", "0"])
for selector, text in [(0, all_rows), (1, current_rows), (2, small_rows), (4 | 1, current_rows),
                       (16 | 8 | 0, all_rows)]:
    add("inventory_csv", bytes([selector]) + text.encode())
add("inventory_csv", bytes([12 | 1]) + gzip.compress(current_rows.encode()))

# Parquet: selector % 3 = 1 is the harness's valid file (no patches) in each codec;
# % 3 = 2 builds a file from rows split at 0xFF, fields at 0xFE.
for selector in (1, 4, 7, 10):
    add("inventory_parquet", bytes([selector]))
row = b"key+%20" + b"\xfe" + b"v1" + b"\xfe" + bytes([2 | 4]) + b"\xfe" + (100).to_bytes(8, "little")
add("inventory_parquet", bytes([2]) + row + b"\xff" + b"k2\xfe\xfe" + bytes([8 | 16]))

# ORC: odd selectors are the harness's samples (fuzz/samples, no patches); even ones take the
# bytes as the file, seeded with the samples themselves.
for i, p in enumerate(sorted(glob.glob(f"{ROOT}/fuzz/samples/*.orc"))):
    add("inventory_orc", bytes([2 * i + 1]))
    add("inventory_orc", bytes([0]) + read(p))

# Completion reports: result CSVs (selector byte = chunk size - 1) and manifest.json as it is
# (a leading '{' selects the manifest mode).
for p in sorted(glob.glob(f"{ROOT}/crates/ferry-flows/tests/fixtures/reports/*")):
    raw = read(p)
    if p.endswith(".json"):
        add("report", raw)
    else:
        for selector in (0, 6, 200):
            add("report", bytes([selector]) + raw)
