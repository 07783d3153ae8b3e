"""The runtime's side of the predictor zygote (:mod:`predictor.zygote`): fork, don't spawn.

:class:`Zygote` starts ``python -m predictor.zygote`` once, in the background, when the
local runtime starts; it warms up (imports MLflow, scikit-learn, pandas and the
predictor, and loads a model of its own) while nothing waits for it. Once it says
``ready``, :meth:`Zygote.fork` starts an odahu-ml-server replica as a fork of it: the
runtime binds the replica's socket and opens its log file as before and hands both
over with the request. A start asked for while it warms up waits for it (up to
``WARM_UP_WAIT``); if the zygote died (it is started again) or cannot start, a replica
is spawned from a fresh interpreter as before: the zygote only ever makes a start
faster, never possible.

A forked replica is adopted by this process (a child subreaper: the zygote's middle
process exits right after forking it), so, as a spawned one, it is the runtime's child:
:class:`ZygoteChild` stands in for ``asyncio.subprocess.Process`` with what the runtime
uses (``pid``, ``returncode``, ``wait``, ``send_signal``), waiting and signalling
through a pidfd. The replica has its own session and dies with this process, so
stopping it, killing its process group and cleaning up after it are as for a spawned
one. Other orphans a subreaper inherits (rare: a descendant whose parent died) are
reaped by :func:`reap_orphans`.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import psutil

from deploy.local.process import ZygoteUnavailable, die_with_parent

log = logging.getLogger("mlgate.runtime")
RESTART_DELAY = 5.0
WARM_UP_WAIT = 60.0
"""Seconds a replica start waits for a zygote still warming up: its warm-up costs what a
fresh interpreter's start costs, so waiting is not slower, and the machine does that
work once instead of twice."""
ORPHAN_CHECK_INTERVAL = 10.0
PR_SET_CHILD_SUBREAPER = 36


class ZygoteChild:
    """A replica forked by the zygote and adopted by this process: the part of
    ``asyncio.subprocess.Process`` the runtime uses. Reaped through a pidfd."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._pidfd = os.pidfd_open(pid)
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        try:
            result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:  # not adopted yet: the middle process is still leaving
            self._loop.remove_reader(self._pidfd)
            self._loop.call_later(0.01, self._loop.add_reader, self._pidfd, self._reap)
            return
        if result is None:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        code = -result.si_status if result.si_code in _KILLED else result.si_status
        self.returncode = code
        self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_KILLED = frozenset({os.CLD_KILLED, os.CLD_DUMPED})


def become_subreaper() -> bool:
    """Adopt orphaned descendants (forked replicas) instead of leaving them to init."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(known: set[int], seen: set[int]) -> set[int]:
    """Reap zombie children nobody waits for (other orphans a subreaper inherits, e.g. a
    Triton server whose launcher was killed): those already zombies at the previous look
    and not replicas of ours. The zombies seen now, for the next look."""
    zombies = set()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.status() == psutil.STATUS_ZOMBIE and child.pid not in known:
                zombies.add(child.pid)
    for pid in zombies & seen:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return zombies


class Zygote:
    """One warm ``predictor.zygote`` process, restarted when it dies."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.env = env
        self.ready = False
        self._settled = asyncio.Event()
        """Set while the zygote is ready, or gone (until the next one starts)."""
        self.import_seconds: float | None = None
        self.warm_seconds: float | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._next_id = 0
        self._forks: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, ZygoteChild] = {}
        self._closing = False
        self._refused = False

    def start(self) -> None:
        """Start (and keep restarting) the zygote in the background. Without the right to
        adopt orphans, it does not start: replicas are spawned."""
        if self._task is not None or self._refused:
            return
        if not become_subreaper():
            self._refused = True
            log.warning("cannot become a child subreaper: replicas start without the zygote")
            return
        self._task = asyncio.create_task(self._run(), name="predictor-zygote")
        self._reaper = asyncio.create_task(self._reap_orphans(), name="orphan-reaper")

    async def close(self) -> None:
        self._closing = True
        self._settled.set()
        for task in (self._task, self._reaper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._reaper = None

    async def _reap_orphans(self) -> None:
        seen: set[int] = set()
        while True:
            await asyncio.sleep(ORPHAN_CHECK_INTERVAL)
            known = {pid for pid, child in self._children.items() if child.returncode is None}
            seen = reap_orphans(known, seen)

    async def fork(self, argv: list[str], env: dict[str, str] | None, listen: socket.socket,
                   log_path: Path) -> ZygoteChild:
        """A replica running ``python -m predictor <argv> --fd <listen>``, forked."""
        if not self.ready and self._task is not None and not self._closing:
            with contextlib.suppress(TimeoutError):  # warming up: cheaper to wait than to
                async with asyncio.timeout(WARM_UP_WAIT):  # import everything once more
                    await self._settled.wait()
        control = self._control
        if not self.ready or control is None:
            raise ZygoteUnavailable("the predictor zygote is not ready")
        self._next_id += 1
        request_id = self._next_id
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._forks[request_id] = done
        message = json.dumps({"id": request_id, "argv": argv, "env": env or {},
                              "adopter": os.getpid()}).encode()
        with open(log_path, "ab") as log_file:
            fds = array.array("i", [listen.fileno(), log_file.fileno()])
            try:
                control.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            except OSError as exc:
                self._forks.pop(request_id, None)
                raise ZygoteUnavailable(f"cannot reach the predictor zygote: {exc}") from None
        try:
            async with asyncio.timeout(10):
                pid = await done
        except TimeoutError:
            raise ZygoteUnavailable("the predictor zygote did not fork in time") from None
        finally:
            self._forks.pop(request_id, None)
        child = self._children[pid] = ZygoteChild(pid)
        for gone in [p for p, c in self._children.items() if c.returncode is not None]:
            del self._children[gone]
        return child

    # -- the zygote process ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._serve_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("predictor zygote failed")
            finally:
                await self._stop_process()
            if not self._closing:
                log.warning("predictor zygote ended; starting another in %gs", RESTART_DELAY)
                await asyncio.sleep(RESTART_DELAY)

    async def _serve_once(self) -> None:
        self._settled.clear()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setblocking(False)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_path, "ab") as log_file:
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "predictor.zygote", "--control-fd", str(theirs.fileno()),
                    stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                    pass_fds=(theirs.fileno(),), start_new_session=True,
                    preexec_fn=die_with_parent, env={**os.environ, **(self.env or {})})
        finally:
            theirs.close()
        self._control = mine
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(mine, 65536)
                if not data:
                    return
                self._take(json.loads(data))
        finally:
            self.ready = False
            self._settled.set()
            self._control = None
            mine.close()
            for future in self._forks.values():
                if not future.done():
                    future.set_exception(ZygoteUnavailable("the predictor zygote ended"))

    def _take(self, message: dict[str, Any]) -> None:
        if message.get("ready"):
            self.ready = True
            self._settled.set()
            self.import_seconds = message.get("import_s")
            self.warm_seconds = message.get("warm_s")
            log.info("predictor zygote ready (imports %.2fs, warm-up load %.2fs)",
                     self.import_seconds or 0, self.warm_seconds or 0)
        elif "id" in message:
            future = self._forks.get(int(message["id"]))
            if future is None or future.done():
                return
            if "pid" in message:
                future.set_result(int(message["pid"]))
            else:
                future.set_exception(ZygoteUnavailable(str(message.get("error"))))

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
