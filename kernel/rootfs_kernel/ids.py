"""Who a cell's root is on the host: the id range its user namespace maps (pure).

In root mode a cell's root is not the host's root: ids 0..count-1 in the cell are
`first`..`first`+count-1 on the host (as Docker's userns-remap and rootless podman do),
and the image's files are shown to it through idmapped mounts, so the host sees every
file a cell writes as owned by that unprivileged range.
"""

from __future__ import annotations

from dataclasses import dataclass

from .linux import OVERFLOW_ID

# Above any uid a distribution or an LDAP directory hands out, below systemd-nspawn's own
# pick range and 2^31 (some tools still keep ids in a signed int).
DEFAULT_FIRST = 0x6E000000
DEFAULT_COUNT = 65536


@dataclass(frozen=True)
class IdRange:
    """Cell ids 0..count-1 are host ids first..first+count-1 (uids and gids alike)."""

    first: int = DEFAULT_FIRST
    count: int = DEFAULT_COUNT

    def map_line(self) -> str:
        """The line for /proc/PID/uid_map and gid_map."""
        return f"0 {self.first} {self.count}"

    def inside(self, uid: int, gid: int) -> tuple[int, int]:
        """Host owner -> the owner as the cell sees it."""
        return self._in(uid), self._in(gid)

    def _in(self, host_id: int) -> int:
        n = host_id - self.first
        return n if 0 <= n < self.count else OVERFLOW_ID

    @classmethod
    def parse(cls, text: str) -> IdRange:
        """`FIRST:COUNT` (a kernel option) -> IdRange, checked."""
        first, _, count = text.partition(":")
        try:
            r = cls(int(first), int(count or DEFAULT_COUNT))
        except ValueError:
            raise ValueError(f"expected FIRST:COUNT host ids, got {text!r}") from None
        if r.first < 1 or r.count < 1 or r.first + r.count > 2**32 - 1:
            raise ValueError(f"{text!r}: FIRST must be > 0 and FIRST+COUNT below 2^32-1")
        if r.count < OVERFLOW_ID + 1:
            raise ValueError(f"{text!r}: COUNT must be at least {OVERFLOW_ID + 1} so that "
                             "the image's nobody (65534) has an id")
        return r
