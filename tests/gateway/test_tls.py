"""TLS termination: the certificate and key are reloaded into the listening context when the
files change (new connections see the new certificate), and a broken renewal is refused
while the old pair keeps serving."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from gateway import CertificateReloader, GatewayRunner, TlsConfigError, TlsFiles
from tests.gateway.traffic_upstreams import wait_for
from tests.tls_certs import served_serial, write_self_signed


async def hello(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def served(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = write_self_signed(cert, key)
    reloader = CertificateReloader(TlsFiles(str(cert), str(key), reload_interval=0.05))
    app = web.Application()
    app.router.add_get("/hello", hello)
    app.cleanup_ctx.append(reloader.ctx)
    runner = GatewayRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=reloader.context)
    await site.start()
    port = runner.addresses[0][1]
    yield reloader, port, cert, key, first
    await runner.cleanup()


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def serial(port: int) -> int:
    return await asyncio.to_thread(served_serial, "127.0.0.1", port)


async def test_a_renewed_pair_is_served_to_new_connections_without_a_restart(served):
    reloader, port, cert, key, first = served
    async with httpx.AsyncClient(verify=trusting(cert)) as client:
        assert (await client.get(f"https://127.0.0.1:{port}/hello")).json() == {"ok": True}
    assert await serial(port) == first
    second = write_self_signed(cert, key)  # renewed in place
    await wait_for(lambda: reloader.loads == 2, "the watcher to load the new pair")
    assert await serial(port) == second
    async with httpx.AsyncClient(verify=trusting(cert)) as client:  # the new one verifies
        assert (await client.get(f"https://127.0.0.1:{port}/hello")).status_code == 200


async def test_a_broken_renewal_keeps_the_old_pair(served, tmp_path, caplog):
    reloader, port, cert, _key, first = served
    other = tmp_path / "other"
    other.mkdir()
    write_self_signed(cert, other / "key.pem")  # a new certificate, the old key: no match
    os.utime(cert)
    assert not reloader.reload_if_changed()
    assert "still serving the previous certificate" in caplog.text
    assert await serial(port) == first


def test_a_pair_that_does_not_load_is_a_clear_error(tmp_path: Path):
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("nor a key")
    with pytest.raises(TlsConfigError, match="cannot load certificate"):
        CertificateReloader(TlsFiles(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")))
    with pytest.raises(TlsConfigError):
        CertificateReloader(TlsFiles(str(tmp_path / "missing.pem"), str(tmp_path / "key.pem")))
