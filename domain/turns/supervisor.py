"""Runs turns in supervised background tasks. One heartbeat per process renews the leases of all
its running turns in one statement and polls their cancel flags (so `cancelTurn` works from any
process); a sweeper fails turns whose runner died; shutdown waits for running turns, then cancels
what is left."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import timedelta

from domain.clock import utcnow
from domain.turns.events import RetainingPublisher
from domain.turns.ports import LeaseStatus
from domain.turns.runner import RunnerDeps, TurnRun
from domain.turns.service import StartedTurn, fail_expired_turns

log = logging.getLogger("pantheon.turns.supervisor")


class TurnSupervisor:
    def __init__(self, deps: RunnerDeps, *, runner_id: str) -> None:
        self.deps = deps
        self.runner_id = runner_id
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._cancels: dict[uuid.UUID, asyncio.Event] = {}
        self._runs: dict[uuid.UUID, TurnRun] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def publisher(self) -> RetainingPublisher:
        return self.deps.publisher

    def launch(self, started: StartedTurn) -> asyncio.Task[None]:
        turn_id = started.turn.id
        cancel = asyncio.Event()
        self._cancels[turn_id] = cancel
        task = asyncio.create_task(self._supervise(started, cancel), name=f"turn-{turn_id}")
        self._tasks[turn_id] = task
        task.add_done_callback(lambda _: self._forget(turn_id))
        return task

    def task_for(self, turn_id: uuid.UUID) -> asyncio.Task[None] | None:
        return self._tasks.get(turn_id)

    def cancel_local(self, turn_id: uuid.UUID) -> bool:
        """Stops a turn running in this process at once (others notice through the heartbeat)."""
        cancel = self._cancels.get(turn_id)
        if cancel is None:
            return False
        cancel.set()
        return True

    async def _supervise(self, started: StartedTurn, cancel: asyncio.Event) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat_forever())
        # The task copied the context of whoever launched it (the runTurn request's span), so
        # the turn's span, opened here, continues the request's trace even once it has answered.
        with self.deps.tracer.turn(started.turn) as span:
            run = TurnRun(self.deps, started, cancel, span=span)
            self._runs[started.turn.id] = run
            mode, began = started.turn.mode, time.monotonic()
            self.deps.observer.turn_started(mode)
            try:
                await run.run()
            finally:
                self.deps.observer.turn_finished(mode, run.closed_status, time.monotonic() - began)
                await asyncio.shield(self._settle_rate_limit(started, run))

    async def _settle_rate_limit(self, started: StartedTurn, run: TurnRun) -> None:
        """Charges the user's token window with what the turn spent beyond its estimate."""
        if started.charge is None:
            return
        try:
            await self.deps.rate_limiter.settle_turn(started.charge, spent_tokens=run.tokens_spent)
        except Exception:  # the limit is a guard, not a ledger: the turn's outcome stands
            log.warning("could not settle turn %s's tokens", started.turn.id, exc_info=True)

    async def _beat_forever(self) -> None:
        """Renews every local turn's lease each interval; ends when none is left."""
        while self._cancels:
            await asyncio.sleep(self.deps.settings.heartbeat_seconds)
            try:
                await self.beat_once()
            except Exception:  # a DB hiccup: the lease is long enough to try again
                log.warning("lease renewal failed; retrying", exc_info=True)

    async def beat_once(self) -> None:
        turn_ids = [turn_id for turn_id in self._cancels if not self._closing(turn_id)]
        if not turn_ids:
            return
        until = utcnow() + timedelta(seconds=self.deps.settings.lease_seconds)
        async with self.deps.new_uow() as uow:
            states = await uow.turns.renew_leases(turn_ids, self.runner_id, until=until)
            await uow.commit()
        for turn_id, state in states.items():
            cancel = self._cancels.get(turn_id)
            if cancel is None or state is LeaseStatus.HELD:
                continue
            if state is LeaseStatus.LOST:
                if self._closing(turn_id):  # it closed itself while this beat was in flight
                    continue
                log.warning("turn %s: lease lost; stopping", turn_id)
            cancel.set()

    # --- recovery and shutdown ------------------------------------------------------------

    def start_sweeper(self, interval: float) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(interval))

    async def sweep_once(self) -> int:
        # The recovery unit's commit publishes the events it wrote.
        events = await fail_expired_turns(
            self.deps.new_uow, self.deps.publisher, self.deps.settings
        )
        return len(events)

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.warning("recovery sweep failed; retrying", exc_info=True)
            await asyncio.sleep(interval)

    async def shutdown(self, *, grace_seconds: float) -> None:
        await _stop_task(self._sweeper)
        tasks = list(self._tasks.values())
        if tasks:
            # Leases keep being renewed meanwhile: these turns are alive until they finish.
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await _stop_task(self._heartbeat)

    def _closing(self, turn_id: uuid.UUID) -> bool:
        run = self._runs.get(turn_id)
        return run is not None and run.closing

    def _forget(self, turn_id: uuid.UUID) -> None:
        self._tasks.pop(turn_id, None)
        self._cancels.pop(turn_id, None)
        self._runs.pop(turn_id, None)


async def _stop_task(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
