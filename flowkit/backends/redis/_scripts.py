"""The Lua scripts of the Redis store: every write is one script, so it is atomic.

Keys (``P`` is the store's prefix; ids and workflow ids are used verbatim):

- ``P e:<id>``: the execution, a hash. Written once by ``create``: ``f`` (JSON
  of id, workflow_id, parent_id, created_at), ``in`` (the input, JSON), ``wf``
  (the workflow id) and ``b`` (the seq the log starts after). Rewritten by every
  checkpoint: ``v`` (version), ``s`` (seq), ``st`` (status), ``w`` (the id of
  the write that produced it) and ``d`` (JSON of every other field).
- ``P l:<id>``: the entries, a list of JSON texts in seq order (index ``i``
  holds seq ``b + 1 + i``, so ``entries(after=n)`` is one ``LRANGE``).
- Sorted sets of ids: ``P i:all``, ``P i:wf:<workflow_id>``, ``P i:st:<status>``
  and ``P i:sw:<status>:<workflow_id>`` scored by updated_at; ``P i:wake`` (halted
  executions with a timer) scored by wake_at; ``P i:lease`` (running executions
  with a lease) scored by lease_expires_at. Scores are whole microseconds since
  the epoch; equal scores are ordered by id (byte order, which for UTF-8 is
  code-point order).
- With a TTL: ``P ttl`` (ids of finished executions, scored by when their keys
  expire, in ms) and ``P ttl:meta`` (id -> workflow id), so that the index
  entries of an expired execution can be found and removed.

Scripts reach keys other than ``KEYS`` by building their names from the
prefix, so the store needs one Redis server (or a primary with replicas), not
Redis Cluster.
"""

from __future__ import annotations

import hashlib

import attrs

from ...records import Status

__all__ = ["CHECKPOINT", "CREATE", "DELETE", "ENTRIES", "PRUNE", "QUERY", "SCRIPTS", "Script"]


@attrs.frozen
class Script:
    """A Lua script and its SHA1 (what ``EVALSHA`` names it by)."""

    name: str
    text: str
    sha: str = attrs.field(init=False)

    @sha.default
    def _sha(self) -> str:
        return hashlib.sha1(self.text.encode()).hexdigest()


_STATUSES = ", ".join(f"'{status.value}'" for status in Status)

#: Shared by the write scripts. ARGV[1] is always the prefix.
_COMMON = f"""
local P = ARGV[1]
local STATUSES = {{{_STATUSES}}}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Put an execution in the indexes its new state belongs to, and out of the others.
local function index(id, wf, old, st, updated, wake, lease)
  redis.call('ZADD', P .. 'i:all', updated, id)
  redis.call('ZADD', P .. 'i:wf:' .. wf, updated, id)
  if old and old ~= st then
    redis.call('ZREM', P .. 'i:st:' .. old, id)
    redis.call('ZREM', P .. 'i:sw:' .. old .. ':' .. wf, id)
  end
  redis.call('ZADD', P .. 'i:st:' .. st, updated, id)
  redis.call('ZADD', P .. 'i:sw:' .. st .. ':' .. wf, updated, id)
  -- Only halted executions are in i:wake, only running ones in i:lease.
  if st == 'halted' and wake ~= '' then
    redis.call('ZADD', P .. 'i:wake', wake, id)
  elseif old == 'halted' then
    redis.call('ZREM', P .. 'i:wake', id)
  end
  if st == 'running' and lease ~= '' then
    redis.call('ZADD', P .. 'i:lease', lease, id)
  elseif old == 'running' then
    redis.call('ZREM', P .. 'i:lease', id)
  end
end

-- Remove an id from every index (every status when st is false).
local function forget(id, wf, st)
  redis.call('ZREM', P .. 'i:all', id)
  redis.call('ZREM', P .. 'i:wf:' .. wf, id)
  local statuses = STATUSES
  if st then statuses = {{st}} end
  for i = 1, #statuses do
    redis.call('ZREM', P .. 'i:st:' .. statuses[i], id)
    redis.call('ZREM', P .. 'i:sw:' .. statuses[i] .. ':' .. wf, id)
  end
  redis.call('ZREM', P .. 'i:wake', id)
  redis.call('ZREM', P .. 'i:lease', id)
  redis.call('ZREM', P .. 'ttl', id)
  redis.call('HDEL', P .. 'ttl:meta', id)
end

-- Clean the indexes of up to n executions whose keys expired.
local function expire_due(now, n)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'ttl', '-inf', now, 'LIMIT', 0, n)
  for i = 1, #ids do
    local id = ids[i]
    local left = redis.call('PTTL', P .. 'e:' .. id)
    if left > 0 then
      redis.call('ZADD', P .. 'ttl', now + left, id)
    elseif left == -2 then
      local wf = redis.call('HGET', P .. 'ttl:meta', id)
      if wf then
        forget(id, wf, false)
      else
        redis.call('ZREM', P .. 'ttl', id)
      end
      redis.call('DEL', P .. 'l:' .. id)
    else
      redis.call('ZREM', P .. 'ttl', id)
      redis.call('HDEL', P .. 'ttl:meta', id)
    end
  end
end

-- Finished executions expire after ttl ms (when set); any other status never does.
local function retain(rec, log, id, wf, old, st, ttl)
  if st == 'completed' or st == 'failed' then
    if ttl ~= '' then
      local now = now_ms()
      redis.call('PEXPIRE', rec, ttl)
      redis.call('PEXPIRE', log, ttl)
      redis.call('ZADD', P .. 'ttl', now + tonumber(ttl), id)
      redis.call('HSET', P .. 'ttl:meta', id, wf)
      expire_due(now, 16)
    end
  elseif (old == 'completed' or old == 'failed') and redis.call('PERSIST', rec) == 1 then
    redis.call('PERSIST', log)
    redis.call('ZREM', P .. 'ttl', id)
    redis.call('HDEL', P .. 'ttl:meta', id)
  end
end
"""

#: KEYS: record, log. ARGV: prefix, id, workflow_id, f, input, seq, version, status,
#: updated_at, wake_at, lease_expires_at, d, write id, ttl ms.
#: Returns 1 when written (or when this write had already landed), 0 when the id exists.
CREATE = Script(
    "create",
    _COMMON
    + """
local rec, log = KEYS[1], KEYS[2]
local written = redis.call('HGET', rec, 'w')
if written then
  if written == ARGV[13] then return 1 end
  return 0
end
local id, wf, st = ARGV[2], ARGV[3], ARGV[8]
local expired = redis.call('HGET', P .. 'ttl:meta', id)
if expired then forget(id, expired, false) end
redis.call('DEL', log)
redis.call('HSET', rec, 'f', ARGV[4], 'in', ARGV[5], 'wf', wf, 'b', ARGV[6],
  'v', ARGV[7], 's', ARGV[6], 'st', st, 'w', ARGV[13], 'd', ARGV[12])
index(id, wf, false, st, ARGV[9], ARGV[10], ARGV[11])
retain(rec, log, id, wf, false, st, ARGV[14])
return 1
""",
)

#: KEYS: record, log. ARGV: prefix, id, expected version, seq before the entries,
#: new version, new seq, status, updated_at, wake_at, lease_expires_at, d, write id,
#: ttl ms, entries…
#: Returns 1 when written (or when this write had already landed); else
#: {0} (no such execution), {-1, version, seq} (stale version), {-2, version, seq}
#: (the entries do not continue the log), having written nothing.
CHECKPOINT = Script(
    "checkpoint",
    _COMMON
    + """
local rec, log = KEYS[1], KEYS[2]
local cur = redis.call('HMGET', rec, 'v', 's', 'st', 'wf', 'w')
if not cur[1] then return {0} end
if cur[1] ~= ARGV[3] then
  if cur[1] == ARGV[5] and cur[5] == ARGV[12] then return 1 end
  return {-1, cur[1], cur[2]}
end
if cur[2] ~= ARGV[4] then return {-2, cur[1], cur[2]} end
local id, st, old, wf = ARGV[2], ARGV[7], cur[3], cur[4]
redis.call('HSET', rec, 'v', ARGV[5], 's', ARGV[6], 'st', st, 'w', ARGV[12], 'd', ARGV[11])
local n = #ARGV
for i = 14, n, 1000 do
  redis.call('RPUSH', log, unpack(ARGV, i, math.min(i + 999, n)))
end
index(id, wf, old, st, ARGV[8], ARGV[9], ARGV[10])
retain(rec, log, id, wf, old, st, ARGV[13])
return 1
""",
)

#: KEYS: record, log. ARGV: prefix, id. Returns 1 when deleted, 0 when there was nothing.
DELETE = Script(
    "delete",
    _COMMON
    + """
local rec, log, id = KEYS[1], KEYS[2], ARGV[2]
local cur = redis.call('HMGET', rec, 'wf', 'st')
if not cur[1] then
  local expired = redis.call('HGET', P .. 'ttl:meta', id)
  if expired then
    forget(id, expired, false)
    redis.call('DEL', log)
  end
  return 0
end
redis.call('DEL', rec, log)
forget(id, cur[1], cur[2])
return 1
""",
)

#: KEYS: the index a query read. ARGV: prefix, ids whose record was gone.
#: Removes them from every index (from the one read, if the store does not know
#: their workflow), and cleans up to 100 more expired executions.
PRUNE = Script(
    "prune",
    _COMMON
    + """
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('EXISTS', P .. 'e:' .. id) == 0 then
    local wf = redis.call('HGET', P .. 'ttl:meta', id)
    if wf then
      forget(id, wf, false)
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', P .. 'i:all', id)
    end
    redis.call('DEL', P .. 'l:' .. id)
  end
end
expire_due(now_ms(), 100)
return 1
""",
)

#: KEYS: record, log. ARGV: after. The entries with seq > after (none for an unknown id).
ENTRIES = Script(
    "entries",
    """
local base = redis.call('HGET', KEYS[1], 'b')
if not base then return {} end
local start = tonumber(ARGV[1]) - tonumber(base)
if start < 0 then start = 0 end
return redis.call('LRANGE', KEYS[2], start, -1)
""",
)

#: KEYS: an index. ARGV: prefix, limit, and either '' (newest first: find) or the
#: highest score (oldest first, up to that score: due and stale).
#: Returns {{f, in, d, f, in, d…}, {ids in the index whose record is gone}}.
QUERY = Script(
    "query",
    """
local P, limit, upto = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local found, gone = {}, {}
local n, offset = 0, 0
while n < limit do
  local want = limit - n
  local ids
  if upto == '' then
    ids = redis.call('ZREVRANGE', KEYS[1], offset, offset + want - 1)
  else
    ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', upto, 'LIMIT', offset, want)
  end
  if #ids == 0 then break end
  offset = offset + #ids
  for i = 1, #ids do
    local record = redis.call('HMGET', P .. 'e:' .. ids[i], 'f', 'in', 'd')
    if record[1] then
      found[#found + 1] = record[1]
      found[#found + 1] = record[2]
      found[#found + 1] = record[3]
      n = n + 1
    else
      gone[#gone + 1] = ids[i]
    end
  end
  if #ids < want then break end
end
return {found, gone}
""",
)

SCRIPTS = (CREATE, CHECKPOINT, DELETE, PRUNE, ENTRIES, QUERY)
