"""Figures of the flows on CPU: end-to-end documents/s, orchestration share, resume test.

    .venv/bin/python bench/orchestration.py sample              # the bundled 8-document sample
    .venv/bin/python bench/orchestration.py abstracts --n 1000  # real abstracts (BC5CDR, PubTator)
    .venv/bin/python bench/orchestration.py resume --times 5    # the kill -9 resume test, k times

Each measurement runs ``bioner run`` as a user would, in a fresh process with a fresh output
folder, and reports: the process's wall time (imports, Prefect's start included) and documents
per second over it; the flow's own wall time, the part of it spent inside stages and the rest,
orchestration (Prefect's calls, scheduling, subflows, waiting on futures), from the run's
summary. The model is whatever ``bioner run`` takes (``--model``; by default the reference
tagger in ``models/reference``); ``--max-new-tokens 1`` keeps generation out of the way when
only the orchestration share is wanted.
``abstracts`` takes the first N documents of the BC5CDR PubTator files in ``BIONER_DATA_DIR``
(default ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIONER = str(Path(sys.executable).parent / "bioner")
SAMPLE = REPO / "flows" / "sample" / "pubmed-sample.xml.gz"


def data_dir() -> Path:
    return Path(os.environ.get("BIONER_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


def abstracts(n: int, folder: Path) -> Path:
    """The first ``n`` documents of BC5CDR's PubTator files (train, dev, test) as one file."""
    out, count = [], 0
    for split in ("CDR_TrainingSet", "CDR_DevelopmentSet", "CDR_TestSet"):
        text = (data_dir() / "bc5cdr" / "pubtator" / f"{split}.PubTator.txt").read_text()
        for block in text.strip().split("\n\n"):
            lines = [x for x in block.splitlines() if "|t|" in x or "|a|" in x]
            if count < n and lines:
                out.append("\n".join(lines))
                count += 1
    if count < n:
        raise SystemExit(f"only {count} documents found under {data_dir()}")
    path = folder / f"abstracts-{n}.pubtator.txt"
    path.write_text("\n\n".join(out) + "\n")
    return path


def run(inputs: list[Path], extra: list[str]) -> dict:
    """One ``bioner run`` into a fresh folder; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        started = time.perf_counter()
        done = subprocess.run(
            [BIONER, "run", *map(str, inputs), "--out", str(out), *extra],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stdout + done.stderr)
        summary = json.loads((out / "summary.json").read_text())
    documents = summary["ingest"]["current"]["documents"]
    flow = summary["time"]
    return {
        "documents": documents,
        "passages": summary["passages"],
        "process_wall_s": round(wall, 2),
        "documents_per_s_process": round(documents / wall, 2),
        "flow_wall_s": flow["wall_seconds"],
        "documents_per_s_flow": round(documents / flow["wall_seconds"], 2),
        "stage_s": flow["stage_seconds"],
        "orchestration_s": flow["orchestration_seconds"],
        "orchestration_share_pct": round(100 * flow["orchestration_share"], 2),
        "stages": {r["stage"]: r["seconds"] for r in summary["stages"]},
    }


def resume(times: int) -> dict:
    """Run the kill -9 resume test ``times`` times, each in a fresh pytest process."""
    test = "tests/flows/test_annotate_flow.py::test_kill_9_during_generation_then_rerun_equals"
    test += "_an_uninterrupted_run"
    passed = 0
    for i in range(times):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        ok = done.returncode == 0
        passed += ok
        print(f"resume run {i + 1}: {'passed' if ok else 'FAILED'}", flush=True)
        if not ok:
            print(done.stdout[-3000:], flush=True)
    return {"passed": passed, "times": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sample = sub.add_parser("sample")
    many = sub.add_parser("abstracts")
    many.add_argument("--n", type=int, default=1000)
    for p in (sample, many):
        p.add_argument("--shards", type=int, default=16)
        p.add_argument("--max-new-tokens", type=int, default=None)
        p.add_argument("--model", default=None)
    again = sub.add_parser("resume")
    again.add_argument("--times", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if args.what == "resume":
        print(json.dumps(resume(args.times)))
        return
    extra = ["--shards", str(args.shards)]
    if args.max_new_tokens:
        extra += ["--max-new-tokens", str(args.max_new_tokens)]
    if args.model:
        extra += ["--model", args.model]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [SAMPLE] if args.what == "sample" else [abstracts(args.n, Path(tmp))]
        print(json.dumps({"what": args.what, "args": extra, **run(inputs, extra)}, indent=2))


if __name__ == "__main__":
    main()
