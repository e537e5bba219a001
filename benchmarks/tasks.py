"""The one registry of downstream tasks: the original and revised NT benchmarks and the GUE tasks.

Each :class:`TaskSpec` says how many classes a task has (and their names where known), its sequence length,
its metric and its group (histone / regulatory / splicing). Facts: NT_SPEC section 4 (original and revised
benchmarks) and the GUE release of DNABERT-2 (folder layout in ``shared/data/tasks/gue``).

Label names are given where their meaning is known. [open] ``splice_sites_all`` is taken as
``donor, acceptor, none`` in that order (the spec's order; class 2 is the large majority class in the revised
data, as "none" should be); the order of ``enhancers_types`` classes is not documented upstream, so its classes
keep generic names.
"""

from __future__ import annotations

import dataclasses

BENCHMARKS = ("original", "revised", "gue")
#: The ``benchmark`` of a task given as the user's own files (:mod:`benchmarks.user_tasks`); not a registry.
USER_BENCHMARK = "user"
GROUPS = ("histone", "regulatory", "splicing")
TASK_TYPES = ("classification", "regression")

HUB_REPOS = {
    "original": "InstaDeepAI/nucleotide_transformer_downstream_tasks",
    "revised": "InstaDeepAI/nucleotide_transformer_downstream_tasks_revised",
}
SPLITS = {"original": ("train", "test"), "revised": ("train", "test"), "gue": ("train", "dev", "test")}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Metadata of one downstream task.

    Attributes:
        name: task (and builder config) name, e.g. ``"promoter_all"``.
        benchmark: ``"original"``, ``"revised"`` or ``"gue"`` (``"user"`` for a user's own files).
        num_labels: number of classes; 1 for a regression task.
        sequence_length: length of the task's sequences in nucleotides (the longest, where they vary).
        group: ``"histone"``, ``"regulatory"`` or ``"splicing"``.
        label_names: class names in label order, or None when unknown (generic ``"0"``, ``"1"``, ...).
        metric: main metric (``"mcc"``; ``"pearson"`` for regression).
        task_type: ``"classification"`` or ``"regression"`` (a float label).
        path: folder of the task inside the benchmark's data folder (defaults to ``name``).
    """

    name: str
    benchmark: str
    num_labels: int
    sequence_length: int
    group: str
    label_names: tuple[str, ...] | None = None
    metric: str = "mcc"
    task_type: str = "classification"
    path: str = ""

    def __post_init__(self) -> None:
        if self.benchmark not in (*BENCHMARKS, USER_BENCHMARK):
            raise ValueError(
                f"task {self.name!r}: benchmark must be one of {(*BENCHMARKS, USER_BENCHMARK)}, got "
                f"{self.benchmark!r}"
            )
        if self.group not in GROUPS:
            raise ValueError(f"task {self.name!r}: group must be one of {GROUPS}, got {self.group!r}")
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"task {self.name!r}: task_type must be one of {TASK_TYPES}")
        expected_labels = 1 if self.task_type == "regression" else None
        if self.num_labels < 1 or (expected_labels and self.num_labels != expected_labels):
            raise ValueError(f"task {self.name!r}: bad num_labels {self.num_labels} for {self.task_type}")
        if self.label_names is not None and len(self.label_names) != self.num_labels:
            raise ValueError(
                f"task {self.name!r}: {len(self.label_names)} label names for {self.num_labels} labels"
            )
        if not self.path:
            object.__setattr__(self, "path", self.name)

    @property
    def is_regression(self) -> bool:
        return self.task_type == "regression"

    @property
    def class_names(self) -> list[str]:
        """Names for a ``ClassLabel``: the known label names, else ``"0"``, ``"1"``, ..."""
        return list(self.label_names or [str(label) for label in range(self.num_labels)])


def _binary(positive: str) -> tuple[str, str]:
    return (f"non_{positive}", positive)


def _histone(marks: tuple[str, ...], benchmark: str, length: int) -> list[TaskSpec]:
    return [TaskSpec(mark, benchmark, 2, length, "histone", _binary(mark)) for mark in marks]


def _nt_regulatory_and_splicing(benchmark: str, enhancer_length: int) -> list[TaskSpec]:
    return [
        TaskSpec("promoter_all", benchmark, 2, 300, "regulatory", _binary("promoter")),
        TaskSpec("promoter_tata", benchmark, 2, 300, "regulatory", _binary("promoter")),
        TaskSpec("promoter_no_tata", benchmark, 2, 300, "regulatory", _binary("promoter")),
        TaskSpec("enhancers", benchmark, 2, enhancer_length, "regulatory", _binary("enhancer")),
        TaskSpec("enhancers_types", benchmark, 3, enhancer_length, "regulatory"),
        TaskSpec("splice_sites_all", benchmark, 3, 600, "splicing", ("donor", "acceptor", "none")),
        TaskSpec("splice_sites_acceptors", benchmark, 2, 600, "splicing", _binary("acceptor")),
        TaskSpec("splice_sites_donors", benchmark, 2, 600, "splicing", _binary("donor")),
    ]


YEAST_MARKS = (
    "H3",
    "H4",
    "H3K9ac",
    "H3K14ac",
    "H4ac",
    "H3K4me1",
    "H3K4me2",
    "H3K4me3",
    "H3K36me3",
    "H3K79me3",
)
HUMAN_MARKS = (
    "H2AFZ",
    "H3K27ac",
    "H3K27me3",
    "H3K36me3",
    "H3K4me1",
    "H3K4me2",
    "H3K4me3",
    "H3K9ac",
    "H3K9me3",
    "H4K20me1",
)


def _gue_tasks() -> list[TaskSpec]:
    emp = [
        TaskSpec(f"EMP_{mark}", "gue", 2, 500, "histone", _binary(mark), path=f"EMP/{mark}")
        for mark in YEAST_MARKS
    ]
    promoters = [
        TaskSpec(name, "gue", 2, 300, "regulatory", _binary("promoter"), path=f"prom/{name}")
        for name in ("prom_300_all", "prom_300_notata", "prom_300_tata")
    ]
    splice = [TaskSpec("splice_reconstructed", "gue", 3, 400, "splicing", path="splice/reconstructed")]
    tf = [TaskSpec(f"tf_{index}", "gue", 2, 101, "regulatory", path=f"tf/{index}") for index in range(5)]
    return emp + promoters + splice + tf


TASKS: dict[str, dict[str, TaskSpec]] = {
    "original": {
        spec.name: spec
        for spec in _nt_regulatory_and_splicing("original", 200) + _histone(YEAST_MARKS, "original", 500)
    },
    "revised": {
        spec.name: spec
        for spec in _nt_regulatory_and_splicing("revised", 400) + _histone(HUMAN_MARKS, "revised", 1000)
    },
    "gue": {spec.name: spec for spec in _gue_tasks()},
}


def check_benchmark(benchmark: str) -> str:
    """Return ``benchmark`` when it is known, else raise a ValueError listing the known ones."""
    if benchmark not in TASKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {list(BENCHMARKS)}")
    return benchmark


def task_names(benchmark: str) -> list[str]:
    """Names of the registered tasks of a benchmark, in registry order."""
    return list(TASKS[check_benchmark(benchmark)])


def get_task(benchmark: str, task: str) -> TaskSpec:
    """The registered :class:`TaskSpec` of ``task`` in ``benchmark``; unknown names list the known ones."""
    tasks = TASKS[check_benchmark(benchmark)]
    if task not in tasks:
        raise ValueError(f"unknown {benchmark} task {task!r}; known tasks: {', '.join(tasks)}")
    return tasks[task]
