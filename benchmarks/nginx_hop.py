"""nginx as a transport-only hop: the floor any HTTP gateway is measured against.

Debian's nginx (``apt-get install -y nginx``) started on loopback with a generated config on a
free port, proxying to the upstream over kept-alive HTTP/1.1 connections: no TLS, no logging,
one process (``master_process off``: the process the benchmark starts is the one serving, so
its CPU time is the hop's; a sidecar gets about one core). It parses and forwards HTTP and
nothing else, so its cost per call is what the transport alone costs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream mcp {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host {upstream};
      proxy_buffering off;
    }}
  }}
}}
"""


def start_nginx(upstream: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """nginx on ``127.0.0.1:port`` in front of ``upstream`` (a URL); the URL path is kept."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx is not installed: apt-get install -y nginx")
    directory = workdir / "nginx"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(CONFIG.format(dir=directory, upstream=urlsplit(upstream).netloc, port=port))
    return subprocess.Popen([binary, "-c", str(config), "-p", str(directory), "-e", "stderr"])
