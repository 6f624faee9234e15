"""The Lua scripts of the Redis store: every write is one script, so it is atomic.

Keys (``P`` is the store's prefix; ids and workflow ids are used verbatim):

- ``P e:<id>``: the execution, a hash. Written once by ``create``: ``f`` (JSON
  of id, workflow_id, parent_id, created_at), ``in`` (the input, JSON), ``wf``
  (the workflow id) and ``b`` (the seq the log starts after). Rewritten by every
  checkpoint: ``v`` (version), ``s`` (seq), ``st`` (status), ``w`` (the id of
  the write that produced it) and ``r`` (JSON of every other field but ctx).
- ``P c:<id>``: the ctx values, a hash (name -> JSON text), and ``P o:<id>``
  their names in ctx order, a list. A checkpoint writes only the values it
  names: a name new to ctx is appended to the order, a name set again keeps its
  place. A checkpoint that writes ctx whole replaces both keys.
- ``P l:<id>``: the entries, a list of JSON texts in seq order (index ``i``
  holds seq ``b + 1 + i``, so ``entries(after=n)`` is one ``LRANGE``).
- ``P m:<id>``: the mailbox, a hash: ``<seq>`` -> the signal (JSON of name, key,
  sent_at and payload), ``n`` -> the last seq given, ``c<seq>`` -> the version
  whose checkpoint consumed that signal, ``k<key>`` -> the seq of the signal
  that came with that key (a key is never taken twice), ``w<write id>`` -> the
  seq of the send that carried that write id (so a send retried after a lost
  connection is not appended twice). ``P mp:<id>``: the pending signals, a
  sorted set of ``<seq>:<name>`` scored by seq.
- Sorted sets of ids: ``P i:all``, ``P i:wf:<workflow_id>``, ``P i:st:<status>``
  and ``P i:sw:<status>:<workflow_id>`` scored by updated_at; ``P i:wake``
  (halted and waiting executions with a timer) scored by wake_at; ``P i:lease``
  (running executions with a lease) scored by lease_expires_at. Scores are whole
  microseconds since the epoch; equal scores are ordered by id (byte order, which
  for UTF-8 is code-point order).
- With a TTL: ``P ttl`` (ids of finished executions, scored by when their keys
  expire, in ms) and ``P ttl:meta`` (id -> workflow id), so that the index
  entries of an expired execution can be found and removed. The record, its
  entries, its ctx values and their order and its mailbox expire together.
- ``P sc:<name>``: a schedule, a hash: ``d`` (JSON of workflow_id, cron,
  timezone, input and created_at), ``ls`` (the last slot, microseconds since
  the epoch) and ``w`` (the write id of the fire that set it); ``P schedules``
  their names, a sorted set (all scores 0, so in byte order).

Records written by releases before ctx values had keys of their own hold ``d``
(JSON of every field a checkpoint rewrites, ctx included) instead of ``r``, and
no ``c:``/``o:`` keys. Reads take ``d`` whenever a record has it; a checkpoint
that writes ctx whole converts the record (it writes ``r`` and the ctx keys, and
drops ``d``), and one that names its values refuses such a record with ``{-3}``,
so that the store sends ctx whole instead (see ``RedisStore.checkpoint``).

Scripts reach keys other than ``KEYS`` by building their names from the
prefix, so the store needs one Redis server (or a primary with replicas), not
Redis Cluster.
"""

from __future__ import annotations

import hashlib

import attrs

from ...records import Status

__all__ = [
    "CHECKPOINT",
    "CLEAN",
    "CREATE",
    "DELETE",
    "DELETE_SCHEDULE",
    "ENTRIES",
    "LOAD",
    "NOT_PENDING",
    "OLD_SHAPE",
    "PRUNE",
    "QUERY",
    "SAVE_SCHEDULE",
    "SCHEDULES",
    "SCHEDULE_FIRED",
    "SCRIPTS",
    "SEND",
    "SIGNALS",
    "Script",
]


@attrs.frozen
class Script:
    """A Lua script and its SHA1 (what ``EVALSHA`` names it by)."""

    name: str
    text: str
    sha: str = attrs.field(init=False)

    @sha.default
    def _sha(self) -> str:
        return hashlib.sha1(self.text.encode()).hexdigest()


#: What ``CHECKPOINT`` answers for a record in the old shape when ctx is not sent whole.
OLD_SHAPE = -3
#: What ``CHECKPOINT`` answers, with the seq, when a signal it consumes is not pending.
NOT_PENDING = -4

_STATUSES = ", ".join(f"'{status.value}'" for status in Status)
#: Lua sets: the statuses whose timer ``due`` answers, and the finished ones (which expire).
_WAKING = ", ".join(f"{status.value} = true" for status in (Status.HALTED, Status.WAITING))
_FINISHED = ", ".join(f"{status.value} = true" for status in Status if status.finished)

#: Reading a record with its ctx, shared by the read scripts. ARGV[1] is always the prefix.
_READ = """
local P = ARGV[1]

-- An execution as {f, in, r, ctx}, ctx being one JSON object text (the values in
-- order, each under its name), or {f, in, d} for a record of the old shape, or false.
local function read(id)
  local rec = redis.call('HMGET', P .. 'e:' .. id, 'f', 'in', 'd', 'r')
  if not rec[1] then return false end
  if rec[3] then return {rec[1], rec[2], rec[3]} end
  local names = redis.call('LRANGE', P .. 'o:' .. id, 0, -1)
  local parts, k, n = {'{'}, 1, #names
  for i = 1, n, 1000 do
    local values = redis.call('HMGET', P .. 'c:' .. id, unpack(names, i, math.min(i + 999, n)))
    for j = 1, #values do
      if values[j] then
        if k > 1 then k = k + 1; parts[k] = ',' end
        parts[k + 1] = cjson.encode(names[i + j - 1])
        parts[k + 2] = ':'
        parts[k + 3] = values[j]
        k = k + 3
      end
    end
  end
  parts[k + 1] = '}'
  return {rec[1], rec[2], rec[4], table.concat(parts)}
end
"""

#: Shared by the write scripts. ARGV[1] is always the prefix.
_COMMON = f"""
local P = ARGV[1]
local STATUSES = {{{_STATUSES}}}
local WAKING = {{{_WAKING}}}
local FINISHED = {{{_FINISHED}}}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Delete an execution's entries, ctx values, ctx order and mailbox.
local function drop_data(id)
  redis.call('DEL', P .. 'l:' .. id, P .. 'c:' .. id, P .. 'o:' .. id, P .. 'm:' .. id,
    P .. 'mp:' .. id)
end

-- Write the ctx values ARGV[first..last] (name, JSON text, name, JSON text…):
-- a name new to ctx goes last in the order, a name set again keeps its place.
local function set_ctx(ctx, order, first, last)
  for i = first, last, 2 do
    if redis.call('HSET', ctx, ARGV[i], ARGV[i + 1]) == 1 then
      redis.call('RPUSH', order, ARGV[i])
    end
  end
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
  -- Only halted and waiting executions are in i:wake, only running ones in i:lease.
  if WAKING[st] and wake ~= '' then
    redis.call('ZADD', P .. 'i:wake', wake, id)
  elseif old and WAKING[old] then
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
      drop_data(id)
    else
      redis.call('ZREM', P .. 'ttl', id)
      redis.call('HDEL', P .. 'ttl:meta', id)
    end
  end
end

-- Finished executions expire after ttl ms (when set); any other status never does.
-- keys: the record, then the execution's other keys (entries, ctx values, ctx order,
-- mailbox, pending signals).
local function retain(keys, id, wf, old, st, ttl)
  if FINISHED[st] then
    if ttl ~= '' then
      local now = now_ms()
      for i = 1, #keys do redis.call('PEXPIRE', keys[i], ttl) end
      redis.call('ZADD', P .. 'ttl', now + tonumber(ttl), id)
      redis.call('HSET', P .. 'ttl:meta', id, wf)
      expire_due(now, 16)
    end
  elseif old and FINISHED[old] and redis.call('PERSIST', keys[1]) == 1 then
    for i = 2, #keys do redis.call('PERSIST', keys[i]) end
    redis.call('ZREM', P .. 'ttl', id)
    redis.call('HDEL', P .. 'ttl:meta', id)
  end
end
"""

#: KEYS: record, log, ctx values, ctx order, mailbox, pending signals. ARGV: prefix, id,
#: workflow_id, f, input, seq, version, status, updated_at, wake_at, lease_expires_at, r,
#: write id, ttl ms, then ctx as name, JSON text, name, JSON text…
#: Returns 1 when written (or when this write had already landed), 0 when the id exists.
CREATE = Script(
    "create",
    _COMMON
    + """
local rec = KEYS[1]
local written = redis.call('HGET', rec, 'w')
if written then
  if written == ARGV[13] then return 1 end
  return 0
end
local id, wf, st = ARGV[2], ARGV[3], ARGV[8]
local expired = redis.call('HGET', P .. 'ttl:meta', id)
if expired then forget(id, expired, false) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('HSET', rec, 'f', ARGV[4], 'in', ARGV[5], 'wf', wf, 'b', ARGV[6],
  'v', ARGV[7], 's', ARGV[6], 'st', st, 'w', ARGV[13], 'r', ARGV[12])
set_ctx(KEYS[3], KEYS[4], 15, #ARGV)
index(id, wf, false, st, ARGV[9], ARGV[10], ARGV[11])
retain(KEYS, id, wf, false, st, ARGV[14])
return 1
""",
)

#: KEYS: record, log, ctx values, ctx order, mailbox, pending signals. ARGV: prefix, id,
#: expected version, seq before the entries, new version, new seq, status, updated_at,
#: wake_at, lease_expires_at, r, write id, ttl ms, the seqs of the signals consumed
#: (comma-separated, '' for none), 'w' (ctx whole) or 'p' (only the values named), the
#: number n of ctx values, n times name and JSON text, then the entries.
#: Returns 1 when written (or when this write had already landed); else
#: {0} (no such execution), {-1, version, seq} (stale version), {-2, version, seq}
#: (the entries do not continue the log), {-3} (a record in the old shape: send
#: ctx whole), {-4, seq} (that signal is not pending), having written nothing.
CHECKPOINT = Script(
    "checkpoint",
    _COMMON
    + f"""
local rec, log, ctx, order, mailbox, pending = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- 'd' is there only in records of the old shape (see the module's docstring).
local cur = redis.call('HMGET', rec, 'v', 's', 'st', 'wf', 'w', 'd')
if not cur[1] then return {{0}} end
if cur[1] ~= ARGV[3] then
  if cur[1] == ARGV[5] and cur[5] == ARGV[12] then return 1 end
  return {{-1, cur[1], cur[2]}}
end
if cur[2] ~= ARGV[4] then return {{-2, cur[1], cur[2]}} end
local whole = ARGV[15] == 'w'
if cur[6] and not whole then return {{{OLD_SHAPE}}} end
local consumed = {{}}
for seq in string.gmatch(ARGV[14], '[^,]+') do
  if redis.call('ZCOUNT', pending, seq, seq) == 0 then return {{{NOT_PENDING}, seq}} end
  consumed[#consumed + 1] = seq
end
local id, st, old, wf = ARGV[2], ARGV[7], cur[3], cur[4]
redis.call('HSET', rec, 'v', ARGV[5], 's', ARGV[6], 'st', st, 'w', ARGV[12], 'r', ARGV[11])
if whole then
  if cur[6] then redis.call('HDEL', rec, 'd') end
  redis.call('DEL', ctx, order)
end
local last = 16 + 2 * tonumber(ARGV[16])
set_ctx(ctx, order, 17, last)
local n = #ARGV
for i = last + 1, n, 1000 do
  redis.call('RPUSH', log, unpack(ARGV, i, math.min(i + 999, n)))
end
for i = 1, #consumed do
  redis.call('ZREMRANGEBYSCORE', pending, consumed[i], consumed[i])
  redis.call('HSET', mailbox, 'c' .. consumed[i], ARGV[5])
end
index(id, wf, old, st, ARGV[8], ARGV[9], ARGV[10])
retain(KEYS, id, wf, old, st, ARGV[13])
return 1
""",
)

#: KEYS: record, log, ctx values, ctx order, mailbox, pending signals. ARGV: prefix, id.
#: Returns 1 when deleted, 0 when there was nothing.
DELETE = Script(
    "delete",
    _COMMON
    + """
local id = ARGV[2]
local cur = redis.call('HMGET', KEYS[1], 'wf', 'st')
if not cur[1] then
  local expired = redis.call('HGET', P .. 'ttl:meta', id)
  if expired then
    forget(id, expired, false)
    drop_data(id)
  end
  return 0
end
redis.call('DEL', unpack(KEYS))
forget(id, cur[1], cur[2])
return 1
""",
)

#: KEYS: the index a query read. ARGV: prefix, ids whose record was gone.
#: Removes them from every index (from the one read, if the store does not know
#: their workflow), and cleans up to 100 more expired executions.
CLEAN = Script(
    "clean",
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
    drop_data(id)
  end
end
expire_due(now_ms(), 100)
return 1
""",
)

#: KEYS: a status index (``i:st:<status>``). ARGV: prefix, the highest score to take
#: (exclusive), how many ids to take at most, from which rank (oldest first), and '1'
#: to count only. The ids are read by rank, which Redis finds in logarithmic time (a
#: ``LIMIT`` offset would be walked), so a dry run's later batches cost what its first
#: did. Deletes the executions of those ids whose record is there, with every key and
#: index entry of theirs (and cleans up after those that expired), unless counting only.
#: Returns {how many ids it looked at, how many executions it deleted or counted}.
PRUNE = Script(
    "prune",
    _COMMON
    + """
local first = tonumber(ARGV[4])
local batch = redis.call('ZRANGE', KEYS[1], first, first + tonumber(ARGV[3]) - 1, 'WITHSCORES')
local upto, ids = tonumber(ARGV[2]), {}
for i = 1, #batch, 2 do
  if tonumber(batch[i + 1]) >= upto then break end
  ids[#ids + 1] = batch[i]
end
local dry, n = ARGV[5] == '1', 0
for i = 1, #ids do
  local id = ids[i]
  local cur = redis.call('HMGET', P .. 'e:' .. id, 'wf', 'st')
  if cur[1] then
    n = n + 1
    if not dry then
      redis.call('DEL', P .. 'e:' .. id)
      drop_data(id)
      forget(id, cur[1], cur[2])
    end
  elseif not dry then
    local wf = redis.call('HGET', P .. 'ttl:meta', id)
    if wf then
      forget(id, wf, false)
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', P .. 'i:all', id)
    end
    drop_data(id)
  end
end
return {#ids, n}
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

#: KEYS: the record. ARGV: prefix, id. The execution as ``read`` gives it, or nil.
LOAD = Script(
    "load",
    _READ
    + """
return read(ARGV[2])
""",
)

#: KEYS: an index. ARGV: prefix, limit, either '' (newest first: find) or the highest
#: score (oldest first, up to that score: due and stale), and for a page of find the
#: score and id of the position it follows.
#: Returns {{execution as ``read`` gives it…}, {ids in the index whose record is gone}}.
QUERY = Script(
    "query",
    _READ
    + """
-- Whether a sorts before b in byte order, as the index orders the ids of one score
-- (Lua's own < follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The offset, from the top (newest) of the index, of the first id after (score, id)
-- in find's order: score descending, then id descending.
local function offset_after(key, score, id)
  local stored = redis.call('ZSCORE', key, id)
  if stored and tonumber(stored) == tonumber(score) then
    return redis.call('ZREVRANK', key, id) + 1
  end
  -- A position not in the index: search the ids of that score (by halves) for the first
  -- that sorts before the id.
  local lo = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  local hi = lo + redis.call('ZCOUNT', key, score, score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(redis.call('ZREVRANGE', key, mid, mid)[1], id) then hi = mid else lo = mid + 1 end
  end
  return lo
end

local limit, upto = tonumber(ARGV[2]), ARGV[3]
local found, gone = {}, {}
local n, offset = 0, 0
if ARGV[5] then offset = offset_after(KEYS[1], ARGV[4], ARGV[5]) end
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
    local execution = read(ids[i])
    if execution then
      n = n + 1
      found[n] = execution
    else
      gone[#gone + 1] = ids[i]
    end
  end
  if #ids < want then break end
end
return {found, gone}
""",
)

#: KEYS: record, mailbox, pending signals. ARGV: write id, name, key, '1' if the signal
#: has a key (else '0'), the signal as JSON.
#: Returns {1, seq} when appended (or when this send had already landed), {0} when its
#: key was seen before, {-1} when the execution does not exist, {-2, status} when it is
#: finished; only {1, seq} wrote anything.
SEND = Script(
    "send",
    f"""
local FINISHED = {{{_FINISHED}}}
local mailbox = KEYS[2]
local sent = redis.call('HGET', mailbox, 'w' .. ARGV[1])
if sent then return {{1, sent}} end
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return {{-1}} end
if FINISHED[st] then return {{-2, st}} end
local keyed = ARGV[4] == '1'
if keyed and redis.call('HEXISTS', mailbox, 'k' .. ARGV[3]) == 1 then return {{0}} end
local seq = redis.call('HINCRBY', mailbox, 'n', 1)
redis.call('HSET', mailbox, seq, ARGV[5], 'w' .. ARGV[1], seq)
if keyed then redis.call('HSET', mailbox, 'k' .. ARGV[3], seq) end
redis.call('ZADD', KEYS[3], seq, seq .. ':' .. ARGV[2])
return {{1, seq}}
""",
)

#: KEYS: mailbox, pending signals. ARGV: '1' and a name to read only that name's
#: signals, else '0'. Returns the pending signals in seq order: seq, JSON, seq, JSON…
SIGNALS = Script(
    "signals",
    """
local pending = redis.call('ZRANGE', KEYS[2], 0, -1)
local seqs = {}
for i = 1, #pending do
  local colon = string.find(pending[i], ':', 1, true)
  if ARGV[1] == '0' or string.sub(pending[i], colon + 1) == ARGV[2] then
    seqs[#seqs + 1] = string.sub(pending[i], 1, colon - 1)
  end
end
local found, n = {}, #seqs
for i = 1, n, 1000 do
  local texts = redis.call('HMGET', KEYS[1], unpack(seqs, i, math.min(i + 999, n)))
  for j = 1, #texts do
    found[#found + 1] = seqs[i + j - 1]
    found[#found + 1] = texts[j]
  end
end
return found
""",
)

#: KEYS: the schedule, the names. ARGV: name, d, the last slot ('' for none).
#: Replaces the schedule whole.
SAVE_SCHEDULE = Script(
    "save_schedule",
    """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'ls', ARGV[3]) end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
""",
)

#: KEYS: the schedule, the names. ARGV: name. Returns 1 when deleted, 0 when there was none.
DELETE_SCHEDULE = Script(
    "delete_schedule",
    """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
""",
)

#: KEYS: the schedule. ARGV: the slot (microseconds since the epoch), write id.
#: Returns 1 when the slot became the last slot (or when this write had already landed),
#: 0 when the schedule is gone or already at or past the slot.
SCHEDULE_FIRED = Script(
    "schedule_fired",
    """
local cur = redis.call('HMGET', KEYS[1], 'd', 'ls', 'w')
if not cur[1] then return 0 end
if cur[3] == ARGV[2] then return 1 end
if cur[2] and tonumber(cur[2]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ls', ARGV[1], 'w', ARGV[2])
return 1
""",
)

#: KEYS: the names. ARGV: prefix. Every schedule by name: name, d, last slot ('' for
#: none), name, d, last slot…
SCHEDULES = Script(
    "schedules",
    """
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
local found = {}
for i = 1, #names do
  local cur = redis.call('HMGET', ARGV[1] .. 'sc:' .. names[i], 'd', 'ls')
  if cur[1] then
    found[#found + 1] = names[i]
    found[#found + 1] = cur[1]
    found[#found + 1] = cur[2] or ''
  end
end
return found
""",
)

SCRIPTS = (
    CREATE,
    CHECKPOINT,
    DELETE,
    CLEAN,
    PRUNE,
    ENTRIES,
    LOAD,
    QUERY,
    SEND,
    SIGNALS,
    SAVE_SCHEDULE,
    DELETE_SCHEDULE,
    SCHEDULE_FIRED,
    SCHEDULES,
)
