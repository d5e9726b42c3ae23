"""The cell language (cell.py) on its own: header lines -> CellSpec, sizes; no helper."""

from __future__ import annotations

import pytest

from rootfs_kernel.cell import format_size, parse_size


@pytest.mark.parametrize(("n", "short", "fixed"), [
    (0, "0 B", "0 B"), (20, "20 B", "20 B"), (1024, "1 KiB", "1.0 KiB"),
    (123456, "121 KiB", "120.6 KiB"), (3 << 19, "1.5 MiB", "1.5 MiB"),
    (5 << 30, "5 GiB", "5.0 GiB")])
def test_sizes_are_written_in_binary_units_short_or_with_fixed_decimals(n, short, fixed):
    assert format_size(n) == short
    assert format_size(n, decimals=1) == fixed


@pytest.mark.parametrize("n", [512, 64 << 20, 3 << 29, 1 << 30])
def test_a_written_limit_reads_back(n):
    assert parse_size(format_size(n).replace(" ", "")) == n
