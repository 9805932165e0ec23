// ActorMQ's gRPC proxy driven by Apache's unchanged RocketMQ 5.x Node.js
// client (npm `rocketmq-client-nodejs`).
//
// Usage: node rmq5_node.js ENDPOINT TOPIC FIFO_TOPIC GROUP PUSH_GROUP
// (NODE_PATH names the node_modules the package is in.)
//
// Prints `RESULT ...` lines the Rust test (tests/grpc_node.rs) checks, then
// `node: ok`; any failure exits non-zero.
'use strict';

const { Producer, SimpleConsumer, PushConsumer, ConsumeResult } = require('rocketmq-client-nodejs');

const [endpoint, topic, fifoTopic, group, pushGroup] = process.argv.slice(2);
const out = (...parts) => console.log('RESULT', ...parts);
const sleep = ms => new Promise(r => setTimeout(r, ms));
// The client's log goes to stderr (shown when the Rust test fails).
const t0 = Date.now();
const log = level => (...a) => console.error(`LOG ${Date.now() - t0}ms ${level}`, ...a);
const logger = { info: log('I'), warn: log('W'), error: log('E'), debug() {} };
const base = { endpoints: endpoint, namespace: '', requestTimeout: 10000, logger };

async function main() {
  // The consumers first, so their groups start before the messages.
  const simple = new SimpleConsumer({
    ...base,
    consumerGroup: group,
    subscriptions: new Map([[topic, 'TagA']]),
    awaitDuration: 3000,
  });
  await simple.startup();
  await simple.receive(16, 15000);
  const pushed = new Set();
  const push = new PushConsumer({
    ...base,
    consumerGroup: pushGroup,
    subscriptions: new Map([[topic, '*']]),
    messageListener: {
      async consume(m) {
        pushed.add(m.messageId);
        return ConsumeResult.SUCCESS;
      },
    },
  });
  await push.startup();
  await sleep(2000);

  // One topic up front: with several, this client (1.0.8) may miss its own
  // Settings reply (it arrives while the later routes are still fetched,
  // before startup() waits for it) and hang until its 5-minute re-sync.
  const producer = new Producer({ ...base, topics: [topic] });
  await producer.startup();
  const sent = [];
  for (let i = 0; i < 10; i++) {
    const r = await producer.send({
      topic, tag: 'TagA', keys: [`key-${i}`], body: Buffer.from(`node-${i}`),
      properties: new Map([['origin', 'node5']]),
    });
    sent.push(r.messageId);
    out('NORMAL', r.messageId, `node-${i}`);
  }
  for (let i = 0; i < 5; i++) {
    const r = await producer.send({ topic: fifoTopic, messageGroup: 'node-group', body: Buffer.from(`fifo-${i}`) });
    out('FIFO', r.messageId, `fifo-${i}`);
  }
  await producer.shutdown();

  const got = new Map();
  const deadline = Date.now() + 60000;
  while (got.size < sent.length && Date.now() < deadline) {
    for (const m of await simple.receive(16, 15000)) {
      got.set(m.messageId, m.body.toString());
      await simple.ack(m);
    }
  }
  out('SIMPLE', 'sent', sent.length, 'acked', got.size, 'missing', sent.filter(id => !got.has(id)).length);
  await simple.shutdown();

  while (pushed.size < sent.length && Date.now() < deadline + 30000) {
    await sleep(200);
  }
  out('PUSH', 'got', pushed.size, 'missing', sent.filter(id => !pushed.has(id)).length);
  // The push consumer's shutdown waits for its long polls to end.
  await Promise.race([push.shutdown(), sleep(5000)]);
}

main().then(() => {
  console.log('node: ok');
  process.exit(0);
}, e => {
  console.error('FAILED', e);
  process.exit(1);
});
