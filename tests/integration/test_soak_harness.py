"""The soak benchmark (benchmarks/soak.py) runs: 2 sessions for a few seconds, so that it cannot rot.

Only that it runs and its checks hold (every burst answered, nothing lost); no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import soak


def test_a_short_soak_answers_every_burst(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    code = soak.main(["--sessions", "2", "--duration", "6", "--warmup-s", "1", "--sample-s", "1",
                      "--workdir", str(tmp_path / "work"), "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["lost"] == {"problems": 0, "errors": []}
    assert code == 0
    assert report["sessions"] == {"set_up": 2, "requested": 2, "closed_by_server": 0}
    turns = report["turns"]
    assert turns["bursts"] >= 2 and turns["turn_complete"] == turns["bursts"]
    assert turns["latency_end_of_speech_to_first_audio"]["n"] == turns["bursts"]
    assert report["rss_mb"]["idle"] > 0 and report["rss_mb"]["samples"]
    assert report["machine"]["logical_cores"] >= 1
