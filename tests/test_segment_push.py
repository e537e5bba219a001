"""``nt push`` of a SegmentNT checkpoint (``OUT/model`` of ``nt segment train``): staged with its code files, a
token-classification card, and weights that load to the same outputs."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification

from benchmarks import segmentation as seg
from modeling_nt import NTForSegmentation


def test_push_dry_run_stages_a_segmentation_checkpoint(run_nt, tmp_path: Path) -> None:
    model = seg.load_segmentation_model("tiny", ("exon", "intron"), seed=3)
    model.save_pretrained(tmp_path / "model")
    result = run_nt("push", tmp_path / "model", "me/segment-tiny", "--dry-run", tmp_path / "stage")
    assert result.code == 0, result.err
    assert "(NTForSegmentation)" in result.out + result.err
    staged = sorted(path.name for path in (tmp_path / "stage").iterdir())
    assert staged == [
        "README.md", "config.json", "configuration_nt.py", "configuration_segment_nt.py", "model.safetensors",
        "modeling_nt.py", "modeling_segment_nt.py", "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip
    card = (tmp_path / "stage" / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "AutoModelForTokenClassification" in card
    assert "exon, intron" in card
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path / "stage").eval()
    assert type(loaded) is NTForSegmentation
    ids = torch.tensor([[3] + [7 + i for i in range(8)]])
    with torch.inference_mode():
        expected, got = model(input_ids=ids).logits, loaded(input_ids=ids).logits
    assert got.shape == (1, 48, 2, 2) and torch.equal(got, expected)
