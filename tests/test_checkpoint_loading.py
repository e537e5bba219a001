"""One resolver for every ``--model``/``model`` argument (``modeling_nt.loading``): checkpoints load strictly or
fail in one line naming the folder and the problem; official ESM / v2 Hub folders load by conversion on load with
``nt convert``'s key mapping; presets are random weights, announced once."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_convert import hub_state_dict, padded_ids, write_jax, write_v2_hub

from benchmarks.embeddings import load_backbone
from benchmarks.finetune import load_classifier, parameter_report
from benchmarks.variants.scoring import load_scoring_model
from modeling_nt import NTConfig, NTForMaskedLM, NTForSequenceClassification, NTModel, loading
from modeling_nt.convert import convert_checkpoint, detect_layout
from modeling_nt.loading import check_model, load_config, load_model

ESM_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


def save_tiny(folder: Path, model_class: type = NTForMaskedLM, seed: int = 0, **overrides) -> Path:
    """A tiny (preset ``tiny``, 2 layers, d=64) checkpoint of ``model_class`` with seeded random weights."""
    torch.manual_seed(seed)
    model_class(NTConfig.from_preset("tiny", **overrides)).save_pretrained(folder)
    return folder


def edit_config(folder: Path, **changes) -> Path:
    """Change (value) or drop (None) fields of ``folder/config.json``."""
    config = json.loads((folder / "config.json").read_text())
    for name, value in changes.items():
        config.pop(name) if value is None else config.__setitem__(name, value)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def truncate_weights(folder: Path) -> Path:
    """Cut ``model.safetensors`` to its first half, as an interrupted copy or download leaves it."""
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def save_stock_esm(folder: Path, tie: bool = False, seed: int = 0) -> tuple[torch.nn.Module, Path]:
    """A v1-layout folder written by stock ``transformers.EsmForMaskedLM.save_pretrained`` (official layout)."""
    from transformers import EsmConfig, EsmForMaskedLM

    config = EsmConfig(
        vocab_size=4105,
        max_position_embeddings=1002,
        position_embedding_type="absolute",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=2,
        pad_token_id=1,
        layer_norm_eps=1e-12,
        tie_word_embeddings=tie,
        **ESM_SIZES,
    )
    torch.manual_seed(seed)
    esm = EsmForMaskedLM(config).eval()
    with torch.no_grad():  # move every tensor off its init value, biases and LayerNorms included
        for parameter in esm.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    esm.save_pretrained(folder)
    return esm, folder


def logits(model: torch.nn.Module, vocab: int) -> torch.Tensor:
    ids = torch.from_numpy(padded_ids(vocab))
    with torch.no_grad():
        return model(ids, attention_mask=(ids != 1).long()).logits


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "good")


@pytest.fixture
def copy_of(good: Path, tmp_path: Path):
    def make(name: str = "ckpt") -> Path:
        return Path(shutil.copytree(good, tmp_path / name))

    return make


# ------------------------------------------------------------------------------------- good checkpoints


def test_good_checkpoint_loads_bitwise_equal_as_every_class(good: Path) -> None:
    saved = NTForMaskedLM.from_pretrained(good).state_dict()
    mlm = load_model(good, NTForMaskedLM)
    assert mlm.state_dict().keys() == saved.keys()
    assert all(torch.equal(mlm.state_dict()[key], saved[key]) for key in saved)
    backbone = load_backbone(str(good))
    assert all(torch.equal(backbone.state_dict()[key], saved[f"nt.{key}"]) for key in backbone.state_dict())
    model, _ = load_scoring_model(good)
    assert torch.equal(model.lm_head.decoder.weight, saved["lm_head.decoder.weight"])


def test_classifier_from_a_masked_lm_checkpoint_keeps_the_backbone_and_adds_a_new_head(good: Path) -> None:
    saved = NTForMaskedLM.from_pretrained(good).state_dict()
    classifier = load_classifier(good, num_labels=3, seed=5)
    assert all(torch.equal(value, saved[f"nt.{key}"]) for key, value in classifier.nt.state_dict().items())
    assert classifier.classifier.weight.shape == (3, 64)
    direct = load_model(good, NTForSequenceClassification, num_labels=3)
    assert torch.equal(
        direct.nt.embeddings.word_embeddings.weight, saved["nt.embeddings.word_embeddings.weight"]
    )


def test_backbone_checkpoint_loads_as_backbone_and_classifier_but_not_as_masked_lm(tmp_path: Path) -> None:
    folder = save_tiny(tmp_path / "base", NTModel)
    assert load_model(folder, NTModel).config.num_hidden_layers == 2
    assert load_model(folder, NTForSequenceClassification, num_labels=2).num_labels == 2
    with pytest.raises(ValueError, match=r"6 missing \(lm_head\..*no masked-LM head"):
        load_model(folder, NTForMaskedLM)


def test_check_model_finds_weight_problems_on_the_meta_device(copy_of, tmp_path: Path) -> None:
    folder = copy_of()
    assert check_model(folder).num_hidden_layers == 2 and check_model("tiny-v1").tokenizer_version == "v1"
    assert check_model(save_stock_esm(tmp_path / "esm")[1]).tokenizer_version == "v1"
    edit_config(folder, num_hidden_layers=4)
    with pytest.raises(ValueError, match=r"weights do not fit config.json: 28 missing \(layers\.2\."):
        check_model(folder)


def test_parameter_report_reads_a_folder_config(good: Path) -> None:
    assert parameter_report(str(good))["backbone"] == parameter_report("tiny")["backbone"]
    assert load_config(good).hidden_size == 64


# ------------------------------------------------------------------------------- what is wrong, in one line

BAD_FOLDERS = {
    "config says 4 layers, weights have 2": (
        lambda f: edit_config(f, num_hidden_layers=4),
        ["weights do not fit config.json", "28 missing", "layers.2.attention"],
    ),
    "config says d=32, weights have d=64": (
        lambda f: edit_config(f, hidden_size=32),
        ["mis-shaped", "embeddings.word_embeddings.weight [4107, 64] vs [4107, 32]"],
    ),
    "weights with an extra layer": (
        lambda f: edit_config(f, num_hidden_layers=1),
        ["14 unexpected", "layers.1."],
    ),
    "no config.json": (lambda f: (f / "config.json").unlink(), ["no config.json"]),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), ["no weights", "model.safetensors"]),
    "truncated safetensors": (truncate_weights, ["cannot read the weights", "is the file complete"]),
    "config.json is not JSON": (
        lambda f: (f / "config.json").write_text('{"hidden_size": 64,'),
        ["config.json", "invalid JSON"],
    ),
    "config.json lacks hidden_size": (
        lambda f: edit_config(f, hidden_size=None),
        ["config.json", "lacks the required field", "hidden_size"],
    ),
    "config.json with a text layer count": (
        lambda f: edit_config(f, num_hidden_layers="two"),
        ["config.json", "num_hidden_layers", "positive integer"],
    ),
    "config.json of another model type": (
        lambda f: edit_config(f, model_type="bert"),
        ["'bert'", "not an NT"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS), ids=list(BAD_FOLDERS))
@pytest.mark.parametrize("model_class", [NTModel, NTForMaskedLM])
def test_bad_folder_is_one_error_naming_folder_and_problem(copy_of, case: str, model_class: type) -> None:
    make_bad, words = BAD_FOLDERS[case]
    folder = copy_of()
    make_bad(folder)
    with pytest.raises((ValueError, OSError)) as error:
        load_model(folder, model_class)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("spec", "kind", "words"),
    [
        ("./runs/final", FileNotFoundError, ["no such folder: ./runs/final"]),
        ("~/ckpt_missing", FileNotFoundError, ["no such folder"]),
        ("model.safetensors", FileNotFoundError, ["no such folder: model.safetensors"]),
        ("nt-v2-50m", ValueError, ["unknown model 'nt-v2-50m'", "tiny", "nt-v2-50m-multi-species"]),
    ],
)
def test_spec_that_names_nothing(spec: str, kind: type, words: list[str]) -> None:
    with pytest.raises(kind) as error:
        load_model(spec)
    assert all(word in str(error.value) for word in words)
    assert "unknown NT preset" not in str(error.value)


def test_empty_folder_a_file_and_a_run_folder(tmp_path: Path, good: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty folder"):
        load_model(tmp_path / "empty")
    with pytest.raises(NotADirectoryError, match="is a file, not a checkpoint folder"):
        load_model(good / "model.safetensors")
    run = tmp_path / "run"
    shutil.copytree(good, run / "final")
    with pytest.raises(
        FileNotFoundError, match=r"no config.json \(checkpoints inside: final; give one of them\)"
    ):
        load_backbone(str(run))


# ------------------------------------------------------------------------------------------------- presets


def test_preset_is_random_seeded_and_announced_exactly_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr(loading, "_ANNOUNCED", set())
    with caplog.at_level(logging.WARNING, logger="modeling_nt.loading"):
        first = load_backbone("tiny")
        second = load_model("tiny", NTModel)
        load_scoring_model("tiny")
        load_classifier("tiny", num_labels=2)
    messages = [record.getMessage() for record in caplog.records if record.name == "modeling_nt.loading"]
    assert messages == [messages[0]] and len(messages) == 1
    assert messages[0].startswith("random weights: preset 'tiny'") and "\n" not in messages[0]
    assert torch.equal(first.embeddings.word_embeddings.weight, second.embeddings.word_embeddings.weight)


# --------------------------------------------------------------------------------------- official layouts


def test_stock_esm_folder_loads_as_nt_convert_converts_it(tmp_path: Path, caplog) -> None:
    esm, folder = save_stock_esm(tmp_path / "esm")
    assert detect_layout(folder) == "esm"
    convert_checkpoint("esm", folder, tmp_path / "converted")
    converted = NTForMaskedLM.from_pretrained(tmp_path / "converted").eval()
    with caplog.at_level(logging.INFO, logger="modeling_nt.modeling_nt"):
        loaded = load_model(folder, NTForMaskedLM)
    assert caplog.messages == [
        f"{folder}: official esm checkpoint converted on load with the `nt convert` key mapping; 2 known-unused "
        "tensors dropped (esm.contact_head.regression.bias, esm.contact_head.regression.weight)"
    ]
    assert loaded.config.tokenizer_version == "v1" and loaded.config.token_dropout
    reference = logits(converted, 4105)
    assert (logits(loaded, 4105) - reference).abs().max().item() <= 1e-5
    assert (logits(esm, 4105) - reference).abs().max().item() <= 1e-4
    backbone = load_backbone(str(folder))
    assert torch.equal(
        backbone.embeddings.word_embeddings.weight, converted.nt.embeddings.word_embeddings.weight
    )


def test_v2_hub_folder_loads_as_nt_convert_converts_it(tmp_path: Path) -> None:
    folder = write_v2_hub(tmp_path / "v2", hub_state_dict("v2", seed=3))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "esm_config.EsmConfig",
        "AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    assert detect_layout(folder) == "nt-v2-hub"
    convert_checkpoint("nt-v2-hub", folder, tmp_path / "converted")
    converted = NTForMaskedLM.from_pretrained(tmp_path / "converted").eval()
    loaded = load_model(folder, NTForMaskedLM)
    assert loaded.config.position_embedding_type == "rotary"
    assert (logits(loaded, 4107) - logits(converted, 4107)).abs().max().item() <= 1e-5


def test_stock_esm_folder_with_tied_decoder_loads_as_nt_convert_converts_it(tmp_path: Path) -> None:
    esm, tied = save_stock_esm(tmp_path / "tied", tie=True)
    convert_checkpoint("esm", tied, tmp_path / "converted")
    converted = NTForMaskedLM.from_pretrained(tmp_path / "converted").eval()
    loaded = load_model(tied, NTForMaskedLM)
    assert torch.equal(loaded.lm_head.decoder.weight, loaded.nt.embeddings.word_embeddings.weight)
    assert (logits(loaded, 4105) - logits(converted, 4105)).abs().max().item() <= 1e-5
    assert (logits(loaded, 4105) - logits(esm, 4105)).abs().max().item() <= 1e-4


def test_official_folders_that_do_not_load_name_their_layout_and_the_convert_command(tmp_path: Path) -> None:
    folder = edit_config(write_v2_hub(tmp_path / "v2", hub_state_dict("v2")), num_hidden_layers=3)
    with pytest.raises(
        ValueError, match=r"14 missing \(layers\.2\..*read as an official nt-v2-hub checkpoint"
    ):
        load_backbone(str(folder))
    jax, _ = write_jax(tmp_path / "jax", "v2", old_names=False)
    with pytest.raises(ValueError, match=rf"official JAX checkpoint.*`nt convert --from jax {jax} OUT`"):
        load_backbone(str(jax))


# ------------------------------------------------------------------------- official repos by Hub id, offline

V1_REPO = "InstaDeepAI/nucleotide-transformer-500m-human-ref"
V2_REPO = "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: Path, repo_id: str, staged: Path) -> Path:
    """Lay the files of ``staged`` out as ``huggingface_hub`` stores a download: content-addressed blobs,
    ``snapshots/<revision>/`` symlinks to them and ``refs/main``. Returns the snapshot folder."""
    import hashlib

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(staged.iterdir()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def test_official_repos_load_by_hub_id_from_the_cache_as_converted(offline_hub: Path, tmp_path: Path) -> None:
    _, v1 = save_stock_esm(tmp_path / "v1_staged")
    v2 = write_v2_hub(tmp_path / "v2_staged", hub_state_dict("v2", seed=4))
    for repo, staged, vocab, layout in ((V1_REPO, v1, 4105, "esm"), (V2_REPO, v2, 4107, "nt-v2-hub")):
        cache_repo(offline_hub, repo, staged)
        convert_checkpoint(layout, staged, tmp_path / f"{layout}_converted")
        converted = NTForMaskedLM.from_pretrained(tmp_path / f"{layout}_converted").eval()
        by_id = load_model(repo, NTForMaskedLM)
        assert (logits(by_id, vocab) - logits(converted, vocab)).abs().max().item() <= 1e-5
    other_cache = tmp_path / "elsewhere"
    snapshot = cache_repo(other_cache, V1_REPO, v1)
    assert load_config(V1_REPO, cache_dir=other_cache, revision=REVISION).tokenizer_version == "v1"
    assert not any(path.suffix == ".py" for path in snapshot.iterdir())


def stage_official(layout: str, folder: Path) -> Path:
    """An official-layout folder: v1 written by stock ``EsmForMaskedLM.save_pretrained``, v2 as the Hub state
    dict with its ``config.json``."""
    if layout == "esm":
        return save_stock_esm(folder, seed=6)[1]
    return write_v2_hub(folder, hub_state_dict("v2", seed=5))


@pytest.mark.parametrize(("layout", "repo"), [("esm", V1_REPO), ("nt-v2-hub", V2_REPO)], ids=["v1", "v2"])
def test_embed_by_hub_id_and_by_official_folder_equals_embed_of_the_converted_folder(
    offline_hub: Path, tmp_path: Path, run_nt, layout: str, repo: str
) -> None:
    import pandas as pd

    staged = stage_official(layout, tmp_path / "staged")
    cache_repo(offline_hub, repo, staged)
    convert_checkpoint(layout, staged, tmp_path / "converted")
    (tmp_path / "in.fa").write_text(">a\nACGTACGTACGTAAAAAAGGC\n>b\nGGGCCCAAATTTN\n")
    tables = []
    for name, model in (("hub", repo), ("folder", staged), ("converted", tmp_path / "converted")):
        out = tmp_path / f"{name}.parquet"
        result = run_nt(
            "embed", "--model", model, "--fasta", tmp_path / "in.fa", "--out", out, "--no-progress"
        )
        assert result.code == 0, result.err
        tables.append(pd.read_parquet(out))
    converted = tables[-1]
    layer_columns = [column for column in converted.columns if column.startswith("layer_")]
    assert layer_columns and len(converted) == 2
    reference = np.stack([np.asarray(v, dtype=float) for v in converted[layer_columns[0]]])
    assert reference.shape == (2, 32) and np.abs(reference).max() > 0
    for table in tables[:-1]:
        assert list(table.columns) == list(converted.columns)
        assert list(table["name"]) == ["a", "b"]
        for column in layer_columns:
            values = np.stack([np.asarray(v, dtype=float) for v in table[column]])
            expected = np.stack([np.asarray(v, dtype=float) for v in converted[column]])
            assert np.abs(values - expected).max() <= 1e-5


def test_hub_id_not_in_the_offline_cache_is_one_line(offline_hub: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        load_model(V2_REPO)
    message = str(error.value)
    assert "\n" not in message
    for words in ("no such folder", V2_REPO, "not in the cache", str(offline_hub), "offline"):
        assert words in message
