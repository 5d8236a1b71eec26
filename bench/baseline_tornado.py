"""Baseline: Tornado's own StaticFileHandler serving FILES_DIR under /files/.

python baseline_tornado.py PORT FILES_DIR
"""

import asyncio
import sys

import tornado.web


async def main(port: int, files_dir: str) -> None:
    app = tornado.web.Application([(r"/files/(.*)", tornado.web.StaticFileHandler, {"path": files_dir})])
    app.listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
