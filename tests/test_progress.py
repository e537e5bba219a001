"""Progress lines for long jobs when the output is a log file, not a terminal."""

import io
import re

from benchmarks.progress import LineProgress, progress

LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] ")


def test_lines_appear_on_a_non_terminal_stream() -> None:
    stream = io.StringIO()
    items = list(progress(range(3), desc="embed", unit="sequences", stream=stream, min_interval=0))
    assert items == [0, 1, 2]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert all(LINE.match(line) for line in lines)
    assert [LINE.sub("", line).split(" 00:")[0] for line in lines] == [
        "embed: 1/3 sequences (33%)",
        "embed: 2/3 sequences (66%)",
        "embed: 3/3 sequences (100%)",
    ]


def test_a_job_shorter_than_the_interval_writes_nothing() -> None:
    stream = io.StringIO()
    with progress(total=100, desc="score-variants", unit="alleles", stream=stream, min_interval=3600) as bar:
        for _ in range(10):
            bar.update(10)
    assert stream.getvalue() == ""  # a failing short job adds no line before its one error line


def test_elapsed_and_left_from_the_rate_so_far() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = LineProgress(
        None, total=300, desc="embed", unit="sequences", stream=stream, min_interval=5, clock=lambda: now[0]
    )
    now[0] = 4.0
    bar.update(30)  # 4 s after the start: not written
    now[0] = 12.0
    bar.update(90)
    now[0] = 14.0
    bar.update(30)  # 2 s after the last line: not written
    now[0] = 80.0
    bar.update(150)
    bar.close()  # already written at 300: not repeated
    lines = [LINE.sub("", line) for line in stream.getvalue().splitlines()]
    assert lines == [
        "embed: 120/300 sequences (40%) 00:12 elapsed, ~00:18 left",
        "embed: 300/300 sequences (100%) 01:20 elapsed",
    ]


def test_disabled_writes_nothing_and_still_iterates() -> None:
    stream = io.StringIO()
    assert list(progress("abc", desc="x", stream=stream, enabled=False, min_interval=0)) == ["a", "b", "c"]
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    list(progress(range(4), desc="finetune", unit="steps", stream=stream))
    assert "\r" in stream.getvalue() and "4/4" in stream.getvalue()


def test_nt_embed_writes_progress_lines_to_a_log(tmp_path, run_nt, monkeypatch) -> None:
    """stderr captured (not a terminal), as in `nt embed ... 2> log`: one line per resumable part."""
    monkeypatch.setenv("NT_PROGRESS_INTERVAL", "0")
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{'ACGTTG' * (i + 2)}\n" for i in range(5)))
    result = run_nt(
        "embed", "--model", "tiny", "--fasta", fasta, "--out", tmp_path / "e", "--chunk-size", "2"
    )
    assert result.code == 0, result.err
    lines = [LINE.sub("", line).split(" 00:")[0] for line in result.err.splitlines() if LINE.match(line)]
    assert lines == [
        "embed: 2/5 sequences (40%)",
        "embed: 4/5 sequences (80%)",
        "embed: 5/5 sequences (100%)",
    ]


def test_postfix_values_end_the_line() -> None:
    stream = io.StringIO()
    epochs = progress(range(1, 4), desc="bpnet fold 0", unit="epochs", stream=stream, min_interval=0)
    for epoch in epochs:
        epochs.set_postfix(loss="0.4100", best=epoch)
    text = [LINE.sub("", line) for line in stream.getvalue().splitlines()]
    assert [line.split(" 00:")[0] for line in text] == [
        f"bpnet fold 0: {n}/3 epochs ({100 * n // 3}%)" for n in (1, 2, 3)
    ]
    assert [line.rsplit(" elapsed", 1)[1].split("left, ")[-1].removeprefix(", ") for line in text] == [
        f"loss 0.4100, best {n}" for n in (1, 2, 3)
    ]
