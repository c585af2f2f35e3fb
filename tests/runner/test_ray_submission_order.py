"""`ray_executor.SubmissionOrder` (issue 18 item 3: released jobs reach Ray in queue order), on its own: tickets
pass in the order they were taken, whatever order their holders become ready in, and a ticket given back
without submitting (a job cancelled or failed before it) lets the next one through. Plain asyncio, no Ray."""

from __future__ import annotations

import asyncio

from training_studio.runner.ray_executor import SubmissionOrder


def test_submissions_pass_in_ticket_order_whatever_order_they_get_ready_in():
    async def scenario() -> list[int]:
        order = SubmissionOrder()
        submitted: list[int] = []

        async def job(ticket: int, ready_after: float) -> None:
            await asyncio.sleep(ready_after)  # its preparation
            await order.wait_turn(ticket)
            submitted.append(ticket)
            order.done(ticket)
            order.done(ticket)  # idempotent

        tickets = [order.take() for _ in range(4)]
        await asyncio.gather(*(job(ticket, delay) for ticket, delay in zip(tickets, (0.03, 0.0, 0.02, 0.01))))
        return submitted

    assert asyncio.run(scenario()) == [0, 1, 2, 3]


def test_a_ticket_given_back_without_submitting_lets_the_next_one_through():
    async def scenario() -> list[str]:
        order = SubmissionOrder()
        first, second, third = order.take(), order.take(), order.take()
        events: list[str] = []

        async def third_job() -> None:
            await order.wait_turn(third)
            events.append("third submitted")

        waiting = asyncio.ensure_future(third_job())
        await asyncio.sleep(0)
        order.done(second)  # the second job was cancelled before its turn: the first still holds the queue
        await asyncio.sleep(0.01)
        events.append("first still preparing")
        order.done(first)
        await asyncio.wait_for(waiting, 5)
        return events

    assert asyncio.run(scenario()) == ["first still preparing", "third submitted"]
