"""Property-based tests (hypothesis) of the invariants users rely on.

- the fast tokenizer (``build_tokenizer()(...)``) and the numpy batch path (``encode_batch``) give the same ids;
- a sequence alone gives the same logits and hidden states as the same sequence in a padded batch;
- window merging of long sequences: ownership partitions the tokens, per-token outputs come back in sequence
  order, and with a model whose output at a token depends only on that token the merged outputs do not
  depend on the window overlap.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import embeddings as emb
from modeling_nt import NTConfig, NTForMaskedLM
from tokenization import build_tokenizer, encode_batch, vocabulary

PROPERTY_SETTINGS = settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Letters the lenient input policy accepts: A/C/G/T/N any case, U, the IUPAC ambiguity letters, whitespace.
POLICY_LETTERS = "ACGTacgtNnUuRYSWKMBDHVrysw \n"

#: DNA as users write it: pieces of A/C/G/T, runs of N, lowercase, IUPAC letters and whitespace, mixed.
dna_text = st.lists(
    st.one_of(
        st.text(alphabet="ACGT", min_size=1, max_size=40),
        st.integers(1, 8).map(lambda n: "N" * n),
        st.text(alphabet=POLICY_LETTERS, min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=8,
).map("".join)


@functools.cache
def _tokenizer(version: str):
    return build_tokenizer(version, model_max_length=10_000)


@PROPERTY_SETTINGS
@given(sequences=st.lists(dna_text, min_size=1, max_size=5), version=st.sampled_from(["v1", "v2"]))
def test_tokenizer_ids_equal_the_numpy_batch_path(sequences, version):
    expected = _tokenizer(version)(sequences, padding=True)
    actual = encode_batch(sequences, version, max_length=10_000)
    assert actual["input_ids"].tolist() == expected["input_ids"]
    assert actual["attention_mask"].tolist() == expected["attention_mask"]


@functools.cache
def _tiny_masked_lm(preset: str) -> NTForMaskedLM:
    torch.manual_seed(0)
    return NTForMaskedLM(NTConfig.from_preset(preset)).eval()


@settings(PROPERTY_SETTINGS, max_examples=15)
@given(
    sequence=st.text(alphabet="ACGTN", min_size=1, max_size=90),
    others=st.lists(st.text(alphabet="ACGTN", min_size=1, max_size=150), min_size=1, max_size=3),
    position=st.integers(0, 3),
    preset=st.sampled_from(["tiny", "tiny-v1"]),
)
def test_a_sequence_alone_equals_the_same_sequence_in_a_padded_batch(sequence, others, position, preset):
    model = _tiny_masked_lm(preset)
    version = model.config.tokenizer_version
    batch = [*others[:position], sequence, *others[position:]]
    row = min(position, len(others))
    alone = encode_batch([sequence], version)
    padded = encode_batch(batch, version)
    n_tokens = int(alone["attention_mask"].sum())
    with torch.inference_mode():
        out_alone = model(**{k: torch.from_numpy(v) for k, v in alone.items()}, output_hidden_states=True)
        out_batch = model(**{k: torch.from_numpy(v) for k, v in padded.items()}, output_hidden_states=True)
    torch.testing.assert_close(
        out_batch.logits[row, :n_tokens], out_alone.logits[0, :n_tokens], atol=1e-5, rtol=0
    )
    for layer_alone, layer_batch in zip(out_alone.hidden_states, out_batch.hidden_states, strict=True):
        torch.testing.assert_close(layer_batch[row, :n_tokens], layer_alone[0, :n_tokens], atol=1e-5, rtol=0)


@settings(deadline=None, max_examples=200)
@given(length=st.integers(1, 300), width=st.integers(1, 40), overlap_share=st.floats(0, 0.99))
def test_window_ownership_partitions_the_tokens_in_order(length, width, overlap_share):
    overlap = int(overlap_share * width)
    windows = emb.make_windows(3, np.arange(length), width, overlap)
    owned = np.concatenate([w.ids[w.own_start - w.start : w.own_end - w.start] for w in windows])
    assert owned.tolist() == list(range(length))  # each token owned exactly once, in sequence order
    for window in windows:
        assert len(window.ids) <= width
        assert window.start <= window.own_start < window.own_end <= window.start + len(window.ids)
        assert window.ids.tolist() == list(range(window.start, window.start + len(window.ids)))
    assert windows[-1].start + len(windows[-1].ids) == length  # the last window ends at the sequence end


class PerTokenBackbone(torch.nn.Module):
    """A stand-in encoder whose hidden state at a token is a fixed vector of that token id alone (no
    context): merged outputs of any windowing must then equal the whole sequence's vectors."""

    def __init__(self, context: int, version: str = "v2") -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.table = torch.nn.Parameter(torch.randn(len(vocabulary(version)), 5, generator=generator))
        self.config = SimpleNamespace(
            tokenizer_version=version,
            max_tokens=context,
            num_hidden_layers=1,
            position_embedding_type="rotary",
        )

    def forward(self, input_ids, attention_mask, output_hidden_states=True, last_layer=1):
        states = self.table[input_ids] * attention_mask[..., None]
        return SimpleNamespace(hidden_states=(states, 2.0 * states), last_hidden_state=2.0 * states)


def _merged(backbone, sequences, pooling, overlap):
    indices = list(range(len(sequences)))
    merged = {}
    for chunk, embeddings, n_windows in emb.iter_embeddings(
        backbone,
        sequences,
        indices,
        layers=[1],
        pooling=pooling,
        batch_size=3,
        overlap=overlap,
        chunk_size=2,
        progress=False,
    ):
        for index, value, count in zip(chunk, embeddings[1], n_windows, strict=True):
            merged[index] = (value, count)
    return [merged[index] for index in indices]


@settings(deadline=None, max_examples=25)
@given(
    sequences=st.lists(st.text(alphabet="ACGTN", min_size=1, max_size=200), min_size=1, max_size=4),
    context=st.integers(4, 16),
    overlaps=st.lists(st.integers(0, 7), min_size=2, max_size=3, unique=True),
)
def test_window_merging_does_not_depend_on_the_overlap(sequences, context, overlaps):
    backbone = PerTokenBackbone(context)
    overlaps = [overlap for overlap in overlaps if overlap < context - 1]
    whole = encode_batch(sequences, "v2", max_length=10_000)
    for pooling in ("none", "mean"):
        results = [_merged(backbone, sequences, pooling, overlap) for overlap in overlaps]
        for row in range(len(sequences)):
            ids = whole["input_ids"][row, 1 : int(whole["attention_mask"][row].sum())]
            expected = 2.0 * backbone.table[torch.from_numpy(ids)].detach().numpy()
            if pooling == "mean":
                expected = expected.mean(axis=0)
            for result in results:
                value, n_windows = result[row]
                assert (n_windows == 1) == (len(ids) <= context - 1)
                assert n_windows >= -(-len(ids) // (context - 1))
                np.testing.assert_allclose(value, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("pooling", ["none", "mean"])
def test_window_merging_of_a_real_model_layer_zero_does_not_depend_on_the_overlap(pooling):
    """Layer 0 of a v2 model (token embeddings, rotary positions act only inside attention) is per token: a
    sequence spanning 5 windows gives the same merged output for every overlap."""
    torch.manual_seed(0)
    from modeling_nt import NTModel

    model = NTModel(NTConfig.from_preset("tiny", max_position_embeddings=12)).eval()  # 10-token context
    sequence = "".join(np.random.default_rng(1).choice(list("ACGT"), 6 * 40))  # 40 tokens, several windows
    outputs = [
        emb.embed_sequences(model, [sequence], layers=[0], pooling=pooling, overlap=overlap, progress=False)[
            0
        ]
        for overlap in (0, 2, 4)
    ]
    alone = emb.embed_sequences(
        model, [sequence[:54]], layers=[0], pooling="none", overlap=0, progress=False
    )[0][0]
    first = outputs[0][0] if pooling == "none" else None
    for output in outputs[1:]:
        np.testing.assert_allclose(output[0], outputs[0][0], atol=1e-6, rtol=0)
    if first is not None:
        assert first.shape == (40, model.config.hidden_size)
        np.testing.assert_allclose(first[:9], alone, atol=1e-6, rtol=0)  # the first 9 tokens, one window
