"""The CPU generation engine against the engine as issue 25 found it and against plain
``transformers`` ``generate``: same model, same sentences, same request.

Inputs: the first ``--passages`` sentences of the NCBI-disease test split, asked ``--schema``
(default ``general``, what ``bioner run`` asks), each a document through the code of ``bioner
evaluate`` (:func:`tasks.evaluate.evaluate_documents`), all prompts in one engine call. The
model is a local folder (``--model``, default ``models/reference``). Sides, one after another
in this process:

* **bioner**: :class:`infra.llm.transformers_engine.TransformersEngine` as ``bioner run``
  builds it: float32 on a CPU, copy-constrained, copy-speculative greedy decoding.
* **bioner, no speculation**: the same engine decoding one token per forward pass. Its answers
  must be byte-identical to bioner's (speculation is exact for greedy decoding): checked.
* **engine as filed (peer)**: the two settings the engine had when issue 25 was filed, on
  today's code: the folder's dtype (bf16) on the CPU and token-by-token constrained decoding
  (issue 25 measured 0.7 passages/s for it with the ``ncbi`` request; today's logits
  processor makes it faster than that). On a CPU without bf16 units its answers can differ from
  float32's in a few places: the share identical is printed.
* **plain generate (peer)**: ``model.generate``, batched (prompts sorted by length, the same
  token budget), greedy, float32, no constraint, no speculation, each batch made to write as
  many tokens as bioner's longest answer in it (``min_new_tokens`` = ``max_new_tokens``): the
  same work, done the library's documented way. Its text is not an answer; only its speed is.

Printed per side: passages/s, output tokens/s, forward passes per passage and tokens per
forward pass (speculative sides; one otherwise), then the ratios of bioner to each peer, and
the FLOP/s bioner achieves (2 × parameters × (prompt + output tokens) / time: the useful work,
not the verification of rejected drafts) against a float32 matrix-product microbenchmark of
this machine run in the same process.

    .venv/bin/python bench/engine.py [--passages 500] [--threads 2] [--skip filed plain]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from generate import PeerLoop, documents  # bench/generate.py, beside this script

from bioner.constraint import SymbolicTarget
from bioner.generation import Engine, Generation, GenerationParams
from infra.llm.transformers_engine import TransformersEngine
from tasks.evaluate import SetRun, evaluate_documents

ROOT = Path(__file__).resolve().parents[1]
SPLIT = "ncbi/iob/test"


class PlainGenerate(PeerLoop):
    """``model.generate`` batched and greedy, without constraint or speculation, writing as
    many tokens per batch as the longest of its prompts' ``lengths`` (the i-th prompt of the
    one call ``bioner evaluate``'s code makes: bioner's i-th answer's token count)."""

    backend = "plain generate"

    def __init__(self, engine: TransformersEngine, lengths: list[int]) -> None:
        super().__init__(engine)
        self.lengths = lengths

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        targets: Sequence[SymbolicTarget | None] | None = None,
    ) -> list[Generation]:
        engine, tokenizer = self.engine, self.engine.tokenizer
        encoded = [engine.encode_prompt(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (self.lengths[i], len(encoded[i])))
        results: list[Generation | None] = [None] * len(prompts)
        batch: list[int] = []

        def run(rows: list[int]) -> None:
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[r, width - len(encoded[i]) :] = 1
            n = max(self.lengths[i] for i in rows)
            with torch.inference_mode():
                out = engine.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    do_sample=False,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    pad_token_id=tokenizer.pad_token_id,
                )
            for r, i in enumerate(rows):
                text = tokenizer.decode(out[r, width:].tolist(), skip_special_tokens=True)
                results[i] = Generation(text, len(encoded[i]), self.lengths[i], "length")

        for i in order:
            cost = (len(batch) + 1) * (
                max([len(encoded[j]) for j in [*batch, i]]) + self.lengths[i]
            )
            if batch and (cost > engine.batch_tokens or len(batch) >= engine.max_batch_size):
                run(batch)
                batch = []
            batch.append(i)
        if batch:
            run(batch)
        return [g for g in results if g is not None]


def matmul_gflops(seconds: float = 3.0) -> float:
    """Float32 GFLOP/s of this machine on the model's largest products (384 × 1,536 weights,
    512 rows): a ceiling the engine's useful FLOP/s is read against."""
    a, b = torch.randn(512, 384), torch.randn(384, 1536)
    for _ in range(10):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 512 * 384 * 1536 * n / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "reference")
    parser.add_argument("--schema", default="general")
    parser.add_argument("--passages", type=int, default=500)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip", nargs="*", default=[], help="sides to skip: filed plain")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    docs = documents(SPLIT, args.passages)
    ours = TransformersEngine(args.model)
    params = sum(p.numel() for p in ours.model.parameters())
    print(
        f"model {ours.model_id} ({params / 1e6:.1f} M parameters), {len(docs)} sentences of "
        f"{SPLIT}, schema {args.schema}, {args.threads} threads"
    )
    gflops = matmul_gflops()
    sides: dict[str, Engine] = {
        "bioner": ours,
        "bioner, no speculation": TransformersEngine(args.model, speculative=False),
    }
    if "filed" not in args.skip:
        sides["engine as filed (peer)"] = TransformersEngine(
            args.model, dtype="bfloat16", speculative=False
        )
    runs: dict[str, SetRun] = {}
    for name, side in sides.items():
        runs[name] = evaluate_documents(side, docs, args.schema, chunk_size=None)
        print(f"  {name}: {runs[name].seconds:.1f} s", flush=True)
    if "plain" not in args.skip:
        lengths = [max(1, g.output_tokens) for g in runs["bioner"].generations]
        side = PlainGenerate(ours, lengths)  # its model, float32; no constraint used
        runs["plain generate (peer)"] = evaluate_documents(side, docs, args.schema, chunk_size=None)
        print(f"  plain generate (peer): {runs['plain generate (peer)'].seconds:.1f} s")

    base = [g.text for g in runs["bioner"].generations]
    print(
        f"\n{'side':28s}{'passages/s':>12s}{'tokens/s':>10s}{'passes/passage':>16s}"
        f"{'tokens/pass':>13s}{'identical %':>13s}"
    )
    for name, run in runs.items():
        tokens = sum(g.output_tokens for g in run.generations)
        engine = sides.get(name)
        passes = getattr(engine, "passes", 0) if engine is not None else 0
        per_pass = tokens / passes if passes else 1.0
        passes_per = (passes or tokens) / run.passages
        same = sum(a == g.text for a, g in zip(base, run.generations, strict=True))
        identical = "–" if name.startswith("plain") else f"{100 * same / len(base):.1f}"
        print(
            f"{name:28s}{run.passages / run.seconds:12.2f}{tokens / run.seconds:10.1f}"
            f"{passes_per:16.1f}{per_pass:13.2f}{identical:>13s}"
        )
    speed = {name: run.passages / run.seconds for name, run in runs.items()}
    for peer in ("engine as filed (peer)", "plain generate (peer)", "bioner, no speculation"):
        if peer in speed:
            print(f"bioner / {peer}, passages per second: {speed['bioner'] / speed[peer]:.2f}x")
    run = runs["bioner"]
    useful = sum(g.prompt_tokens + g.output_tokens for g in run.generations)
    achieved = 2 * params * useful / run.seconds / 1e9
    print(
        f"bioner: {achieved:.1f} GFLOP/s of useful work against {gflops:.1f} GFLOP/s float32 "
        f"matrix products on this machine ({100 * achieved / gflops:.1f}%)"
    )


if __name__ == "__main__":
    main()
