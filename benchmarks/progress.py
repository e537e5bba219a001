"""Progress reporting for long jobs: a tqdm bar on a terminal, plain timestamped lines in a log.

One home for progress output of every long ``nt`` job (embed, score-variants, probe, finetune, bpnet,
analyze). A bar redraws itself with carriage returns, which is unreadable (or, with ``disable=None``, absent)
when stderr is redirected to a file; so when the stream is not a terminal this module writes one flushed line
at most every ``min_interval`` seconds instead::

    [00:10:12] embed: 120/300 sequences (40%) 00:12 elapsed, ~00:18 left

Stable API::

    from benchmarks.progress import progress

    for item in progress(items, desc="embed", unit="sequences"):       # wrap an iterable (total = len)
        ...
    with progress(total=n, desc="score-variants", unit="alleles") as bar:  # or count by hand
        bar.update(k)

Args of :func:`progress`:
    iterable: what to iterate over (optional; without it, call ``update``).
    total: number of units expected (default ``len(iterable)`` where defined; None: counts without a total).
    desc: job name that starts each line.
    unit: plural unit name (``"sequences"``, ``"alleles"``, ``"epochs"``).
    enabled: False shows nothing; True shows a bar on a terminal and lines otherwise.
    stream: where to write (default ``sys.stderr``, read when called).
    min_interval: least seconds between two plain lines, and before the first (default
        :data:`DEFAULT_MIN_INTERVAL`, or the environment variable ``NT_PROGRESS_INTERVAL``); a job that
        wrote a line also writes its final count when it ends. A job shorter than this writes nothing.
    leave: keep the terminal bar after it ends (tqdm's ``leave``).
    unit_scale: k/M/G prefixes on the terminal bar (tqdm's ``unit_scale``); lines give plain counts.

The returned object is iterable (when given an iterable), has ``update(n=1)``, ``set_postfix(**values)``
and ``close()``, and is a context manager. Plain lines start with the wall-clock time; "left" is a linear estimate from the rate so far.

``transformers.Trainer`` jobs (``nt pretrain``) draw their own tqdm bar on a terminal; in a log they get
:func:`trainer_progress_callback` (the same lines, counting optimizer steps) and the Trainer's per-step log
dicts. :func:`line_buffered_stdout` makes ``print`` output reach a log file line by line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

DEFAULT_MIN_INTERVAL = 10.0
"""Seconds between two plain progress lines unless ``min_interval`` or ``NT_PROGRESS_INTERVAL`` says otherwise."""


def _format_seconds(seconds: float) -> str:
    """``MM:SS`` below an hour, ``H:MM:SS`` above."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _default_interval() -> float:
    value = os.environ.get("NT_PROGRESS_INTERVAL")
    if value is None:
        return DEFAULT_MIN_INTERVAL
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ValueError(f"NT_PROGRESS_INTERVAL must be a number of seconds, got {value!r}") from None


class LineProgress:
    """Plain-line progress for a non-terminal stream (see the module docstring for the line format)."""

    def __init__(
        self,
        iterable: Iterable[Any] | None,
        *,
        total: int | None,
        desc: str,
        unit: str,
        stream: IO[str],
        min_interval: float,
        initial: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.stream, self.min_interval, self.clock = stream, min_interval, clock
        self.n = self.initial = initial  # a resumed job starts at ``initial``; its rate counts from there
        self.started = clock()
        self._last_time: float | None = None
        self._last_n: int | None = None
        self._closed = False
        self.postfix = ""

    def line(self) -> str:
        """The progress line for the current count, without the timestamp."""
        elapsed = self.clock() - self.started
        text = f"{self.desc}: {self.n}"
        if self.total is not None:
            text += f"/{self.total} {self.unit}"
            if self.total > 0:
                text += f" ({100 * self.n // self.total}%)"
        else:
            text += f" {self.unit}"
        text += f" {_format_seconds(elapsed)} elapsed"
        done = self.n - self.initial
        if self.total is not None and done > 0 and self.n < self.total:
            text += f", ~{_format_seconds(elapsed * (self.total - self.n) / done)} left"
        return f"{text}, {self.postfix}" if self.postfix else text

    def set_postfix(self, **values: Any) -> None:
        """Values shown at the end of the next line (``loss 0.41, val 0.30``), as tqdm's ``set_postfix``."""
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def _write(self) -> None:
        self.stream.write(f"[{time.strftime('%H:%M:%S')}] {self.line()}\n")
        self.stream.flush()
        self._last_time, self._last_n = self.clock(), self.n

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units; write a line if ``min_interval`` seconds passed since the last line (or,
        for the first line, since the start: a job shorter than ``min_interval`` writes nothing)."""
        self.n += n
        since = self.started if self._last_time is None else self._last_time
        if self.clock() - since >= self.min_interval:
            self._write()

    def close(self) -> None:
        """Write the final count (once) if a line was written before and it is not the last one written."""
        if not self._closed and self._last_n is not None and self._last_n != self.n:
            self._write()
        self._closed = True

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress reporter was made without an iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent:
    """No output; the same interface."""

    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self.iterable = iterable
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress reporter was made without an iterable; call update() instead")
        return iter(self.iterable)

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``) is an interactive terminal, where a tqdm bar is drawn."""
    return _is_terminal(sys.stderr if stream is None else stream)


def line_buffered_stdout() -> None:
    """Flush ``sys.stdout`` at every newline when it is not a terminal (a log file is block-buffered)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and not _is_terminal(sys.stdout):
        reconfigure(line_buffering=True)


#: Environment switches of the progress bars the Hugging Face libraries draw on their own ("Map", "Generating
#: train split", "Writing model shards", downloads); read when those libraries are imported.
LIBRARY_BAR_SWITCHES = ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS")


def quiet_library_bars() -> None:
    """Turn off the Hugging Face libraries' own tqdm bars when stderr is not a terminal: in a log they are
    carriage-return noise, and they would come before (and around) a one-line error. Call before ``datasets``
    / ``transformers`` / ``huggingface_hub`` are imported; a switch the user set is left as it is."""
    if not _is_terminal(sys.stderr):
        for name in LIBRARY_BAR_SWITCHES:
            os.environ.setdefault(name, "1")


def trainer_progress_callback(
    desc: str = "train", stream: IO[str] | None = None, min_interval: float | None = None
) -> Any:
    """A ``transformers.TrainerCallback`` writing :class:`LineProgress` lines of optimizer steps (``unit``
    "steps", total ``max_steps``, resumed runs counting from their first step) on the main process."""
    from transformers import TrainerCallback

    class _StepLines(TrainerCallback):
        def __init__(self) -> None:
            self.bar: LineProgress | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                interval = _default_interval() if min_interval is None else min_interval
                target = sys.stderr if stream is None else stream
                self.bar = LineProgress(
                    None,
                    total=state.max_steps,
                    desc=desc,
                    unit="steps",
                    stream=target,
                    min_interval=interval,
                    initial=state.global_step,
                )

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return _StepLines()


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "progress",
    unit: str = "items",
    enabled: bool = True,
    stream: IO[str] | None = None,
    min_interval: float | None = None,
    leave: bool = True,
    unit_scale: bool = False,
) -> Any:
    """Report progress of a long job: tqdm on a terminal, timestamped lines otherwise (module docstring)."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not enabled:
        return _Silent(iterable)
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(
            iterable, total=total, desc=desc, unit=unit, file=stream, leave=leave, unit_scale=unit_scale
        )
    interval = _default_interval() if min_interval is None else min_interval
    return LineProgress(iterable, total=total, desc=desc, unit=unit, stream=stream, min_interval=interval)
