"""Fake vendor servers (real HTTP on 127.0.0.1) for testing integrations without the internet.

``FakeJira``, ``FakeGitHub``, ``FakeLinear`` and ``FakeSlack`` answer as their vendors do, error
shapes and rate limits included; :class:`FakeVendorServer` is the base to play a platform of your
own. Run workers with ``JOBQ_OUTBOUND_ALLOWLIST=127.0.0.1`` and ``JOBQ_INTEGRATION_ALLOW_HTTP=1``.
"""

from .github import FakeGitHub
from .jira import FakeJira
from .linear import FakeLinear
from .server import Exchange, FakeVendorServer, Request, Response
from .slack import FakeSlack

__all__ = ["Exchange", "FakeGitHub", "FakeJira", "FakeLinear", "FakeSlack", "FakeVendorServer", "Request",
           "Response"]
