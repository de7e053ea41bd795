"""Generation speed and accuracy: bioner's engine against the paper's demo loop, same model.

Inputs: the first ``--passages`` (default 500) sentences of a real test set (default the
NCBI-disease test split, IOB2), each prompted with the project's symbolic-tagging prompt for
its dataset's schema, wrapped in the model's chat template when it has one — the same prompt
tokens on every side. The model is a local folder (``--model``, default ``models/reference``).
Every side goes through the code of ``bioner evaluate`` (:func:`tasks.evaluate.evaluate_documents`:
segmentation, prompts, per-passage token limits, decoding, metrics), each sentence a document
and all its prompts in one engine call; only the engine differs.

Sides, one after another in this process on the same passages:

* **peer — the released demo loop**: one prompt at a time, ``model.generate`` with sampling
  at temperature 0.5 and a large ``max_length`` (``--demo-max-length``, default 2048 or the
  model's context), stopping at the end-of-sequence token; what the paper's demo does.
* **bioner**: :class:`infra.llm.transformers_engine.TransformersEngine` — prompts sorted by
  length and batched under a token budget, left padding, greedy, ``max_new_tokens`` derived
  from each passage's length and the schema, copy-constrained decoding on (default).
* **bioner, no constraint**: the same without the copy constraint.
* **one at a time, greedy** and **one at a time, prompt lookup**: batch size 1 with and without
  prompt-lookup decoding (``--lookup`` draft tokens), both constrained: their ratio is the gain
  of prompt lookup alone (transformers runs assisted generation one prompt at a time).

Every side stops at the end-of-sequence token; the demo's limit is its large ``max_length``,
bioner's the derived limit (answers cut by it are counted). Prints, per side: passages/s,
output tokens per passage, output tokens/s, strict micro F1 against the gold spans, the share
of answers that are exact copies (decode without a lossy issue), answers cut by a limit; then
the ratios: bioner / demo passages per second, and prompt lookup / plain one at a time.

    .venv/bin/python bench/generate.py --model models/reference [--passages 500] [--threads 2]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from bioner.constraint import SymbolicTarget
from bioner.generation import Engine, Generation, GenerationParams
from bioner.labels import DATASETS
from bioner.records import AnnotatedDocument
from infra.datasets import SPLITS, load_split
from infra.llm.local import marker
from infra.llm.transformers_engine import TransformersEngine
from tasks.evaluate import SetRun, evaluate_documents

ROOT = Path(__file__).resolve().parents[1]


def documents(split: str, n: int) -> list[AnnotatedDocument]:
    """The first ``n`` non-empty single-line documents (sentences) of ``split``."""
    out = []
    for doc in load_split(split):
        if doc.text.strip() and "\n" not in doc.text:
            out.append(doc)
        if len(out) == n:
            break
    return out


class PeerLoop:
    """A peer's decoding loop behind the engine interface, on a :class:`TransformersEngine`'s
    model and tokenizer (its id, prompt version and token counts are the engine's)."""

    backend = ""

    def __init__(self, engine: TransformersEngine) -> None:
        self.engine = engine
        self.model_id = engine.model_id
        self.prompt_version = engine.prompt_version
        self.settings = {"backend": self.backend, "constrained": "off"}
        self.max_context = engine.max_context

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.engine.count_tokens(texts)


class DemoLoop(PeerLoop):
    """The paper's demo behind the engine interface: one prompt at a time, sampling at
    temperature 0.5 up to a large ``max_length``; per-prompt limits and targets are ignored."""

    backend = "demo loop"

    def __init__(self, engine: TransformersEngine, max_length: int) -> None:
        super().__init__(engine)
        self.max_length = max_length

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        targets: Sequence[SymbolicTarget | None] | None = None,
    ) -> list[Generation]:
        engine = self.engine
        model, tokenizer = engine.model, engine.tokenizer
        results = []
        torch.manual_seed(0)
        for prompt in prompts:
            ids = torch.tensor([engine.encode_prompt(prompt)], device=engine.device)
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    temperature=0.5,
                    max_length=self.max_length,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=engine.stop_ids,
                )
            new = out[0, ids.shape[1] :].tolist()
            stop = next((k for k, t in enumerate(new) if t in engine.stop_ids), None)
            text = tokenizer.decode(
                new[:stop] if stop is not None else new, skip_special_tokens=True
            )
            results.append(
                Generation(
                    text,
                    ids.shape[1],
                    stop + 1 if stop is not None else len(new),
                    "stop" if stop is not None else "length",
                )
            )
        return results


def score(run: SetRun) -> dict[str, float]:
    """The bench's columns of one side's run."""
    tokens = sum(g.output_tokens for g in run.generations)
    return {
        "passages/s": run.passages / run.seconds,
        "tokens/passage": tokens / run.requests,
        "tokens/s": tokens / run.seconds,
        "F1": 100 * run.evaluation.strict.micro.f1,
        "exact copies %": 100 * (run.passages - run.lossy_passages) / run.passages,
        "cut by limit": run.truncated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "reference")
    parser.add_argument("--split", default="ncbi/iob/test", choices=sorted(SPLITS))
    parser.add_argument("--passages", type=int, default=500)
    parser.add_argument("--lookup", type=int, default=10, help="prompt-lookup draft tokens")
    parser.add_argument("--demo-max-length", type=int, default=2048)
    parser.add_argument("--batch-tokens", type=int, default=16_384)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip", nargs="*", default=[], help="sides to skip: demo single free")
    args = parser.parse_args()
    free_sides = {"demo", "free"} - set(args.skip)
    if free_sides and marker(args.model).get("training_loss") == "constrained":
        raise SystemExit(
            f"error: {args.model}: trained with the constrained loss, it copies only under the "
            f"copy constraint; the unconstrained sides ({', '.join(sorted(free_sides))}) do not "
            "apply: compare a token-loss model, or --skip demo free"
        )
    torch.set_num_threads(args.threads)

    schema = DATASETS[SPLITS[args.split].dataset].schema.name
    docs = documents(args.split, args.passages)
    engine = TransformersEngine(args.model, batch_tokens=args.batch_tokens)
    limit = min(args.demo_max_length, engine.max_context or args.demo_max_length)
    print(
        f"model {engine.model_id}, {len(docs)} sentences of {args.split}, schema {schema}, "
        f"{args.threads} threads"
    )

    sides: dict[str, Engine] = {"bioner (batched, constrained)": engine}
    if "free" not in args.skip:
        sides["bioner, no constraint"] = TransformersEngine(
            args.model, batch_tokens=args.batch_tokens, constrained=False
        )
    if "single" not in args.skip:
        sides["one at a time, greedy"] = TransformersEngine(args.model, max_batch_size=1)
        sides["one at a time, prompt lookup"] = TransformersEngine(
            args.model, prompt_lookup_tokens=args.lookup
        )
    if "demo" not in args.skip:
        sides["demo loop (peer)"] = DemoLoop(engine, limit)
    scores = {
        name: score(evaluate_documents(side, docs, schema, chunk_size=None))
        for name, side in sides.items()
    }

    columns = list(next(iter(scores.values())))
    print(f"{'side':34s}" + "".join(f"{c:>16s}" for c in columns))
    for name, row in scores.items():
        print(f"{name:34s}" + "".join(f"{row[c]:16.2f}" for c in columns))
    ours = scores["bioner (batched, constrained)"]["passages/s"]
    if "demo loop (peer)" in scores:
        demo = scores["demo loop (peer)"]["passages/s"]
        print(f"\nbioner / demo loop, passages per second: {ours / demo:.2f}x")
    if "one at a time, greedy" in scores:
        plain = scores["one at a time, greedy"]["passages/s"]
        gain = scores["one at a time, prompt lookup"]["passages/s"] / plain
        print(f"prompt lookup / plain, one at a time:     {gain:.2f}x")


if __name__ == "__main__":
    main()
