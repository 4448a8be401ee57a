-- GET one existing task, asked for by its owner.
local common = require "common"

setup = common.setup
response = common.response
done = common.done

function init(_args)
  common.seed_random()
end

function request()
  return wrk.format("GET", common.task_path(common.random_task()))
end
