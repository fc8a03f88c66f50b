"""A broker that goes away while an RPC request runs costs that request's reply, not the
service: the caller times out, the service answers the next request once the broker is back.
(nameko let the failed reply end the worker's thread, which killed the container: the chaos
day lost the permits module to a broker restart during a STATUS question.) The service
reaches the shared broker through a TCP proxy this test cuts; the caller does not."""

import logging

import eventlet
import pytest
from kombu.utils.url import parse_url
from nameko.exceptions import RpcTimeout

from pamong.rpc import RpcClient, rpc
from pamong.testing import running, wait_until
from pamong.testing.proxy import TcpProxy

pytestmark = pytest.mark.reliability

calls, release = [], eventlet.event.Event()


class SlowAnswer:
    name = "slowanswer"

    @rpc
    def answer(self):
        calls.append(True)
        release.wait()
        return "late"

    @rpc
    def ping(self):
        return "pong"


def test_a_reply_the_broker_cannot_take_leaves_the_service_running(request, config, caplog):
    broker = parse_url(config["AMQP_URI"])
    proxy = TcpProxy(broker["hostname"], broker["port"])
    request.addfinalizer(proxy.close)
    service = dict(config, AMQP_URI=config["AMQP_URI"].replace(f":{broker['port']}/",
                                                               f":{proxy.port}/"))
    caplog.set_level(logging.WARNING, logger="pamong.rpc")

    def ask(method, timeout):
        with RpcClient(config, timeout=timeout) as client:
            return getattr(client.slowanswer, method)()

    with running(service, SlowAnswer):
        caller = eventlet.spawn(ask, "answer", 15)
        wait_until(lambda: calls, message="the request running")
        proxy.cut()  # the service's connections reset, new ones refused
        try:
            release.send(True)  # its reply finds no broker
            with pytest.raises(RpcTimeout):
                caller.wait()
        finally:
            proxy.restore()  # a service cut off from its broker cannot stop cleanly

        def answers():
            try:
                return ask("ping", 2) == "pong"
            except RpcTimeout:  # not reconnected yet
                return False

        # a killed container would never answer again
        wait_until(answers, timeout=60, interval=0.5, message="RPC after the broker returned")
        assert "could not send the reply to slowanswer.answer" in caplog.text
        assert ask("answer", 10) == "late"  # the method itself runs as before
