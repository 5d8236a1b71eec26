"""Processes released at the same instant on a `data_dir` with no key yet all end with one key.

The walk-through's `serve &` then `issue` (tests/live/test_secret_race.py) races two processes
whose start-up times differ by tens of milliseconds, so a narrow window is hit only now and then;
a barrier here puts six processes into `ensure_secret_keys` together, every round.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from tempdl.config.load import load_settings
from tempdl.config.secret import ensure_secret_keys
from tempdl.errors import ConfigError

PROCESSES = 6
ROUNDS = 25


def _racer(folder: Path, barrier, results) -> None:
    settings = load_settings({}, {}, folder)
    barrier.wait()
    try:
        results.put(ensure_secret_keys(settings).secret_keys)
    except ConfigError as error:
        results.put(str(error))


def test_racing_processes_agree_on_one_complete_key(tmp_path: Path):
    context = multiprocessing.get_context("fork")
    for round_number in range(ROUNDS):
        folder = tmp_path / str(round_number)
        folder.mkdir()
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        racers = [context.Process(target=_racer, args=(folder, barrier, results)) for _ in range(PROCESSES)]
        for racer in racers:
            racer.start()
        outcomes = [results.get(timeout=30) for _ in racers]
        for racer in racers:
            racer.join(10)
        key = (folder / "data" / "secret.key").read_text().strip()
        assert outcomes == [(key,)] * PROCESSES, f"round {round_number}: {outcomes}"
        assert [path.name for path in (folder / "data").iterdir()] == ["secret.key"]
