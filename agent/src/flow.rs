//! Flow control of screen updates: how many the viewer may have unacknowledged, and when the
//! capture thread may make another.
//!
//! There are `limit` slots. An update takes one from the moment it is made until the technician
//! has acknowledged it *and* its stream has been written, so there are never more than `limit`
//! updates unacknowledged, nor more than `limit` update streams being written at once. Each
//! freed slot is one credit for the capture thread.
//!
//! The technician applies updates in sequence and acknowledges each once, in order
//! (`protocol::peer`). So an ack of the next unacknowledged update frees its slot; an ack of one
//! acknowledged before is ignored and counted (a technician repeating `UpdateAck { seq: 1 }` gets
//! nothing for it); an ack of an update never sent, or one that skips another, breaks the
//! protocol and ends the session with an [`AckError`] that says so.

use std::collections::BTreeSet;

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The update's slot is free: one more credit.
    Freed,
    /// Acknowledged; its slot frees once its stream is written.
    Writing,
    /// It was acknowledged before: ignored.
    Repeated,
}

/// An acknowledgement that breaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error(
        "the technician acknowledged screen update {seq}, which was never sent (the last sent was {sent})"
    )]
    NeverSent { seq: u64, sent: u64 },
    #[error("the technician acknowledged screen update {seq} before update {expected}")]
    OutOfOrder { seq: u64, expected: u64 },
}

/// The slots of one viewer.
#[derive(Debug, Clone)]
pub struct Window {
    limit: usize,
    /// The number of the last update made, and of the last acknowledged (updates are numbered
    /// from 1, and acknowledged in order).
    sent: u64,
    acked: u64,
    /// Updates whose stream is still being written.
    writing: BTreeSet<u64>,
    repeated: u64,
}

impl Window {
    /// `limit` slots, all free.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            sent: 0,
            acked: 0,
            writing: BTreeSet::new(),
            repeated: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Slots taken: updates unacknowledged, and acknowledged ones still being written.
    pub fn taken(&self) -> usize {
        (self.sent - self.acked) as usize + self.writing.range(..=self.acked).count()
    }

    /// Whether every update made is acknowledged and written.
    pub fn is_idle(&self) -> bool {
        self.taken() == 0
    }

    /// Acknowledgements ignored because they repeated one.
    pub fn repeated(&self) -> u64 {
        self.repeated
    }

    /// Update `seq` was made (with a credit) and its stream is being written. Updates come
    /// numbered 1, 2, 3, ...
    pub fn sent(&mut self, seq: u64) {
        debug_assert_eq!(seq, self.sent + 1, "updates are numbered in order");
        debug_assert!(self.taken() < self.limit, "an update made without a credit");
        self.sent = seq.max(self.sent);
        self.writing.insert(seq);
    }

    /// The technician acknowledged update `seq`.
    pub fn ack(&mut self, seq: u64) -> Result<Ack, AckError> {
        if seq > self.sent {
            return Err(AckError::NeverSent {
                seq,
                sent: self.sent,
            });
        }
        if seq <= self.acked {
            self.repeated += 1;
            return Ok(Ack::Repeated);
        }
        let expected = self.acked + 1;
        if seq != expected {
            return Err(AckError::OutOfOrder { seq, expected });
        }
        self.acked = seq;
        Ok(if self.writing.contains(&seq) {
            Ack::Writing
        } else {
            Ack::Freed
        })
    }

    /// Update `seq`'s stream is written (or failed to be). Whether that freed its slot.
    pub fn written(&mut self, seq: u64) -> bool {
        self.writing.remove(&seq) && seq <= self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes the next update and writes its stream.
    fn send(w: &mut Window) -> u64 {
        let seq = w.sent + 1;
        w.sent(seq);
        assert!(!w.written(seq), "written before acknowledged frees nothing");
        seq
    }

    #[test]
    fn each_update_frees_its_slot_once() {
        let mut w = Window::new(2);
        let (a, b) = (send(&mut w), send(&mut w));
        assert_eq!(w.taken(), 2);
        assert_eq!(w.ack(a), Ok(Ack::Freed));
        assert_eq!(w.taken(), 1);
        for _ in 0..100 {
            assert_eq!(w.ack(a), Ok(Ack::Repeated));
        }
        assert_eq!(w.taken(), 1, "a repeated ack freed a slot");
        assert_eq!(w.repeated(), 100);
        assert_eq!(w.ack(b), Ok(Ack::Freed));
        assert!(w.is_idle());
        assert_eq!(w.ack(b), Ok(Ack::Repeated));
        assert!(w.is_idle());
    }

    #[test]
    fn an_ack_of_an_update_never_sent_or_out_of_order_is_refused() {
        let mut w = Window::new(2);
        assert_eq!(w.ack(1), Err(AckError::NeverSent { seq: 1, sent: 0 }));
        let a = send(&mut w);
        let b = send(&mut w);
        assert_eq!(
            w.ack(b),
            Err(AckError::OutOfOrder {
                seq: 2,
                expected: 1
            })
        );
        assert_eq!(w.ack(a), Ok(Ack::Freed));
        assert_eq!(w.ack(7), Err(AckError::NeverSent { seq: 7, sent: 2 }));
        assert_eq!(
            w.ack(u64::MAX),
            Err(AckError::NeverSent {
                seq: u64::MAX,
                sent: 2
            })
        );
        assert!(AckError::NeverSent { seq: 7, sent: 2 }
            .to_string()
            .contains("update 7, which was never sent"));
    }

    #[test]
    fn an_update_acknowledged_before_its_stream_is_written_keeps_its_slot() {
        // A technician that acknowledges updates before they arrive (it can guess their
        // numbers) gets no more streams written at once than the limit.
        let mut w = Window::new(2);
        w.sent(1);
        w.sent(2);
        assert_eq!(w.ack(1), Ok(Ack::Writing));
        assert_eq!(w.ack(2), Ok(Ack::Writing));
        assert_eq!(w.taken(), 2);
        assert!(w.written(2));
        assert_eq!(w.taken(), 1);
        assert!(w.written(1));
        assert!(w.is_idle());
        assert!(!w.written(1), "a stream is written once");
    }
}
