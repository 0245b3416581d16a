"""The checkpoint file: every signed checkpoint appended as a JSON line, for an auditor to keep.

The checkpoints in the database vouch for the log only against someone who cannot also rewrite the
database and re-sign with the pod's key (issue 11, finding 7). Copies held elsewhere close that gap:
this file (``PRIVACY_CHECKPOINT_FILE``, default ``<data dir>/audit-checkpoints.jsonl``; mount it
where the auditor's side collects it) and the ``audit.log`` stream (kept for its retention, and by
``audit tail --checkpoints FILE`` on the auditor's own machine). ``audit verify --against FILE``
then requires every one of them to be a prefix of the current log: a rewrite shows, re-signed or not.

Written by the stream feeder (the relay process) once the checkpoint is on the stream, before its
position moves: a crash in between repeats a line, which readers take once
(:func:`~..domain.checkpoints.checkpoints_from_lines`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..domain.checkpoints import Checkpoint, checkpoint_line


class CheckpointFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Append one line per checkpoint and make it durable (fsync) before returning."""
        if not checkpoints:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(checkpoint_line(checkpoint) + "\n" for checkpoint in checkpoints)
        with open(self.path, "a", encoding="ascii") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
