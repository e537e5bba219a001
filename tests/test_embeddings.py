"""Embedding extraction: pooling, window merging, parquet/npy outputs, resume and sharded runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import embeddings as emb
from benchmarks.cli import main as nt
from modeling_nt import NTConfig, NTForMaskedLM, NTModel

SHORT_CONTEXT = 12  # max_position_embeddings: 10 tokens with <cls>, windows of 9 tokens


def tiny_model(max_positions: int = 2050, seed: int = 0) -> NTModel:
    torch.manual_seed(seed)
    return NTModel(NTConfig.from_preset("tiny", max_position_embeddings=max_positions)).eval()


def random_dna(count: int, low: int, high: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size)) for size in rng.integers(low, high, count)]


def test_make_windows_partition_tokens_at_overlap_midpoints():
    windows = emb.make_windows(7, np.arange(25), width=9, overlap=3)
    assert [(w.start, len(w.ids), w.own_start, w.own_end) for w in windows] == [
        (0, 9, 0, 7),
        (6, 9, 7, 13),
        (12, 9, 13, 18),
        (16, 9, 18, 25),  # the last window is aligned to the end
    ]
    assert all(w.sequence == 7 for w in windows)
    assert [(w.own_start, w.own_end) for w in emb.make_windows(0, np.arange(5), 9, 3)] == [(0, 5)]


def test_mean_pooling_excludes_cls_and_padding():
    model = tiny_model()
    sequences = ["ACGTACGGATTACA" * 2, "ACGTAGCTAGCTAGGATCGATCGATGCATGCAAAACCCGGGTTT" * 3]
    pooled = emb.embed_sequences(model, sequences, layers=[2], progress=False, batch_size=2)[2]
    for row, sequence in enumerate(sequences):
        ids = torch.tensor([[3, *emb.tokenize_windows([sequence], [0], "v2", 2048, 0)[0].ids]])
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[2][0]
        np.testing.assert_allclose(pooled[row], hidden[1:].mean(0).detach().numpy(), atol=1e-5)
    cls = emb.embed_sequences(model, sequences[:1], layers=[-1], pooling="cls", progress=False)[2]
    np.testing.assert_allclose(cls[0], hidden_of(model, sequences[0])[0], atol=1e-5)


def hidden_of(model: NTModel, sequence: str, layer: int = 2) -> np.ndarray:
    ids = torch.tensor([[3, *emb.tokenize_windows([sequence], [0], "v2", 2048, 0)[0].ids]])
    with torch.no_grad():
        return model(input_ids=ids, output_hidden_states=True).hidden_states[layer][0].numpy()


def test_long_sequences_are_windowed_and_merged_token_by_token():
    long_model = tiny_model()
    short_model = tiny_model(max_positions=SHORT_CONTEXT)
    short_model.load_state_dict(long_model.state_dict())
    sequence = "ACGTTGCA" * 20 + "NNN" + "GATTACA" * 11  # 40 + 3 + 13 tokens -> 7 windows of 9 tokens
    per_token = emb.embed_sequences(short_model, [sequence], layers=[0, 2], pooling="none", progress=False)
    # layer 0 does not depend on the context: the merged tokens equal the unwindowed ones, each exactly once
    np.testing.assert_allclose(per_token[0][0], hidden_of(long_model, sequence, 0)[1:], atol=1e-6)
    # deeper layers: every token comes from the window that owns it
    ids = emb.tokenize_windows([sequence], [0], "v2", 2048, 0)[0].ids
    for window in emb.make_windows(0, ids, SHORT_CONTEXT - 3, emb.DEFAULT_OVERLAP_TOKENS // 16):
        with torch.no_grad():
            states = short_model(input_ids=torch.tensor([[3, *window.ids]]), output_hidden_states=True)
        owned = states.hidden_states[2][
            0, 1 + window.own_start - window.start : 1 + window.own_end - window.start
        ]
        np.testing.assert_allclose(
            per_token[2][0][window.own_start : window.own_end], owned.numpy(), atol=1e-5
        )
    mean = emb.embed_sequences(short_model, [sequence], layers=[2], progress=False)[2][0]
    np.testing.assert_allclose(mean, per_token[2][0].mean(0), atol=1e-5)


def test_fasta_to_parquet_and_npy_in_input_order(tmp_path):
    model = tiny_model(max_positions=SHORT_CONTEXT)
    sequences = random_dna(9, 5, 90)
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">seq{i} description\n{s}\n" for i, s in enumerate(sequences)))
    reference = emb.embed_sequences(model, sequences, layers=[1, 2], progress=False)
    parquet = emb.embed_fasta(
        model, fasta, tmp_path / "out.parquet", layers=[1, -1], chunk_size=4, progress=False
    )
    index, layers = emb.read_embeddings(parquet)
    assert index["name"].tolist() == [f"seq{i}" for i in range(9)]
    assert index["length"].tolist() == [len(s) for s in sequences]
    assert (index["n_windows"] > 1).any()
    np.testing.assert_allclose(layers[2], reference[2], atol=1e-6)
    assert not emb.parts_dir(parquet).exists()
    folder = emb.embed_fasta(
        model, fasta, tmp_path / "out_npy", layers=[2], pooling="none", fmt="npy", progress=False
    )
    index, layers = emb.read_embeddings(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["index.tsv", "layer_2.npy"]
    assert [len(tokens) for tokens in layers[2]] == index["n_tokens"].tolist()
    with pytest.raises(FileExistsError, match="finished run"):
        emb.embed_fasta(model, fasta, parquet, progress=False)


def test_killed_run_resumes_without_duplicate_rows(tmp_path, monkeypatch):
    model = tiny_model()
    sequences = random_dna(20, 20, 60, seed=1)
    names = [f"s{i}" for i in range(20)]
    out = tmp_path / "emb.parquet"
    forward = emb._forward_windows
    calls = {"windows": 0}

    def counting_forward(backbone, windows, *args):
        calls["windows"] += len(windows)
        if calls["windows"] > 12:
            raise KeyboardInterrupt("killed")
        return forward(backbone, windows, *args)

    monkeypatch.setattr(emb, "_forward_windows", counting_forward)
    with pytest.raises(KeyboardInterrupt):
        emb.embed_records(model, names, sequences, out, batch_size=4, chunk_size=8, progress=False)
    assert not out.exists() and len(emb._done_indices(emb.parts_dir(out))) == 8
    with pytest.raises(ValueError, match='--pooling: was "mean", now "cls"'):
        emb.embed_records(model, names, sequences, out, pooling="cls", chunk_size=8, progress=False)
    calls["windows"] = -1000
    emb.embed_records(model, names, sequences, out, batch_size=4, chunk_size=8, progress=False)
    assert calls["windows"] == -1000 + 12  # only the 12 unfinished sequences ran again
    index, layers = emb.read_embeddings(out)
    assert index["index"].tolist() == list(range(20)) and index["name"].tolist() == names
    np.testing.assert_allclose(layers[2], emb.embed_sequences(model, sequences, progress=False)[2], atol=1e-6)


def test_sharded_ranks_merge_in_input_order(tmp_path, monkeypatch):
    model = tiny_model()
    sequences = random_dna(11, 10, 80, seed=2)
    names = [f"r{i}" for i in range(11)]
    out = tmp_path / "sharded.parquet"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert emb.embed_records(model, names, sequences, out, chunk_size=3, progress=False) is None
    assert len(emb._done_indices(emb.parts_dir(out))) == 5
    monkeypatch.setenv("RANK", "0")
    emb.embed_records(model, names, sequences, out, chunk_size=3, progress=False, merge_timeout_s=5)
    index, layers = emb.read_embeddings(out)
    assert index["name"].tolist() == names
    np.testing.assert_allclose(layers[2], emb.embed_sequences(model, sequences, progress=False)[2], atol=1e-6)


def test_bf16_close_to_fp32():
    model = tiny_model()
    sequences = random_dna(4, 30, 60, seed=3)
    fp32 = emb.embed_sequences(model, sequences, progress=False)[2]
    bf16 = emb.embed_sequences(tiny_model(), sequences, dtype="bf16", progress=False)[2]
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16, fp32, atol=0.1)


def test_bad_inputs_raise_clear_errors(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match=r"layer 5 out of range: the model has hidden states 0\.\.2"):
        emb.embed_sequences(model, ["ACGT"], layers=[5], progress=False)
    with pytest.raises(ValueError, match="sequence 1: invalid character 'X' at position 2"):
        emb.embed_sequences(model, ["ACGT", "ACXGT"], progress=False)
    with pytest.raises(ValueError, match="pooling must be one of"):
        emb.embed_sequences(model, ["ACGT"], pooling="max", progress=False)
    with pytest.raises(FileNotFoundError, match=r"missing\.fa"):
        emb.read_fasta(tmp_path / "missing.fa")


def test_cli_embed_from_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    NTForMaskedLM(NTConfig.from_preset("tiny")).save_pretrained(tmp_path / "ckpt")
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nACGTACGTAAAC\n>b\nGGGCCCATAT\n")
    out = tmp_path / "emb.parquet"
    argv = [
        "embed",
        "--model",
        str(tmp_path / "ckpt"),
        "--fasta",
        str(fasta),
        "--layers",
        "1,2",
        "--out",
        str(out),
    ]
    assert nt([*argv, "--no-progress"]) == 0
    index, layers = emb.read_embeddings(out)
    assert index["name"].tolist() == ["a", "b"] and layers[1].shape == (2, 64)
    assert nt([*argv, "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (
        nt(["embed", "--model", "tiny", "--fasta", str(fasta), "--layers", "x", "--out", str(tmp_path / "o")])
        == 2
    )
