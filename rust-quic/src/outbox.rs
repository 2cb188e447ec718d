//! Datagrams the core produced and the edge has yet to send, batched for UDP
//! GSO: consecutive packets of one size to one destination form one batch (one
//! `sendmsg` with `UDP_SEGMENT`); a shorter packet ends a batch, a larger one or
//! another destination starts the next. Packets are written straight into the
//! outbox's buffer, one after another, so a batch is a range of it and nothing
//! is copied to form one.

use std::net::SocketAddr;

/// One GSO send: `len` bytes at `start` of the outbox buffer, as datagrams of
/// `segment` bytes (the last may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub to: SocketAddr,
    pub start: usize,
    pub len: usize,
    pub segment: usize,
    /// A shorter packet ended it: the next one starts another batch.
    closed: bool,
}

pub struct Outbox {
    buf: Vec<u8>,
    used: usize,
    batches: Vec<Batch>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox { buf: vec![0; capacity], used: 0, batches: Vec::new() }
    }

    /// Room for the next packet, if `max` bytes fit.
    pub fn room(&mut self, max: usize) -> Option<&mut [u8]> {
        let end = self.used.checked_add(max)?;
        self.buf.get_mut(self.used..end)
    }

    /// The packet of `len` bytes just written at the start of `room()` goes to `to`.
    pub fn commit(&mut self, to: SocketAddr, len: usize) {
        let start = self.used;
        self.used += len;
        if let Some(b) = self.batches.last_mut() {
            if !b.closed && b.to == to && len <= b.segment {
                b.len += len;
                b.closed = len < b.segment;
                return;
            }
        }
        self.batches.push(Batch { to, start, len, segment: len, closed: false });
    }

    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// Every packet written, in order (batches index into it).
    pub fn buffer(&self) -> &[u8] {
        &self.buf[..self.used]
    }

    pub fn bytes(&self, b: &Batch) -> &[u8] {
        &self.buf[b.start..b.start + b.len]
    }

    pub fn clear(&mut self) {
        self.used = 0;
        self.batches.clear();
    }
}

impl Default for Outbox {
    fn default() -> Outbox {
        Outbox::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn fill(out: &mut Outbox, to: SocketAddr, len: usize) {
        out.room(len).expect("room").fill(len as u8);
        out.commit(to, len);
    }

    fn shape(out: &Outbox) -> Vec<(u16, usize, usize, usize)> {
        out.batches().iter().map(|b| (b.to.port(), b.start, b.len, b.segment)).collect()
    }

    #[test]
    fn equal_packets_to_one_destination_are_one_batch() {
        let mut out = Outbox::new(10_000);
        for _ in 0..4 {
            fill(&mut out, addr(1), 1200);
        }
        assert_eq!(shape(&out), [(1, 0, 4800, 1200)]);
        assert!(out.bytes(&out.batches()[0]).iter().all(|&b| b == 1200u16 as u8));
    }

    #[test]
    fn a_shorter_packet_ends_the_batch_and_a_larger_one_starts_the_next() {
        let mut out = Outbox::new(10_000);
        fill(&mut out, addr(1), 1200);
        fill(&mut out, addr(1), 1200);
        fill(&mut out, addr(1), 300); // ends it
        fill(&mut out, addr(1), 300); // a new batch: the last one is closed
        fill(&mut out, addr(1), 1200); // larger: a new batch
        assert_eq!(shape(&out), [(1, 0, 2700, 1200), (1, 2700, 300, 300), (1, 3000, 1200, 1200)]);
    }

    #[test]
    fn another_destination_starts_a_batch_and_room_runs_out() {
        let mut out = Outbox::new(3000);
        fill(&mut out, addr(1), 1200);
        fill(&mut out, addr(2), 1200);
        assert!(out.room(1200).is_none(), "600 bytes left");
        assert_eq!(shape(&out), [(1, 0, 1200, 1200), (2, 1200, 1200, 1200)]);
        out.clear();
        assert!(out.batches().is_empty() && out.room(3000).is_some());
    }
}
