"""The shared-cache lock: a second process waits for the first, and says that it waits."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

from untrainable.files import exclusive


def test_a_held_lock_makes_the_second_taker_wait_and_say_so(tmp_path: Path, capfd) -> None:
    target = tmp_path / "guide.pt"
    lock = tmp_path / "guide.pt.lock"
    order: list[str] = []
    with open(lock, "a") as holder:  # another open file description: flock treats it as another process
        fcntl.flock(holder, fcntl.LOCK_EX)

        def second() -> None:
            with exclusive(target):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert order == [], "the second taker must block while the lock is held"
        order.append("first done")
        fcntl.flock(holder, fcntl.LOCK_UN)
    thread.join(timeout=5)
    assert order == ["first done", "second"]
    err = capfd.readouterr().err
    assert "waiting for another process to finish guide.pt" in err


def test_a_free_lock_is_taken_silently(tmp_path: Path, capfd) -> None:
    with exclusive(tmp_path / "bank.pt"):
        pass
    assert capfd.readouterr().err == ""
