"""Baselines on plain Tornado: its own StaticFileHandler serving FILES_DIR under /files/, and the
least a WeChat endpoint can do, a handler that answers every POST with one fixed XML reply.

python baseline_tornado.py PORT FILES_DIR
"""

import asyncio
import sys

import tornado.web

# The size and shape of tempdl's reply to a keyword: a text message carrying a download link.
FIXED_REPLY = (
    b"<xml><ToUserName><![CDATA[oBENCH000001]]></ToUserName><FromUserName><![CDATA[gh_bench]]></FromUserName>"
    b"<CreateTime>1764500000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA["
    b"\xe4\xb8\x8b\xe8\xbd\xbd\xe9\x93\xbe\xe6\x8e\xa5 / Download link (10 min): "
    b"http://127.0.0.1/api/get_file/MQ.aW1zZw.0123456789abcdefghijklmnopqrstuvwxyzABCDE]]></Content></xml>"
)


class FixedXMLHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/xml; charset=UTF-8")
        self.write(FIXED_REPLY)


async def main(port: int, files_dir: str) -> None:
    app = tornado.web.Application(
        [
            (r"/files/(.*)", tornado.web.StaticFileHandler, {"path": files_dir}),
            (r"/wechat", FixedXMLHandler),
        ]
    )
    app.listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
