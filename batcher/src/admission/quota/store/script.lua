-- tfgate-batcher's quota admission, for a batch of requests in one call. Each request is
-- admitted atomically (a script runs alone, and the requests in order): all its counters are
-- read, and written only if every one has room, so a refused request counts nothing. The
-- arithmetic is `step` in batcher/src/admission/quota/decide.rs; keep the two the same. Values
-- stay below 2^53, so Lua's doubles (and the binary doubles below) hold them exactly.
--
-- A record (one key) holds a caller's counters as a MessagePack map, field -> value: a token
-- bucket's value is its TAT (us), a window's is {end_us, count}. The batch's records are read
-- with one MGET and each record written once, with its last field's expiry.
--
-- KEYS: the batch's records, each once.
-- ARGV[1]: grace_us; ARGV[2]: the batch, binary, little-endian (struct formats):
--   H requests, then per request: d now_us, B checks, then per check:
--   H record (its index in KEYS), B field (its index in ARGV from 3), B kind, d a, d b, d cost
--     kind 0, a token bucket: a = interval_us, b = capacity_us
--     kind 1, a window:       a = limit,       b = end_us
-- ARGV[3...]: the field names the checks refer to.
-- Returns, binary: per request, d 1 if admitted else 0, then d the value each check read.
local grace = tonumber(ARGV[1])
local batch = ARGV[2]
local stored = redis.call('MGET', unpack(KEYS))
local records, written = {}, {}

local function record(i)
  local fields = records[i]
  if fields == nil then
    local ok, decoded = false, nil
    if stored[i] then ok, decoded = pcall(cmsgpack.unpack, stored[i]) end
    fields = (ok and type(decoded) == 'table') and decoded or {}
    records[i] = fields
  end
  return fields
end

local out = {}
local indexes, fields, nexts = {}, {}, {}
local requests, pos = struct.unpack('<H', batch)
for _ = 1, requests do
  local now, checks
  now, checks, pos = struct.unpack('<dB', batch, pos)
  out[#out + 1] = 0
  local verdict = #out
  local room = true
  for i = 1, checks do
    local index, name, kind, a, b, cost
    index, name, kind, a, b, cost, pos = struct.unpack('<HBBddd', batch, pos)
    local field = ARGV[2 + name]
    local value = record(index)[field]
    local prior, next = 0, nil
    if kind == 0 then
      if type(value) == 'number' then prior = value end
      next = math.max(prior, now) + a * cost
      if next - now > b then room = false end
    else
      if type(value) == 'table' and value[1] == b and type(value[2]) == 'number' then prior = value[2] end
      next = {b, prior + cost}
      if next[2] > a then room = false end
    end
    out[#out + 1] = prior
    indexes[i], fields[i], nexts[i] = index, field, next
  end
  if room then
    out[verdict] = 1
    for i = 1, checks do
      records[indexes[i]][fields[i]] = nexts[i]
      written[indexes[i]] = now
    end
  end
end

-- Each written record keeps its fields still in force, and lives as long as the last.
for index, now in pairs(written) do
  local fields, last = records[index], now
  for field, value in pairs(fields) do
    local expires = (type(value) == 'table' and value[1] or value)
    if type(expires) == 'number' and expires + grace > now then
      last = math.max(last, expires + grace)
    else
      fields[field] = nil
    end
  end
  redis.call('SET', KEYS[index], cmsgpack.pack(fields), 'PX', math.max(1, math.ceil((last - now) / 1000)))
end

return struct.pack('<' .. string.rep('d', #out), unpack(out))
