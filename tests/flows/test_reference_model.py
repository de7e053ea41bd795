"""The reference model shipped in ``models/reference``: small, trained, documented, the default."""

from __future__ import annotations

from bioner.prompts import PROMPT_VERSIONS
from flows.commands.run import REFERENCE_MODEL, _resolve_model
from infra.llm.local import check_model_dir, is_untrained, marker, prompt_version

MAX_BYTES = 40 * 1000 * 1000


def test_it_is_a_trained_model_folder_under_the_size_limit():
    check_model_dir(REFERENCE_MODEL)
    assert not is_untrained(REFERENCE_MODEL)
    size = sum(p.stat().st_size for p in REFERENCE_MODEL.rglob("*") if p.is_file())
    assert size <= MAX_BYTES, f"{size / 1e6:.1f} MB"
    assert prompt_version(REFERENCE_MODEL) in PROMPT_VERSIONS
    info = marker(REFERENCE_MODEL)
    assert info["stopped"] == "completed" and info["config"]["device"] == "cpu"


def test_its_card_gives_data_command_time_and_f1_per_set():
    card = (REFERENCE_MODEL / "README.md").read_text(encoding="utf-8")
    for needed in ("bioner train-data", "bioner train ", "Training time", "NCBI-disease test"):
        assert needed in card
    for name in ("BC5CDR test", "JNLPBA test", "CMeEE-V2 evaluation part"):
        assert name in card


def test_the_main_command_uses_it_by_default():
    assert _resolve_model(None) == REFERENCE_MODEL
