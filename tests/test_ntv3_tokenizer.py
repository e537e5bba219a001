"""The NT v3 single-base tokenizer: exact ids, input policy, padding to 2**n, reload, decode, numpy batch path."""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, DataCollatorForLanguageModeling, PreTrainedTokenizerFast

from modeling_nt import tokenizer_for
from modeling_nt.checkpoint import save_tokenizer
from tokenization import (
    build_ntv3_tokenizer,
    build_tokenizer,
    encode_ntv3_batch,
    ntv3_vocabulary,
    pad_sequence_to_multiple,
)

# Official get_ntv3_tokenizer(): the six special tokens, then A T C G N.
OFFICIAL_VOCAB = {
    "<unk>": 0,
    "<pad>": 1,
    "<mask>": 2,
    "<cls>": 3,
    "<eos>": 4,
    "<bos>": 5,
    "A": 6,
    "T": 7,
    "C": 8,
    "G": 9,
    "N": 10,
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_ntv3_tokenizer()


def test_vocabulary_is_the_official_layout(tokenizer):
    from modeling_nt.configuration_ntv3 import NTV3_VOCAB

    assert ntv3_vocabulary() == OFFICIAL_VOCAB
    assert tokenizer.get_vocab() == OFFICIAL_VOCAB
    assert {token: index for index, token in enumerate(NTV3_VOCAB)} == OFFICIAL_VOCAB  # the config's copy
    ids = (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.cls_token_id)
    assert ids == (0, 1, 2, 3)
    assert (tokenizer.eos_token_id, tokenizer.bos_token_id) == (4, 5)


@pytest.mark.parametrize(
    ("sequence", "ids"),
    [
        ("ACGTN", [6, 8, 9, 7, 10]),
        ("TTAAGGCC", [7, 7, 6, 6, 9, 9, 8, 8]),
        ("NNNA", [10, 10, 10, 6]),
        ("ACGTAC", [6, 8, 9, 7, 6, 8]),  # a 6-mer is still six tokens
        ("G", [9]),
        ("", []),
    ],
)
def test_exact_ids_nothing_added(tokenizer, sequence, ids):
    encoded = tokenizer(sequence)
    assert encoded["input_ids"] == ids
    assert encoded["attention_mask"] == [1] * len(ids)
    assert tokenizer.convert_ids_to_tokens(ids) == list(sequence)
    batch = encode_ntv3_batch([sequence], pad_to_multiple_of=None)
    assert batch["input_ids"].tolist() == [ids]


def test_literal_special_token_is_one_token(tokenizer):
    assert tokenizer("AC<mask>GT")["input_ids"] == [6, 8, 2, 9, 7]
    with pytest.raises(ValueError, match="literal special tokens such as <mask> are not accepted"):
        encode_ntv3_batch(["AC<mask>GT"])


def test_lenient_policy_is_the_6mer_policy(tokenizer):
    # a c g u n -> A C G T N; R Y w -> N N N; newline, tab, space removed
    assert tokenizer("acgun\nRY\t w")["input_ids"] == [6, 8, 9, 7, 10, 10, 10, 10]
    assert encode_ntv3_batch(["acgun\nRY\t w"], pad_to_multiple_of=None)["input_ids"].tolist() == [
        [6, 8, 9, 7, 10, 10, 10, 10]
    ]
    # the same characters are accepted and read alike by the 6-mer tokenizer (one shared policy)
    six_mer = build_tokenizer("v2")
    assert six_mer.decode(six_mer("acgun\nRY\t w")["input_ids"], skip_special_tokens=True) == "ACGTNNNN"


@pytest.mark.parametrize(
    ("text", "char", "position"),
    [("ACGTXA", "X", 4), ("AC-GT", "-", 2), ("ACGT1", "1", 4), ("ACG>T", ">", 3), ("ACGT.", ".", 4)],
)
def test_refused_characters_one_line_error(tokenizer, text, char, position):
    expected = rf"invalid character '{char}' at position {position}"
    for call in (
        lambda: tokenizer(["ACGT", text]),
        lambda: encode_ntv3_batch(["ACGT", text]),
    ):
        with pytest.raises(ValueError, match=rf"sequence 1: {expected}") as error:
            call()
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=expected):
        pad_sequence_to_multiple(text, 8)


def test_strict_policy_refuses_lowercase_and_u():
    strict = build_ntv3_tokenizer(strict=True)
    assert strict("ACGTN")["input_ids"] == [6, 8, 9, 7, 10]
    for text, char, position in [("ACGTa", "a", 4), ("ACGU", "U", 3), ("AC GT", " ", 2)]:
        with pytest.raises(ValueError, match=rf"invalid character '{char}' at position {position}"):
            strict(text)
        with pytest.raises(ValueError, match=rf"invalid character '{char}' at position {position}"):
            encode_ntv3_batch([text], strict=True)


def test_padding_to_multiple_of_128_with_pad_and_mask(tokenizer):
    encoded = tokenizer(["ACGTN", "C" * 130], padding=True, return_tensors="np")
    assert encoded["input_ids"].shape == (2, 256)
    assert encoded["input_ids"][0, :5].tolist() == [6, 8, 9, 7, 10]
    assert (encoded["input_ids"][0, 5:] == 1).all()
    assert (encoded["input_ids"][1, :130] == 8).all() and (encoded["input_ids"][1, 130:] == 1).all()
    assert encoded["attention_mask"][0].tolist() == [1] * 5 + [0] * 251
    assert encoded["attention_mask"][1].tolist() == [1] * 130 + [0] * 126
    assert len(tokenizer("ACG", padding=True)["input_ids"]) == 128
    assert len(tokenizer("A" * 128, padding=True)["input_ids"]) == 128  # already a multiple: unchanged
    assert len(tokenizer("ACG")["input_ids"]) == 3  # no padding asked, none added
    assert len(tokenizer("ACG", padding=True, pad_to_multiple_of=32)["input_ids"]) == 32
    assert tokenizer("ACG", padding="max_length", max_length=200)["attention_mask"].count(0) == 253


def test_pad_method_used_by_collators_pads_to_the_multiple(tokenizer):
    padded = tokenizer.pad({"input_ids": [[6, 7], [8]]})
    assert [len(row) for row in padded["input_ids"]] == [128, 128]
    assert padded["input_ids"][1][:3] == [8, 1, 1]
    assert padded["attention_mask"][1][:3] == [1, 0, 0]
    assert len(tokenizer.pad({"input_ids": [[6]]}, pad_to_multiple_of=16)["input_ids"][0]) == 16
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5, seed=0)
    batch = collator([tokenizer("ACGTA"), tokenizer("C" * 130)])
    assert tuple(batch["input_ids"].shape) == (2, 256)
    assert (batch["input_ids"][0, 5:] == 1).all() and (
        batch["labels"][0, 5:] == -100
    ).all()  # padding never masked


def test_multiple_follows_num_downsamples():
    tokenizer = tokenizer_for(SimpleNamespace(model_type="ntv3", num_downsamples=5))
    assert tokenizer("ACG", padding=True)["input_ids"] == [6, 8, 9] + [1] * 29
    assert len(build_ntv3_tokenizer(pad_to_multiple_of=None)("ACG", padding=True)["input_ids"]) == 3
    for bad in (0, -128, 2.5, True):
        with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive int"):
            build_ntv3_tokenizer(pad_to_multiple_of=bad)


def test_tokenizer_for_the_ntv3_config_and_checkpoint_files(tmp_path):
    from modeling_nt.configuration_ntv3 import NTv3Config

    config = NTv3Config()  # released models: 7 downsamples
    assert config.num_downsamples == 7
    tokenizer = tokenizer_for(config)
    assert tokenizer("ACGTN")["input_ids"] == [6, 8, 9, 7, 10]
    assert len(tokenizer("ACGTN", padding=True)["input_ids"]) == 128
    save_tokenizer(config, tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert (
        reloaded("acgtn", padding=True, pad_to_multiple_of=128)["input_ids"] == [6, 8, 9, 7, 10] + [1] * 123
    )
    assert tokenizer_for(SimpleNamespace(model_type="nt", tokenizer_version="v2", max_tokens=2048))("ACGTGT")[
        "input_ids"
    ] == [3, 739]  # 6-mer configs unchanged (NT_SPEC worked example)


def test_too_long_raises_unless_truncation():
    tokenizer = build_ntv3_tokenizer(model_max_length=10)
    with pytest.raises(ValueError, match=r"sequence 0 is 11 tokens long, more than the limit of 10 tokens"):
        tokenizer("A" * 11)
    with pytest.raises(ValueError, match=r"sequence 1 is 11 tokens long, more than the limit of 10 tokens"):
        encode_ntv3_batch(["A", "A" * 11], max_length=10)
    assert tokenizer("ACGTACGTACGT", truncation=True)["input_ids"] == [6, 8, 9, 7] * 2 + [6, 8]
    batch = encode_ntv3_batch(["ACGTACGTACGT", "C"], max_length=10, truncation=True, pad_to_multiple_of=None)
    assert batch["input_ids"].tolist() == [[6, 8, 9, 7] * 2 + [6, 8], [8] + [1] * 9]
    assert batch["attention_mask"].sum(axis=1).tolist() == [10, 1]


SEQUENCES = ["ACGTN", "acgu<mask>ryACGT", "", "N" * 7 + "GATTACA" * 30]


def test_save_reload_identity(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "strict" not in config and "pad_to_multiple_of" not in config
    expected = tokenizer(SEQUENCES, padding=True)
    assert [len(row) for row in expected["input_ids"]] == [256] * 4
    from_auto = AutoTokenizer.from_pretrained(tmp_path)
    from_file = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"), pad_token="<pad>")
    for reloaded in (from_auto, from_file):
        assert reloaded(SEQUENCES)["input_ids"] == tokenizer(SEQUENCES)["input_ids"]
        assert dict(reloaded(SEQUENCES, padding=True, pad_to_multiple_of=128)) == dict(expected)
        assert reloaded.get_vocab() == OFFICIAL_VOCAB
    # a generic reload cannot raise: a character outside the policy becomes <unk>
    assert from_auto("ACXG")["input_ids"] == [6, 8, 0, 9]
    assert pickle.loads(pickle.dumps(tokenizer))(SEQUENCES)["input_ids"] == tokenizer(SEQUENCES)["input_ids"]


def test_decode_round_trips(tokenizer):
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGTN"), size=rng.integers(0, 300))) for _ in range(50)]
    for sequence in sequences:
        assert tokenizer.decode(tokenizer(sequence)["input_ids"]) == sequence
    padded = tokenizer(sequences, padding=True)["input_ids"]
    assert tokenizer.batch_decode(padded, skip_special_tokens=True) == sequences
    assert tokenizer.decode([6, 8, 1, 1]) == "AC<pad><pad>"


@pytest.mark.parametrize(
    ("sequence", "kwargs", "expected"),
    [
        ("acg t", {"multiple": 8}, "ACGTNNNN"),
        ("ACGT", {"multiple": 8, "side": "both"}, "NNACGTNN"),
        ("ACGTA", {"multiple": 8, "side": "both"}, "NACGTANN"),
        ("ACGT", {"multiple": 8, "side": "left"}, "NNNNACGT"),
        ("ACGTACGT", {"multiple": 8}, "ACGTACGT"),
        ("AC<mask>G", {"multiple": 8}, "AC<mask>GNNNN"),
        ("A", {"multiple": 4, "fill": "A"}, "AAAA"),
        ("", {"multiple": 8}, ""),
    ],
)
def test_pad_sequence_with_n(sequence, kwargs, expected):
    padded = pad_sequence_to_multiple(sequence, **kwargs)
    assert padded == expected
    assert len(build_ntv3_tokenizer()(padded)["input_ids"]) % kwargs["multiple"] == 0


def test_pad_sequence_with_n_defaults_and_errors(tokenizer):
    padded = pad_sequence_to_multiple("ACGTN" * 30)
    assert len(padded) == 256 and padded.endswith("N" * 106)
    assert tokenizer(padded)["attention_mask"] == [1] * 256  # N is a base: attended
    for kwargs, words in [
        ({"multiple": 0}, "multiple must be a positive int"),
        ({"fill": "<pad>"}, "fill must be one nucleotide letter"),
        ({"side": "centre"}, "side must be"),
    ]:
        with pytest.raises(ValueError, match=words):
            pad_sequence_to_multiple("ACGT", **kwargs)


_LETTERS = "ACGTNacgtnuURYSWKMBDHVrywsn \n\t"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet=_LETTERS, max_size=300), min_size=1, max_size=6),
    st.sampled_from([None, 8, 128]),
)
def test_batch_path_equals_fast_tokenizer(sequences, multiple):
    # the fast tokenizer reads a call's pad_to_multiple_of=None as "its own multiple": None is set at build time
    tokenizer = _shared_tokenizer(multiple is None)
    expected = tokenizer(sequences, padding=True, pad_to_multiple_of=multiple, return_tensors="np")
    batch = encode_ntv3_batch(sequences, pad_to_multiple_of=multiple)
    np.testing.assert_array_equal(batch["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(batch["attention_mask"], expected["attention_mask"])
    assert batch["input_ids"].dtype == np.int64


_TOKENIZERS = {}


def _shared_tokenizer(no_multiple: bool):
    """One tokenizer per kind for all hypothesis examples (fixtures are not reset between examples)."""
    if no_multiple not in _TOKENIZERS:
        _TOKENIZERS[no_multiple] = build_ntv3_tokenizer(pad_to_multiple_of=None if no_multiple else 128)
    return _TOKENIZERS[no_multiple]
