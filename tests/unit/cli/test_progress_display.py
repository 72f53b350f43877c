"""What the progress bar shows: the units of every other line, and at 80 columns a long
product name shortened in its middle so that percentage, sizes, rate and ETA still fit."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.cli.progress import ProgressBar, _byte_bar, shorten_middle

PRODUCT = (
    "S3A_OL_1_EFR____20260101T101112_20260101T101412_20260102T120000_0179_123_456_7890"
    "_PS1_O_NT_002.SEN3.zip"
)


def _line(bar: Any) -> str:
    return str(bar.format_meter(**bar.format_dict))


@given(st.text(min_size=0, max_size=300), st.integers(min_value=3, max_value=200))
def test_a_shortened_name_keeps_its_start_and_end(text: str, width: int) -> None:
    shown = shorten_middle(text, width)
    assert len(shown) <= width
    if len(text) <= width:
        assert shown == text
    else:
        head, _, tail = shown.partition("…")
        assert text.startswith(head)
        assert text.endswith(tail)
        assert len(head) >= len(tail) >= (width - 1) // 2


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_at_any_width_a_long_name_leaves_room_for_every_figure(columns: int) -> None:
    bar = _byte_bar(PRODUCT, 150 * 1024**2, enabled=True)
    bar.dynamic_ncols, bar.ncols = False, columns
    time.sleep(0.15)  # tqdm measures a rate only after its minimum interval
    bar.update(93 * 1024**2)
    line = _line(bar)
    bar.close()
    assert len(line) <= columns
    assert "62%" in line
    assert "93.0 MiB/150.0 MiB" in line
    assert line.rstrip().endswith("MiB/s]")  # the rate, in binary units, not tqdm's MB/s
    assert "MB/s" not in line
    assert line.startswith(PRODUCT[:5])
    assert ("…" in line) == (len(PRODUCT) + 40 > columns)


def test_a_short_name_is_shown_whole() -> None:
    bar = _byte_bar("get", None, enabled=True)
    bar.dynamic_ncols, bar.ncols = False, 80
    line = _line(bar)
    bar.close()
    assert line.startswith("get:")
    assert "0 B/?" in line


def test_an_interrupted_bar_is_cleared_not_drawn_twice(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted_transfer() -> None:
        with ProgressBar(PRODUCT, enabled=True) as bar:
            bar(1024, 4096)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_transfer()
    interrupted = capsys.readouterr().err
    assert "S3A_OL_1_EFR" in interrupted  # the bar was drawn
    cleared = interrupted.rstrip("\r").rsplit("\r", 1)[-1]
    assert cleared.strip() == ""  # the last thing written blanks its line
    assert "\n" not in interrupted  # and no second copy of the bar below it
    with ProgressBar("done", enabled=True) as bar:
        bar(4096, 4096)
    finished = capsys.readouterr().err
    assert finished.endswith("]\n")  # a finished bar stays on screen
    assert "100%" in finished.rsplit("\r", 1)[-1]
