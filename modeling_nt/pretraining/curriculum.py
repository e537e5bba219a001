"""The record-length curriculum of NT v3 pretraining: record length (bp) by optimizer step.

NT v3 models were pretrained on short records first and on longer ones later (the official training code is
not released). Here a curriculum is a list of stages ``(first_step, length)``, e.g. ``[(0, 1024), (400, 4096)]``:
the batches of optimizer steps ``0..399`` hold 1,024 bp records and those from step 400 on 4,096 bp records.

The stream applies it (:class:`~modeling_nt.pretraining.data.GenomeMLMDataset`): it cuts each genome record
into consecutive pieces of the length of the stage the next example falls in, counting examples from the start
of the run, so a batch never mixes lengths and a resumed run (which replays the stream and skips the batches
already trained on) continues in the stage it stopped in. A record's remainder shorter than the stage length
is dropped. The stage of example ``i`` follows from the micro-batch it lands in: ``i // batch_size``
(times the DataLoader workers, plus the worker's index) and the micro-batches per optimizer step
(gradient accumulation x processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LengthCurriculum:
    """Stages ``((first_step, length_bp), ...)`` and the batch geometry that maps examples to steps.

    Args:
        stages: first optimizer step and record length of each stage; the first stage starts at step 0.
        batch_size: examples per micro-batch of one process (``per_device_batch_size``).
        batches_per_step: micro-batches per optimizer step over all processes (accumulation x processes).
    """

    stages: tuple[tuple[int, int], ...]
    batch_size: int = 1
    batches_per_step: int = 1

    def __post_init__(self) -> None:
        check_stages(self.stages, multiple=1)
        if self.batch_size < 1 or self.batches_per_step < 1:
            raise ValueError(
                f"batch_size and batches_per_step must be >= 1, got {self.batch_size}, {self.batches_per_step}"
            )

    @property
    def final_length(self) -> int:
        """The record length of the last stage (bp)."""
        return self.stages[-1][1]

    def length_at_step(self, step: int) -> int:
        """Record length (bp) of the batches of optimizer step ``step`` (0-based)."""
        return next(length for first, length in reversed(self.stages) if step >= first)

    def length_of_example(self, index: int, worker_id: int = 0, num_workers: int = 1) -> int:
        """Record length of the ``index``-th example (0-based) a stream worker yields.

        DataLoader workers take turns batch by batch: worker ``w``'s ``k``-th micro-batch is the
        ``k * num_workers + w``-th of the run.
        """
        batch = (index // self.batch_size) * num_workers + worker_id
        return self.length_at_step(batch // self.batches_per_step)


def check_stages(
    stages: Sequence[Sequence[int]],
    multiple: int,
    record_length: int | None = None,
    max_steps: int | None = None,
    name: str = "length_curriculum",
) -> None:
    """Check curriculum stages; a ValueError naming the stage (``length_curriculum[1]``) and the rule.

    Rules: at least one stage; each a pair ``[step, length]`` of ints; the first at step 0; steps strictly
    increasing and below ``max_steps`` (a later stage would never run); lengths positive multiples of
    ``multiple`` (``2 ** num_downsamples``) and at most ``record_length`` (the genome records they are cut from).
    ``name`` is the setting named in messages (``max_tokens`` for a one-stage curriculum given as a length).
    """
    if not stages:
        raise ValueError("length_curriculum: give at least one stage [step, length], e.g. [[0, 1024]]")
    for index, stage in enumerate(stages):
        where = f"{name}[{index}]" if name == "length_curriculum" else name
        if len(stage) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in stage):
            raise ValueError(f"{where}: expected a pair [step, length_bp] of integers, got {list(stage)!r}")
        step, length = stage
        if index == 0 and step != 0:
            raise ValueError(f"{where}: the first stage must start at step 0, got step {step}")
        if index > 0 and step <= stages[index - 1][0]:
            raise ValueError(
                f"{where}: steps must increase, got step {step} after step {stages[index - 1][0]}"
            )
        if max_steps is not None and step >= max_steps:
            raise ValueError(
                f"{where}: starts at step {step}, at or after max_steps={max_steps}: it would never run"
            )
        if length < 1 or length % multiple:
            lower = max(length, 0) // multiple * multiple
            nearest = f"{lower} or {lower + multiple}" if lower > 0 else str(multiple)
            raise ValueError(
                f"{where}: length {length} bp is not a positive multiple of {multiple} "
                f"(2 ** num_downsamples of the preset); nearest valid: {nearest}"
            )
        if record_length is not None and length > record_length:
            raise ValueError(
                f"{where}: length {length} bp exceeds the {record_length} bp genome records "
                "(chunk_length + 2 * overlap) it is cut from; raise chunk_length"
            )
