"""ActorMQ's gRPC proxy driven by the unchanged Apache RocketMQ 5.x Python
client (PyPI `rocketmq-python-client` 5.1.2).

Usage: rmq5_grpc.py MODE ENDPOINT ARGS...

Every mode prints one `RESULT ...` line per fact the Rust test checks
(tests/grpc_python.rs), then `<mode>: ok`; any failure exits non-zero.
"""

import sys
import threading
import time

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials,
                      FilterExpression, Message, MessageListener, Producer,
                      PushConsumer, SimpleConsumer, TransactionChecker,
                      TransactionResolution)


def config(endpoint, ak="", sk=""):
    return ClientConfiguration(endpoint, Credentials(ak, sk), request_timeout=10)


def out(*parts):
    print("RESULT", *parts, flush=True)


def message(topic, body, tag=None, keys=None, group=None, delay_s=None):
    m = Message()
    m.topic = topic
    m.body = body.encode()
    if tag:
        m.tag = tag
    if keys:
        m.keys = keys
    if group:
        m.message_group = group
    if delay_s:
        # This client takes the delivery time in whole seconds.
        m.delivery_timestamp = int(time.time()) + delay_s
    m.add_property("origin", "python5")
    return m


def send_plain(endpoint, normal, fifo, delay):
    p = Producer(config(endpoint), (normal, fifo, delay))
    p.startup()
    try:
        for i in range(10):
            r = p.send(message(normal, f"normal-{i}", tag="TagA", keys=f"key-{i}"))
            out("NORMAL", r.message_id, f"normal-{i}")
        for g in ("order-a", "order-b"):
            for i in range(5):
                r = p.send(message(fifo, f"{g}-{i}", group=g))
                out("FIFO", r.message_id, g, f"{g}-{i}")
        r = p.send(message(delay, "delayed", delay_s=4))
        out("DELAY", r.message_id, int(time.time() * 1000))
    finally:
        p.shutdown()


class Checker(TransactionChecker):
    def __init__(self):
        self.checked = threading.Event()
        self.ids = []

    def check(self, msg):
        self.ids.append(msg.message_id)
        out("TXCHECKED", msg.message_id)
        self.checked.set()
        return TransactionResolution.COMMIT


def send_transactions(endpoint, topic):
    checker = Checker()
    p = Producer(config(endpoint), (topic,), checker)
    p.startup()
    try:
        t = p.begin_transaction()
        r = p.send(message(topic, "tx-commit"), t)
        t.commit()
        out("TXCOMMIT", r.message_id)
        t = p.begin_transaction()
        r = p.send(message(topic, "tx-rollback"), t)
        t.rollback()
        out("TXROLLBACK", r.message_id)
        # Neither commit nor rollback: the broker asks, the checker commits.
        t = p.begin_transaction()
        r = p.send(message(topic, "tx-checked"), t)
        out("TXPENDING", r.message_id)
        if not checker.checked.wait(60):
            raise SystemExit("no transaction check arrived within 60 s")
        time.sleep(1)
    finally:
        p.shutdown()


def simple(endpoint, topic, group):
    """Receive and ack; change invisible duration (a fast nack) and see the
    message again with a higher delivery attempt."""
    c = SimpleConsumer(config(endpoint), group, {topic: FilterExpression("TagA")}, await_duration=5)
    c.startup()
    c.receive(16, 15)  # the group's first POP fixes its start offsets
    p = Producer(config(endpoint), (topic,))
    p.startup()
    sent = [p.send(message(topic, f"simple-{i}", tag="TagA")).message_id for i in range(5)]
    p.send(message(topic, "filtered-out", tag="TagB"))
    p.shutdown()
    try:
        got, nacked, deadline = {}, None, time.time() + 60
        while len(got) < len(sent) and time.time() < deadline:
            for m in c.receive(16, 15):
                if nacked is None:
                    nacked = m.message_id
                    c.change_invisible_duration(m, 1)
                    out("NACKED", m.message_id, m.delivery_attempt)
                    continue
                got[m.message_id] = m.delivery_attempt
                c.ack(m)
                out("ACKED", m.message_id, m.delivery_attempt)
        out("SUMMARY", "sent", len(sent), "acked", len(got), "again", got.get(nacked, 0))
    finally:
        c.shutdown()


def dlq(endpoint, topic, group):
    """Never acked: redelivered after the invisible time until the group's
    max attempts, then no more (it went to the DLQ)."""
    c = SimpleConsumer(config(endpoint), group, {topic: FilterExpression()}, await_duration=5)
    c.startup()
    c.receive(1, 10)
    p = Producer(config(endpoint), (topic,))
    p.startup()
    mid = p.send(message(topic, "poison")).message_id
    p.shutdown()
    try:
        attempts, last, start = [], time.time(), time.time()
        # Stop once 20 s pass without another delivery (or after 150 s).
        while time.time() - last < 20 and time.time() - start < 150:
            for m in c.receive(1, 10):
                if m.message_id == mid:
                    attempts.append(m.delivery_attempt)
                    last = time.time()
                    out("ATTEMPT", m.delivery_attempt)
                    c.change_invisible_duration(m, 1)
        out("DLQSUMMARY", mid, len(attempts))
    finally:
        c.shutdown()


class Listener(MessageListener):
    def __init__(self, name, seen, lock):
        self.name, self.seen, self.lock = name, seen, lock

    def consume(self, m):
        with self.lock:
            self.seen.append((self.name, m.message_id))
        return ConsumeResult.SUCCESS


def push(endpoint, topic, groups, count):
    lock = threading.Lock()
    seen = []
    consumers = []
    for g in groups.split(","):
        for n in range(2):
            c = PushConsumer(config(endpoint), g, Listener(g, seen, lock), {topic: FilterExpression()})
            c.startup()
            consumers.append(c)
    time.sleep(3)
    p = Producer(config(endpoint), (topic,))
    p.startup()
    sent = {p.send(message(topic, f"push-{i}")).message_id for i in range(count)}
    p.shutdown()
    deadline = time.time() + 90
    want = count * len(groups.split(","))
    while time.time() < deadline:
        with lock:
            if len(seen) >= want:
                break
        time.sleep(0.2)
    time.sleep(2)
    for c in consumers:
        c.shutdown()
    for g in groups.split(","):
        ids = [mid for (name, mid) in seen if name == g]
        out("PUSH", g, "got", len(ids), "distinct", len(set(ids)), "missing", len(sent - set(ids)))


def acl(endpoint, topic, ak, sk):
    """One send with these credentials: SENT, or REFUSED and why."""
    try:
        p = Producer(config(endpoint, ak, sk), (topic,))
        p.startup()
        try:
            r = p.send(message(topic, "acl"))
            out("ACL", "SENT", r.message_id)
        finally:
            p.shutdown()
    except Exception as e:  # noqa: BLE001 - every refusal counts
        out("ACL", "REFUSED", repr(e).replace("\n", " "))


def main():
    mode, endpoint, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    {
        "send": lambda: send_plain(endpoint, *args),
        "transactions": lambda: send_transactions(endpoint, *args),
        "simple": lambda: simple(endpoint, *args),
        "dlq": lambda: dlq(endpoint, *args),
        "acl": lambda: acl(endpoint, *args),
        "push": lambda: push(endpoint, args[0], args[1], int(args[2])),
    }[mode]()
    print(f"{mode}: ok", flush=True)


if __name__ == "__main__":
    main()
