"""A decoder warm-started from a BERT encoder: weights carried over, causal, runs and trains."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from bioner.generation import GenerationParams
from flows.commands import train as train_cmd
from infra.llm.local import marker
from infra.llm.transformers_engine import TransformersEngine
from infra.llm.warmstart import WarmStartError, build_warm_model
from infra.selector.tiny import build_tiny_encoder

TEXTS = [
    "The patient had breast cancer and diabetes.",
    "Famotidine-associated delirium in older patients.",
    "患者有高血压病史。",
] * 20


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    # 2 layers x 32, 256 positions, a WordPiece vocabulary learnt from TEXTS.
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder") / "bert", TEXTS, seed=3)


@pytest.fixture(scope="module")
def warm(encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("warm") / "model"
    build_warm_model(out, encoder, TEXTS, vocab_size=400, max_positions=600, seed=0)
    return out


def test_layers_and_positions_come_from_the_encoder(encoder, warm):
    from transformers import AutoModel, AutoModelForCausalLM

    source = AutoModel.from_pretrained(encoder).state_dict()
    model = AutoModelForCausalLM.from_pretrained(warm)
    assert type(model).__name__ == "BertLMHeadModel" and model.config.is_decoder
    assert model.config.attention_probs_dropout_prob == 0.0  # SDPA's fused kernel
    target = model.bert.state_dict()
    for name in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.1.output.dense.bias",
                 "embeddings.LayerNorm.weight", "embeddings.token_type_embeddings.weight"):  # fmt: skip
        assert torch.equal(target[name], source[name]), name
    old = source["embeddings.position_embeddings.weight"]  # 256 positions, repeated to 600
    new = target["embeddings.position_embeddings.weight"]
    assert new.shape[0] == 600
    assert torch.equal(new[:256], old) and torch.equal(new[256:512], old)
    assert torch.equal(new[512:], old[:88])
    assert model.get_output_embeddings().weight.data_ptr() == new.data_ptr() or torch.equal(
        model.get_output_embeddings().weight, target["embeddings.word_embeddings.weight"]
    )


def test_token_embeddings_are_the_mean_of_their_wordpieces(encoder, warm):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    pieces = AutoTokenizer.from_pretrained(encoder)
    source = AutoModel.from_pretrained(encoder).embeddings.word_embeddings.weight
    tokenizer = AutoTokenizer.from_pretrained(warm)
    embeddings = AutoModelForCausalLM.from_pretrained(warm).get_input_embeddings().weight
    checked = 0
    for token, token_id in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token])
        ids = pieces(text, add_special_tokens=False)["input_ids"]
        special = token_id in tokenizer.all_special_ids
        if special or "\ufffd" in text or not ids or pieces.unk_token_id in ids:
            continue
        assert torch.allclose(embeddings[token_id], source[ids].mean(dim=0)), token
        checked += 1
    assert checked > 50
    info = marker(warm)
    assert info["trained"] is False and info["kind"] == "warm-start-bert-decoder"
    assert info["tokens_from_wordpieces"] + info["tokens_from_unk"] == len(tokenizer)
    # specials map to their BERT counterparts
    assert torch.equal(embeddings[tokenizer.bos_token_id], source[pieces.cls_token_id])


def test_the_decoder_is_causal(warm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(warm).eval()
    tokenizer = AutoTokenizer.from_pretrained(warm)
    a = tokenizer("Disease: the patient had cancer", return_tensors="pt")["input_ids"]
    b = a.clone()
    b[0, -1] = (b[0, -1] + 1) % len(tokenizer)  # change only the last token
    with torch.no_grad():
        la, lb = model(a).logits, model(b).logits
    assert torch.allclose(la[0, :-1], lb[0, :-1], atol=1e-5)
    assert not torch.allclose(la[0, -1], lb[0, -1])


def test_the_engine_batches_it_like_one_at_a_time(warm):
    # Left padding must not shift the absolute positions the BERT layers were trained with.
    engine = TransformersEngine(warm, batch_tokens=4096)
    prompts = ["Disease: short", "Chemical: famotidine and delirium in older patients", "患者"]
    params = GenerationParams(max_new_tokens=6)
    batched = engine.generate(prompts, params)
    assert [g.text for g in batched] == [engine.generate([p], params)[0].text for p in prompts]


@pytest.fixture(scope="module")
def prefix_warm(encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prefix") / "model"
    build_warm_model(
        out, encoder, TEXTS, vocab_size=400, max_positions=600, seed=0, attention="prefix"
    )
    return out


def test_prefix_mask():
    from infra.llm.prefixlm import prefix_mask

    attention = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    mask = prefix_mask(attention, torch.tensor([2, 0]))[:, 0].int()
    assert mask[0].tolist() == [
        [1, 1, 0, 0, 0],  # the prefix (2 tokens) reads itself both ways
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],  # then causal
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],  # a pad reads nothing past the real tokens
    ]
    assert mask[1].tolist() == torch.tril(torch.ones(5, 5, dtype=torch.int)).tolist()


def test_a_prefix_lm_reads_the_prompt_both_ways_and_the_answer_causally(prefix_warm):
    from transformers import AutoModelForCausalLM

    from infra.llm.prefixlm import is_prefix_lm, training_mask

    model = AutoModelForCausalLM.from_pretrained(prefix_warm).eval()
    assert is_prefix_lm(model) and marker(prefix_warm)["attention"] == "prefix"
    ids = torch.randint(10, 390, (1, 12))
    n_prompt = torch.tensor([6])

    def logits(x):
        mask = training_mask(model, torch.ones_like(x), n_prompt)
        with torch.no_grad():
            return model(input_ids=x, attention_mask=mask).logits[0]

    embeddings = model.get_input_embeddings().weight

    def changed(x, at):  # another token with another embedding (many start as [UNK]'s)
        y = x.clone()
        y[0, at] = next(
            t for t in range(400) if not torch.equal(embeddings[t], embeddings[int(x[0, at])])
        )
        return y

    base = logits(ids)
    in_prompt = changed(ids, 4)  # a prefix token: earlier positions see it
    assert not torch.allclose(logits(in_prompt)[0], base[0], atol=1e-5)
    in_answer = changed(ids, 9)  # an answer token: earlier ones do not
    assert torch.allclose(logits(in_answer)[:9], base[:9], atol=1e-5)
    assert not torch.allclose(logits(in_answer)[9], base[9], atol=1e-5)


@pytest.fixture(scope="module")
def sharp_prefix(prefix_warm, tmp_path_factory):
    """The prefix-LM with large random weights: its answers depend on how the prompt attends
    (the tiny encoder's own weights are too small for the attention pattern to show)."""
    import shutil

    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("sharp") / "model"
    shutil.copytree(prefix_warm, out)
    model = AutoModelForCausalLM.from_pretrained(out)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() == 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
    model.save_pretrained(out)
    return out


def test_the_engine_generates_a_prefix_lm_as_it_was_trained(sharp_prefix):
    # Greedy decoding through the engine (prefill + cache, left-padded batches) equals greedy
    # decoding by whole-sequence forwards under the training mask.
    from infra.llm.prefixlm import training_mask

    engine = TransformersEngine(sharp_prefix, batch_tokens=4096, constrained=False)
    assert engine.settings["attention"] == "prefix"
    model, stops = engine.model, set(engine.stop_ids)
    prompts = ["Disease: short", "Chemical: famotidine and delirium in older patients", "患者"]
    params = GenerationParams(max_new_tokens=6)
    batched = engine.generate(prompts, params)
    for prompt, got in zip(prompts, batched, strict=True):
        ids = torch.tensor([engine.encode_prompt(prompt)])
        n_prompt = torch.tensor([ids.shape[1]])
        new: list[int] = []
        for _ in range(6):
            with torch.no_grad():
                mask = training_mask(model, torch.ones_like(ids), n_prompt)
                token = int(model(input_ids=ids, attention_mask=mask).logits[0, -1].argmax())
            if token in stops:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        assert got.text == engine.tokenizer.decode(new, skip_special_tokens=True), prompt
    engine.prefix_lm = False  # the same weights run causally answer otherwise
    assert [g.text for g in engine.generate(prompts, params)] != [g.text for g in batched]
    with pytest.raises(ValueError, match="prompt-lookup decoding is not available"):
        TransformersEngine(sharp_prefix, prompt_lookup_tokens=3)


def test_refuses_a_folder_that_is_not_a_bert_encoder(tiny_model, tmp_path):
    with pytest.raises(WarmStartError, match=r"a llama model; a warm start takes a bert encoder"):
        build_warm_model(tmp_path / "m", tiny_model, TEXTS, vocab_size=400)
    with pytest.raises(WarmStartError, match=r"no config\.json"):
        build_warm_model(tmp_path / "m", tmp_path, TEXTS, vocab_size=400)
    assert not (tmp_path / "m").exists()


app = typer.Typer()
app.command("init-model")(train_cmd.init_model)
app.command("train")(train_cmd.train)
runner = CliRunner()


@pytest.mark.parametrize(
    ("extra", "banner", "attention"),
    [
        ([], "BERT decoder warm-started", "causal"),
        (["--attention", "prefix"], "BERT prefix-LM warm-started", "prefix"),
    ],
)
def test_init_model_from_encoder_then_train(encoder, data_dir, tmp_path, extra, banner, attention):
    start, out = tmp_path / "start", tmp_path / "trained"
    args = ["init-model", "--data", str(data_dir), "--out", str(start), "--vocab-size", "400"]
    result = runner.invoke(app, [*args, "--from-encoder", str(encoder), *extra])
    assert result.exit_code == 0, result.output
    assert banner in result.output
    assert json.loads((start / "config.json").read_text())["max_position_embeddings"] == 1024
    result = runner.invoke(
        app,
        ["train", "--model", str(start), "--data", str(data_dir), "--out", str(out),
         "--max-steps", "2", "--batch-size", "2", "--threads", "1", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert marker(out)["trained"] is True
    assert json.loads((out / "config.json").read_text())["bioner_attention"] == attention


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "2"], "--layers: the shape of a warm start comes from the encoder"),
        (["--from-encoder", "/nonexistent/enc"], "/nonexistent/enc: not a model folder"),
        (["--attention", "both"], "--attention 'both': causal or prefix"),
    ],
)
def test_init_model_from_encoder_refuses_bad_options(encoder, data_dir, tmp_path, extra, message):
    args = ["init-model", "--data", str(data_dir), "--out", str(tmp_path / "m")]
    if extra[0] != "--from-encoder":
        extra = [*extra, "--from-encoder", str(encoder)]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "m").exists()


def test_a_random_llama_cannot_be_a_prefix_lm(data_dir, tmp_path):
    args = ["init-model", "--data", str(data_dir), "--out", str(tmp_path / "m")]
    result = runner.invoke(app, [*args, "--attention", "prefix"])
    assert result.exit_code == 2 and "--attention prefix needs --from-encoder" in result.output
    assert not (tmp_path / "m").exists()
