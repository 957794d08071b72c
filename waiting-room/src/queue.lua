-- The waiting room of one event, in Redis. Every operation on a queue is this one script, so
-- each is atomic, and several waiting-room instances can share one queue.
--
-- KEYS[1] is the event's key base, "<prefix>wr:{evt:ID}:". Every key below is that base plus a
-- suffix, so all share the event's hash tag (one Redis Cluster slot).
--
--   gate     HASH  high_demand, admit_per_minute, max_active, sale_opens_at_ms, updated_at_ms
--                  (written by the ticketing API, or by the waiting room from Postgres)
--   seq      STRING the last number handed out
--   waiting  ZSET  fan (16 raw UUID bytes) scored by their number; only fans not yet admitted
--   pre      ZSET  pre-queue fans scored by arrival (preseq: 1, 2, 3, ... with no gaps), until
--                  the shuffle at opening
--   preseq   STRING arrival counter of the pre-queue
--   seen:<e> BITMAP bit n set: the fan with number n was seen (joined, polled, followed the
--                  push stream) during epoch e, an epoch being half the grace (epoch = now ms
--                  div epoch ms). A fan is stale when unseen in the current and the two epochs
--                  before it: unseen for at least the grace, at most one and a half times it.
--                  One bit a fan and epoch instead of a hash field; expires after four epochs
--   gone     BITMAP bit n set: the fan with number n left the line without being reached
--                  (dropped as stale by the sweep); positions behind them shrink
--   goneblk  HASH  block (number div 512) -> how many of its numbers are gone; blocks the
--                  serving mark passed are removed
--   serving  STRING the number of the last fan the tick reached (admitted or dropped)
--   active   ZSET  user id (hyphenated) scored by the expiry of their admission, Unix ms: the
--                  truth of who may shop now. Only the tick adds to it, so a join while the
--                  gate is off (answered 'admitted' at once) is never in it; the ticketing API
--                  checks it with every gated hold and removes the fan when a registration
--                  spends the admission
--   admitted LIST  user ids (hyphenated) in the order the tick admitted them: the evidence of
--                  the queue's fairness (the load test compares it with join order); expires
--                  a day after the last admission
--   meta     HASH  phase (pre|frozen|open), prebase, precount, seed, tick (last tick, ms),
--                  carry (fraction of an admission owed), outflow (smoothed admissions/s),
--                  soldout (0/1), shuffled (count), sweep (the last number the sweep looked at)
--
-- Numbers: a join after opening takes INCR seq. At opening the pre-queue is frozen in one step:
-- numbers prebase+1 .. prebase+precount are reserved for it (later joins come after them), and
-- the service fills them in the order of a seeded Fisher-Yates shuffle ('place'), then ends the
-- phase ('opened'). Every number up to seq is thus a fan who waits, was reached (at or below
-- serving) or is gone, so a fan's position is their number minus the serving mark minus the
-- gone numbers in between: the services compute it in memory from the summary every tick
-- returns (see queue.rs), and status reads never come here.

local base = KEYS[1]
local op = ARGV[1]

local GATE = base .. 'gate'
local SEQ = base .. 'seq'
local WAITING = base .. 'waiting'
local PRE = base .. 'pre'
local PRESEQ = base .. 'preseq'
local SEEN = base .. 'seen:'
local GONE = base .. 'gone'
local GONEBLK = base .. 'goneblk'
local SERVING = base .. 'serving'
local ACTIVE = base .. 'active'
local META = base .. 'meta'
local ADMITTED = base .. 'admitted'
local ADMITTED_TTL_SECS = 86400
-- Numbers a departure block counts, and how far past the serving mark the summary carries
-- the gone bitmap itself (positions there are exact).
local BLOCK = 512
local FRONT = 8192

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The gate, or nil when the hash is missing.
local function read_gate()
  local g = redis.call('HMGET', GATE, 'high_demand', 'admit_per_minute', 'max_active',
    'sale_opens_at_ms')
  if not g[1] then return nil end
  return {
    on = g[1] ~= '0',
    rate = tonumber(g[2]) or 0,
    max_active = tonumber(g[3]) or 0,
    opens = tonumber(g[4]) or 0,
  }
end

-- The phase; freezes the pre-queue when the sale has opened.
local function phase(now, opens)
  local p = redis.call('HGET', META, 'phase')
  if p == 'frozen' or p == 'open' then return p end
  if now < opens then return 'pre' end
  local n = redis.call('ZCARD', PRE)
  if n == 0 then
    redis.call('HSET', META, 'phase', 'open')
    return 'open'
  end
  local last = redis.call('INCRBY', SEQ, n)
  redis.call('HSET', META, 'phase', 'frozen', 'prebase', last - n, 'precount', n)
  return 'frozen'
end

-- Marks numbers as seen in the current epoch (epoch_ms long).
local function mark_seen(numbers, now, epoch_ms)
  if #numbers == 0 then return end
  local epoch = math.floor(now / epoch_ms)
  local key = SEEN .. epoch
  for _, n in ipairs(numbers) do redis.call('SETBIT', key, n, 1) end
  redis.call('PEXPIRE', key, 4 * epoch_ms)
end

-- The bytes of a bitmap that hold bits first..last ('' past its end).
local function bit_bytes(key, first, last)
  return redis.call('GETRANGE', key, math.floor(first / 8), math.floor(last / 8))
end

-- Is bit n set in bytes that start at bit first (Redis numbers a byte's bits from the top)?
local function has_bit(bytes, first, n)
  local b = string.byte(bytes, math.floor(n / 8) - math.floor(first / 8) + 1)
  if not b then return false end
  return bit.band(b, bit.rshift(128, n % 8)) ~= 0
end

-- A reader of staleness for numbers first..last: unseen in this epoch and the two before.
local function staleness(now, epoch_ms, first, last)
  local epoch = math.floor(now / epoch_ms)
  local maps = {}
  for k = 0, 2 do maps[k + 1] = bit_bytes(SEEN .. (epoch - k), first, last) end
  return function(n)
    return not (has_bit(maps[1], first, n) or has_bit(maps[2], first, n)
      or has_bit(maps[3], first, n))
  end
end

local function uuid_string(raw)
  local h = string.gsub(raw, '.', function(c) return string.format('%02x', string.byte(c)) end)
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-' .. string.sub(h, 13, 16)
    .. '-' .. string.sub(h, 17, 20) .. '-' .. string.sub(h, 21, 32)
end

-- What every instance keeps of the queue, refreshed with each tick:
--   phase, gate on (0/1), rate per minute, sale opens (ms), outflow (admissions/s, a string),
--   sold out (0/1), serving, seq, prebase, precount, seed ('' until recorded),
--   the gone bitmap's bytes from the byte holding serving+1 to the end of the block FRONT
--   numbers past it ('' when nobody is gone), and the departure blocks as a flat
--   block, count, block, count, ... list.
local function summary(ph, g)
  local m = redis.call('HMGET', META, 'outflow', 'soldout', 'prebase', 'precount', 'seed')
  local serving = tonumber(redis.call('GET', SERVING)) or 0
  local seq = tonumber(redis.call('GET', SEQ)) or 0
  local blocks = redis.call('HGETALL', GONEBLK)
  local front = ''
  if #blocks > 0 then
    local last = (math.floor((serving + FRONT) / BLOCK) + 1) * BLOCK - 1
    front = bit_bytes(GONE, serving + 1, last)
  end
  return { ph, g.on and 1 or 0, g.rate, g.opens, m[1] or '0', tonumber(m[2]) or 0, serving,
    seq, tonumber(m[3]) or 0, tonumber(m[4]) or 0, m[5] or '', front, blocks }
end

if op == 'join' or op == 'lookup' then
  -- ARGV: fan (raw), user id, epoch ms. Answers one of
  --   {'off'}, {'pre_queue', arrival}, {'waiting', number}, {'admitted', until ms},
  --   {'expired'} (lookup only: a fan who is not in line), {'no_gate'}.
  -- A join of someone already in line answers their place; a lookup never joins.
  local fan, uid, epoch_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local now = now_ms()
  local g = read_gate()
  if not g then return { 'no_gate' } end
  if not g.on then return { 'off' } end
  local ph = phase(now, g.opens)
  if ph ~= 'open' then
    local arrival = redis.call('ZSCORE', PRE, fan)
    if arrival then return { 'pre_queue', tonumber(arrival) } end
  end
  local num = redis.call('ZSCORE', WAITING, fan)
  if num then
    num = tonumber(num)
    if op == 'join' then mark_seen({ num }, now, epoch_ms) end
    return { 'waiting', num }
  end
  local expires = redis.call('ZSCORE', ACTIVE, uid)
  if expires and tonumber(expires) > now then
    return { 'admitted', tonumber(expires) }
  end
  if op == 'lookup' then return { 'expired' } end
  if ph == 'pre' then
    local arrival = redis.call('INCR', PRESEQ)
    redis.call('ZADD', PRE, arrival, fan)
    return { 'pre_queue', arrival }
  end
  num = redis.call('INCR', SEQ)
  redis.call('ZADD', WAITING, num, fan)
  mark_seen({ num }, now, epoch_ms)
  return { 'waiting', num }
end

if op == 'summary' then
  local g = read_gate()
  if not g then return { 'no_gate' } end
  return summary(phase(now_ms(), g.opens), g)
end

if op == 'tick' then
  -- ARGV: sold out (0/1), grace ms, admission ttl ms, max fans reached per tick, numbers the
  -- sweep may look at per second, and the numbers this instance saw since its last tick as
  -- big-endian u32s in one string. Answers the counts, the summary and which of the seen
  -- numbers are gone (their fans were dropped: they must join again).
  local soldout = ARGV[2]
  local grace = tonumber(ARGV[3])
  local ttl = tonumber(ARGV[4])
  local max_scan = tonumber(ARGV[5])
  local sweep_rate = tonumber(ARGV[6])
  local packed = ARGV[7] or ''
  local epoch_ms = math.max(1, math.floor(grace / 2))
  local now = now_ms()
  local g = read_gate()
  if not g then return { 'no_gate' } end

  local seen, gone_seen = {}, {}
  for i = 1, #packed - 3, 4 do
    local n = struct.unpack('>I4', packed, i)
    if redis.call('GETBIT', GONE, n) == 1 then
      gone_seen[#gone_seen + 1] = n
    else
      seen[#seen + 1] = n
    end
  end
  mark_seen(seen, now, epoch_ms)

  local ph = phase(now, g.opens)
  redis.call('ZREMRANGEBYSCORE', ACTIVE, '-inf', now)
  local live = redis.call('ZCARD', ACTIVE)
  local m = redis.call('HMGET', META, 'tick', 'carry', 'outflow', 'sweep')
  local last = tonumber(m[1]) or now
  local carry = tonumber(m[2]) or 0
  local outflow = tonumber(m[3]) or 0
  local elapsed = now - last
  if elapsed < 0 then elapsed = 0 end
  redis.call('HSET', META, 'tick', now, 'soldout', soldout)
  local admitted, dropped, swept = 0, 0, 0
  if g.on and ph == 'open' and soldout ~= '1' then
    -- Credit owed at the admission rate since the last tick (at most one second's worth, so a
    -- pause never turns into a burst), plus the fraction carried from before.
    local credit = carry + g.rate * elapsed / 60000
    local burst = math.max(1, g.rate / 60)
    if credit > burst then credit = burst end
    local whole = math.floor(credit)
    local n = math.min(whole, g.max_active - live)
    local serving_before = tonumber(redis.call('GET', SERVING)) or 0
    local scanned = 0
    while admitted < n and scanned < max_scan do
      local batch = redis.call('ZRANGE', WAITING, 0, n - admitted - 1, 'WITHSCORES')
      if #batch == 0 then break end
      local stale = staleness(now, epoch_ms, tonumber(batch[2]), tonumber(batch[#batch]))
      for i = 1, #batch, 2 do
        local fan, num = batch[i], tonumber(batch[i + 1])
        scanned = scanned + 1
        redis.call('ZREM', WAITING, fan)
        redis.call('SET', SERVING, num)
        if stale(num) then
          dropped = dropped + 1
        else
          local uid = uuid_string(fan)
          redis.call('ZADD', ACTIVE, now + ttl, uid)
          redis.call('RPUSH', ADMITTED, uid)
          admitted = admitted + 1
        end
      end
    end
    if admitted > 0 then redis.call('EXPIRE', ADMITTED, ADMITTED_TTL_SECS) end
    local serving = tonumber(redis.call('GET', SERVING)) or 0
    -- Departure blocks the serving mark has passed count nobody's position any more.
    for b = math.floor(serving_before / BLOCK), math.floor(serving / BLOCK) - 1 do
      redis.call('HDEL', GONEBLK, b)
    end
    carry = credit - whole

    -- The sweep: a stretch of the line behind the serving mark each tick, as many numbers as
    -- sweep_rate allows for the time elapsed, cycling from the front to the back; stale fans
    -- leave it (gone), so nobody waits behind fans who left long ago.
    local seq = tonumber(redis.call('GET', SEQ)) or 0
    local from = math.max(tonumber(m[4]) or 0, serving) + 1
    if from > seq then from = serving + 1 end
    local budget = math.min(math.ceil(sweep_rate * elapsed / 1000), 50000)
    local to = math.min(from + budget - 1, seq)
    if to >= from then
      local fans = redis.call('ZRANGEBYSCORE', WAITING, from, to, 'WITHSCORES')
      local stale = staleness(now, epoch_ms, from, to)
      for i = 1, #fans, 2 do
        local num = tonumber(fans[i + 1])
        if stale(num) then
          redis.call('ZREM', WAITING, fans[i])
          redis.call('SETBIT', GONE, num, 1)
          redis.call('HINCRBY', GONEBLK, math.floor(num / BLOCK), 1)
          swept = swept + 1
        end
      end
      redis.call('HSET', META, 'sweep', to)
    end
  else
    carry = 0
  end
  local waiting = redis.call('ZCARD', WAITING)
  -- Smoothed outflow (admissions/s), time constant 10 s, measured only while fans wait.
  if g.on and ph == 'open' and soldout ~= '1' and elapsed > 0 and (waiting > 0 or admitted > 0) then
    local alpha = 1 - math.exp(-elapsed / 10000)
    outflow = outflow + alpha * (admitted * 1000 / elapsed - outflow)
  end
  redis.call('HSET', META, 'carry', carry, 'outflow', tostring(outflow))
  return { waiting, live + admitted, admitted, dropped, swept, summary(ph, g), gone_seen }
end

if op == 'shuffle_begin' then
  -- ARGV[2]: a fresh seed, used only if none is recorded. Returns the recorded seed, prebase,
  -- precount and phase; the caller then reads the pre-queue in arrival order.
  local m = redis.call('HMGET', META, 'phase', 'seed', 'prebase', 'precount')
  if m[1] ~= 'frozen' then return { m[1] or 'pre' } end
  local seed = m[2]
  if not seed then
    seed = ARGV[2]
    redis.call('HSET', META, 'seed', seed)
  end
  return { 'frozen', seed, m[3], m[4] }
end

if op == 'place' then
  -- ARGV[2]: the shuffled index (0-based) of the first fan; ARGV[3]: epoch ms; ARGV[4..]: fans
  -- in shuffled order. Idempotent: redoing it with the same seed writes the same numbers.
  -- Placed fans count as seen now, so each has the whole grace to come back after opening.
  local m = redis.call('HMGET', META, 'phase', 'prebase')
  if m[1] ~= 'frozen' then return 0 end
  local first = tonumber(m[2]) + tonumber(ARGV[2]) + 1
  local placed = {}
  for i = 4, #ARGV do
    if redis.call('ZSCORE', PRE, ARGV[i]) then
      redis.call('ZADD', WAITING, first + i - 4, ARGV[i])
      placed[#placed + 1] = first + i - 4
    end
  end
  mark_seen(placed, now_ms(), tonumber(ARGV[3]))
  return #placed
end

if op == 'opened' then
  -- Ends the shuffle; 1 for the one caller that ended it.
  if redis.call('HGET', META, 'phase') ~= 'frozen' then return 0 end
  redis.call('HSET', META, 'phase', 'open', 'shuffled', redis.call('ZCARD', PRE))
  redis.call('DEL', PRE, PRESEQ)
  return 1
end

return redis.error_reply('unknown op ' .. tostring(op))
