-- GET the default page (100 newest tasks) of a random user.
-- Arguments: [users] [prefix] [query]. With users = 0, prefix is one fixed user id (e.g.
-- "heavy"); query, if given, is the query string of every request (e.g. "sort=due").
local common = require "common"

setup = common.setup
response = common.response
done = common.done

local users = common.users
local prefix = "user"
local query = ""

function init(args)
  common.seed_random()
  users = tonumber(args[1] or common.users)
  prefix = args[2] or "user"
  query = args[3] and ("?" .. args[3]) or ""
end

function request()
  local owner
  if users == 0 then
    owner = prefix
  else
    owner = string.format("%s%05d", prefix, math.random(1, users))
  end
  return wrk.format("GET", "/api/" .. owner .. "/tasks" .. query)
end
