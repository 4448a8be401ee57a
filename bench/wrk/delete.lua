-- DELETE tasks of the delete pool, each exactly once: thread i of n walks its own slice of
-- the pool in order, so every request hits a row that still exists (until the slice runs out,
-- which then shows up as 404s, counted as errors).
-- Arguments: pool_size threads.
local common = require "common"

setup = common.setup
response = common.response
done = common.done

local next_k
local last_k

function init(args)
  local pool_size = tonumber(args[1])
  local threads = tonumber(args[2])
  local slice = math.floor(pool_size / threads)
  local index = thread_index or 1
  next_k = (index - 1) * slice + 1
  last_k = index * slice
end

function request()
  local k = next_k
  if k < last_k then
    next_k = k + 1
  end
  local owner = string.format("gone%04d", (k - 1) % common.pool_owners + 1)
  return wrk.format("DELETE", string.format("/api/%s/tasks/%d", owner, common.pool_base + k))
end
