"""Generation speed and accuracy: bioner's engine against the paper's demo loop, same model.

Inputs: the first ``--passages`` (default 500) sentences of a real test set (default the
NCBI-disease test split, IOB2), each prompted with the project's symbolic-tagging prompt for
its dataset's schema, wrapped in the model's chat template when it has one — the same prompt
tokens on every side. The model is a local folder (``--model``, default ``models/reference``).

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
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bioner.codec import symbolic
from bioner.constraint import SymbolicTarget
from bioner.generation import Generation, GenerationParams, max_new_tokens_for
from bioner.labels import DATASETS
from bioner.metrics import evaluate
from bioner.prompts import build_prompt
from infra.datasets import SPLITS, load_split
from infra.llm.transformers_engine import TransformersEngine

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Side:
    name: str
    seconds: float
    generations: list[Generation]


def passages(split: str, n: int) -> list[tuple[str, str, list]]:
    """(id, text, gold spans) of the first ``n`` non-empty single-line documents of ``split``."""
    out = []
    for doc in load_split(split):
        text = doc.document.text
        if text.strip() and "\n" not in text:
            out.append((doc.document.id, text, list(doc.spans)))
        if len(out) == n:
            break
    return out


def demo_loop(engine: TransformersEngine, prompts: list[str], max_length: int) -> Side:
    """The paper's demo: one prompt at a time, sampling at temperature 0.5, a large max_length."""
    model, tokenizer = engine.model, engine.tokenizer
    results = []
    torch.manual_seed(0)
    started = time.perf_counter()
    for prompt in prompts:
        ids = torch.tensor([engine.encode_prompt(prompt)], device=engine.device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=0.5,
                max_length=max_length,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=engine.stop_ids,
            )
        new = out[0, ids.shape[1] :].tolist()
        stop = next((k for k, t in enumerate(new) if t in engine.stop_ids), None)
        text = tokenizer.decode(new[:stop] if stop is not None else new, skip_special_tokens=True)
        results.append(
            Generation(
                text,
                ids.shape[1],
                stop + 1 if stop is not None else len(new),
                "stop" if stop is not None else "length",
            )
        )
    return Side("demo loop (peer)", time.perf_counter() - started, results)


def run_engine(
    name: str,
    engine: TransformersEngine,
    prompts: list[str],
    params: list[GenerationParams],
    targets: list[SymbolicTarget],
) -> Side:
    started = time.perf_counter()
    out = engine.generate(prompts, params, targets)
    return Side(name, time.perf_counter() - started, out)


def score(side: Side, items: list[tuple[str, str, list]], schema) -> dict[str, float]:
    gold, pred, exact = {}, {}, 0
    for (doc_id, text, spans), g in zip(items, side.generations, strict=True):
        found, issues = symbolic.decode(g.text, text, schema, finish_reason=g.finish_reason)
        exact += not any(i.lossy for i in issues)
        gold[doc_id], pred[doc_id] = spans, found
    result = evaluate(gold, pred, labels=schema.labels)
    tokens = sum(g.output_tokens for g in side.generations)
    n = len(side.generations)
    return {
        "passages/s": n / side.seconds,
        "tokens/passage": tokens / n,
        "tokens/s": tokens / side.seconds,
        "F1": 100 * result.strict.micro.f1,
        "exact copies %": 100 * exact / n,
        "cut by limit": sum(g.finish_reason == "length" for g in side.generations),
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
    torch.set_num_threads(args.threads)

    schema = DATASETS[SPLITS[args.split].dataset].schema
    items = passages(args.split, args.passages)
    engine = TransformersEngine(args.model, batch_tokens=args.batch_tokens)
    prompts = [build_prompt(text, schema) for _, text, _ in items]
    targets = [SymbolicTarget.of(text, schema) for _, text, _ in items]
    header = max(engine.count_tokens([t.header for t in schema.types]))
    params = [
        GenerationParams(
            max_new_tokens=max_new_tokens_for(n, len(schema.types), header_tokens=header)
        )
        for n in engine.count_tokens([text for _, text, _ in items])
    ]
    limit = min(args.demo_max_length, engine.max_context or args.demo_max_length)
    print(
        f"model {engine.model_id}, {len(items)} passages of {args.split}, schema {schema.name}, "
        f"{args.threads} threads"
    )

    sides = [run_engine("bioner (batched, constrained)", engine, prompts, params, targets)]
    if "free" not in args.skip:
        free = TransformersEngine(args.model, batch_tokens=args.batch_tokens, constrained=False)
        sides.append(run_engine("bioner, no constraint", free, prompts, params, targets))
    if "single" not in args.skip:
        single = TransformersEngine(args.model, max_batch_size=1)
        lookup = TransformersEngine(args.model, prompt_lookup_tokens=args.lookup)
        sides.append(run_engine("one at a time, greedy", single, prompts, params, targets))
        sides.append(run_engine("one at a time, prompt lookup", lookup, prompts, params, targets))
    if "demo" not in args.skip:
        sides.append(demo_loop(engine, prompts, limit))

    scores = {side.name: score(side, items, schema) for side in sides}
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
