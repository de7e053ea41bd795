"""Publish throughput on S3 (moto's server on loopback) against a local folder, same run.

    .venv/bin/python bench/publish.py --docs 2000 --entities 10

Makes a synthetic annotate output (documents and entities, 4 shards), publishes it to a local
folder and to a moto S3 bucket, then publishes a revision of a tenth of the documents to both;
prints rows per second and the objects and bytes each publish wrote. moto keeps objects in
memory on loopback, so the S3 figure measures request overhead, not a network.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra import publish, s3, storage
from schemas import DOCUMENTS_V2, ENTITIES_V1, TOMBSTONES_V2

LABELS = ("Chemical", "Disease", "Gene", "Species")
WORDS = [f"term{i}" for i in range(500)]


def make_run(out: str, docs: int, per_doc: int, version: int, run: str, seed: int) -> None:
    rng = random.Random(seed)
    shards = 4
    for k in range(shards):
        drows, erows = [], []
        for d in range(k, docs, shards):
            text = " ".join(rng.choice(WORDS) for _ in range(40))
            drows.append({"id": str(d), "text": text, "version": version, "title": "",
                          "language": "en", "source": "bench", "metadata": [], "journal": "",
                          "pub_date": "", "doi": "", "authors": [], "mesh_headings": [],
                          "keywords": [], "publication_types": [], "vernacular_title": "",
                          "other_abstracts": [], "sections": []})  # fmt: skip
            for e in range(per_doc):
                word = rng.choice(WORDS)
                erows.append({"doc_id": str(d), "doc_version": version, "passage_index": e % 3,
                              "start": e, "end": e + len(word), "text": word,
                              "label": LABELS[hash(word) % 4], "model_id": "m",
                              "prompt_version": "p", "run_id": run, "score": None,
                              "selected": None, "issues": []})  # fmt: skip
        storage.write_rows(drows, f"{out}/documents/shard={k}.parquet", DOCUMENTS_V2)
        storage.write_rows(erows, f"{out}/entities/shard={k}.parquet", ENTITIES_V1)
    storage.write_rows([], f"{out}/tombstones/shard=0.parquet", TOMBSTONES_V2)
    storage.write_text(f'{{"run_id": "{run}"}}\n', f"{out}/summary.json")


def footprint(root: str) -> tuple[int, int]:
    files = storage.files_under(root)
    return len(files), sum(storage.size(f) for f in files)


def measure(label: str, out: str, root: str) -> None:
    before = footprint(root) if storage.exists(root) else (0, 0)
    report = publish.publish(out, root)
    after = footprint(root)
    print(f"{label:<18} {report.rows:>8} rows {report.seconds:7.2f} s "
          f"{report.rows / report.seconds:>10.0f} rows/s  {after[0] - before[0]:>4} objects "
          f"{(after[1] - before[1]) / 1e6:8.2f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--entities", type=int, default=10, help="entities per document")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                          BIONER_S3_ENDPOINT=f"http://127.0.0.1:{port}")  # fmt: skip
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        import boto3

        boto3.client("s3", endpoint_url=os.environ["BIONER_S3_ENDPOINT"]).create_bucket(
            Bucket="bench"
        )
        s3.reset()
        with tempfile.TemporaryDirectory() as tmp:
            first, second = f"{tmp}/run1", f"{tmp}/run2"
            make_run(first, args.docs, args.entities, 1, "r1", 0)
            make_run(second, args.docs // 10, args.entities, 2, "r2", 1)
            print(f"{args.docs} documents, {args.docs * args.entities} entities; publish:")
            for name, root in (("local", f"{tmp}/published"), ("s3 (moto)", "s3://bench/pub")):
                measure(f"{name} first", first, root)
                measure(f"{name} revision", second, root)
                measure(f"{name} again", second, root)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
