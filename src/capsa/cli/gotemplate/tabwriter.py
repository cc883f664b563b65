"""Go's text/tabwriter, as docker uses it to align ``table`` output."""

from __future__ import annotations


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells like Go's text/tabwriter (padchar ' ', no flags).

    A line's last cell (after its last tab) is not part of any column; a column block
    ends at the first line that has no cell in that column.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def emit(first: int, stop: int) -> None:
        for cells in lines[first:stop]:
            padded = [c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells)]
            out.append("".join(padded))

    def block(first: int, stop: int) -> None:
        column, this = len(widths), first
        while this < stop:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            emit(first, this)
            first, width = this, minwidth
            while this < stop and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            block(first, this)
            widths.pop()
            first = this
        emit(first, stop)

    block(0, len(lines))
    return "\n".join(out)
