"""The calls that wait have awaitable forms: an event loop keeps running its
other tasks while an update finishes, a flush completes or the instance
shuts down."""

from __future__ import annotations

import asyncio

from onthefly import Coordinator

WORDS = ["parliament", "election", "markets", "storm", "football", "science"]


def fill(c: Coordinator) -> None:
    for i in range(3000):
        c.add_training_example("scout", "news", f"story {i} on {WORDS[i % 6]} and {WORDS[i * 7 % 6]}", WORDS[i % 6], 0.5)


async def ticks_while(waiting) -> tuple:
    """How many times a 1 ms ticker ran while ``waiting`` was pending."""
    ticks = 0
    task = asyncio.ensure_future(waiting)
    while not task.done():
        ticks += 1
        await asyncio.sleep(0.001)
    await task
    return ticks, task


def test_awaiting_an_update_lets_the_loop_run(config) -> None:
    with Coordinator(**config, update_threshold=1000) as c:
        fill(c)
        c.force_update_agent("scout")
        ticks, _ = asyncio.run(ticks_while(c.wait_for_idle_async(300)))
        assert c.get_training_status()["updates_in_flight"] == 0
        assert c.get_training_status()["agents"]["scout"]["updates_accepted"] >= 1
        # The loop ran while the update did: the wait did not block it.
        assert ticks >= 2, ticks
        asyncio.run(c.flush_async(60))
        asyncio.run(c.close_async())
    assert "closed" in repr(c)


def test_the_blocking_form_blocks_the_loop(config) -> None:
    """The contrast the awaitable forms exist for (and a check that the
    ticker above can see a blocked loop)."""

    async def blocking(c: Coordinator) -> None:
        c.wait_for_idle(300)

    with Coordinator(**config, update_threshold=1000) as c:
        fill(c)
        c.force_update_agent("scout")
        ticks, _ = asyncio.run(ticks_while(blocking(c)))
        assert ticks <= 1, ticks
