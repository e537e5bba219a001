"""The Python API keeps the caller's objects and types intact (issue 12, section 7, first two points).

- A bare ``str`` where a list of sequences is expected is one sequence in every public function
  (:func:`tokenization.as_sequence_list`), never a list of one-letter sequences; other types are a TypeError.
- No public function changes the model, config or mode it was given: dtype, device, train/eval flags,
  attention implementation, adapters and config attributes are as they were after the call.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import bpnet, finetune
from benchmarks import embeddings as emb
from benchmarks.analysis.elements import kmer_frequencies
from benchmarks.inference import eval_mode, model_for_inference
from benchmarks.probing import raw_token_features
from modeling_nt import NTConfig, NTForMaskedLM, NTForSequenceClassification, NTModel
from tokenization import as_sequence_list, encode_batch

# v2 ids, by hand: <cls> = 3; 6-mers start at 6 in A, T, C, G product order, so
# ACGTAC = (0, 2, 3, 1, 0, 2) in base 4 = 512 + 192 + 16 + 2 = 722 -> id 728; single A = 4102, C = 4104.
ACGTAC_V2 = [3, 728]


def tiny(model_class=NTModel, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return model_class(NTConfig.from_preset("tiny", **overrides)).eval()


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert list(after) == list(before)
    for name, value in before.items():
        assert after[name].dtype == value.dtype, name
        assert after[name].device == value.device, name
        assert torch.equal(after[name], value), name


# --- a bare str is one sequence ------------------------------------------------------------------------------


def test_encode_batch_takes_a_bare_str_as_one_sequence():
    encoded = encode_batch("ACGTAC", "v2")
    assert encoded["input_ids"].tolist() == [ACGTAC_V2]
    assert encoded["attention_mask"].tolist() == [[1, 1]]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"ACGT", "sequences must be a str or a list of str, got bytes"),
        (["ACGT", None], r"sequences\[1\] must be a str, got NoneType"),
        (["ACGT", 7], r"sequences\[1\] must be a str, got int"),
        (42, "sequences must be a str or a list of str, got int"),
    ],
)
def test_other_types_are_a_type_error_naming_the_item(value, message):
    with pytest.raises(TypeError, match=message):
        as_sequence_list(value)
    with pytest.raises(TypeError, match=message):
        encode_batch(value, "v2")


def test_as_sequence_list_copies_any_iterable_of_str():
    source = ("ACGT", "GG")
    assert as_sequence_list(source) == ["ACGT", "GG"]
    assert as_sequence_list(np.array(["AC", "GT"])) == ["AC", "GT"]
    assert as_sequence_list(iter(["A"])) == ["A"]


def test_embed_sequences_takes_a_bare_str_as_one_sequence():
    model = tiny()
    one = emb.embed_sequences(model, "ACGTACGGATTACA", progress=False)
    listed = emb.embed_sequences(model, ["ACGTACGGATTACA"], progress=False)
    layer = model.config.num_hidden_layers
    assert one[layer].shape == (1, model.config.hidden_size)
    np.testing.assert_array_equal(one[layer], listed[layer])


def test_sequence_list_functions_of_the_benchmarks_take_a_bare_str_as_one_sequence():
    assert emb.length_sorted("ACGT") == [0]
    windows = emb.tokenize_windows("ACGTACGGATTACA", [0], "v2", context=10, overlap=0)
    # ACGTAC = 728; GGATTA = (3, 3, 0, 1, 1, 0) = 3072 + 768 + 16 + 4 = 3860 -> 3866; then C = 4104, A = 4102
    assert [(w.sequence, w.ids.tolist()) for w in windows] == [(0, [728, 3866, 4104, 4102])]
    assert bpnet.encode_sequences("ACGTN").tolist() == [[0, 1, 2, 3, 4]]
    one_hot, mask = bpnet.one_hot("ACG")
    assert one_hot.shape == (1, 4, 3) and mask.tolist() == [[True, True, True]]
    assert raw_token_features("ACGTAC", "v2", 10).tolist() == [[3.0, 728.0]]
    assert kmer_frequencies("ACGTACG", k=6).shape == (1, 2)  # ACGTAC and CGTACG, one row


def test_variant_scoring_options_take_a_bare_str_as_one_score():
    from benchmarks.variants.scoring import ScoringOptions

    assert ScoringOptions(scores="llr").scores == ("llr",)
    with pytest.raises(ValueError, match=r"unknown score\(s\) \['cosine,llr'\]"):
        ScoringOptions(scores="cosine,llr")


def test_finetune_predict_takes_a_bare_str_and_keeps_the_models_mode():
    from modeling_nt import tokenizer_for

    classifier = tiny(NTForSequenceClassification, num_labels=3).train()
    logits = finetune.predict(classifier, tokenizer_for(classifier.config), "ACGTACGGATTACA")
    assert logits.shape == (1, 3)
    assert all(module.training for module in classifier.modules())


# --- the caller's model is never changed ---------------------------------------------------------------------


def test_embed_sequences_in_bf16_leaves_the_callers_fp32_model_as_it_was():
    model = tiny()
    before = snapshot(model)
    sequences = ["ACGTACGGATTACA" * 3, "TTGACA" * 7]
    fp32 = emb.embed_sequences(model, sequences, progress=False)
    bf16 = emb.embed_sequences(model, sequences, dtype="bf16", progress=False)
    assert_unchanged(model, before)
    again = emb.embed_sequences(model, sequences, progress=False)  # crashed with a dtype error before
    layer = model.config.num_hidden_layers
    np.testing.assert_array_equal(again[layer], fp32[layer])
    assert bf16[layer].dtype == np.float32
    assert 0 < np.abs(bf16[layer] - fp32[layer]).max() < 0.1  # bf16 rounding, not another model


def test_load_backbone_uses_a_ready_model_itself_and_copies_one_in_training_mode():
    model = tiny()
    assert emb.load_backbone(model, device="cpu") is model  # eval, fp32, on the CPU: no copy
    model.train()
    before = snapshot(model)
    backbone = emb.load_backbone(model, device="cpu")
    assert backbone is not model and not backbone.training
    assert all(module.training for module in model.modules())  # the caller's mode kept
    assert_unchanged(model, before)


def test_embed_sequences_of_a_classifier_in_training_mode_keeps_its_mode():
    classifier = tiny(NTForSequenceClassification, num_labels=2).train()
    before = snapshot(classifier)
    emb.embed_sequences(classifier, ["ACGTACGGATTACA"], progress=False)
    assert all(module.training for module in classifier.modules())
    assert_unchanged(classifier, before)


def test_model_for_inference_and_eval_mode_restore_every_modules_own_flag():
    model = tiny().train()
    model.layers[0].eval()  # mixed modes, e.g. a frozen block
    flags = [module.training for module in model.modules()]
    copy = model_for_inference(model, "cpu", torch.bfloat16)
    assert copy is not model and next(copy.parameters()).dtype == torch.bfloat16
    assert not any(module.training for module in copy.modules())
    with eval_mode(model):
        assert not any(module.training for module in model.modules())
    assert [module.training for module in model.modules()] == flags
    assert next(model.parameters()).dtype == torch.float32


def test_bpnet_predict_keeps_the_models_mode():
    model = bpnet.build_bpnet("original", num_labels=2)
    model.train()
    before = snapshot(model)
    outputs = bpnet.predict(model, bpnet.encode_sequences(["ACGTACGT", "GGGG"]), device="cpu")
    assert outputs.shape == (2, 2)
    assert all(module.training for module in model.modules())
    assert_unchanged(model, before)


def test_variant_scorer_keeps_the_models_mode():
    from benchmarks.variants.scoring import ScoringOptions, VariantScorer
    from modeling_nt import tokenizer_for

    model = tiny(NTForMaskedLM).train()
    scorer = VariantScorer(model, tokenizer_for(model.config), ScoringOptions(), device="cpu")
    assert not scorer.model.training
    assert all(module.training for module in model.modules())


def test_reconstruction_keeps_the_models_mode():
    from benchmarks.analysis.reconstruction import load_masked_lm

    model = tiny(NTForMaskedLM).train()
    assert not load_masked_lm(model).training
    assert all(module.training for module in model.modules())


def test_attention_analysis_keeps_the_models_attention_implementation():
    from benchmarks.analysis.attention import load_eager_backbone

    model = tiny(attn_implementation="sdpa")
    assert model.config._attn_implementation == "sdpa"
    backbone = load_eager_backbone(model)
    assert backbone.config._attn_implementation == "eager"
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("method", ["ia3", "lora", "full"])
def test_wrap_model_leaves_the_classifier_without_adapters(method):
    classifier = tiny(NTForSequenceClassification, num_labels=2)
    names = [name for name, _ in classifier.named_modules()]
    grads = [parameter.requires_grad for parameter in classifier.parameters()]
    wrapped = finetune.wrap_model(classifier, method)
    assert [name for name, _ in classifier.named_modules()] == names
    assert [parameter.requires_grad for parameter in classifier.parameters()] == grads
    if method != "full":
        assert any("lora_" in name or "ia3_" in name for name, _ in wrapped.named_modules())


def test_save_merged_leaves_the_adapter_in_place(tmp_path):
    wrapped = finetune.wrap_model(tiny(NTForSequenceClassification, num_labels=2), "lora")
    adapters = [name for name, _ in wrapped.named_modules() if "lora_" in name]
    finetune.save_merged(wrapped, tmp_path / "merged")
    assert [name for name, _ in wrapped.named_modules() if "lora_" in name] == adapters
    assert (tmp_path / "merged" / "config.json").is_file()


def test_save_checkpoint_leaves_the_callers_config_as_it_was(tmp_path):
    import json

    from modeling_nt.checkpoint import save_checkpoint

    model = tiny(NTForMaskedLM)
    model.config.auto_map = {"AutoConfig": "configuration_nt.NTConfig"}  # a partial map of the caller's
    save_checkpoint(
        model, tmp_path / "ckpt"
    )  # (architectures/dtype are set by transformers' save_pretrained)
    assert model.config.auto_map == {"AutoConfig": "configuration_nt.NTConfig"}
    assert "AutoModelForMaskedLM" in json.loads((tmp_path / "ckpt" / "config.json").read_text())["auto_map"]
