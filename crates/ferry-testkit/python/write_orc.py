"""Writes an ORC file with Apache ORC's own C++ writer (pyorc), for Ferry's ORC reader tests.

Reads one JSON object on stdin and writes the file's bytes to stdout:
  {"schema": "struct<bucket:string,...>", "rows": [[...], ...],
   "compression": "ZLIB"|"SNAPPY"|"LZ4"|"ZSTD"|"NONE", "dictionary": true|false,
   "stripe_size": bytes, "block_size": bytes, "row_index_stride": rows, "timezone": "UTC"}
Rows are lists in schema order; timestamp columns are given as milliseconds since the Unix
epoch (UTC) and null is null.
"""
import datetime
import io
import json
import re
import sys
import zoneinfo

import pyorc


def main() -> None:
    spec = json.load(sys.stdin)
    schema = spec["schema"]
    names_types = re.findall(r"(\w+):([^,>]+(?:<[^>]*>)?)", schema[len("struct<"):-1])
    time_columns = [i for i, (_, t) in enumerate(names_types) if t.startswith("timestamp")]
    out = io.BytesIO()
    writer = pyorc.Writer(
        out,
        schema,
        compression=pyorc.CompressionKind[spec.get("compression", "ZLIB")],
        compression_block_size=spec.get("block_size", 65536),
        # The compression block must be a multiple of the memory block.
        memory_block_size=min(spec.get("block_size", 65536), 65536),
        stripe_size=spec.get("stripe_size", 64 * 1024 * 1024),
        row_index_stride=spec.get("row_index_stride", 10000),
        # 1.0: every string column dictionary-encoded; 0.0: every one direct.
        dict_key_size_threshold=1.0 if spec.get("dictionary") else 0.0,
        timezone=zoneinfo.ZoneInfo(spec.get("timezone", "UTC")),
    )
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    for row in spec["rows"]:
        row = list(row)
        for i in time_columns:
            if row[i] is not None:
                row[i] = epoch + datetime.timedelta(milliseconds=row[i])
        writer.write(tuple(row))
    writer.close()
    sys.stdout.buffer.write(out.getvalue())


if __name__ == "__main__":
    main()
