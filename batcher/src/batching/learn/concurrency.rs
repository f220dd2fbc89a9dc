//! How many requests the traffic keeps outstanding: in a closed loop (N clients, each waiting for
//! its answer before sending again) it is N, and once N requests are queued or in flight nobody
//! else is coming. It is the most seen outstanding over the last few batches, so that it follows
//! the load down within a few batches.

/// Batches the peak is remembered over.
const WINDOW: usize = 8;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Concurrency {
    /// The highest outstanding count between consecutive batches, for the last `WINDOW` batches.
    recent: [usize; WINDOW],
    next: usize,
    current: usize,
}

impl Concurrency {
    /// Requests queued or in flight now.
    pub fn observe(&mut self, outstanding: usize) {
        self.current = self.current.max(outstanding);
    }

    /// A batch went; `outstanding` is what remains queued or in flight (the batch included).
    pub fn batch_sent(&mut self, outstanding: usize) {
        self.recent[self.next] = self.current;
        self.next = (self.next + 1) % WINDOW;
        self.current = outstanding;
    }

    /// The most requests outstanding at once lately.
    pub fn peak(&self) -> usize {
        self.recent.iter().copied().max().unwrap_or(0).max(self.current)
    }

    /// Every request the traffic has lately kept outstanding is here: nothing more is coming.
    pub fn all_here(&self, outstanding: usize) -> bool {
        outstanding >= self.peak()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_follows_a_closed_loop_up_at_once_and_down_within_a_window() {
        let mut c = Concurrency::default();
        for wave in [8, 8, 8] {
            for outstanding in 1..=wave {
                assert_eq!(c.all_here(outstanding), outstanding == 8 || c.peak() < 8, "{outstanding}");
                c.observe(outstanding);
            }
            c.batch_sent(wave);
        }
        assert!(!c.all_here(7) && c.all_here(8));
        c.observe(32);
        assert_eq!(c.peak(), 32, "more clients: at once");
        c.batch_sent(32);
        for _ in 0..=WINDOW {
            c.observe(4);
            c.batch_sent(4);
        }
        assert_eq!(c.peak(), 4, "fewer clients: within a window of batches");
        assert!(c.all_here(4));
    }
}
