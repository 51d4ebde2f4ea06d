-- wrk script: POST /provider/status with the reports in the file named by
-- SMSPROXY_REPORTS (one JSON object per line), in order; then empty reports.
local reports = {}
local next_report = 1

function init(args)
  for line in io.lines(os.getenv("SMSPROXY_REPORTS")) do
    reports[#reports + 1] = line
  end
end

function request()
  local body = reports[next_report] or "{}"
  next_report = next_report + 1
  return wrk.format("POST", "/provider/status", {["Content-Type"] = "application/json"}, body)
end
