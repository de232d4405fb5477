"""The approvers' console (issue 17): server-rendered pages under /ui beside the API's routers."""

from interlock.server.ui.headers import ConsoleHeaders
from interlock.server.ui.routes import router

__all__ = ["ConsoleHeaders", "router"]
