-- wrk script: POST /sms with a fixed, valid message.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"phone_number": "+4912345678", "content": "Your order has shipped"}'
