"""One night at a time: a lease object in the nightly output folder (local or s3://).

    <output>/nightly.lock   {"owner", "host", "pid", "acquired", "expires", "action"}

Taken by an exclusive create (O_EXCL locally, a conditional PUT on S3), so two nights that start
together cannot both take it. A lease whose `expires` has passed belongs to a night that died
without releasing it (a killed pod): the next night removes it and takes a new one. A night renews
its lease at each step, so only a night stuck longer than `lock_hours` in one step loses it.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import datetime, timedelta, timezone

from pipeline import uri as uris
from pipeline.errors import UserError

LOCK = "nightly.lock"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _read(uri: str) -> dict | None:
    fs, path = uris.filesystem(uri)
    try:
        with fs.open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None
    except ValueError:   # a torn lease: held by nobody we know; a person decides (never taken over)
        return {"owner": f"unknown (unreadable lease: delete {uri} if no night runs)",
                "expires": datetime.max.replace(tzinfo=timezone.utc).isoformat()}


def _create(uri: str, lease: dict) -> bool:
    """Write the lease only if no object is there; False if one is."""
    fs, path = uris.filesystem(uri)
    if not uris.is_remote(uri):
        fs.makedirs(fs._parent(path), exist_ok=True)
    try:
        with fs.open(path, "xb") as f:
            f.write(json.dumps(lease, sort_keys=True).encode())
    except FileExistsError:
        return False
    except OSError as exc:   # S3 answers a failed If-None-Match with 412
        if "PreconditionFailed" in str(exc) or "412" in str(exc):
            return False
        raise
    return True


class NightLock:
    """`with NightLock(output, hours, action):` holds the lease for the block; refused in one line
    (UserError) while another night holds an unexpired one."""

    def __init__(self, output: str, hours: float, action: str = "night"):
        self.uri = uris.join(output, LOCK)
        self.hours = hours
        self.action = action
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False

    def _lease(self) -> dict:
        now = _now()
        return {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "action": self.action,
                "acquired": now.isoformat(timespec="seconds"),
                "expires": (now + timedelta(hours=self.hours)).isoformat(timespec="seconds")}

    def acquire(self) -> None:
        for _ in range(2):   # a second try after removing an expired lease
            if _create(self.uri, self._lease()):
                self.held = True
                return
            current = _read(self.uri)
            if current is None:
                continue   # released between the two calls
            if datetime.fromisoformat(current["expires"]) > _now():
                raise UserError(f"another nightly run holds the lock {self.uri} (owner {current['owner']}, "
                                f"{current.get('action', 'night')} since {current.get('acquired', '?')}, "
                                f"expires {current['expires']}); wait for it to end")
            uris.filesystem(self.uri)[0].rm(uris.filesystem(self.uri)[1])   # expired: its night died
        raise UserError(f"could not take the nightly lock {self.uri}: another run took it first")

    def renew(self) -> None:
        """Push the expiry forward; a lease that is no longer ours means another night took over."""
        current = _read(self.uri)
        if current is None or current.get("owner") != self.owner:
            raise UserError(f"the nightly lock {self.uri} expired and was taken by "
                            f"{(current or {}).get('owner', 'nobody')}; this night stops here")
        fs, path = uris.filesystem(self.uri)
        with fs.open(path, "wb") as f:
            f.write(json.dumps(dict(self._lease(), acquired=current["acquired"]), sort_keys=True).encode())

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        current = _read(self.uri)
        if current is not None and current.get("owner") == self.owner:
            fs, path = uris.filesystem(self.uri)
            fs.rm(path)

    def __enter__(self) -> "NightLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(output: str) -> dict | None:
    """The lease in `output`, with `expired` set; None when free."""
    current = _read(uris.join(output, LOCK))
    if current is not None:
        current["expired"] = datetime.fromisoformat(current["expires"]) <= _now()
    return current
