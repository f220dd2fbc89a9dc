//! The backend's cost curve: a fixed cost per call and a cost per row.

/// Weight kept by old observations at each new one (about the last 20 count).
const FORGET: f64 = 0.95;

/// Service time of a batch as `fixed + per_row x rows`, fitted by least squares with
/// exponential forgetting over batches that ran with no other batch of the model in flight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostModel {
    weight: f64,
    sum_x: f64,
    sum_y: f64,
    sum_xx: f64,
    sum_xy: f64,
}

impl CostModel {
    pub fn observe(&mut self, rows: usize, seconds: f64) {
        let x = rows as f64;
        self.weight = self.weight * FORGET + 1.0;
        self.sum_x = self.sum_x * FORGET + x;
        self.sum_y = self.sum_y * FORGET + seconds;
        self.sum_xx = self.sum_xx * FORGET + x * x;
        self.sum_xy = self.sum_xy * FORGET + x * seconds;
    }

    /// (fixed, per row) in seconds, once a batch was seen. With batches of a single size the
    /// two cannot be told apart: all of it counts as fixed (which makes waiting for more rows
    /// look worth more than it is only when batches never vary).
    pub fn fit(&self) -> Option<(f64, f64)> {
        if self.weight < 0.5 {
            return None;
        }
        let mean_x = self.sum_x / self.weight;
        let mean_y = self.sum_y / self.weight;
        let var_x = self.sum_xx / self.weight - mean_x * mean_x;
        let per_row = if var_x > 0.25 { ((self.sum_xy / self.weight - mean_x * mean_y) / var_x).max(0.0) } else { 0.0 };
        let fixed = (mean_y - per_row * mean_x).max(0.0);
        Some((fixed, per_row))
    }

    /// Whether enough batches were seen to refuse a request on the strength of the fit (a few:
    /// until then the daemon admits, rather than refuse on a guess).
    pub fn confident(&self) -> bool {
        self.weight >= 3.0
    }

    pub fn predict(&self, rows: usize) -> Option<f64> {
        self.fit().map(|(fixed, per_row)| fixed + per_row * rows as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_model_finds_fixed_and_per_row_costs() {
        let mut cost = CostModel::default();
        assert_eq!(cost.fit(), None);
        for rows in [1, 8, 64, 3, 32, 16, 1, 64] {
            cost.observe(rows, 0.020 + 0.0002 * rows as f64);
        }
        let (fixed, per_row) = cost.fit().unwrap();
        assert!((fixed - 0.020).abs() < 1e-6 && (per_row - 0.0002).abs() < 1e-7, "{fixed} {per_row}");
        // Always the same size: everything counts as fixed.
        let mut same = CostModel::default();
        for _ in 0..5 {
            same.observe(1, 0.0202);
        }
        assert_eq!(same.fit(), Some((0.0202, 0.0)));
    }
}
