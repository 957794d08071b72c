-- A queued registration's claim in Redis: which booking a fan's hold, or a fan's
-- Idempotency-Key, made, and the marker of each queued booking a worker has yet to write.
-- Every operation is one call, so a claim is made whole or not at all.
--
-- KEYS[1]  claims   HASH  'hold:<hold id>' | 'key:<Idempotency-Key>' -> booking id
-- KEYS[2]  pending  HASH  booking id -> marker (JSON: owner, event, hold, created, published)
-- Both belong to one fan and share the fan's hash tag (one Redis Cluster slot).
--
-- ARGV[1] is the operation:
--
-- 'claim'      ARGV: booking id ('' to look only), marker, TTL (s), then pairs of a claim field
--              and the booking id the caller last saw there ('' for none), in the order the
--              caller looks them up. If every field still holds what the caller saw, the fields
--              are claimed for the booking and its marker written: {'claimed'} (with an empty
--              booking id: {'free'}). Otherwise nothing is written and the reply says what each
--              field holds: {'taken', id1, marker1, id2, marker2, ...} ('' for nothing).
-- 'published'  ARGV: booking id, marker. The broker confirmed the command: the marker says so,
--              unless it is gone (a fast worker wrote the booking already). {'ok'}
-- 'release'    ARGV: booking id, then claim fields. The booking was not queued: its marker
--              goes, and so does each claim that still names it (another request's claim is
--              left alone). {'ok'}

local claims, pending = KEYS[1], KEYS[2]
local op = ARGV[1]

if op == 'claim' then
  local booking, marker, ttl = ARGV[2], ARGV[3], ARGV[4]
  local seen_all = true
  local found = { 'taken' }
  for i = 5, #ARGV, 2 do
    local held = redis.call('HGET', claims, ARGV[i]) or ''
    if held ~= ARGV[i + 1] then seen_all = false end
    found[#found + 1] = held
    found[#found + 1] = (held ~= '' and redis.call('HGET', pending, held)) or ''
  end
  if not seen_all then return found end
  if booking == '' then return { 'free' } end
  redis.call('HSET', pending, booking, marker)
  for i = 5, #ARGV, 2 do redis.call('HSET', claims, ARGV[i], booking) end
  redis.call('EXPIRE', pending, ttl)
  redis.call('EXPIRE', claims, ttl)
  return { 'claimed' }

elseif op == 'published' then
  if redis.call('HEXISTS', pending, ARGV[2]) == 1 then
    redis.call('HSET', pending, ARGV[2], ARGV[3])
  end
  return { 'ok' }

elseif op == 'release' then
  local booking = ARGV[2]
  redis.call('HDEL', pending, booking)
  for i = 3, #ARGV do
    if redis.call('HGET', claims, ARGV[i]) == booking then redis.call('HDEL', claims, ARGV[i]) end
  end
  return { 'ok' }
end

return redis.error_reply('claim.lua: unknown operation ' .. tostring(op))
