-- Helpers shared by the endpoint scripts. wrk runs with bench/wrk as its working directory,
-- so `require "common"` finds this file.
--
-- The seed (bench/run.py) lays rows out so that a task id tells its owner:
--   tasks 1..1,000,000 belong to user00001..user10000, id -> user ((id - 1) % 10000) + 1;
--   the delete pool, ids 5,000,001.., belongs to gone0001..gone1000 the same way.

local M = {}

M.users = 10000
M.tasks = 1000000
M.pool_base = 5000000
M.pool_owners = 1000

local threads = {}

-- Runs in wrk's main Lua state once per thread, before the threads start.
function M.setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
  thread:set("statuses", {})
end

-- Runs in a thread's Lua state for every response: count each status code.
function M.response(status, _headers, _body)
  statuses[status] = (statuses[status] or 0) + 1
end

-- Runs in each thread's own Lua state.
function M.seed_random()
  local index = thread_index or 1
  math.randomseed(os.time() * 1000 + index * 7919)
  -- The first values after seeding are poorly mixed in some Lua versions.
  for _ = 1, 10 do
    math.random()
  end
end

function M.user(number)
  return string.format("user%05d", number)
end

function M.owner_of(task_id)
  return M.user((task_id - 1) % M.users + 1)
end

function M.random_task()
  return math.random(1, M.tasks)
end

function M.task_path(task_id)
  return string.format("/api/%s/tasks/%d", M.owner_of(task_id), task_id)
end

local words = {
  "Buy", "Call", "Email", "Fix", "Plan", "Review", "Write", "Book", "Clean", "Pay",
  "Renew", "Prepare",
}
local things = {
  "groceries", "the dentist", "quarterly report", "invoice 2291", "flight to Lisbon",
  "car insurance", "team retro notes", "birthday present", "kitchen sink", "passport",
  "project proposal", "electricity bill",
}

function M.title()
  return string.format("%s %s #%d", words[math.random(#words)], things[math.random(#things)],
    math.random(1, 999999))
end

function M.description()
  return string.format("Created by the benchmark at step %d. Remember to check the details "
    .. "twice, and write down anything that changed since last time.", math.random(1, 999999))
end

M.json_headers = { ["Content-Type"] = "application/json" }

-- JSON with the numbers bench/run.py reads; the latency is in microseconds.
function M.done(summary, latency, _requests)
  local errors = summary.errors
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(totals) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, '
      .. '"statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean,
    errors.connect, errors.read, errors.write, errors.timeout, errors.status,
    table.concat(parts, ", ")))
end

return M
