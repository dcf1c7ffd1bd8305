"""Writes fuzz/samples/inventory-<codec>-<strings>.orc: small ORC inventories from Apache ORC's
own writer (pyorc), which the inventory_orc fuzz target damages. Run with the test venv:

    .venv/bin/python fuzz/make_orc_samples.py
"""
import datetime
import pathlib

import pyorc
import zoneinfo

SCHEMA = ("struct<bucket:string,key:string,version_id:string,is_latest:boolean,"
          "is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,"
          "storage_class:string,encryption_status:string,bucket_key_status:string>")
OUT = pathlib.Path(__file__).parent / "samples"


def rows():
    base = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    for i in range(120):
        dm = i % 7 == 3
        size = [4096, 10 * i, (i * 7919) % 100000, 7 * 2**30 + i][i % 4]
        yield ("src-bucket", f"photos/{i % 9}/k {i}+%é.jpg", None if i % 5 == 0 else f"v{i}",
               i % 3 != 0, dm, None if dm else size,
               base + datetime.timedelta(seconds=i * 37, milliseconds=i),
               None if dm else ["STANDARD", "GLACIER", "DEEP_ARCHIVE"][i % 3 % 2],
               None if dm else "SSE-KMS", None if dm else "ENABLED")


for codec in ["NONE", "ZLIB", "SNAPPY", "LZ4", "ZSTD"]:
    for strings, threshold in [("direct", 0.0), ("dictionary", 1.0)]:
        path = OUT / f"inventory-{codec.lower()}-{strings}.orc"
        with open(path, "wb") as f:
            w = pyorc.Writer(f, SCHEMA, compression=pyorc.CompressionKind[codec],
                             dict_key_size_threshold=threshold, stripe_size=4096,
                             compression_block_size=1024, memory_block_size=1024,
                             timezone=zoneinfo.ZoneInfo("UTC"))
            for r in rows():
                w.write(r)
            w.close()
        print(path, path.stat().st_size)
