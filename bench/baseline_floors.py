"""The least Tornado itself costs per request, at two of its layers, for `floors.py`.

python baseline_floors.py PORT RAW_PORT FILES_DIR

- On PORT, an `Application` with a `RequestHandler` that writes the 4 KiB file from memory at
  `/mem` (no stat, no file, no audit: what any handler pays before it does its own work), next to
  StaticFileHandler at `/files/` and the fixed-XML WeChat handler at `/wechat`, as in
  `baseline_tornado.py`.
- On RAW_PORT, an `HTTPServer` whose only delegate is an `HTTPMessageDelegate` answering every
  request with the same bytes: Tornado's HTTP/1.1 connection, with no routing and no
  `RequestHandler`.
"""

import asyncio
import sys
from pathlib import Path

import tornado.httpserver
import tornado.httputil
import tornado.web
from baseline_tornado import FixedXMLHandler

HEADERS = {"Content-Type": "application/octet-stream"}


class FromMemoryHandler(tornado.web.RequestHandler):
    def initialize(self, body: bytes) -> None:
        self.body = body

    def get(self) -> None:
        for name, value in HEADERS.items():
            self.set_header(name, value)
        self.write(self.body)


class BareAnswer(tornado.httputil.HTTPMessageDelegate):
    def __init__(self, connection: tornado.httputil.HTTPConnection, body: bytes) -> None:
        self.connection, self.body = connection, body

    def finish(self) -> None:
        headers = tornado.httputil.HTTPHeaders(HEADERS, **{"Content-Length": str(len(self.body))})
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", 200, "OK")
        self.connection.write_headers(start, headers, self.body)
        self.connection.finish()


class BareServer(tornado.httputil.HTTPServerConnectionDelegate):
    def __init__(self, body: bytes) -> None:
        self.body = body

    def start_request(self, server_conn: object, request_conn: tornado.httputil.HTTPConnection) -> BareAnswer:
        return BareAnswer(request_conn, self.body)


async def main(port: int, raw_port: int, files_dir: str) -> None:
    body = (Path(files_dir) / "small.bin").read_bytes()
    app = tornado.web.Application(
        [
            (r"/files/(.*)", tornado.web.StaticFileHandler, {"path": files_dir}),
            (r"/mem", FromMemoryHandler, {"body": body}),
            (r"/wechat", FixedXMLHandler),
        ]
    )
    app.listen(port, address="127.0.0.1")
    tornado.httpserver.HTTPServer(BareServer(body)).listen(raw_port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
