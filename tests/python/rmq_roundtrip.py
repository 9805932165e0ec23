"""Round trip through ActorMQ with the unchanged third-party `rocketmq`
PyPI client (0.4.4: ctypes over Apache rocketmq-client-cpp, remoting
protocol with JSON headers).

Usage: python rmq_roundtrip.py NAMESRV_ADDR MODE [COUNT]
MODE: push | pull. Sends COUNT messages with tags, keys and a user property,
then receives them with the chosen consumer and checks every field.
Exits non-zero on any mismatch.
"""
import sys
import threading
import time
import uuid

from rocketmq.client import Message, Producer, PushConsumer, PullConsumer


def send_all(ns, topic, count):
    producer = Producer('PID_py_%s' % uuid.uuid4().hex[:8])
    producer.set_namesrv_addr(ns)
    producer.start()
    sent = {}
    try:
        for i in range(count):
            msg = Message(topic)
            body = 'body-%d-%s' % (i, 'x' * (i % 50))
            msg.set_body(body)
            msg.set_tags('Tag%d' % (i % 3))
            msg.set_keys('key-%d' % i)
            msg.set_property('seq', str(i))
            ret = producer.send_sync(msg)
            if ret.status != 0:
                raise SystemExit('send %d failed: %r' % (i, ret))
            sent[str(i)] = body
    finally:
        producer.shutdown()
    return sent


def check(msg, sent, got):
    seq = msg.get_property('seq')
    if isinstance(seq, bytes):
        seq = seq.decode()
    body = msg.body.decode() if isinstance(msg.body, bytes) else msg.body
    tags = msg.tags.decode() if isinstance(msg.tags, bytes) else msg.tags
    keys = msg.keys.decode() if isinstance(msg.keys, bytes) else msg.keys
    i = int(seq)
    assert sent[seq] == body, 'body mismatch for %s: %r' % (seq, body)
    assert tags == 'Tag%d' % (i % 3), 'tags mismatch for %s: %r' % (seq, tags)
    assert keys == 'key-%d' % i, 'keys mismatch for %s: %r' % (seq, keys)
    got.add(seq)


def run_push(ns, topic, sent, timeout):
    got = set()
    lock = threading.Lock()
    errors = []
    consumer = PushConsumer('CID_py_push_%s' % uuid.uuid4().hex[:8])
    consumer.set_namesrv_addr(ns)

    def callback(msg):
        try:
            with lock:
                check(msg, sent, got)
        except Exception as e:  # report, do not retry forever
            errors.append(str(e))
        return None

    consumer.subscribe(topic, callback)
    consumer.start()
    deadline = time.time() + timeout
    while time.time() < deadline and len(got) < len(sent) and not errors:
        time.sleep(0.2)
    consumer.shutdown()
    if errors:
        raise SystemExit('push consumer saw bad messages: %s' % errors[:3])
    return got


def run_pull(ns, topic, sent, timeout):
    got = set()
    consumer = PullConsumer('CID_py_pull_%s' % uuid.uuid4().hex[:8])
    consumer.set_namesrv_addr(ns)
    consumer.start()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and len(got) < len(sent):
            for msg in consumer.pull(topic):
                check(msg, sent, got)
                if len(got) >= len(sent):
                    break
    finally:
        consumer.shutdown()
    return got


def main():
    ns, mode = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    topic = 'PyTopic_%s_%s' % (mode, uuid.uuid4().hex[:8])
    t0 = time.time()
    sent = send_all(ns, topic, count)
    t1 = time.time()
    got = (run_push if mode == 'push' else run_pull)(ns, topic, sent, 90)
    t2 = time.time()
    missing = set(sent) - got
    print('%s: sent %d in %.2fs, received %d in %.2fs, missing %d'
          % (mode, len(sent), t1 - t0, len(got), t2 - t1, len(missing)))
    if missing:
        raise SystemExit('missing %d messages, e.g. %s' % (len(missing), sorted(missing)[:5]))


if __name__ == '__main__':
    main()
