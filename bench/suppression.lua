-- wrk script: POST /sms to one of 100,000 numbers, at random (+49151 and 8 digits, the
-- number i). bench/suppression.py puts every hundredth on the suppression list.
math.randomseed(os.time())
request = function()
  local body = string.format(
    '{"phone_number": "+49151%08d", "content": "Your order has shipped"}',
    math.random(0, 99999))
  return wrk.format("POST", "/sms", {["Content-Type"] = "application/json"}, body)
end
