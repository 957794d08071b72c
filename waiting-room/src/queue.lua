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
--   pre      ZSET  pre-queue fans scored by arrival (preseq), until the shuffle at opening
--   preseq   STRING arrival counter of the pre-queue
--   seen:<b> HASH  fan (raw) -> last seen, Unix seconds rounded up (errs in the fan's favour
--                  by < 1 s), in 1024 buckets b by the fan's last 10 bits: up to ~130k fans
--                  each bucket stays a small listpack (~25 B a fan instead of ~80 B)
--   dropped  SET   fans (raw) dropped for not being seen within the grace
--   serving  STRING the number of the last fan the tick reached
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
--                  soldout (0/1), shuffled (count)
--
-- Numbers: a join after opening takes INCR seq. At opening the pre-queue is frozen in one step:
-- numbers prebase+1 .. prebase+precount are reserved for it (later joins come after them), and
-- the service fills them in the order of a seeded Fisher-Yates shuffle ('place'), then ends the
-- phase ('opened'). Position = waiting fans with a number at or below one's own (ZCOUNT).

local base = KEYS[1]
local op = ARGV[1]

local GATE = base .. 'gate'
local SEQ = base .. 'seq'
local WAITING = base .. 'waiting'
local PRE = base .. 'pre'
local PRESEQ = base .. 'preseq'
local SEEN = base .. 'seen'
local DROPPED = base .. 'dropped'
local SERVING = base .. 'serving'
local ACTIVE = base .. 'active'
local META = base .. 'meta'
local ADMITTED = base .. 'admitted'
local ADMITTED_TTL_SECS = 86400

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

-- 1-based place in line of the waiting fan with number num.
local function position(num, ph)
  if ph == 'frozen' then
    local m = redis.call('HMGET', META, 'prebase', 'precount')
    local first_after = tonumber(m[1]) + tonumber(m[2]) + 1
    return tonumber(m[2]) + redis.call('ZCOUNT', WAITING, first_after, num)
  end
  return redis.call('ZCOUNT', WAITING, '-inf', num)
end

local function seen_key(fan)
  return SEEN .. ':' .. (string.byte(fan, 16) + 256 * (string.byte(fan, 15) % 4))
end

local function seen_now(now)
  return math.ceil(now / 1000)
end

local function uuid_string(raw)
  local h = string.gsub(raw, '.', function(c) return string.format('%02x', string.byte(c)) end)
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-' .. string.sub(h, 13, 16)
    .. '-' .. string.sub(h, 17, 20) .. '-' .. string.sub(h, 21, 32)
end

-- Reply of join/status: state, position, active expiry (ms) or sale opening (ms), rate per
-- minute, smoothed outflow (admissions/s, as a string), sold out (0/1).
local function answer(state, pos, at, g)
  local m = redis.call('HMGET', META, 'outflow', 'soldout')
  return { state, pos, at, g.rate, m[1] or '0', tonumber(m[2]) or 0 }
end

if op == 'join' or op == 'status' then
  local fan, uid = ARGV[2], ARGV[3]
  local now = now_ms()
  local g = read_gate()
  if not g then return { 'no_gate' } end
  if not g.on then return { 'off' } end
  local ph = phase(now, g.opens)
  if ph ~= 'open' and redis.call('ZSCORE', PRE, fan) then
    redis.call('HSET', seen_key(fan), fan, seen_now(now))
    return answer('pre_queue', 0, g.opens, g)
  end
  local num = redis.call('ZSCORE', WAITING, fan)
  if num then
    redis.call('HSET', seen_key(fan), fan, seen_now(now))
    return answer('waiting', position(num, ph), 0, g)
  end
  local expires = redis.call('ZSCORE', ACTIVE, uid)
  if expires and tonumber(expires) > now then
    return answer('admitted', 0, tonumber(expires), g)
  end
  if op == 'status' then
    return answer('expired', 0, 0, g)
  end
  redis.call('SREM', DROPPED, fan)
  redis.call('HSET', seen_key(fan), fan, seen_now(now))
  if ph == 'pre' then
    redis.call('ZADD', PRE, redis.call('INCR', PRESEQ), fan)
    return answer('pre_queue', 0, g.opens, g)
  end
  num = redis.call('INCR', SEQ)
  redis.call('ZADD', WAITING, num, fan)
  return answer('waiting', position(num, ph), 0, g)
end

if op == 'tick' then
  -- ARGV: sold out (0/1), grace ms, admission ttl ms, max fans looked at per tick
  local soldout = ARGV[2]
  local grace = tonumber(ARGV[3])
  local ttl = tonumber(ARGV[4])
  local max_scan = tonumber(ARGV[5])
  local now = now_ms()
  local g = read_gate()
  if not g then return { 'no_gate' } end
  local ph = phase(now, g.opens)
  redis.call('ZREMRANGEBYSCORE', ACTIVE, '-inf', now)
  local live = redis.call('ZCARD', ACTIVE)
  local m = redis.call('HMGET', META, 'tick', 'carry', 'outflow')
  local last = tonumber(m[1]) or now
  local carry = tonumber(m[2]) or 0
  local outflow = tonumber(m[3]) or 0
  local elapsed = now - last
  if elapsed < 0 then elapsed = 0 end
  redis.call('HSET', META, 'tick', now, 'soldout', soldout)
  if not g.on or ph ~= 'open' or soldout == '1' then
    redis.call('HSET', META, 'carry', 0)
    return { ph, redis.call('ZCARD', WAITING), live, 0, 0 }
  end
  -- Credit owed at the admission rate since the last tick (at most one second's worth, so a
  -- pause never turns into a burst), plus the fraction carried from before.
  local credit = carry + g.rate * elapsed / 60000
  local burst = math.max(1, g.rate / 60)
  if credit > burst then credit = burst end
  local whole = math.floor(credit)
  local room = g.max_active - live
  local n = math.min(whole, room)
  local admitted, dropped, scanned = 0, 0, 0
  while admitted < n and scanned < max_scan do
    local batch = redis.call('ZRANGE', WAITING, 0, n - admitted - 1, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      local fan = batch[i]
      scanned = scanned + 1
      local seen = tonumber(redis.call('HGET', seen_key(fan), fan)) or 0
      redis.call('ZREM', WAITING, fan)
      redis.call('HDEL', seen_key(fan), fan)
      redis.call('SET', SERVING, batch[i + 1])
      if seen * 1000 < now - grace then
        redis.call('SADD', DROPPED, fan)
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
  local waiting = redis.call('ZCARD', WAITING)
  -- Smoothed outflow (admissions/s), time constant 10 s, measured only while fans wait.
  if elapsed > 0 and (waiting > 0 or admitted > 0) then
    local alpha = 1 - math.exp(-elapsed / 10000)
    outflow = outflow + alpha * (admitted * 1000 / elapsed - outflow)
  end
  redis.call('HSET', META, 'carry', credit - whole, 'outflow', tostring(outflow))
  return { ph, waiting, live + admitted, admitted, dropped }
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
  -- ARGV[2]: the shuffled index (0-based) of the first fan; ARGV[3..]: fans in shuffled order.
  -- Idempotent: redoing it with the same seed writes the same numbers.
  local m = redis.call('HMGET', META, 'phase', 'prebase')
  if m[1] ~= 'frozen' then return 0 end
  local first = tonumber(m[2]) + tonumber(ARGV[2]) + 1
  local placed = 0
  for i = 3, #ARGV do
    if redis.call('ZSCORE', PRE, ARGV[i]) then
      redis.call('ZADD', WAITING, first + i - 3, ARGV[i])
      placed = placed + 1
    end
  end
  return placed
end

if op == 'opened' then
  -- Ends the shuffle; 1 for the one caller that ended it.
  if redis.call('HGET', META, 'phase') ~= 'frozen' then return 0 end
  redis.call('HSET', META, 'phase', 'open', 'shuffled', redis.call('ZCARD', PRE))
  redis.call('DEL', PRE, PRESEQ)
  return 1
end

return redis.error_reply('unknown op ' .. tostring(op))
