"""ActorMQ with ACL on, through the unchanged PyPI `rocketmq` 0.4.4 client
(rocketmq-client-cpp signs each request with its session credentials).

Usage: python rmq_acl.py NAMESRV ACCESS_KEY SECRET_KEY TOPIC MODE
MODE: send    -> send 5 messages; exit 0 if all were stored, 3 if refused
      consume -> pull the topic from the start; exit 0 if 5 messages came
                 back, 4 otherwise
"""
import sys
import time
import uuid

from rocketmq.client import Message, Producer, PullConsumer


def send(ns, ak, sk, topic):
    p = Producer('PID_acl_%s' % uuid.uuid4().hex[:8])
    p.set_namesrv_addr(ns)
    p.set_session_credentials(ak, sk, 'ACTORMQ')
    p.start()
    try:
        for i in range(5):
            m = Message(topic)
            m.set_body('acl-%d' % i)
            m.set_keys('acl-key-%d' % i)
            try:
                r = p.send_sync(m)
            except Exception as e:  # the C++ client raises on a refused send
                print('send refused: %s' % e)
                return 3
            if r.status != 0:
                print('send status %r' % (r.status,))
                return 3
    finally:
        p.shutdown()
    return 0


def consume(ns, ak, sk, topic):
    c = PullConsumer('CID_acl_%s' % uuid.uuid4().hex[:8])
    c.set_namesrv_addr(ns)
    c.set_session_credentials(ak, sk, 'ACTORMQ')
    c.start()
    got = set()
    deadline = time.time() + 30
    try:
        while len(got) < 5 and time.time() < deadline:
            for msg in c.pull(topic):
                body = msg.body.decode() if isinstance(msg.body, bytes) else msg.body
                got.add(body)
            time.sleep(0.2)
    finally:
        c.shutdown()
    print('consumed %d' % len(got))
    return 0 if len(got) >= 5 else 4


if __name__ == '__main__':
    ns, ak, sk, topic, mode = sys.argv[1:6]
    sys.exit(send(ns, ak, sk, topic) if mode == 'send' else consume(ns, ak, sk, topic))
