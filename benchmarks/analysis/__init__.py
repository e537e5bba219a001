"""Analyses of what an NT model learned, with plots: genomic elements in embeddings, attention per element,
masked-token reconstruction / perplexity, and scaling of benchmark scores (NT_SPEC section 7).

Modules: :mod:`.annotation` (element classes of every base from a GTF / GFF3 / BED; window sampling),
:mod:`.elements`, :mod:`.attention`, :mod:`.reconstruction`, :mod:`.scaling` (one analysis each, writing PNG
plots plus the CSV/JSON numbers behind them), :mod:`.generate` (a synthetic genome and annotation for tests and
demos) and :mod:`.outputs` (shared output helpers). The command line is ``nt analyze``.
"""
