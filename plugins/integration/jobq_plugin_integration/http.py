"""The shared HTTP client and the one place transport failures become reason codes.

One ``httpx.AsyncClient`` per event loop (a worker process has one), built by
``jobq.outbound.async_http_client``: every connection is resolved, checked against the outbound
policy and pinned, redirects included, and kept alive for the next job to the same vendor.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

import httpx
from jobq.outbound import OutboundPolicy, async_http_client, describe_url

from .errors import NetworkError, PlatformTimeout

if TYPE_CHECKING:
    from .platform import Platform
    from .redact import Redactor

USER_AGENT = "jobq-plugin-integration/0.1 (+https://github.com/jobq)"
MAX_REDIRECTS = 5

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary())


def shared_client(timeout: float, policy: OutboundPolicy | None = None) -> httpx.AsyncClient:
    """The running loop's client, rebuilt when the timeout or the outbound policy changed."""
    loop = asyncio.get_running_loop()
    policy = policy or OutboundPolicy.from_env()
    key = (timeout, policy)
    entry = _clients.get(loop)
    if entry is not None and entry[0] == key and not entry[1].is_closed:
        return entry[1]
    # A client whose settings changed is dropped rather than closed: a running job may still hold it;
    # its pooled connections close when it is collected.
    client = async_http_client(policy, timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                               headers={"User-Agent": USER_AGENT})
    _clients[loop] = (key, client)
    return client


class PlatformHttp:
    """The shared client seen by one platform for one job: failures come out as reason codes.

    :param client: any ``httpx.AsyncClient`` (tests may pass their own).
    :param platform: supplies the vendor's error wording and rate-limit rules.
    :param redact: scrubs the job's credentials from every message.
    """

    def __init__(self, client: httpx.AsyncClient, platform: Platform, redact: Redactor) -> None:
        self.client = client
        self.platform = platform
        self.redact = redact
        self.calls = 0

    async def send(self, method: str, url: str, *, action: str, **kw: Any) -> httpx.Response:
        """Send one request; transport failures become retryable reason codes, the answer is returned
        whatever its status (see :meth:`request` for the checked form)."""
        name = self.platform.name
        self.calls += 1
        try:
            return await self.client.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise PlatformTimeout(f"{name}: {type(exc).__name__} while trying to {action} at "
                                  f"{describe_url(url)}") from None
        except httpx.TooManyRedirects:
            raise NetworkError(f"{name}: too many redirects while trying to {action} at "
                               f"{describe_url(url)}") from None
        except (httpx.TransportError, OSError) as exc:
            reason = self.redact(exc, 200) or type(exc).__name__
            raise NetworkError(f"{name}: {type(exc).__name__} while trying to {action} at "
                               f"{describe_url(url)}: {reason}") from None

    async def request(self, method: str, url: str, *, action: str, not_found: str,
                      ok: tuple[int, ...] = (200, 201, 204), **kw: Any) -> httpx.Response:
        """Send and check: any status outside ``ok`` raises the platform's mapped error.

        :param action: words for messages ("create the issue").
        :param not_found: what a 404/410 means here ("repository octo/app not found...").
        """
        response = await self.send(method, url, action=action, **kw)
        if response.status_code not in ok:
            self.platform.raise_for_response(response, action=action, not_found=not_found,
                                             redact=self.redact)
        return response
