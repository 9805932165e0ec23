"""Producer and consumer features of the unchanged third-party `rocketmq`
PyPI client (0.4.4, rocketmq-client-cpp underneath) against ActorMQ.

Usage: python rmq_features.py NAMESRV_ADDR
The broker must run with messageDelayLevel = "1s 2s 3s".

Checks, each on its own topic:
* send: sync, one-way, orderly and batch sends, and a delay-level send
  (level 2 = 2 s), each received as sent, the delayed one not early;
* broadcast: two push consumers of one group in BROADCASTING mode each get
  every message;
* orderly: an orderly push consumer sees each key's messages in order;
* retry: a callback that raises once gets the message back (retry topic).
Prints "features: ok" at the end; exits non-zero on any failure.
"""
import sys
import threading
import time
import uuid

from rocketmq.client import Message, Producer, PushConsumer
from rocketmq.ffi import MessageModel


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def uid():
    return uuid.uuid4().hex[:8]


def msg(topic, body, seq, tags='T', keys=None):
    m = Message(topic)
    m.set_body(body)
    m.set_tags(tags)
    m.set_keys(keys or 'k-%s' % seq)
    m.set_property('seq', str(seq))
    return m


class Collector(object):
    """Thread-safe record of what a consumer callback saw."""

    def __init__(self, fail_once=None):
        self.lock = threading.Lock()
        self.seen = []  # (seq, body, tags, queue_id, reconsume_times, at)
        self.fail_once = set(fail_once or [])

    def __call__(self, m):
        seq = text(m.get_property('seq'))
        with self.lock:
            if seq in self.fail_once:
                self.fail_once.discard(seq)
                self.seen.append((seq, text(m.body), text(m.tags), m.queue_id,
                                  m.reconsume_times, time.time(), 'failed'))
                raise RuntimeError('fail once on purpose: %s' % seq)
            self.seen.append((seq, text(m.body), text(m.tags), m.queue_id,
                              m.reconsume_times, time.time(), 'ok'))

    def seqs(self, status='ok'):
        with self.lock:
            return [s[0] for s in self.seen if s[6] == status]

    def wait(self, pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return True
            time.sleep(0.1)
        return pred()


def consumer(ns, group, topic, cb, **kw):
    instance = kw.pop('instance', None)
    c = PushConsumer(group, **kw)
    c.set_namesrv_addr(ns)
    if instance:
        c.set_instance_name(instance)
    c.subscribe(topic, cb)
    c.start()
    return c


def producer(ns):
    p = Producer('PID_feat_%s' % uid())
    p.set_namesrv_addr(ns)
    p.start()
    return p


def check_sends(ns):
    topic = 'PyFeatSend_%s' % uid()
    p = producer(ns)
    sent = {}
    try:
        r = p.send_sync(msg(topic, 'sync-body', 0))
        assert r.status == 0, r
        sent['0'] = 'sync-body'
        time.sleep(2)  # let the route of the new topic reach the name server
        p.send_oneway(msg(topic, 'oneway-body', 1))
        sent['1'] = 'oneway-body'
        r = p.send_orderly(msg(topic, 'orderly-body', 2), 1)
        assert r.status == 0, r
        sent['2'] = 'orderly-body'
        r = p.send_batch([msg(topic, 'batch-%d' % i, 10 + i) for i in range(5)])
        assert r.status == 0, r
        for i in range(5):
            sent[str(10 + i)] = 'batch-%d' % i
        delayed = msg(topic, 'delayed-body', 3)
        delayed.set_delay_time_level(2)
        t_delay = time.time()
        r = p.send_sync(delayed)
        assert r.status == 0, r
        sent['3'] = 'delayed-body'
    finally:
        p.shutdown()
    col = Collector()
    c = consumer(ns, 'CID_feat_send_%s' % uid(), topic, col)
    try:
        ok = col.wait(lambda: set(col.seqs()) >= set(sent), 60)
    finally:
        c.shutdown()
    got = {s[0]: s for s in col.seen}
    assert ok, 'sends: missing %s' % sorted(set(sent) - set(got))
    for seq, body in sent.items():
        assert got[seq][1] == body, 'body of %s: %r' % (seq, got[seq][1])
        assert got[seq][2] == 'T', 'tags of %s: %r' % (seq, got[seq][2])
    early = got['3'][5] - t_delay
    assert early >= 1.8, 'delayed message arrived after %.2fs' % early
    print('sends ok (delayed arrived after %.2fs)' % early)


def check_broadcast(ns):
    topic = 'PyFeatBcast_%s' % uid()
    group = 'CID_feat_bcast_%s' % uid()
    p = producer(ns)
    try:
        p.send_sync(msg(topic, 'warm-up', -1))
        time.sleep(2)
        cols = [Collector(), Collector()]
        cs = [consumer(ns, group, topic, cols[i], instance='bcast%d_%s' % (i, uid()),
                       message_model=MessageModel.BROADCASTING) for i in range(2)]
        try:
            time.sleep(5)
            want = set(str(i) for i in range(20))
            for i in range(20):
                assert p.send_sync(msg(topic, 'b-%d' % i, i)).status == 0
            for i, col in enumerate(cols):
                ok = col.wait(lambda: set(col.seqs()) >= want, 40)
                assert ok, 'broadcast consumer %d missing %s' % (i, sorted(want - set(col.seqs())))
        finally:
            for c in cs:
                c.shutdown()
    finally:
        p.shutdown()
    print('broadcast ok')


def check_orderly(ns):
    topic = 'PyFeatOrder_%s' % uid()
    p = producer(ns)
    keys, per_key = 4, 15
    try:
        for n in range(per_key):
            for k in range(keys):
                seq = '%d-%d' % (k, n)
                r = p.send_orderly(msg(topic, 'o-%s' % seq, seq), k)
                assert r.status == 0, r
    finally:
        p.shutdown()
    col = Collector()
    c = consumer(ns, 'CID_feat_order_%s' % uid(), topic, col, orderly=True)
    try:
        ok = col.wait(lambda: len(set(col.seqs())) >= keys * per_key, 60)
    finally:
        c.shutdown()
    assert ok, 'orderly: got %d of %d' % (len(set(col.seqs())), keys * per_key)
    by_key = {}
    queue_of = {}
    for seq, _, _, qid, _, _, _ in col.seen:
        k, n = seq.split('-')
        by_key.setdefault(k, []).append(int(n))
        assert queue_of.setdefault(k, qid) == qid, 'key %s on two queues' % k
    for k, ns_ in by_key.items():
        assert ns_ == sorted(ns_), 'key %s out of order: %s' % (k, ns_)
    print('orderly ok')


def check_retry(ns):
    topic = 'PyFeatRetry_%s' % uid()
    p = producer(ns)
    try:
        for i in range(3):
            assert p.send_sync(msg(topic, 'r-%d' % i, i)).status == 0
    finally:
        p.shutdown()
    col = Collector(fail_once=['1'])
    c = consumer(ns, 'CID_feat_retry_%s' % uid(), topic, col)
    try:
        ok = col.wait(lambda: set(col.seqs()) >= {'0', '1', '2'}, 60)
    finally:
        c.shutdown()
    assert ok, 'retry: got %s' % col.seen
    assert col.seqs('failed') == ['1'], col.seen
    back = [s for s in col.seen if s[0] == '1' and s[6] == 'ok'][0]
    assert back[1] == 'r-1', back
    assert back[4] >= 1, 'redelivery without reconsume times: %s' % (back,)
    print('retry ok (message came back after %.2fs)' % (back[5] - [s for s in col.seen if s[6] == 'failed'][0][5]))


def main():
    ns = sys.argv[1]
    check_sends(ns)
    check_broadcast(ns)
    check_orderly(ns)
    check_retry(ns)
    print('features: ok')


if __name__ == '__main__':
    main()
