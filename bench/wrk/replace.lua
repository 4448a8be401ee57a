-- PUT a whole new title and description on an existing task (`completed` is left out, so it
-- is kept).
local common = require "common"

setup = common.setup
response = common.response
done = common.done

function init(_args)
  common.seed_random()
end

function request()
  local body = string.format('{"title": "%s", "description": "%s"}', common.title(),
    common.description())
  return wrk.format("PUT", common.task_path(common.random_task()), common.json_headers, body)
end
