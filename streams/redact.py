"""Keep credentials out of everything a person or a scraper reads.

Kafka bootstrap strings do not carry credentials, but people paste URLs that do
(``sasl://user:secret@host:9092``); every message that shows an address shows it
through :func:`mask_credentials`. Standard library only, so the broker tooling
can use it too.
"""

from __future__ import annotations

import re

__all__ = ["mask_credentials"]

#: ``user:password@`` or ``user@`` in front of a host, with or without a scheme.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?[^\s/@,;]+@(?=[^\s@,;]+)")


def mask_credentials(text: str) -> str:
    """``text`` with any ``user:password@`` in an address replaced by ``***@``.

    >>> mask_credentials("cannot reach sasl://bob:hunter2@kafka:9092, b:9092")
    'cannot reach sasl://***@kafka:9092, b:9092'
    >>> mask_credentials("127.0.0.1:9092")
    '127.0.0.1:9092'
    """
    return _USERINFO.sub(lambda m: (m.group("scheme") or "") + "***@", text)
