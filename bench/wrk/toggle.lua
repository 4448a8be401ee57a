-- PATCH .../complete without a body: flip an existing task's completion.
local common = require "common"

setup = common.setup
response = common.response
done = common.done

function init(_args)
  common.seed_random()
end

function request()
  return wrk.format("PATCH", common.task_path(common.random_task()) .. "/complete")
end
