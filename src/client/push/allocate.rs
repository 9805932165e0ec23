//! Queue allocation among the members of a consumer group (clustering
//! rebalance). Every member computes the same answer from the same sorted
//! queue and client-id lists, so no coordination is needed.
//!
//! * [`Allocation::Averagely`]: contiguous blocks, the first `n % members`
//!   members one queue more (Java `AllocateMessageQueueAveragely`).
//! * [`Allocation::ConsistentHash`]: a hash ring with virtual nodes; moving
//!   members move few queues (Java `AllocateMessageQueueConsistentHash`:
//!   MD5, first 4 digest bytes, nodes `clientId-i`, queue key
//!   `MessageQueue [topic=.., brokerName=.., queueId=..]`).

use std::collections::BTreeMap;

use crate::wire::bodies::MessageQueue;

/// Allocation strategy of a push or lite pull consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    #[default]
    Averagely,
    /// A hash ring with this many virtual nodes per member (Java: 10).
    ConsistentHash { virtual_nodes: usize },
}

impl Allocation {
    /// The queues of `me` among `all` (sorted) shared by `members` (sorted).
    pub fn allocate(
        &self,
        all: &[MessageQueue],
        members: &[String],
        me: &str,
    ) -> Vec<MessageQueue> {
        match self {
            Allocation::Averagely => averagely(all, members, me),
            Allocation::ConsistentHash { virtual_nodes } => {
                consistent_hash(all, members, me, (*virtual_nodes).max(1))
            }
        }
    }
}

/// Contiguous blocks of `len/members` queues, the first `len%members`
/// members getting one more.
pub fn averagely(all: &[MessageQueue], members: &[String], me: &str) -> Vec<MessageQueue> {
    let Some(index) = members.iter().position(|m| m == me) else {
        return Vec::new();
    };
    let (n, m) = (all.len(), members.len());
    if n == 0 {
        return Vec::new();
    }
    let rem = n % m;
    let size = if n <= m {
        1
    } else if rem > 0 && index < rem {
        n / m + 1
    } else {
        n / m
    };
    let start = if rem > 0 && index < rem {
        index * size
    } else {
        index * size + rem
    };
    let range = size.min(n.saturating_sub(start));
    (0..range).map(|i| all[(start + i) % n].clone()).collect()
}

fn ring_hash(key: &str) -> u32 {
    let d = md5(key.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Each queue goes to the member owning the first virtual node at or after
/// the queue's hash on the ring (wrapping).
pub fn consistent_hash(
    all: &[MessageQueue],
    members: &[String],
    me: &str,
    virtual_nodes: usize,
) -> Vec<MessageQueue> {
    if !members.iter().any(|m| m == me) {
        return Vec::new();
    }
    let mut ring: BTreeMap<u32, &str> = BTreeMap::new();
    for m in members {
        for i in 0..virtual_nodes {
            ring.insert(ring_hash(&format!("{m}-{i}")), m.as_str());
        }
    }
    all.iter()
        .filter(|q| {
            let key = format!(
                "MessageQueue [topic={}, brokerName={}, queueId={}]",
                q.topic, q.broker_name, q.queue_id
            );
            let h = ring_hash(&key);
            let owner = ring
                .range(h..)
                .next()
                .or_else(|| ring.iter().next())
                .map(|(_, m)| *m);
            owner == Some(me)
        })
        .cloned()
        .collect()
}

/// MD5 (RFC 1321) of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let mut st: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for chunk in msg.chunks_exact(64) {
        let w: Vec<u32> = chunk
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = st;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(w[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        st = [
            st[0].wrapping_add(a),
            st[1].wrapping_add(b),
            st[2].wrapping_add(c),
            st[3].wrapping_add(d),
        ];
    }
    let mut out = [0u8; 16];
    for (i, v) in st.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n)
            .map(|i| MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id: i,
            })
            .collect()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn md5_vectors() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn averagely_like_java() {
        let all = queues(8);
        let m = ids(3);
        let got: Vec<Vec<i32>> = m
            .iter()
            .map(|c| averagely(&all, &m, c).iter().map(|q| q.queue_id).collect())
            .collect();
        assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        // More members than queues: the extra ones get nothing.
        let m = ids(5);
        let counts: Vec<usize> = m
            .iter()
            .map(|c| averagely(&queues(3), &m, c).len())
            .collect();
        assert_eq!(counts, vec![1, 1, 1, 0, 0]);
        assert!(averagely(&all, &m, "stranger").is_empty());
    }

    #[test]
    fn consistent_hash_covers_every_queue_once() {
        let all = queues(16);
        let m = ids(3);
        let mut seen: Vec<i32> = m
            .iter()
            .flat_map(|c| consistent_hash(&all, &m, c, 10))
            .map(|q| q.queue_id)
            .collect();
        seen.sort();
        assert_eq!(seen, (0..16).collect::<Vec<_>>());
    }
}
