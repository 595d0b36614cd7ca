"""A filter for Swift's proxy server that holds back every answer by `delay_ms`, as a store far
away would (S3 answers a request after tens of ms). scripts/swift-s3.sh runs a second proxy server
with it first in the pipeline (`swift-s3.sh latency MS`): the latency costs no CPU on the machine,
where a relay in front of the store copies every byte once more.

The wait comes after the request has been handled (for a PUT: after the body has been read and
stored) and before the first byte of the answer, which eventlet's server sends only once the
application has returned.
"""
import eventlet


class Latency(object):
    def __init__(self, app, delay):
        self.app = app
        self.delay = delay

    def __call__(self, env, start_response):
        answer = self.app(env, start_response)
        eventlet.sleep(self.delay)
        return answer


def filter_factory(global_conf, **local_conf):
    delay = float(local_conf.get('delay_ms', '0')) / 1000.0

    def factory(app):
        return Latency(app, delay)

    return factory
