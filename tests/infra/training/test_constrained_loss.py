"""Training under the copy constraint: the allowed sets are the decoding mask, the loss is the
renormalised one, and a model so trained decodes its examples under the constraint."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bioner.constraint import SymbolicTarget
from bioner.generation import GenerationParams
from bioner.training.data import example_schema
from infra.llm.constrained import CopyConstraintProcessor
from infra.llm.local import marker
from infra.llm.transformers_engine import TransformersEngine, stop_token_ids
from infra.training.constrained_loss import ConstraintSets, loss_sum
from infra.training.data import write_examples
from infra.training.encoding import IGNORE_INDEX, AllowedSets, Encoded, encode_example
from infra.training.sft import SFTConfig, collate, load_tokenizer, train


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(tiny_model)


@pytest.fixture(scope="module")
def sets(tokenizer):
    return ConstraintSets(tokenizer, [tokenizer.eos_token_id])


def _mask(processor, prefix, width):
    scores = processor(torch.tensor([prefix]), torch.zeros((1, width)))
    return set(torch.isfinite(scores[0]).nonzero().flatten().tolist())


def test_allowed_sets_are_the_decoding_mask(tokenizer, sets, examples):
    width = len(tokenizer)
    checked = 0
    for ex in examples:
        enc = encode_example(tokenizer, ex.prompt, ex.response)
        allowed = sets.of(ex, enc.input_ids[enc.n_prompt :])
        assert allowed is not None and len(allowed) == len(enc) - enc.n_prompt
        target = SymbolicTarget.of(ex.text, example_schema(ex))
        processor = CopyConstraintProcessor(
            sets.trie, [target], enc.n_prompt, sets.stop_ids, tokenizer
        )
        for k in range(len(allowed)):
            ids = set(allowed.ids[allowed.offsets[k] : allowed.offsets[k + 1]].tolist())
            gold = enc.input_ids[enc.n_prompt + k]
            assert gold in ids
            mask = _mask(processor, list(enc.input_ids[: enc.n_prompt + k]), width)
            assert ids - {gold} <= mask and mask <= ids, (ex.response, k)
            checked += 1
    assert checked > 20


def test_a_full_view_example_leaves_out_which_lines_come_and_keeps_the_brackets(
    tokenizer, sets, examples
):
    ex = examples[0]  # Chemical: [Famotidine]-associated delirium.  Disease: ... [delirium].
    assert ex.response.count("\n") == 1
    enc = encode_example(tokenizer, ex.prompt, ex.response)
    response = enc.input_ids[enc.n_prompt :]
    whole = sets.of(ex, response)
    partial = sets.of(replace(ex, annotated=("Disease",)), response)
    assert whole is not None and partial is not None and len(whole) == len(partial)

    def at(allowed, k):
        return set(allowed.ids[allowed.offsets[k] : allowed.offsets[k + 1]].tolist())

    breaks = {k + 1 for k in range(len(response)) if tokenizer.decode([response[k]]).endswith("\n")}
    left_out = 0
    for k in range(len(response)):
        line_choice = k == 0 or k in breaks or bool(at(whole, k) & set(sets.stop_ids))
        if line_choice:
            assert at(partial, k) == {response[k]}
            left_out += len(at(whole, k)) > 1
        else:  # the copy and its brackets are taught as before
            assert at(partial, k) == at(whole, k)
    assert left_out >= 3  # the first header, the second header, the end
    assert sum(len(at(partial, k)) > 1 for k in range(len(response))) > 0
    # Every annotated type asked: nothing is left out.
    same = sets.of(replace(ex, annotated=("Chemical", "Disease")), response)
    assert [at(same, k) for k in range(len(response))] == [
        at(whole, k) for k in range(len(response))
    ]


def test_json_examples_keep_the_token_loss(tokenizer, sets, examples):
    ex = examples[0]
    other = type(ex)(**{**ex.to_json(), "format": "json", "spans": ex.spans})
    assert sets.of(other, [1, 2]) is None


def test_an_answer_that_leaves_the_valid_ones_is_unrestricted_from_there(tokenizer, sets, examples):
    ex = next(e for e in examples if e.spans)
    bad = type(ex)(**{**ex.to_json(), "response": "Quux nonsense", "spans": ex.spans})
    ids = tokenizer(bad.response, add_special_tokens=False)["input_ids"]
    allowed = sets.of(bad, [*ids, tokenizer.eos_token_id])
    sizes = np.diff(allowed.offsets)
    assert sizes[0] > 0  # the first token is judged (and kept even though invalid)
    assert (sizes[1:] == 0).all()


def test_loss_sum_renormalises_over_the_allowed_ids():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9)
    targets = torch.tensor([[IGNORE_INDEX, 3, 5, 1], [2, 2, IGNORE_INDEX, IGNORE_INDEX]])
    plain = F.cross_entropy(
        logits.reshape(-1, 9), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    assert torch.allclose(loss_sum(logits, targets), plain)
    positions = torch.tensor([1, 4])  # (row 0, col 1) gold 3 and (row 1, col 0) gold 2
    ids = torch.tensor([[3, 7, -1], [0, 2, 8]])
    flat, gold = logits.reshape(-1, 9), targets.reshape(-1)
    expected = 0.0
    for p in range(8):
        if gold[p] == IGNORE_INDEX:
            continue
        if p == 1:
            expected += -F.log_softmax(flat[p, [3, 7]], 0)[0]
        elif p == 4:
            expected += -F.log_softmax(flat[p, [0, 2, 8]], 0)[1]
        else:
            expected += -F.log_softmax(flat[p], 0)[gold[p]]
    got = loss_sum(logits, targets, positions, ids)
    assert torch.allclose(got, expected)
    assert got < plain


def test_restriction_points_at_the_logits_that_predict_each_response_token():
    def enc(ids, n_prompt, sets):
        flat = [i for s in sets for i in s]
        offsets = np.cumsum([0, *(len(s) for s in sets)]).astype(np.int32)
        return Encoded(tuple(ids), n_prompt, AllowedSets(np.array(flat, np.int32), offsets))

    a = enc([1, 9, 9, 4, 5, 2], 3, [[4, 6], [], [2, 7, 8]])  # the middle one unrestricted
    b = enc([1, 9, 6, 2], 2, [[6], [2]])
    batch = collate([a, b], pad_id=0)
    positions, ids = batch["restrict_positions"], batch["restrict_ids"]
    gold = batch["labels"][:, 1:].reshape(-1)
    assert gold[positions].tolist() == [4, 2, 6, 2]
    assert ids.tolist() == [[4, 6, -1], [2, 7, 8], [6, -1, -1], [2, -1, -1]]
    assert "restrict_positions" not in collate([Encoded((1, 2, 3), 1)], pad_id=0)


def test_constrained_training_learns_and_must_decode_constrained(
    tiny_model, data_dir, examples, tmp_path
):
    out = tmp_path / "m"
    config = SFTConfig(
        model=str(tiny_model),
        data=str(data_dir),
        out=str(out),
        batch_size=2,
        lr=3e-3,
        warmup_ratio=0.0,
        save_every=0,
        threads=1,
        log_every=0,
        max_steps=40,
        loss="constrained",
    )
    result = train(config)
    assert result.losses[-1] < result.losses[0] / 20
    assert marker(out)["training_loss"] == "constrained"
    engine = TransformersEngine(out)
    targets = [SymbolicTarget.of(e.text, example_schema(e)) for e in examples]
    got = engine.generate(
        [e.prompt for e in examples], GenerationParams(max_new_tokens=80), targets
    )
    assert [g.text for g in got] == [e.response for e in examples]
    with pytest.raises(ValueError, match="constrained loss"):
        TransformersEngine(out, constrained=False)
    with pytest.raises(ValueError, match="loss"):
        train(SFTConfig(**{**config.to_json(), "loss": "token", "max_steps": 41}), resume=True)
    with pytest.raises(ValueError, match="loss must be"):
        SFTConfig(model="m", data="d", out="o", loss="focal")


def test_full_view_examples_need_the_constrained_loss(tiny_model, examples, tmp_path):
    data = tmp_path / "data"
    write_examples(
        [replace(examples[0], annotated=("Disease",)), *examples[1:]], data / "train.jsonl"
    )
    config = SFTConfig(model=str(tiny_model), data=str(data), out=str(tmp_path / "m"), max_steps=1)
    with pytest.raises(ValueError, match=r"full view .* --loss constrained"):
        train(config)


def test_stop_tokens_are_the_engines(tiny_model, tokenizer):
    engine = TransformersEngine(tiny_model)
    assert stop_token_ids(engine.model.generation_config, tokenizer) == engine.stop_ids


@pytest.mark.parametrize("constrained", [False, True])
def test_logits_only_from_the_shortest_prompt_on_give_the_same_loss(
    tiny_model, tokenizer, sets, examples, monkeypatch, constrained
):
    from infra.training import sft

    model = sft.build_model(SFTConfig(model=str(tiny_model), data="d", out="o", threads=1)).eval()
    encoded, _ = sft.encode_all(tokenizer, examples, 1024, sets if constrained else None)
    batch = collate(encoded, tokenizer.pad_token_id)
    assert int(batch["prompt_lengths"].min()) > 1
    with torch.no_grad():
        kept = sft._loss_sum(model, batch)
        monkeypatch.setattr(sft, "_keeps_logits", lambda model: False)
        whole = sft._loss_sum(model, batch)
    assert torch.allclose(kept, whole, rtol=1e-5)


def test_a_checkpoint_from_before_the_loss_setting_resumes_with_the_token_loss(
    tiny_model, data_dir, tmp_path
):
    import json

    from infra.training.sft import latest_checkpoint

    config = SFTConfig(
        model=str(tiny_model),
        data=str(data_dir),
        out=str(tmp_path / "m"),
        batch_size=2,
        threads=1,
        log_every=0,
        max_steps=3,
    )
    train(config, stop_after_steps=1)
    state_file = latest_checkpoint(tmp_path / "m") / "state.json"
    state = json.loads(state_file.read_text())
    del state["config"]["loss"]  # as written before the setting existed
    state_file.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="settings differ: loss"):
        train(SFTConfig(**{**config.to_json(), "loss": "constrained"}), resume=True)
    assert train(config, resume=True).steps == 3
