"""Publish an NT checkpoint on the Hugging Face Hub: weights, tokenizer, code files and model card.

:func:`stage_checkpoint` assembles, into a local folder, exactly what :func:`push_checkpoint` uploads, after
checking the checkpoint before anything is written:

- ``config.json`` of our layout (an official ESM / v2 Hub / JAX folder is refused with its ``nt convert``
  command), weights (``modeling_nt.loading.WEIGHT_FILES``), and the code files its ``auto_map`` names
  (``configuration_nt.py``, ``modeling_nt.py``: what ``trust_remote_code=True`` loads where this package is not
  installed);
- the checkpoint loads strictly (``modeling_nt.loading.load_folder``) as the class of its ``architectures``;
- a model card: rendered from benchmark results (``results=``, ``nt push --results``) with
  ``benchmarks.leaderboard.render_model_card`` (``model-index`` in the front matter and ``.eval_results/``),
  else the checkpoint's own ``README.md`` (with its ``.eval_results/``), else a short card without evaluation
  results, named as such in the report.

Staged: every top-level file of the checkpoint except training state (optimizer, scheduler, RNG state,
``training_args.bin``, ``trainer_state.json``, run fingerprints), the tokenizer files (written from
``tokenizer_for(config)`` when the checkpoint has none: NT tokenizers are fixed by ``tokenizer_version``), the
card and ``.eval_results/``. Weight files are hard-linked where possible (never written to), the rest copied.

:func:`push_checkpoint` then calls ``HfApi.create_repo(exist_ok=True)`` and ``HfApi.upload_folder`` (a token from
``token=``, ``HF_TOKEN`` or ``hf auth login``). The upload itself needs the network and is not exercised by the
offline tests; the staged folder is (it loads in a process where this package cannot be imported).

:func:`finetuned_checkpoint` turns the model a ``nt finetune`` run reports (the selected fold) into a checkpoint
to push: IA3 / LoRA adapters are merged into the weights (an ordinary ``NTForSequenceClassification``
checkpoint that loads without ``peft``); a full fine-tuning fold is already one.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import BenchmarkResult, load_results, model_name_of

#: Files of a Trainer / ``nt pretrain`` checkpoint folder that are training state, never uploaded.
TRAINING_STATE = (
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "training_args.bin",
    "trainer_state.json",
    "fingerprint.json",
    ".*",  # hidden files: partial writes, OS files
)
#: Files a checkpoint must hold for ``AutoTokenizer.from_pretrained`` (one of them).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
CARD_FILE = "README.md"
EVAL_RESULTS_DIR = ".eval_results"


@dataclass
class StagedCheckpoint:
    """What :func:`stage_checkpoint` wrote: ``folder`` (the upload), its ``files`` (paths relative to it),
    the loaded ``architecture`` and where the card came from (``card``)."""

    folder: Path
    repo_id: str
    architecture: str
    card: str
    files: list[str] = field(default_factory=list)
    url: str | None = None

    def summary(self) -> str:
        """One line per fact: folder, files, card, and the Hub URL once pushed."""
        lines = [
            f"staged {len(self.files)} files in {self.folder} ({self.architecture}): {', '.join(self.files)}",
            f"model card: {self.card}",
        ]
        if self.url:
            lines.append(f"pushed to {self.url}")
        return "\n".join(lines)


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` when it is a valid Hub model repository id (``name`` or ``owner/name``).

    Raises:
        ValueError: ``huggingface_hub``'s one-line reason (``HFValidationError``).
    """
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)
    return repo_id


def check_checkpoint(checkpoint_dir: str | Path) -> dict[str, Any]:
    """Check a checkpoint folder for publishing (module docstring); returns its ``config.json``.

    Raises:
        FileNotFoundError: no such folder, no ``config.json``, no weights, a code file missing.
        NotADirectoryError: a file given.
        ValueError: an adapter folder, an official layout, a config without ``auto_map`` or ``architectures``.
    """
    from modeling_nt.convert import convert_command
    from modeling_nt.loading import check_folder

    folder = Path(checkpoint_dir)
    if not folder.exists():
        raise FileNotFoundError(f"checkpoint folder not found: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a checkpoint folder (config.json + weights)")
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        raise ValueError(
            f"{folder} is a PEFT adapter, not a checkpoint: merge it first "
            "(benchmarks.publish.finetuned_checkpoint, or `nt finetune --push-to-hub`)"
        )
    if _is_segmentation(folder):  # ours, model_type segment_nt: not an NT backbone layout
        layout = "nt"
        _check_segmentation_weights(folder)
    else:
        layout = check_folder(folder)
    if layout not in ("nt", "ntv3"):
        raise ValueError(
            f"{folder} is an official {layout} checkpoint: convert it first with `{convert_command(layout, folder)}`"
        )
    config = json.loads((folder / "config.json").read_text())
    if not config.get("auto_map"):
        raise ValueError(
            f"{folder}/config.json has no auto_map: it would not load where this package is not installed "
            "(save it with modeling_nt.checkpoint.save_checkpoint)"
        )
    for module in sorted({reference.split(".")[0] for reference in config["auto_map"].values()}):
        if not (folder / f"{module}.py").is_file():
            raise FileNotFoundError(
                f"{folder}: no {module}.py (a code file named in config.json auto_map); save the checkpoint "
                "with modeling_nt.checkpoint.save_checkpoint"
            )
    _model_class(folder, config)
    return config


def _is_segmentation(folder: Path) -> bool:
    """Whether ``folder`` holds one of our SegmentNT checkpoints (``model_type: segment_nt``)."""
    from modeling_nt.configuration_segment_nt import SegmentNTConfig

    config_file = folder / "config.json"
    if not config_file.is_file():
        return False
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError):
        return False  # reported by check_folder
    return isinstance(config, dict) and config.get("model_type") == SegmentNTConfig.model_type


def _check_segmentation_weights(folder: Path) -> None:
    from modeling_nt.loading import WEIGHT_FILES

    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES[::2])}) beside config.json")


def _load_strictly(folder: Path, model_class: type) -> Any:
    """The checkpoint as ``model_class``: :func:`modeling_nt.loading.load_folder`, or for a SegmentNT folder
    ``from_pretrained`` refusing missing, unexpected or mis-shaped weights."""
    from modeling_nt.loading import _quiet_transformers, check_safetensors_header, load_folder

    if not _is_segmentation(folder):
        return load_folder(folder, model_class)
    import torch

    if (folder / "model.safetensors").is_file():
        check_safetensors_header(folder / "model.safetensors")

    with torch.device("meta"):
        expected = model_class(model_class.config_class.from_pretrained(str(folder))).state_dict()
    if (folder / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                shape = tuple(handle.get_slice(key).get_shape())
                if key in expected and shape != tuple(expected[key].shape):
                    raise ValueError(
                        f"{folder}/model.safetensors: {key} has shape {list(shape)}, config.json needs "
                        f"{list(expected[key].shape)}"
                    )
    with _quiet_transformers():  # the missing keys are reported below, in one line
        model, info = model_class.from_pretrained(str(folder), output_loading_info=True)
    bad = {kind: info.get(kind) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    bad = {kind: sorted(map(str, keys))[:3] for kind, keys in bad.items() if keys}
    if bad:
        details = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(keys)}" for kind, keys in bad.items())
        raise ValueError(f"{folder}: the weights do not fit config.json ({details})")
    return model


def _model_class(folder: Path, config: dict[str, Any]) -> type:
    import modeling_nt

    architectures = config.get("architectures") or []
    if not architectures:
        raise ValueError(f"{folder}/config.json: no architectures field: cannot tell which NT model it holds")
    model_class = getattr(modeling_nt, architectures[0], None)
    if model_class is None or not isinstance(model_class, type):
        raise ValueError(f"{folder}/config.json: unknown architecture {architectures[0]!r}")
    return model_class


def stage_checkpoint(
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    repo_id: str,
    *,
    results: str | Path | Sequence[str | Path] | Sequence[BenchmarkResult] | None = None,
    model_name: str | None = None,
    card_size: str | None = None,
) -> StagedCheckpoint:
    """Write into ``out_dir`` (a new folder) exactly what :func:`push_checkpoint` uploads (module docstring).

    Args:
        checkpoint_dir: a checkpoint folder of ours (``save_checkpoint``, ``nt pretrain``'s ``final/``, ...).
        out_dir: the staging folder; must not exist.
        repo_id: the target repository, shown in the card's usage snippet.
        results: result JSON files or folders (or loaded results) to render the card from.
        model_name: the model's name in ``results`` (default ``results.model_name_of(checkpoint_dir)``).
        card_size: a key of ``hub_cards/sizes.yaml`` (default: guessed from ``model_name``).

    Raises:
        FileExistsError: ``out_dir`` exists.
        FileNotFoundError, NotADirectoryError, ValueError: as :func:`check_checkpoint`, bad results files,
            results without ``model_name``, an unknown or unguessable card size; all before anything is written.
    """
    from .leaderboard import check_card, render_model_card

    check_repo_id(repo_id)
    folder, out_dir = Path(checkpoint_dir), Path(out_dir)
    config = check_checkpoint(folder)
    loaded = _load_results(results)
    model_name = model_name or model_name_of(folder)
    if loaded:
        check_card(loaded, model_name, card_size)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists: give a new folder for the staged upload")
    model_class = _model_class(folder, config)
    model = _load_strictly(folder, model_class)  # weights that do not fit the config are refused here
    out_dir.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        if path.is_file() and not any(fnmatch.fnmatch(path.name, pattern) for pattern in TRAINING_STATE):
            if path.suffix in (".safetensors", ".bin"):
                _link_or_copy(path, out_dir / path.name)
            elif not (loaded and path.name == CARD_FILE):  # a rendered card replaces the checkpoint's
                shutil.copy2(path, out_dir / path.name)
    if not any((out_dir / name).is_file() for name in TOKENIZER_FILES):
        from modeling_nt.checkpoint import save_tokenizer

        save_tokenizer(model.config, out_dir)
    if loaded:
        render_model_card(loaded, model_name, out_dir, size=card_size, repo_id=repo_id)
        own = sum(result.model == model_name for result in loaded)
        hub = (out_dir / EVAL_RESULTS_DIR).is_dir()  # written only for benchmarks hosted on the Hub
        extra = (
            f"{EVAL_RESULTS_DIR}/" if hub else f"no {EVAL_RESULTS_DIR}/: no result on a Hub-hosted benchmark"
        )
        card = f"rendered from {own} result(s) of {model_name!r} (model-index, {extra})"
    elif (folder / CARD_FILE).is_file():
        if (folder / EVAL_RESULTS_DIR).is_dir():
            shutil.copytree(folder / EVAL_RESULTS_DIR, out_dir / EVAL_RESULTS_DIR)
        card = f"the checkpoint's own {CARD_FILE}"
    else:
        _plain_card(model.config, model_name, repo_id).save(out_dir / CARD_FILE)
        card = "no evaluation results (pass results / --results to add model-index and .eval_results/)"
    _check_card_file(out_dir / CARD_FILE)
    files = sorted(str(path.relative_to(out_dir)) for path in out_dir.rglob("*") if path.is_file())
    return StagedCheckpoint(out_dir, repo_id, model_class.__name__, card, files)


def _load_results(
    results: str | Path | Sequence[str | Path] | Sequence[BenchmarkResult] | None,
) -> list[BenchmarkResult]:
    if results is None:
        return []
    if isinstance(results, str | Path):
        results = [results]
    if all(isinstance(result, BenchmarkResult) for result in results):
        return list(results)  # type: ignore[arg-type]
    loaded = load_results(results)  # type: ignore[arg-type]
    if not loaded:
        raise ValueError(f"no results in {', '.join(map(str, results))}")
    return loaded


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no copy of large weights), copying where links are impossible.
    Only for files that are never written to afterwards: a write would change the checkpoint's file too."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _plain_card(config: Any, model_name: str, repo_id: str) -> Any:
    """A short card for a checkpoint without benchmark results: front matter and a usage snippet (NTv3:
    :func:`_ntv3_card_text`)."""
    from huggingface_hub import ModelCard, ModelCardData

    from .generation import is_ntv3

    architecture = (config.architectures or [""])[0]
    segmentation = architecture == "NTForSegmentation"
    data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="fill-mask"
        if "MaskedLM" in architecture
        else "token-classification"
        if segmentation or "TokenClassification" in architecture
        else None
        if architecture == "NTv3ForTracksPrediction"  # tracks and annotations: no Hub pipeline fits
        else "text-classification",
        tags=["dna", "genomics", "biology", "nucleotide-transformer"]
        + (["segmentation"] if segmentation else [])
        + (["ntv3"] if is_ntv3(config) else []),
    )
    if is_ntv3(config):
        return ModelCard(
            f"---\n{data.to_yaml()}\n---\n\n# {model_name}\n\n{_ntv3_card_text(config, repo_id)}"
        )
    what = (
        f"A SegmentNT checkpoint (per-nucleotide probabilities of {', '.join(config.features)}) on a "
        if segmentation
        else "A "
    )
    auto = "AutoModelForTokenClassification" if segmentation else "AutoModel"
    return ModelCard(
        f"---\n{data.to_yaml()}\n---\n\n# {model_name}\n\n"
        f"{what}Nucleotide Transformer ({config.tokenizer_version}) {'backbone' if segmentation else 'checkpoint'} "
        f"with {config.num_hidden_layers} "
        f"layers of width {config.hidden_size}, published with `nt push`. No benchmark results were given.\n\n"
        f"```python\nfrom transformers import {auto}, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        f'model = {auto}.from_pretrained("{repo_id}", trust_remote_code=True)\n```\n'
    )


def _ntv3_card_text(config: Any, repo_id: str) -> str:
    """The body of the plain card of an NTv3 checkpoint: what it is (pre-trained masked LM, post-trained
    species-conditioned tracks model, or fine-tuned), its sizes, the input-length rule and a usage snippet."""
    architecture = (config.architectures or [""])[0]
    if architecture == "NTv3ForTracksPrediction":
        tracks = sum(len(names) for names in config.bigwig_tracks_per_species.values())
        species = ", ".join(config.supported_species)
        what = (
            f"post-trained, species-conditioned checkpoint ({species}) predicting {tracks} functional tracks "
            f"and {len(config.bed_element_names)} genome-annotation classes"
        )
        auto = "AutoModel"  # the checkpoint's auto_map loads NTv3ForTracksPrediction
    elif "MaskedLM" in architecture:
        what, auto = "masked-language-model checkpoint", "AutoModelForMaskedLM"
    else:
        what, auto = f"checkpoint ({architecture})", "AutoModel"
    multiple = config.length_multiple
    return (
        f"An NTv3 (Nucleotide Transformer v3) {what}: a U-Net over single-base tokens (A, T, C, G, N; "
        f"{config.num_downsamples} downsamples, so an input must be a multiple of {multiple} bases long: pad "
        f"with N) around a transformer core of {config.num_hidden_layers} layers of width {config.hidden_size}, "
        "published with `nt push`. No benchmark results were given.\n\n"
        f"```python\nfrom transformers import {auto}, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        f'model = {auto}.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        f'inputs = tokenizer(["A" * {multiple}], return_tensors="pt")  # lengths: multiples of {multiple}\n```\n'
    )


def _check_card_file(path: Path) -> None:
    """The card must parse as the Hub parses it (``ModelCard.load``)."""
    from huggingface_hub import ModelCard

    try:
        ModelCard.load(path)
    except Exception as error:  # a card the Hub would reject is named, in one line
        message = str(error).strip().splitlines()
        raise ValueError(f"{path}: not a valid model card ({message[0] if message else error!r})") from None


def push_checkpoint(
    checkpoint_dir: str | Path,
    repo_id: str,
    *,
    results: str | Path | Sequence[str | Path] | Sequence[BenchmarkResult] | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    dry_run_dir: str | Path | None = None,
    model_name: str | None = None,
    card_size: str | None = None,
) -> StagedCheckpoint:
    """Upload a checkpoint with its tokenizer, code files and card to the Hub repository ``repo_id``.

    Stages the upload with :func:`stage_checkpoint` (``dry_run_dir``: there, and nothing is uploaded; else in
    a temporary folder), then ``HfApi.create_repo(repo_id, private=private, exist_ok=True)``, creates the branch
    ``revision`` when one is given, and ``HfApi.upload_folder`` of the staged folder. Returns the
    :class:`StagedCheckpoint` (``url``: the commit URL; None for a dry run).

    Raises:
        as :func:`stage_checkpoint` (before any upload).
        OSError: the Hub refused or could not be reached (no token, no network, no permission): one line
            naming the repository, the reason and the ``nt push`` command that retries.
    """
    from huggingface_hub import HfApi

    if dry_run_dir is not None:
        return stage_checkpoint(
            checkpoint_dir, dry_run_dir, repo_id, results=results, model_name=model_name, card_size=card_size
        )
    with tempfile.TemporaryDirectory(prefix="nt-push-") as tmp:
        staged = stage_checkpoint(
            checkpoint_dir,
            Path(tmp) / "upload",
            repo_id,
            results=results,
            model_name=model_name,
            card_size=card_size,
        )
        try:
            api = HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=staged.folder,
                repo_type="model",
                revision=revision,
                commit_message=commit_message or f"Upload {staged.architecture} with nt push",
            )
        except OSError as error:  # no token, no network, no permission: say what was kept and how to retry
            retry = f"nt push {checkpoint_dir} {repo_id}" + (" --results RESULTS" if results else "")
            reason = " ".join(str(error).split()) or type(error).__name__
            raise OSError(
                f"upload to the Hub repository {repo_id} failed: {reason}; retry with `{retry}`"
            ) from None
    staged.url = str(getattr(commit, "commit_url", commit))
    return staged


def finetuned_checkpoint(
    model: Any,
    result: BenchmarkResult,
    work_dir: str | Path,
    out_dir: str | Path,
    *,
    pooling: str | None = None,
) -> Path:
    """The checkpoint of the model a fine-tuning ``result`` reports: the fold ``result.extra["selected_fold"]``
    of ``work_dir`` (``<task>_<method>/fold_<k>/adapter``, as ``run_finetuning`` writes it).

    IA3 / LoRA: the adapter is applied to ``model`` (the backbone fine-tuned, as given to ``run_finetuning``)
    and merged into the weights, saved in ``out_dir`` with its tokenizer (a preset's random backbone is rebuilt
    from the fold's seed, ``result.seed`` + fold, as ``run_fold`` built it); full fine-tuning: the fold's saved
    model folder itself (``out_dir`` unused). Either loads as ``NTForSequenceClassification`` without ``peft``.

    Raises:
        FileNotFoundError: the fold's adapter folder is missing.
        ValueError: ``result`` is not a fine-tuning result (no selected fold / label count).
    """
    from modeling_nt import tokenizer_for

    from .finetune import load_adapter, save_merged

    try:
        fold, num_labels = result.extra["selected_fold"], result.extra["num_labels"]
    except (KeyError, TypeError):
        raise ValueError(
            f"result of {result.model!r} on {result.task!r} ({result.method}) records no selected fold and label "
            "count: not a fine-tuning result of this version"
        ) from None
    adapter = Path(work_dir) / f"{result.task}_{result.method}" / f"fold_{fold}" / "adapter"
    if not adapter.is_dir():
        raise FileNotFoundError(f"fine-tuned fold model not found: {adapter}")
    if result.method == "full":
        return adapter
    wrapped = load_adapter(model, adapter, num_labels, pooling=pooling, seed=(result.seed or 0) + fold)
    return save_merged(wrapped, out_dir, tokenizer_for(wrapped.config))


def check_card_name(model_name: str) -> str:
    """The ``hub_cards/sizes.yaml`` key guessed from ``model_name`` (``leaderboard.card_size``): checked before
    a run that ends in a push, so that its card can be rendered.

    Raises:
        ValueError: no size key in the name (names the keys a ``--model-name`` may contain).
    """
    from .leaderboard import card_size, card_sizes

    sizes = card_sizes()
    try:
        return card_size(model_name, sizes)
    except ValueError:
        raise ValueError(
            f"cannot tell the model card's size from the model name {model_name!r}: give a --model-name that "
            f"contains one of {', '.join(sorted(sizes))}"
        ) from None


def push_finetuned(
    model: Any,
    result: BenchmarkResult,
    work_dir: str | Path,
    repo_id: str,
    *,
    pooling: str | None = None,
    **push_options: Any,
) -> StagedCheckpoint:
    """Push the model a fine-tuning ``result`` reports (:func:`finetuned_checkpoint`, merged into
    ``work_dir/<task>_<method>/merged`` for IA3 / LoRA) with a card rendered from ``result``.

    What is pushed is the merged model, not the adapter: it loads with ``trust_remote_code=True`` without
    ``peft`` or the base checkpoint (``finetune.push_adapter`` publishes an adapter alone).
    ``push_options``: as :func:`push_checkpoint`.
    """
    merged = Path(work_dir) / f"{result.task}_{result.method}" / "merged"
    checkpoint = finetuned_checkpoint(model, result, work_dir, merged, pooling=pooling)
    return push_checkpoint(checkpoint, repo_id, results=[result], model_name=result.model, **push_options)
