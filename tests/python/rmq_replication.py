"""Replication check with the unchanged third-party `rocketmq` PyPI client
(0.4.4, rocketmq-client-cpp underneath).

Usage:
  python rmq_replication.py send NAMESRV TOPIC COUNT
      sends COUNT messages with send_sync; every one must be SEND_OK.
  python rmq_replication.py consume NAMESRV TOPIC COUNT
      a new consumer group pulls every queue from its first offset and
      checks that each of the COUNT messages arrives with its body intact.
Prints one summary line; exits non-zero on any failure.
"""
import hashlib
import sys
import time
import uuid

from rocketmq.client import Message, Producer, PullConsumer


def body_of(i):
    """The body of message i: its number and a digest-derived filler."""
    digest = hashlib.sha1(str(i).encode()).hexdigest()
    return '%d:%s' % (i, digest * (1 + i % 7))


def send(ns, topic, count):
    producer = Producer('PID_rep_%s' % uuid.uuid4().hex[:8])
    producer.set_namesrv_addr(ns)
    producer.start()
    t0 = time.time()
    try:
        for i in range(count):
            msg = Message(topic)
            msg.set_body(body_of(i))
            msg.set_keys('k%d' % i)
            msg.set_property('seq', str(i))
            ret = producer.send_sync(msg)
            if ret.status != 0:
                raise SystemExit('send %d: status %r (%r)' % (i, ret.status, ret))
    finally:
        producer.shutdown()
    print('send: %d SEND_OK in %.2fs' % (count, time.time() - t0))


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def consume(ns, topic, count):
    consumer = PullConsumer('CID_rep_%s' % uuid.uuid4().hex[:8])
    consumer.set_namesrv_addr(ns)
    consumer.start()
    got, dups, bad = set(), 0, []
    t0 = time.time()
    try:
        while time.time() - t0 < 60 and len(got) < count:
            for msg in consumer.pull(topic):
                i = int(text(msg.get_property('seq')))
                if text(msg.body) != body_of(i):
                    bad.append(i)
                if i in got:
                    dups += 1
                got.add(i)
    finally:
        consumer.shutdown()
    missing = count - len(got)
    print('consume: got %d of %d in %.2fs, missing %d, duplicates %d, corrupt %d'
          % (len(got), count, time.time() - t0, missing, dups, len(bad)))
    if missing or bad:
        raise SystemExit('missing %d, corrupt %s' % (missing, bad[:5]))


def main():
    mode, ns, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    (send if mode == 'send' else consume)(ns, topic, count)


if __name__ == '__main__':
    main()
