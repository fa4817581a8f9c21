"""Progress as plain log lines where the console is not a terminal (a batch job's log file)."""

from __future__ import annotations

import io

from rich.console import Console

from exactcompress.progress_log import StageLines


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stage_lines_print_each_new_stage_and_counts_at_most_every_interval():
    log, clock = io.StringIO(), Clock()
    say = StageLines(Console(file=log, width=300), "m.pt", every=30.0, clock=clock)
    say("bounds")
    say("bounds")  # the same stage again: nothing new
    clock.now += 1.5
    say("branch and bound, layer 1", 0, 10)
    for done in range(1, 10):
        clock.now += 5.0  # 45 s in all: one line after 30 s
        say("branch and bound, layer 1", done, 10)
    say("branch and bound, layer 1", 10, 10)  # complete: always a line
    say("branch and bound, layer 1", 0, 3)  # the next round of the same stage starts again
    say("verifying")
    assert log.getvalue().splitlines() == [
        "[     0.0 s] m.pt: bounds",
        "[     1.5 s] m.pt: branch and bound, layer 1: 0/10",
        "[    31.5 s] m.pt: branch and bound, layer 1: 6/10",
        "[    46.5 s] m.pt: branch and bound, layer 1: 10/10",
        "[    46.5 s] m.pt: branch and bound, layer 1: 0/3",
        "[    46.5 s] m.pt: verifying",
    ]


def test_brackets_and_markup_in_messages_are_printed_as_they_are():
    log = io.StringIO()
    say = StageLines(Console(file=log, width=300), "[bold]x[/bold].pt", clock=Clock())
    say("layer [1]")
    assert log.getvalue() == "[     0.0 s] [bold]x[/bold].pt: layer [1]\n"
