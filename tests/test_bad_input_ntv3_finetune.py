"""Bad input to `nt finetune` with NTv3 models: one stderr line naming the problem, exit 2, no traceback.

NTv3 has no ``<cls>`` token: its classifier pools the mean over the real nucleotides, so ``--pooling cls`` (the
NT v1/v2 option a user carries over) is refused before any training, for a preset and a checkpoint folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import assert_bad_input

from modeling_nt import NTv3Config, NTv3ForMaskedLM


def _task(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    rows = "sequence,label\n" + "".join(f"{'ACGTTGCA' * 4},{i % 2}\n" for i in range(8))
    for split in ("train", "dev", "test"):
        (folder / f"{split}.csv").write_text(rows)
    return folder


def _ntv3_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    NTv3ForMaskedLM(NTv3Config.from_preset("tiny-v3")).save_pretrained(tmp_path / "ntv3_ckpt")
    return tmp_path / "ntv3_ckpt"


# (case id, model builder, words the one error line must hold)
CASES = [
    ("preset-pooling-cls", lambda tmp: "tiny-v3", ["--pooling cls", "NTv3", "<cls>", "mean"]),
    ("checkpoint-pooling-cls", _ntv3_checkpoint, ["--pooling cls", "NTv3", "mean"]),
]


@pytest.mark.parametrize(("model", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_ntv3_finetune_bad_input(model, words, tmp_path, run_nt):
    argv = ["finetune", "--model", model(tmp_path), "--benchmark", "gue", "--task", "t"]
    argv += ["--data-dir", _task(tmp_path), "--cache-dir", tmp_path / "cache", "--out", tmp_path / "ft.json"]
    result = run_nt(*argv, "--pooling", "cls", "--folds", "2", "--steps", "1")
    assert_bad_input(result, *words)
    assert not (tmp_path / "ft_work").exists()  # refused before any fold started
