-- POST a new task for a random user.
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
  local path = "/api/" .. common.user(math.random(1, common.users)) .. "/tasks"
  return wrk.format("POST", path, common.json_headers, body)
end
