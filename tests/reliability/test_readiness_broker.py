"""/health/ready follows the broker: 503 naming it while the service cannot reach RabbitMQ,
200 again once it can, without a restart. The service reaches the shared broker through a
TCP proxy this test cuts, so no other test loses its broker."""

import pytest
import requests
from kombu.utils.url import parse_url
from nameko.rpc import rpc

from pamong.health import HealthEndpoints
from pamong.rpc import RpcClient
from pamong.storage import Mongo
from pamong.testing import free_port, running, wait_until
from pamong.testing.proxy import TcpProxy

pytestmark = pytest.mark.reliability


class BrokerProbe(HealthEndpoints):
    name = "brokerprobe"
    db = Mongo()

    @rpc
    def ping(self):
        return "pong"


def test_ready_turns_503_when_the_broker_is_cut_and_200_when_it_returns(request, config):
    broker = parse_url(config["AMQP_URI"])
    proxy = TcpProxy(broker["hostname"], broker["port"])
    request.addfinalizer(proxy.close)
    port = free_port()
    through_proxy = config["AMQP_URI"].replace(f":{broker['port']}/", f":{proxy.port}/")
    assert through_proxy != config["AMQP_URI"]
    service = dict(config, AMQP_URI=through_proxy, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")
    ready = f"http://127.0.0.1:{port}/health/ready"
    with running(service, BrokerProbe):
        assert requests.get(ready, timeout=10).status_code == 200

        proxy.cut()
        try:
            down = requests.get(ready, timeout=10)
            assert down.status_code == 503, down.text
            assert down.headers["Content-Type"].startswith("application/problem+json")
            assert set(down.json()["errors"]) == {"broker"}
            assert requests.get(f"http://127.0.0.1:{port}/health/live", timeout=10).ok
        finally:
            proxy.restore()  # a service cut off from its broker cannot stop cleanly
        wait_until(lambda: requests.get(ready, timeout=10).status_code == 200, timeout=30,
                   interval=0.5, message="ready again")

        # the service's own consumer is back too: an RPC through the real broker reaches it
        def answers():
            try:
                with RpcClient(config, timeout=2) as client:
                    return client.brokerprobe.ping() == "pong"
            except Exception:  # noqa: BLE001 - not reconnected yet
                return False

        wait_until(answers, timeout=60, interval=0.5, message="RPC after the broker returned")
