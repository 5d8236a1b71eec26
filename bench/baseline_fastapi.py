"""Baseline: FastAPI FileResponse behind an itsdangerous token check.

What a plain "signed temporary link" service looks like with FastAPI: the token is a
URLSafeTimedSerializer dump of the file name, checked on every request, then the file
is streamed by Starlette's FileResponse (which handles Range).

    BENCH_FILES_DIR=DIR BENCH_SECRET=S uvicorn baseline_fastapi:app --port PORT
"""

import os

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

FILES_DIR = os.environ["BENCH_FILES_DIR"]
SALT = "bench-baseline"
signer = URLSafeTimedSerializer(os.environ.get("BENCH_SECRET", "bench"), salt=SALT)
app = FastAPI()


@app.get("/dl/{token}")
async def download(token: str) -> FileResponse:
    try:
        name = signer.loads(token, max_age=86400)
    except SignatureExpired:
        raise HTTPException(410, "expired")
    except BadSignature:
        raise HTTPException(403, "bad token")
    path = os.path.join(FILES_DIR, os.path.basename(name))
    if not os.path.isfile(path):
        raise HTTPException(404)
    return FileResponse(path, filename=name)
