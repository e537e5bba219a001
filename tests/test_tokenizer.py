"""The NT 6-mer tokenizer: exact ids (spec examples, EsmTokenizer cross-check), policy, reload, batch path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from transformers import EsmTokenizer

from tokenization import (
    LAYOUTS,
    build_tokenizer,
    encode_batch,
    token_index_of_position,
    token_starts,
    vocabulary,
)

# (sequence, tokens, v1 ids, v2 ids) from NT_SPEC section 1.
WORKED_EXAMPLES = [
    ("ATTCCGATTCCGATTCCG", "<cls> ATTCCG ATTCCG ATTCCG", [3, 367, 367, 367], [3, 369, 369, 369]),
    (
        "ATTTCTCTCTCTCTCTGAGATCGATCGATCGAT",
        "<cls> ATTTCT CTCTCT CTCTGA GATCGA TCGATC G A T",
        [3, 349, 2461, 2464, 3184, 1738, 4103, 4100, 4101],
        [3, 351, 2463, 2466, 3186, 1740, 4105, 4102, 4103],
    ),
    (
        "ACGTGTACNTGCACGGANCGACTAGTCTGA",
        "<cls> ACGTGT A C N TGCACG G A N CGACTA GTCTGA",
        [3, 737, 4100, 4102, 4104, 1935, 4103, 4100, 4104, 2856, 3488],
        [3, 739, 4102, 4104, 4106, 1937, 4105, 4102, 4106, 2858, 3490],
    ),
    ("TAAAAAA", "<cls> TAAAAA A", [3, 1028, 4100], [3, 1030, 4102]),
    ("NNNNNNNNACGTACGTAC", "<cls> " + "N " * 8 + "ACGTAC G T A C", None, None),
    ("ACGTA", "<cls> A C G T A", None, None),
]


def reference_tokens(sequence: str) -> list[str]:
    """The official algorithm, written out: split on N, 6-mers left to right, 1-5 base tails as singles."""
    tokens = ["<cls>"]
    for index, run in enumerate(sequence.split("N")):
        if index:
            tokens.append("N")
        full = len(run) - len(run) % 6
        tokens += [run[start : start + 6] for start in range(0, full, 6)] + list(run[full:])
    return tokens


def random_sequences(count: int, seed: int, max_length: int = 400) -> list[str]:
    """Random DNA with N runs of random lengths at random places."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(count):
        letters = rng.choice(list("ACGT"), size=rng.integers(0, max_length))
        for _ in range(rng.integers(0, 4)):
            if letters.size:
                start = rng.integers(0, letters.size)
                letters[start : start + rng.integers(1, 12)] = "N"
        sequences.append("".join(letters))
    return sequences


@pytest.fixture(scope="module", params=["v1", "v2"])
def version(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def tokenizer(version):
    return build_tokenizer(version)


def test_layouts_hold_the_same_4107_strings():
    assert len(LAYOUTS["v1"]) == len(LAYOUTS["v2"]) == 4107
    assert set(LAYOUTS["v1"]) == set(LAYOUTS["v2"])
    v1, v2 = vocabulary("v1"), vocabulary("v2")
    assert (v1["AAAAAA"], v1["GGGGGG"], v1["A"], v1["N"], v1["<eos>"], v1["<bos>"]) == (
        4,
        4099,
        4100,
        4104,
        4105,
        4106,
    )
    assert (v2["AAAAAA"], v2["GGGGGG"], v2["A"], v2["N"], v2["<eos>"], v2["<bos>"]) == (
        6,
        4101,
        4102,
        4106,
        4,
        5,
    )


@pytest.mark.parametrize(("sequence", "tokens", "v1_ids", "v2_ids"), WORKED_EXAMPLES)
def test_worked_examples(tokenizer, version, sequence, tokens, v1_ids, v2_ids):
    ids = tokenizer(sequence)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == tokens.split()
    expected = {"v1": v1_ids, "v2": v2_ids}[version]
    if expected is not None:
        assert ids == expected
    assert encode_batch([sequence], version)["input_ids"][0].tolist() == ids


def test_matches_reference_algorithm_and_esm_tokenizer(tokenizer, version, tmp_path):
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(LAYOUTS[version]) + "\n")
    esm = EsmTokenizer(str(vocab_file))
    sequences = random_sequences(2000, seed=1)
    ours = tokenizer(sequences)["input_ids"]
    batch = encode_batch(sequences, version)
    vocab = vocabulary(version)
    for sequence, ids, row, mask in zip(
        sequences, ours, batch["input_ids"], batch["attention_mask"], strict=True
    ):
        assert ids == [vocab[token] for token in reference_tokens(sequence)], sequence
        esm_ids = esm(sequence)["input_ids"]
        assert esm_ids[-1] == esm.eos_token_id
        assert esm_ids[:-1] == ids, sequence
        assert row[mask.astype(bool)].tolist() == ids


def test_empty_sequence_is_cls_only(tokenizer):
    assert tokenizer("")["input_ids"] == [tokenizer.cls_token_id]
    assert encode_batch([""])["input_ids"].tolist() == [[3]]


def test_padding_is_right_with_pad_and_no_eos(tokenizer):
    encoded = tokenizer(["ACGTACGTAC", "A"], padding=True, return_tensors="np")
    pad = tokenizer.pad_token_id
    assert pad == 1
    assert encoded["input_ids"][1].tolist() == [
        3,
        vocabulary(tokenizer_version(tokenizer))["A"],
        pad,
        pad,
        pad,
        pad,
    ]
    assert encoded["attention_mask"].tolist() == [[1] * 6, [1, 1, 0, 0, 0, 0]]
    assert tokenizer.eos_token_id not in encoded["input_ids"]
    batch = encode_batch(["ACGTACGTAC", "A"], tokenizer_version(tokenizer))
    np.testing.assert_array_equal(batch["input_ids"], encoded["input_ids"])
    np.testing.assert_array_equal(batch["attention_mask"], encoded["attention_mask"])


def tokenizer_version(tokenizer) -> str:
    return "v2" if tokenizer.convert_tokens_to_ids("<eos>") == 4 else "v1"


def test_lenient_policy_normalises(tokenizer):
    expected = tokenizer("ACGTTANNACGT")["input_ids"]
    assert tokenizer("acguta\nRY acg\tt")["input_ids"] == expected
    assert (
        encode_batch(["acguta\nRY acg\tt"], tokenizer_version(tokenizer))["input_ids"][0].tolist() == expected
    )


@pytest.mark.parametrize(
    ("text", "char", "position"), [("ACGTXA", "X", 4), ("AC-GT", "-", 2), ("ACGT1", "1", 4)]
)
def test_lenient_policy_rejects_non_iupac(tokenizer, text, char, position):
    with pytest.raises(ValueError, match=rf"invalid character '{char}' at position {position}"):
        tokenizer(text)
    with pytest.raises(ValueError, match=rf"invalid character '{char}' at position {position}"):
        encode_batch([text])


@pytest.mark.parametrize(
    ("text", "char", "position"), [("ACGTa", "a", 4), ("ACGU", "U", 3), ("AC GT", " ", 2)]
)
def test_strict_policy_names_character_and_position(text, char, position):
    strict = build_tokenizer("v2", strict=True)
    with pytest.raises(ValueError, match=rf"sequence 1: invalid character '{char}' at position {position}"):
        strict(["ACGT", text])
    with pytest.raises(ValueError, match=rf"invalid character '{char}' at position {position}"):
        encode_batch(["ACGT", text], strict=True)
    assert strict("ACGTN<mask>")["input_ids"] == [3, 4102, 4104, 4105, 4103, 4106, 2]


def test_literal_special_tokens(tokenizer):
    ids = tokenizer("ACGTAC<mask>ACGTAC")["input_ids"]
    kmer = tokenizer.convert_tokens_to_ids("ACGTAC")
    assert ids == [3, kmer, tokenizer.mask_token_id, kmer]


def test_too_long_raises_unless_truncation():
    tokenizer = build_tokenizer("v1")
    sequence = "ACGTAC" * 1000  # 1001 tokens with <cls>
    with pytest.raises(ValueError, match=r"1001 tokens long.*limit of 1000"):
        tokenizer(sequence)
    with pytest.raises(ValueError, match=r"1001 tokens long.*limit of 1000"):
        encode_batch([sequence], "v1")
    assert len(tokenizer(sequence, truncation=True)["input_ids"]) == 1000
    assert encode_batch([sequence], "v1", truncation=True)["input_ids"].shape == (1, 1000)
    assert len(tokenizer("ACGTAC" * 999)["input_ids"]) == 1000


def test_decode_round_trips(tokenizer):
    for sequence in random_sequences(200, seed=2):
        ids = tokenizer(sequence)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == sequence


def test_position_to_token_index():
    sequence = "ACGTGTACNTGCACGGANCGACTAGTCTGA"
    # tokens: <cls> ACGTGT A C N TGCACG G A N CGACTA GTCTGA
    expected = [1] * 6 + [2, 3, 4] + [5] * 6 + [6, 7, 8] + [9] * 6 + [10] * 6
    assert token_index_of_position(sequence, np.arange(len(sequence))).tolist() == expected
    assert token_index_of_position(sequence, 17) == 8
    assert token_starts(sequence).tolist() == [0, 6, 7, 8, 9, 15, 16, 17, 18, 24]
    with pytest.raises(ValueError, match="position 30 is outside the sequence of length 30"):
        token_index_of_position(sequence, 30)


def test_position_helper_agrees_with_offsets(tokenizer):
    for sequence in random_sequences(100, seed=3):
        if not sequence:
            continue
        offsets = tokenizer(sequence, return_offsets_mapping=True)["offset_mapping"]
        from_offsets = [
            next(i for i, (s, e) in enumerate(offsets) if s <= p < e) for p in range(len(sequence))
        ]
        assert token_index_of_position(sequence, np.arange(len(sequence))).tolist() == from_offsets


def test_saved_tokenizer_reloads_in_fresh_process_without_remote_code(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert {"tokenizer.json", "tokenizer_config.json"} <= {path.name for path in tmp_path.iterdir()}
    sequences = ["ACGTGTACNTGCACGGANCGACTAGTCTGA", "acgtu<mask>ACGTAC", "", "TAAAAAA"]
    script = (
        "import json, sys; from transformers import AutoTokenizer; "
        f"tok = AutoTokenizer.from_pretrained({str(tmp_path)!r}); "
        f"print(json.dumps(tok({sequences!r}, padding=True)['input_ids']))"
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd="/", env=environment, capture_output=True, text=True, check=True
    )
    assert (
        json.loads(completed.stdout.strip().splitlines()[-1])
        == tokenizer(sequences, padding=True)["input_ids"]
    )


def test_unknown_version_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown tokenizer version 'v3'"):
        build_tokenizer("v3")
