"""Status coalescing: few edits, newest text, room left in the bucket, nothing after close."""

import asyncio

from imagine.progress import StatusEditor


class Recorder:
    def __init__(self, delay: float = 0.0):
        self.edits: list[tuple[float, str]] = []
        self.delay = delay
        self.in_flight = 0

    async def __call__(self, text: str) -> None:
        self.in_flight += 1
        await asyncio.sleep(self.delay)
        self.edits.append((asyncio.get_running_loop().time(), text))
        self.in_flight -= 1


async def test_fast_statuses_are_coalesced_to_the_newest():
    recorder = Recorder()
    editor = StatusEditor(recorder, interval=0.2, window=1.0, per_window=4)
    for i in range(30):  # a status every 20 ms for 0.6 s
        editor.update(f"Generating {i}")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.25)
    await editor.close()
    texts = [t for _, t in recorder.edits]
    assert texts[0] == "Generating 0"
    assert texts[-1] == "Generating 29"  # the newest text was shown
    assert 3 <= len(texts) <= 5
    gaps = [b - a for (a, _), (b, _) in zip(recorder.edits, recorder.edits[1:], strict=False)]
    assert all(g >= 0.19 for g in gaps)


async def test_window_budget_leaves_room_for_the_final_edit():
    recorder = Recorder()
    editor = StatusEditor(recorder, interval=0.05, window=1.0, per_window=4)
    for i in range(40):
        editor.update(f"s{i}")
        await asyncio.sleep(0.02)
    await editor.close()
    times = [t for t, _ in recorder.edits]
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 4


async def test_close_waits_for_the_edit_in_flight_and_sends_nothing_after():
    recorder = Recorder(delay=0.3)
    editor = StatusEditor(recorder, interval=0.01, window=10, per_window=10)
    editor.update("first")
    await asyncio.sleep(0.05)
    assert recorder.in_flight == 1
    editor.update("second")  # pending, never to be shown
    await editor.close()
    assert recorder.in_flight == 0
    assert [t for _, t in recorder.edits] == ["first"]
    editor.update("third")
    await asyncio.sleep(0.05)
    assert [t for _, t in recorder.edits] == ["first"]


async def test_a_failing_edit_does_not_stop_the_editor():
    calls = []

    async def flaky(text):
        calls.append(text)
        if len(calls) == 1:
            raise RuntimeError("429 or network trouble")

    editor = StatusEditor(flaky, interval=0.05)
    editor.update("a")
    await asyncio.sleep(0.1)
    editor.update("b")
    await asyncio.sleep(0.1)
    await editor.close()
    assert calls == ["a", "b"] and editor.failures == 1 and editor.edits == 1
