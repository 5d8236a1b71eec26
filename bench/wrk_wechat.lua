-- wrk script for tempdl's WeChat endpoint: each request is a signed text message
-- asking for a file by keyword, from one of 1,000 followers, with a fresh MsgId and a
-- fresh nonce (as WeChat sends them: a reused nonce is a replay and is refused).
-- Every reply must be 200 and carry a link.
-- Args after `--`: KEYWORD SIGFILE, where SIGFILE has one "timestamp nonce signature"
-- line per request, precomputed by the harness (LuaJIT has no sha1).
-- Counts are printed as "BENCHCHECK good=N bad=M".
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  keyword = args[1]
  sigs = {}
  for line in io.lines(args[2]) do
    sigs[#sigs + 1] = line
  end
  base = wrk.path
  n, good, bad = 0, 0, 0
  wrk.headers["Content-Type"] = "text/xml"
end

function request()
  n = n + 1
  local openid = string.format("oBENCH%06d", n % 1000)
  local ts, nonce, sig = string.match(sigs[(n - 1) % #sigs + 1], "(%S+) (%S+) (%S+)")
  local body = string.format(
    "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>" ..
    "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content>" ..
    "<MsgId>%d</MsgId></xml>", openid, ts, keyword, 7000000000 + n)
  local path = string.format("%s?signature=%s&timestamp=%s&nonce=%s&openid=%s", base, sig, ts, nonce, openid)
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, "/api/get_file/", 1, true) then
    good = good + 1
  else
    bad = bad + 1
    if bad == 1 then io.stderr:write("first bad WeChat reply: ", status, " ", string.sub(body, 1, 300), "\n") end
  end
end

function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do
    g = g + t:get("good")
    b = b + t:get("bad")
  end
  io.write(string.format("BENCHCHECK good=%d bad=%d\n", g, b))
end
