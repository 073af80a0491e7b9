"""Lua pieces shared by the scripts of several subsystems (alerts, events, the session store)."""

from __future__ import annotations

__all__ = ["NOW_MS"]

#: ``now_ms()``: milliseconds now, from Redis's clock (``TIME``), never a host's.
NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""
