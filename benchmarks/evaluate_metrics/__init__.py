"""``evaluate`` metric modules shipped with the package; load them by path (works offline)."""

from __future__ import annotations

from pathlib import Path

NT_MCC_PATH = str(Path(__file__).resolve().parent / "nt_mcc")
