"""Pretraining throughput: our NT models in ``transformers.Trainer`` against ``EsmForMaskedLM`` of the same size.

Both models train on the same stream (the bundled chr20 slice through ``GenomeMLMDataset`` and the MLM
collator, fixed-length batches) with the same Trainer settings (Adam, fp32 on CPU, sdpa attention). Two pairs:

- ``v1``: our v1 architecture (learned positions, GELU FFN, token dropout) and ``EsmForMaskedLM`` with the same
  configuration: the same computation, so this compares the model code only;
- ``v2``: our v2 architecture (rotary, SwiGLU without biases) and ``EsmForMaskedLM`` with rotary positions and
  the same dimensions (its GELU FFN has fewer parameters: see the params column).

Tokens/s counts every position of the padded batches (records are cut to fill them) over the timed optimizer
steps, after warm-up steps; each variant runs ``--rounds`` times, interleaved, and the best round is kept (the
machine is shared). The data loader alone (stream + tokenize + mask + collate) is timed separately.

    python -m benchmarks.perf.train_throughput [--steps 8] [--warmup 3] [--rounds 2] [--batch-size 8] [--tokens 512] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.perf.common import print_table, write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
SLICE = REPO_ROOT / "data" / "chr20_GRCh37_slice.fa.gz"
SIZES = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 1024}


def _stream(version: str, tokens: int) -> tuple[Any, Any]:
    from modeling_nt.pretraining import ChunkingConfig, GenomeMLMDataset, GenomeSource, NTMaskingCollator

    chunking = ChunkingConfig(chunk_length=tokens * 6, overlap=0, max_offset=6, min_length=tokens * 6)
    dataset = GenomeMLMDataset(
        [GenomeSource(str(SLICE))], chunking, version=version, max_tokens=tokens, seed=0
    )
    return dataset, NTMaskingCollator(version=version, pad_to_length=tokens)


def _models(pair: str) -> dict[str, torch.nn.Module]:
    from transformers import EsmConfig, EsmForMaskedLM

    from modeling_nt import NTConfig, NTForMaskedLM

    preset = "tiny-v1" if pair == "v1" else "tiny"
    ours = NTConfig.from_preset(preset, **SIZES)
    esm = EsmConfig(
        vocab_size=ours.vocab_size,
        mask_token_id=2,
        pad_token_id=1,
        max_position_embeddings=ours.max_position_embeddings,
        position_embedding_type="absolute" if pair == "v1" else "rotary",
        token_dropout=pair == "v1",
        emb_layer_norm_before=False,
        layer_norm_eps=ours.layer_norm_eps,
        tie_word_embeddings=False,  # NT checkpoints have an untied LM head
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **SIZES,
    )
    esm._attn_implementation = "sdpa"
    return {f"ours-{pair}": NTForMaskedLM(ours), f"esm-{pair}": EsmForMaskedLM(esm)}


class _StepClock:
    """Trainer callback: wall time from the end of warm-up step ``warmup`` to the last step."""

    def __init__(self, warmup: int) -> None:
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == warmup:
                    clock.start = time.perf_counter()
                clock.end = time.perf_counter()

        self.callback = Callback()
        self.start = self.end = 0.0


def train_tokens_per_second(model: torch.nn.Module, version: str, args: argparse.Namespace) -> float:
    """Padded tokens per second over ``args.steps`` Trainer optimizer steps after ``args.warmup`` steps."""
    from transformers import Trainer, TrainingArguments

    dataset, collator = _stream(version, args.tokens)
    clock = _StepClock(args.warmup)
    with tempfile.TemporaryDirectory() as folder:
        arguments = TrainingArguments(
            output_dir=folder,
            max_steps=args.warmup + args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=1e-4,
            optim="adamw_torch",
            weight_decay=0.0,
            save_strategy="no",
            report_to="none",
            logging_strategy="no",
            disable_tqdm=True,
            remove_unused_columns=False,
            use_cpu=not torch.cuda.is_available(),
        )
        Trainer(
            model=model,
            args=arguments,
            train_dataset=dataset,
            data_collator=collator,
            callbacks=[clock.callback],
        ).train()
    return args.steps * args.batch_size * args.tokens / (clock.end - clock.start)


def loader_tokens_per_second(args: argparse.Namespace, batches: int = 200) -> float:
    """The data pipeline alone: DataLoader over the genome stream with the MLM collator (main process)."""
    dataset, collator = _stream("v2", args.tokens)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, collate_fn=collator)
    iterator = iter(loader)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * args.batch_size * args.tokens / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps first")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs per variant (best kept)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=512, help="tokens per sequence (with <cls>)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    rows = []
    for pair in ("v1", "v2"):
        models = _models(pair)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, model in models.items():
                rate = train_tokens_per_second(model, pair, args)
                best[name] = max(best.get(name, 0.0), rate)
        for name, model in models.items():
            parameters = sum(parameter.numel() for parameter in model.parameters())
            ratio = best[name] / best[f"esm-{pair}"]
            rows.append(
                {
                    "variant": name,
                    "params_M": parameters / 1e6,
                    "train_tokens_per_s": best[name],
                    "vs_esm": ratio,
                }
            )
    loader_rate = loader_tokens_per_second(args)
    rows.append({"variant": "data loader only (v2)", "train_tokens_per_s": loader_rate})
    print(
        f"batch {args.batch_size} x {args.tokens} tokens, {args.steps} timed steps, {torch.get_num_threads()} threads"
    )
    print_table(rows, ["variant", "params_M", "train_tokens_per_s", "vs_esm"])
    path = write_json("train_throughput", {"settings": vars(args), "sizes": SIZES, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
