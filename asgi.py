"""The studio's web server: the router (app.py) behind the Host allow-list (engine/ops/hosts.py).

`python -m engine serve` runs `streamlit run asgi.py`; Streamlit finds `app` below and serves it with uvicorn. The
allowed names come from $STUDIO_ALLOWED_HOSTS (set by serve); without it only loopback names are answered.
"""

import streamlit as st
from starlette.middleware import Middleware

from engine.ops.hosts import HostAllowList

app = st.App("app.py", middleware=[Middleware(HostAllowList)])
