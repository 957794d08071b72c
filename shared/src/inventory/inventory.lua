-- The seat inventory of one event, in Redis. Every operation on seats and holds is this one
-- script, so each is atomic, and every check of a hold compares its owner first.
--
-- KEYS[1] is the event's key base, "<prefix>inv:{evt:ID}:". Every key below is that base plus
-- a suffix, so all share the event's hash tag (one Redis Cluster slot).
--
--   seats          HASH   idx -> hold id | "S"      only seats that are not free
--   free:<c>       ZSET   idx scored row_rank*1e6 + seat_no, the free seats of class c
--   holds          ZSET   hold id scored by its expiry (ms): a hold is alive iff score > now
--   holdrec        HASH   hold id -> "owner|expires|idx:c:score,idx:c:score,..."
--   fans           HASH   user -> their latest hold id (one live hold per fan per event)
--   sold           HASH   c -> seats of class c sold
--   loaded         STRING present once the inventory was built from Postgres
--
-- The high-demand gate: KEYS[2], when given to 'hold' or 'best', is the waiting room's set of
-- admitted fans (`wr:{evt:ID}:active`: user id scored by the end of their admission, Unix ms;
-- the same hash tag, so the same Redis Cluster slot). The owner must be admitted at this very
-- moment, and the hold ends no later than their admission does. Checking it here keeps a gated
-- hold one round trip, and atomic with the seats it takes.
--
-- A hold expires by itself: once its score passes, its seats count as free to every check.
-- Expired holds are swept (seats back into free:<c>) by best-available, the counts, the seat
-- map and the periodic sweeper. Records live in per-event hashes rather than keys of their
-- own: a hold creates no key and sets no TTL, which halves its cost (see benches/holds.rs).
-- Postgres stays the final word on what is sold.

local base = KEYS[1]
local op = ARGV[1]

local SEATS = base .. 'seats'
local HOLDS = base .. 'holds'
local RECORDS = base .. 'holdrec'
local FANS = base .. 'fans'
local SOLD = base .. 'sold'
local LOADED = base .. 'loaded'
local SWEEP_BATCH = 100

local function free_key(c) return base .. 'free:' .. c end

-- owner, expires (number), seats ("idx:c:score,...") of a hold record, or nil.
local function read_record(id)
  local rec = redis.call('HGET', RECORDS, id)
  if not rec then return nil end
  local owner, expires, seats = string.match(rec, '^([^|]*)|(%d+)|(.*)$')
  return owner, tonumber(expires), seats
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function is_live(id, now)
  local score = redis.call('ZSCORE', HOLDS, id)
  return score ~= false and tonumber(score) > now
end

-- Returns a hold's seats (those still pointing at it) to the free sets and forgets the hold.
local function drop_hold(id)
  local owner, _, seats = read_record(id)
  if seats then
    for idx, c, score in string.gmatch(seats, '(%d+):(%d+):(%d+)') do
      if redis.call('HGET', SEATS, idx) == id then
        redis.call('HDEL', SEATS, idx)
        redis.call('ZADD', free_key(c), score, idx)
      end
    end
  end
  if owner and redis.call('HGET', FANS, owner) == id then
    redis.call('HDEL', FANS, owner)
  end
  redis.call('HDEL', RECORDS, id)
  redis.call('ZREM', HOLDS, id)
end

local function sweep(now, limit)
  local expired = redis.call('ZRANGEBYSCORE', HOLDS, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do drop_hold(id) end
  return #expired
end

-- When a hold for `owner` taken now for `ttl` ms ends; nil when the gate (KEYS[2]) is given and
-- the owner is not admitted now.
local function hold_expiry(owner, now, ttl)
  local expires = now + ttl
  if KEYS[2] then
    local admitted_until = tonumber(redis.call('ZSCORE', KEYS[2], owner))
    if not admitted_until or admitted_until <= now then return nil end
    expires = math.min(expires, admitted_until)
  end
  return expires
end

local function write_record(id, owner, expires, seats)
  redis.call('HSET', RECORDS, id, owner .. '|' .. string.format('%d', expires) .. '|' .. seats)
end

-- Takes `entries` ({idx, c, score} each, all free) for hold `id` of `owner` until `expires`:
-- one HSET for all seats, one ZREM per class.
local function take(id, owner, entries, expires)
  local packed, fields, per_class = {}, {}, {}
  for _, e in ipairs(entries) do
    fields[#fields + 1] = e[1]
    fields[#fields + 1] = id
    per_class[e[2]] = per_class[e[2]] or {}
    table.insert(per_class[e[2]], e[1])
    packed[#packed + 1] = e[1] .. ':' .. e[2] .. ':' .. e[3]
  end
  redis.call('HSET', SEATS, unpack(fields))
  for c, members in pairs(per_class) do redis.call('ZREM', free_key(c), unpack(members)) end
  write_record(id, owner, expires, table.concat(packed, ','))
  redis.call('ZADD', HOLDS, expires, id)
  redis.call('HSET', FANS, owner, id)
end

-- The fan's live previous hold (`previous` is their latest hold id), released so its seats can
-- be reused by the new one. Returns what is needed to put it back if the new hold fails.
local function release_previous(previous, now)
  if not previous or not is_live(previous, now) then return nil end
  local _, expires, seats = read_record(previous)
  drop_hold(previous)
  return { id = previous, seats = seats or '', expires = expires }
end

local function restore(previous, owner)
  if not previous then return end
  local entries = {}
  for idx, c, score in string.gmatch(previous.seats, '(%d+):(%d+):(%d+)') do
    entries[#entries + 1] = { idx, c, score }
  end
  take(previous.id, owner, entries, previous.expires)
end

-- Building the inventory (see Inventory::ensure_loaded): swap the staged keys in, once.
if op == 'commit_load' then
  local classes = tonumber(ARGV[2])
  if redis.call('EXISTS', LOADED) == 1 then
    for c = 0, classes - 1 do redis.call('DEL', base .. 'stage:free:' .. c) end
    redis.call('DEL', base .. 'stage:seats', base .. 'stage:sold')
    return { 'already' }
  end
  redis.call('DEL', SEATS, SOLD, HOLDS, RECORDS, FANS)
  for c = 0, classes - 1 do
    redis.call('DEL', free_key(c))
    if redis.call('EXISTS', base .. 'stage:free:' .. c) == 1 then
      redis.call('RENAME', base .. 'stage:free:' .. c, free_key(c))
    end
  end
  if redis.call('EXISTS', base .. 'stage:seats') == 1 then
    redis.call('RENAME', base .. 'stage:seats', SEATS)
  end
  if redis.call('EXISTS', base .. 'stage:sold') == 1 then
    redis.call('RENAME', base .. 'stage:sold', SOLD)
  end
  redis.call('SET', LOADED, '1')
  return { 'ok' }
end

if redis.call('EXISTS', LOADED) == 0 then return { 'not_loaded' } end
local now = now_ms()

if op == 'hold' then
  -- ARGV: hold id, owner, ttl ms, then idx, c, score for each seat
  -- No sweep here: liveness is checked per seat, so expired holds cost nothing to skip.
  local id, owner, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local expires = hold_expiry(owner, now, ttl)
  if not expires then return { 'not_admitted' } end
  local previous_id = redis.call('HGET', FANS, owner)
  local taken, entries = {}, {}
  for i = 5, #ARGV, 3 do
    local idx = ARGV[i]
    local holder = redis.call('HGET', SEATS, idx)
    if holder == 'S' or (holder and holder ~= previous_id and is_live(holder, now)) then
      taken[#taken + 1] = idx
    end
    entries[#entries + 1] = { idx, ARGV[i + 1], ARGV[i + 2] }
  end
  if #taken > 0 then
    table.insert(taken, 1, 'taken')
    return taken
  end
  release_previous(previous_id, now)
  take(id, owner, entries, expires)
  return { 'ok', string.format('%d', expires) }

elseif op == 'best' then
  -- ARGV: hold id, owner, ttl ms, class c, quantity, how many free seats to scan at most
  local id, owner, ttl, c = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local quantity, scan_limit = tonumber(ARGV[6]), tonumber(ARGV[7])
  local expires = hold_expiry(owner, now, ttl)
  if not expires then return { 'not_admitted' } end
  sweep(now, SWEEP_BATCH)
  local previous = release_previous(redis.call('HGET', FANS, owner), now)
  -- Walk the class's free seats best first; the first run of `quantity` seats in one row with
  -- consecutive seat numbers wins. Without one, the best `quantity` free seats.
  local run, best_free = {}, {}
  local chosen = nil
  local offset, page = 0, 500
  while offset < scan_limit and not chosen do
    local chunk = redis.call('ZRANGE', free_key(c), offset, offset + page - 1, 'WITHSCORES')
    if #chunk == 0 then break end
    for j = 1, #chunk, 2 do
      local idx, raw = chunk[j], chunk[j + 1]
      local score = tonumber(raw)
      local entry = { idx, c, raw, score }
      if #best_free < quantity then best_free[#best_free + 1] = entry end
      local last = run[#run]
      if last and math.floor(last[4] / 1000000) == math.floor(score / 1000000) and last[4] + 1 == score then
        run[#run + 1] = entry
      else
        run = { entry }
      end
      if #run == quantity then
        chosen = run
        break
      end
    end
    offset = offset + page
  end
  if not chosen and #best_free == quantity then chosen = best_free end
  if not chosen then
    restore(previous, owner)
    return { 'not_enough', string.format('%d', redis.call('ZCARD', free_key(c))) }
  end
  take(id, owner, chosen, expires)
  local reply = { 'ok', string.format('%d', expires) }
  for _, e in ipairs(chosen) do reply[#reply + 1] = e[1] end
  return reply

elseif op == 'release' then
  -- ARGV: hold id, owner
  local id, owner = ARGV[2], ARGV[3]
  if read_record(id) ~= owner or not is_live(id, now) then
    return { 'not_found' }
  end
  drop_hold(id)
  return { 'ok' }

elseif op == 'extend' then
  -- ARGV: hold id, owner, ms to add from now (never shortens). Returns the hold's seats.
  -- With KEYS[2] (the admitted fans, as for 'hold'), the owner's live admission is spent in the
  -- same step, the one that keeps the hold for a queued order: it answers 'not_admitted' (and
  -- changes nothing) without one, and the reply carries when the spent admission would have
  -- ended, so that it can be given back if the order is not accepted. Without KEYS[2] that
  -- field is 0.
  local id, owner, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local holder, current, seats = read_record(id)
  if holder ~= owner then return { 'not_found' } end
  if not is_live(id, now) then return { 'expired' } end
  local admission_ends = 0
  if KEYS[2] then
    admission_ends = tonumber(redis.call('ZSCORE', KEYS[2], owner))
    if not admission_ends or admission_ends <= now then return { 'not_admitted' } end
    redis.call('ZREM', KEYS[2], owner)
  end
  local expires = math.max(current, now + ttl)
  if expires ~= current then
    write_record(id, owner, expires, seats)
    redis.call('ZADD', HOLDS, expires, id)
  end
  local reply = { 'ok', string.format('%d', expires), string.format('%d', admission_ends) }
  for idx in string.gmatch(seats, '(%d+):%d+:%d+') do reply[#reply + 1] = idx end
  return reply

elseif op == 'convert' then
  -- After the booking committed in Postgres. ARGV: hold id, owner, then idx, c per sold seat.
  -- The seats are sold whatever Redis thought of them: Postgres has spoken.
  local id, owner = ARGV[2], ARGV[3]
  for i = 4, #ARGV, 2 do
    local idx, c = ARGV[i], ARGV[i + 1]
    if redis.call('HGET', SEATS, idx) ~= 'S' then
      redis.call('HSET', SEATS, idx, 'S')
      redis.call('ZREM', free_key(c), idx)
      redis.call('HINCRBY', SOLD, c, 1)
    end
  end
  if read_record(id) == owner then
    if redis.call('HGET', FANS, owner) == id then redis.call('HDEL', FANS, owner) end
    redis.call('HDEL', RECORDS, id)
    redis.call('ZREM', HOLDS, id)
  end
  return { 'ok' }

elseif op == 'sweep' then
  return { 'ok', tostring(sweep(now, tonumber(ARGV[2]))) }

elseif op == 'counts' then
  -- ARGV: number of classes. Per class: free, sold (held = capacity - free - sold).
  sweep(now, SWEEP_BATCH)
  local reply = { 'ok' }
  for c = 0, tonumber(ARGV[2]) - 1 do
    reply[#reply + 1] = tostring(redis.call('ZCARD', free_key(c)))
    reply[#reply + 1] = tostring(redis.call('HGET', SOLD, c) or 0)
  end
  return reply

elseif op == 'snapshot' then
  -- The seat map: every seat that is held by a live hold or sold, as idx, 'h' | 's'.
  sweep(now, SWEEP_BATCH)
  local reply = { 'ok' }
  local live = {}
  local all = redis.call('HGETALL', SEATS)
  for j = 1, #all, 2 do
    local holder = all[j + 1]
    if holder ~= 'S' and live[holder] == nil then live[holder] = is_live(holder, now) end
    if holder == 'S' then
      reply[#reply + 1] = all[j]
      reply[#reply + 1] = 's'
    elseif live[holder] then
      reply[#reply + 1] = all[j]
      reply[#reply + 1] = 'h'
    end
  end
  return reply
end

return redis.error_reply('unknown inventory op ' .. tostring(op))
